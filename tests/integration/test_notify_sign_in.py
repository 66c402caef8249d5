"""Sign-in by phone number and a one-time code sent through the notifier: codes expire, sending is
rate limited, repeated wrong codes lock the number, and the log never holds the whole number."""

from __future__ import annotations

import logging
import re

import pytest

from tests.conftest import Served

PHONE = "090-1234-5678"


def _code(served: Served, index: int = -1) -> str:
    return re.search(r"\b(\d{6})\b", served.runtime.notifier.log_channel.sent[index].text).group(1)


async def _send(served: Served, phone: str = PHONE):  # type: ignore[no-untyped-def]
    return await served.client.post("/api/v1/sign-in/code", json={"phone": phone})


async def _verify(served: Served, code: str, phone: str = PHONE):  # type: ignore[no-untyped-def]
    return await served.client.post("/api/v1/sign-in/verify", json={"phone": phone, "code": code, "name": "大熊 花"})


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_code_signs_in_and_the_token_works(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    r = await _send(served)
    assert r.status_code == 202 and r.json()["resend_after_s"] == 60
    sent = served.runtime.notifier.log_channel.sent[-1]
    assert sent.address == "+819012345678"
    code = _code(served)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("okuma"))
    assert code in ours  # development prints the code...
    assert "12345678" not in ours and "1234-5678" not in ours and "5678" not in ours  # ...never the number
    ok = await _verify(served, code)
    assert ok.status_code == 200 and ok.json()["new_rider"] is True
    me = await served.client.get("/api/v1/me", headers={"Authorization": f"Bearer {ok.json()['token']}"})
    assert me.status_code == 200 and me.json()["role"] == "rider" and me.json()["name"] == "大熊 花"
    again = await _verify(served, code)  # a used code does not work twice
    assert again.status_code == 400 and again.json()["error"] == "WrongCode"
    prof = await served.client.get("/api/v1/rider/profile", headers={"Authorization": f"Bearer {ok.json()['token']}"})
    assert prof.json()["phone_masked"] == "*******5678"


async def test_codes_expire(served: Served) -> None:
    await _send(served)
    code = _code(served)
    served.clock.advance(601)
    r = await _verify(served, code)
    assert r.status_code == 400 and r.json()["error"] == "WrongCode" and r.json()["message_en"]


async def test_sending_is_rate_limited(served: Served) -> None:
    assert (await _send(served)).status_code == 202
    r = await _send(served)
    assert r.status_code == 429 and r.json()["error"] == "RateLimited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and r.json()["message_ja"]
    for _ in range(4):
        served.clock.advance(61)
        assert (await _send(served)).status_code == 202
    served.clock.advance(61)
    r = await _send(served)  # the sixth within the hour
    assert r.status_code == 429
    assert (await _send(served, "080-0000-1111")).status_code == 202  # other numbers are not affected


async def test_wrong_codes_lock_the_number(served: Served) -> None:
    await _send(served)
    code = _code(served)
    lefts = []
    for _ in range(4):
        r = await _verify(served, _other(code))
        assert r.status_code == 400
        lefts.append(r.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1]
    r = await _verify(served, _other(code))
    assert r.status_code == 429  # the fifth wrong code locks the number
    assert (await _verify(served, code)).status_code == 429  # even the right code, now
    served.clock.advance(61)
    assert (await _send(served)).status_code == 429  # and no new code either
    served.clock.advance(900)
    assert (await _send(served)).status_code == 202
    assert (await _verify(served, _code(served))).status_code == 200


async def test_a_new_code_replaces_the_old_one(served: Served) -> None:
    await _send(served)
    first = _code(served)
    served.clock.advance(61)
    await _send(served)
    second = _code(served)
    if first != second:
        assert (await _verify(served, first)).status_code == 400
    assert (await _verify(served, second)).status_code == 200


async def test_bad_phone_numbers_get_a_clear_400(served: Served) -> None:
    r = await _send(served, "12-34")
    assert r.status_code in (400, 422) and r.json()["message_ja"] and r.json()["message_en"]
    r = await _send(served, "0000000000")
    assert r.status_code == 400 and r.json()["error"] == "InvalidInput"


async def test_names_lose_control_characters(served: Served) -> None:
    """A NUL in a name would be a server error on PostgreSQL: it is dropped instead."""
    await _send(served)
    r = await served.client.post("/api/v1/sign-in/verify",
                                 json={"phone": PHONE, "code": _code(served), "name": "大熊\x00 花\u200b子"})
    assert r.status_code == 200
    me = await served.client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert me.json()["name"] == "大熊 花子"
