"""The SMS adapter against a local server that speaks Twilio's Messages API (never the real service)."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import Served
from tests.local_server import serve
from transit.notify import DeliveryFailed, TwilioSms, retry_key

SID = "AC" + "0" * 32
TOKEN = "test-auth-token"
FROM = "+815012345678"


@dataclass
class FakeTwilio:
    """``POST /2010-04-01/Accounts/{sid}/Messages.json``: basic auth SID:token, form To/From/Body,
    201 with the message resource; ``script`` holds statuses to answer before accepting."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
        async def create(sid: str, request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            self.requests.append({"sid": sid, "form": form, "headers": dict(request.headers)})
            expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
            if sid != SID or request.headers.get("authorization") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
            if not form.get("To", "").startswith("+") or not form.get("Body") or not (
                    form.get("From") or form.get("MessagingServiceSid")):
                return JSONResponse({"code": 21604, "message": "A 'To' phone number is required.", "status": 400},
                                    status_code=400)
            if self.script:
                code, headers = self.script.pop(0)
                return JSONResponse({"code": 20429, "message": "Too Many Requests", "status": code},
                                    status_code=code, headers=headers)
            self.messages.append(form)
            return JSONResponse({"sid": f"SM{len(self.messages):032d}", "status": "queued", "to": form["To"],
                                 "body": form["Body"]}, status_code=201)

        return app


@pytest.fixture
async def twilio():  # type: ignore[no-untyped-def]
    fake = FakeTwilio()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


def sms(fake: FakeTwilio, waits: list[float] | None = None, **kw: Any) -> TwilioSms:
    async def sleep(s: float) -> None:
        if waits is not None:
            waits.append(s)
        await asyncio.sleep(min(s, 0.01))

    return TwilioSms(SID, TOKEN, sender=FROM, base_url=fake.url, sleep=sleep, backoff_s=0.2, **kw)


async def test_sends_the_documented_request_with_the_number_in_e164(twilio: FakeTwilio) -> None:
    ch = sms(twilio)
    wide = "090-1234-5678".translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})  # full-width digits
    await ch.send(wide, "確認コード 123456", retry_key("k1"))
    await ch.aclose()
    assert twilio.messages == [{"To": "+819012345678", "From": FROM, "Body": "確認コード 123456"}]
    assert twilio.requests[0]["headers"]["content-type"] == "application/x-www-form-urlencoded"


async def test_429_is_retried_after_retry_after_and_sent_once(twilio: FakeTwilio) -> None:
    twilio.script = [(429, {"Retry-After": "2"})]
    waits: list[float] = []
    ch = sms(twilio, waits)
    await ch.send("+81 90 1111 2222", "text", retry_key("k2"))
    await ch.aclose()
    assert waits == [2.0] and len(twilio.requests) == 2 and len(twilio.messages) == 1


async def test_a_5xx_is_not_retried_because_the_message_may_have_gone(twilio: FakeTwilio) -> None:
    """Twilio's API has no idempotency key: after a 5xx the message may exist, so no second try."""
    twilio.script = [(500, {})]
    ch = sms(twilio)
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("090-1111-2222", "text", retry_key("k3"))
    await ch.aclose()
    assert exc.value.permanent and len(twilio.requests) == 1


async def test_backoff_grows_and_gives_up_on_repeated_429(twilio: FakeTwilio) -> None:
    twilio.script = [(429, {})] * 3
    waits: list[float] = []
    ch = sms(twilio, waits, max_attempts=3)
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("090-1111-2222", "text", retry_key("k4"))
    await ch.aclose()
    assert not exc.value.permanent and len(twilio.requests) == 3 and twilio.messages == []
    assert len(waits) == 2 and waits[1] > waits[0]


async def test_connection_refused_is_retried(twilio: FakeTwilio) -> None:
    """Nothing listens yet: the request never left, so it is retried (then given up)."""
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    ch = TwilioSms(SID, TOKEN, sender=FROM, base_url="http://127.0.0.1:9", max_attempts=2, backoff_s=0.01,
                   sleep=sleep)
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("090-1111-2222", "text", retry_key("k5"))
    await ch.aclose()
    assert not exc.value.permanent and len(waits) == 1


async def test_not_a_japanese_number_is_refused_without_a_request(twilio: FakeTwilio) -> None:
    ch = sms(twilio)
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("12", "text", retry_key("k6"))
    await ch.aclose()
    assert exc.value.permanent and twilio.requests == []


async def test_sign_in_code_goes_by_sms_and_no_number_or_text_reaches_the_log(
        served: Served, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture) -> None:
    """Through the app: the code reaches the gateway; the log has neither the number nor the text;
    a refused SMS is recorded as refused (not retried, never sent twice)."""
    served.runtime.notifier.sms = sms(twilio)
    caplog.set_level(logging.INFO)
    r = await served.client.post("/api/v1/sign-in/code", json={"phone": "090-4444-5555"})
    assert r.status_code < 300, r.text
    assert len(twilio.messages) == 1 and twilio.messages[0]["To"] == "+819044445555"
    body = twilio.messages[0]["Body"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("okuma", "httpx", "uvicorn")))
    assert "sign-in/code" in logged  # the capture works
    assert "4444" not in logged and "+8190" not in logged and body not in logged
    twilio.script = [(500, {})]
    notifier = served.runtime.notifier
    first = await notifier.send_code("090-4444-5555", "654321", "code 654321", "code:test-500")
    again = await notifier.send_code("090-4444-5555", "654321", "code 654321", "code:test-500")
    assert (first.status, again.status) == ("refused", "duplicate")
    assert len(twilio.requests) == 2 and len(twilio.messages) == 1  # the 5xx was not retried
