"""The notifier: the LINE adapter against a local server that speaks LINE's push and webhook
protocol (never the real service), idempotent notices, and notices sent from bus events."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import Served
from tests.local_server import serve
from transit import errors, riders
from transit.events import RideBooked
from transit.notify import (
    DeliveryFailed,
    LineChannel,
    line_signature,
    retry_key,
    verify_line_signature,
)

SECRET = "test-channel-secret"
TOKEN = "test-channel-access-token"


@dataclass
class FakeLine:
    """LINE's push endpoint as documented: Bearer token, X-Line-Retry-Key (a UUID), 409 once a key
    was accepted. ``script`` holds the (status, headers) to answer before accepting."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v2/bot/message/push")
        async def push(request: Request) -> JSONResponse:
            body = await request.json()
            key = request.headers.get("x-line-retry-key", "")
            self.requests.append({"headers": dict(request.headers), "body": body, "key": key})
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"message": "Authentication failed"}, status_code=401)
            if not isinstance(body.get("to"), str) or not body.get("messages"):
                return JSONResponse({"message": "The request body has 1 error(s)"}, status_code=400)
            try:
                uuid.UUID(key)
            except ValueError:
                return JSONResponse({"message": "The retry key is invalid"}, status_code=400)
            if key in self.accepted:
                return JSONResponse({"message": "The retry key is already accepted"}, status_code=409,
                                    headers={"x-line-accepted-request-id": "req-1"})
            if self.script:
                code, headers = self.script.pop(0)
                return JSONResponse({"message": "scripted"}, status_code=code, headers=headers)
            self.accepted[key] = body
            return JSONResponse({"sentMessages": [{"id": str(len(self.accepted)), "quoteToken": "q"}]})

        return app

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return list(self.accepted.values())


@pytest.fixture
async def fake_line():  # type: ignore[no-untyped-def]
    line = FakeLine()
    async with serve(line.app()) as url:
        line.url = url
        yield line


def channel(line: FakeLine, waits: list[float] | None = None, **kw: Any) -> LineChannel:
    async def sleep(s: float) -> None:
        if waits is not None:
            waits.append(s)
        await asyncio.sleep(min(s, 0.01))

    return LineChannel(TOKEN, base_url=line.url, sleep=sleep, backoff_s=0.2, **kw)


# ------------------------------------------------------------------ the LINE adapter alone


async def test_push_sends_the_documented_request(fake_line: FakeLine) -> None:
    """A push carries the Bearer token, a UUID retry key and {to, messages:[{type:text}]}."""
    ch = channel(fake_line)
    await ch.send("U" + "a" * 32, "こんにちは", retry_key("k1"))
    await ch.aclose()
    assert len(fake_line.requests) == 1
    req = fake_line.requests[0]
    assert req["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert req["key"] == retry_key("k1") and uuid.UUID(req["key"])
    assert req["body"] == {"to": "U" + "a" * 32, "messages": [{"type": "text", "text": "こんにちは"}]}


async def test_5xx_is_retried_with_the_same_retry_key_and_delivered_once(fake_line: FakeLine) -> None:
    fake_line.script = [(500, {}), (503, {})]
    waits: list[float] = []
    ch = channel(fake_line, waits)
    await ch.send("Uuser", "text", retry_key("k2"))
    await ch.aclose()
    keys = [r["key"] for r in fake_line.requests]
    assert keys == [retry_key("k2")] * 3
    assert len(fake_line.delivered) == 1
    assert len(waits) == 2 and waits[1] > waits[0]  # exponential backoff


async def test_429_waits_for_retry_after(fake_line: FakeLine) -> None:
    fake_line.script = [(429, {"Retry-After": "3"})]
    waits: list[float] = []
    ch = channel(fake_line, waits)
    await ch.send("Uuser", "text", retry_key("k3"))
    await ch.aclose()
    assert waits == [3.0]  # the header, not the 0.2 s backoff
    assert len(fake_line.requests) == 2 and len(fake_line.delivered) == 1


async def test_a_resend_after_an_accepted_push_is_not_delivered_again(fake_line: FakeLine) -> None:
    """Our side lost the answer: the same retry key gets 409, which counts as delivered."""
    ch = channel(fake_line)
    await ch.send("Uuser", "text", retry_key("k4"))
    await ch.send("Uuser", "text", retry_key("k4"))
    await ch.aclose()
    assert [r["key"] for r in fake_line.requests] == [retry_key("k4")] * 2
    assert len(fake_line.delivered) == 1


async def test_4xx_is_permanent_and_not_retried(fake_line: FakeLine) -> None:
    ch = LineChannel("wrong-token", base_url=fake_line.url, sleep=lambda s: asyncio.sleep(0))
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("Uuser", "text", retry_key("k5"))
    await ch.aclose()
    assert exc.value.permanent and len(fake_line.requests) == 1


async def test_gives_up_after_max_attempts(fake_line: FakeLine) -> None:
    fake_line.script = [(500, {})] * 10
    ch = channel(fake_line, max_attempts=3)
    with pytest.raises(DeliveryFailed) as exc:
        await ch.send("Uuser", "text", retry_key("k6"))
    await ch.aclose()
    assert not exc.value.permanent and len(fake_line.requests) == 3


def test_signature_is_hmac_sha256_base64_of_the_body() -> None:
    body = b'{"destination":"x","events":[]}'
    sig = line_signature(SECRET, body)
    assert verify_line_signature(SECRET, body, sig)
    assert not verify_line_signature(SECRET, body + b" ", sig)
    assert not verify_line_signature("other-secret", body, sig)
    assert not verify_line_signature(SECRET, body, None)


# ------------------------------------------------------------------ the notifier in the service


async def _phone_rider(served: Served, phone: str = "090-1111-2222", name: str = "大熊 一郎") -> tuple[str, str]:
    """Sign a rider in through the API; returns (account id, token)."""
    sent = served.runtime.notifier.log_channel.sent
    before = len(sent)
    r = await served.client.post("/api/v1/sign-in/code", json={"phone": phone})
    assert r.status_code == 202, r.text
    code = re.search(r"\b(\d{6})\b", sent[before].text).group(1)
    r = await served.client.post("/api/v1/sign-in/verify", json={"phone": phone, "code": code, "name": name})
    assert r.status_code == 200, r.text
    return r.json()["account_id"], r.json()["token"]


def _use_line(served: Served, line: FakeLine) -> None:
    rt = served.runtime
    rt.settings = rt.settings.model_copy(update={"line_channel_secret": SECRET, "line_channel_access_token": TOKEN,
                                                 "line_api_base": line.url})
    rt.notifier.line = channel(line)


async def _webhook(served: Served, payload: dict[str, Any], secret: str = SECRET) -> Any:
    body = json.dumps(payload).encode()
    return await served.client.post("/api/v1/line/webhook", content=body,
                                    headers={"x-line-signature": line_signature(secret, body),
                                             "content-type": "application/json"})


def _message_event(text: str, user: str) -> dict[str, Any]:
    return {"destination": "Ubot", "events": [{
        "type": "message", "mode": "active", "timestamp": 1764115200000,
        "webhookEventId": f"01H{uuid.uuid4().hex[:20].upper()}", "deliveryContext": {"isRedelivery": False},
        "replyToken": "r" * 32, "source": {"type": "user", "userId": user},
        "message": {"id": "468789577898262530", "type": "text", "quoteToken": "q", "text": text}}]}


async def test_webhook_checks_the_signature_and_links_by_code(served: Served, fake_line: FakeLine) -> None:
    _use_line(served, fake_line)
    _, token = await _phone_rider(served)
    auth = {"Authorization": f"Bearer {token}"}
    r = await served.client.post("/api/v1/rider/line-link", headers=auth)
    assert r.status_code == 201
    code = r.json()["code"]
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{6}", code)
    user = "U" + "b" * 32
    bad = await _webhook(served, _message_event(code, user), secret="not-the-secret")
    assert bad.status_code == 401 and bad.json()["message_ja"]
    assert (await served.client.get("/api/v1/rider/profile", headers=auth)).json()["line_linked"] is False
    ok = await _webhook(served, _message_event(code.lower(), user))
    assert ok.status_code == 200 and ok.json() == {"linked": 1}
    assert (await served.client.get("/api/v1/rider/profile", headers=auth)).json()["line_linked"] is True
    assert [d["to"] for d in fake_line.delivered] == [user]  # the "linked" confirmation, by push
    again = await _webhook(served, _message_event(code, user))  # a used code links nothing
    assert again.json() == {"linked": 0}


async def test_bus_events_notify_once_per_key_even_when_delivered_twice(served: Served, fake_line: FakeLine) -> None:
    """A booking's confirmation reaches the rider's LINE once, though the event came twice
    (a retried event or a second server process); a cancellation is a second notice."""
    _use_line(served, fake_line)
    account_id, token = await _phone_rider(served)
    r = await served.client.post("/api/v1/rider/line-link", headers={"Authorization": f"Bearer {token}"})
    await _webhook(served, _message_event(r.json()["code"], "Ucafe"))
    auth = {"Authorization": f"Bearer {token}"}
    offer = await served.client.post("/api/v1/offers", headers=auth, json={
        "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
        "time_mode": "leave_at", "time": (served.clock.now() + timedelta(hours=2)).isoformat()})
    assert offer.status_code == 201, offer.text
    b = await served.client.post("/api/v1/bookings", headers={**auth, "Idempotency-Key": "n1"},
                                 json={"offer_id": offer.json()["offer_id"]})
    assert b.status_code == 201
    notifier = served.runtime.notifier
    await notifier.drain()
    await notifier.on_events([RideBooked(b.json()["id"], b.json()["vehicle_id"])])  # the same event again
    await notifier.drain()
    pushes = [d for d in fake_line.delivered if "予約が確定しました" in d["messages"][0]["text"]]
    assert len(pushes) == 1 and pushes[0]["to"] == "Ucafe"
    assert "Your ride is booked" in pushes[0]["messages"][0]["text"]
    await served.client.post(f"/api/v1/bookings/{b.json()['id']}/cancel", headers=auth, json={"reason": "rider"})
    await notifier.drain()
    texts = [d["messages"][0]["text"] for d in fake_line.delivered]
    assert sum("取り消しました" in t for t in texts) == 1
    async with served.runtime.services.uow(readonly=True) as uow:
        rows = await uow.notices.for_account(account_id)
    assert {r["kind"] for r in rows} >= {"confirmed", "cancelled"} and all(r["status"] == "sent" for r in rows)


async def test_a_failed_notice_is_retried_later_and_still_sent_once(served: Served, fake_line: FakeLine) -> None:
    _use_line(served, fake_line)
    served.runtime.notifier.line = channel(fake_line, max_attempts=2)
    account_id, token = await _phone_rider(served, "080-3333-4444")
    r = await served.client.post("/api/v1/rider/line-link", headers={"Authorization": f"Bearer {token}"})
    await _webhook(served, _message_event(r.json()["code"], "Uretry"))
    fake_line.script = [(500, {}), (500, {})]
    notifier = served.runtime.notifier
    first = await notifier.notify(account_id, "near", "text", "near:b1:" + account_id)
    assert first.status == "failed"
    second = await notifier.notify(account_id, "near", "text", "near:b1:" + account_id)
    third = await notifier.notify(account_id, "near", "text", "near:b1:" + account_id)
    assert (second.status, third.status) == ("sent", "duplicate")
    assert sum(d["messages"][0]["text"] == "text" for d in fake_line.delivered) == 1
    assert {r["key"] for r in fake_line.requests if r["body"]["messages"][0]["text"] == "text"} == {
        retry_key("near:b1:" + account_id)}


async def test_family_link_by_code_and_the_guardian_is_told_of_the_boarding(served: Served) -> None:
    """A resident invites a parent (code to the parent's phone), books for them, and the boarding
    notice reaches both (through the development adapter)."""
    parent_id, _ = await _phone_rider(served, "090-5555-6666", "大熊 ハナ")
    child_id, child_token = await _phone_rider(served, "090-7777-8888", "大熊 次郎")
    auth = {"Authorization": f"Bearer {child_token}"}
    log = served.runtime.notifier.log_channel.sent
    n = len(log)
    inv = await served.client.post("/api/v1/family/invitations", headers=auth,
                                   json={"phone": "090-5555-6666", "name": "母"})
    assert inv.status_code == 201
    code = re.search(r"\b(\d{6})\b", log[n].text).group(1)
    assert log[n].address == "+819055556666"
    wrong = await served.client.post(f"/api/v1/family/invitations/{inv.json()['invitation_id']}/confirm",
                                     headers=auth, json={"code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "WrongCode"
    ok = await served.client.post(f"/api/v1/family/invitations/{inv.json()['invitation_id']}/confirm",
                                  headers=auth, json={"code": code})
    assert ok.status_code == 200, ok.text
    assert ok.json()["account_id"] == parent_id and ok.json()["role"] == "guardian"
    offer = await served.client.post("/api/v1/offers", headers=auth, json={
        "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
        "time_mode": "now", "for_account_id": parent_id})
    assert offer.status_code == 201, offer.text
    b = (await served.client.post("/api/v1/bookings", headers={**auth, "Idempotency-Key": "fam1"},
                                  json={"offer_id": offer.json()["offer_id"]})).json()
    assert b["account_id"] == parent_id and b["booked_by_id"] == child_id and b["passenger_name"] == "大熊 ハナ"
    # someone not linked cannot book for the parent
    other = await served.client.post("/api/v1/offers", headers=served.auth("rider"), json={
        "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
        "time_mode": "now", "for_account_id": parent_id})
    assert other.status_code == 403
    ops = served.runtime.operations
    from transit.operations import ReportArrival, ReportBoarded

    vid = b["vehicle_id"]
    await ops.report(ReportArrival(vehicle_id=vid, client_event_id="a1", at=None, booking_ids=(b["id"],),
                                   stop_id="okuma_town_hall"))
    res = await ops.report(ReportBoarded(vehicle_id=vid, client_event_id="b1", at=None, booking_id=b["id"], count=1))
    assert res.result == "applied", res
    await served.runtime.notifier.drain()
    boarded = [d for d in log if "乗車しました" in d.text]
    assert {d.address for d in boarded} == {"+819055556666", "+819077778888"}
    assert all("大熊 ハナ" in d.text for d in boarded)


async def test_phone_numbers_are_normalised() -> None:
    assert riders.normalise_phone("\uff10\uff19\uff10\uff0d\uff11\uff12\uff13\uff14\uff0d\uff15\uff16\uff17\uff18")  # full width == "+819012345678"
    assert riders.normalise_phone("+81 90 1234 5678") == "+819012345678"
    assert riders.normalise_phone("0240-32-2111") == "+81240322111"
    for bad in ("12345", "0012345678", "abc", ""):
        with pytest.raises(errors.InvalidInput):
            riders.normalise_phone(bad)


async def test_the_minibus_near_is_told_once_from_its_position(served: Served) -> None:
    """ETAs follow the reported position (in the vehicle's current shift segment); within the
    rider's N minutes the notifier sends "near" once, not on every fix."""
    from transit.operations import ReportPosition

    account_id, token = await _phone_rider(served, "090-4321-0000")
    auth = {"Authorization": f"Bearer {token}"}
    offer = await served.client.post("/api/v1/offers", headers=auth, json={
        "origin": {"stop_id": "ono_station_west_plaza"}, "destination": {"stop_id": "okuma_town_hall"},
        "time_mode": "now"})
    b = (await served.client.post("/api/v1/bookings", headers={**auth, "Idempotency-Key": "near1"},
                                  json={"offer_id": offer.json()["offer_id"]})).json()
    ops, notifier = served.runtime.operations, served.runtime.notifier
    log = notifier.log_channel.sent

    async def fix(n: int, lat: float, lon: float) -> None:
        r = await ops.report(ReportPosition(vehicle_id=b["vehicle_id"], client_event_id=f"near-{n}", at=None,
                                            lat=lat, lon=lon))
        assert r.result == "applied"
        await notifier.drain()

    await fix(1, 37.3822, 140.9590)  # at the town hall, about ten minutes away
    _, etas = await ops.etas(b["vehicle_id"])
    assert any(e.booking_id == b["id"] and e.kind == "pickup" for e in etas)
    assert not any("まもなく" in d.text or "あと約" in d.text for d in log)
    served.clock.advance(6 * 60)
    await fix(2, 37.4080, 140.9815)  # almost at Ono Station
    await fix(3, 37.4085, 140.9820)
    near = [d for d in log if "あと約" in d.text]
    assert len(near) == 1 and near[0].address == "+819043210000"
    async with served.runtime.services.uow(readonly=True) as uow:
        kinds = [r["kind"] for r in await uow.notices.for_account(account_id)]
    assert kinds.count("near") == 1


async def test_not_at_the_stop_and_promise_at_risk_are_told(served: Served) -> None:
    """A no-show (after the wait at the stop) and a promise at risk each reach the rider once."""
    from transit.events import PromiseAtRisk
    from transit.operations import ReportArrival, ReportNoShow

    account_id, token = await _phone_rider(served, "070-1212-3434")
    auth = {"Authorization": f"Bearer {token}"}
    offer = await served.client.post("/api/v1/offers", headers=auth, json={
        "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
        "time_mode": "now"})
    b = (await served.client.post("/api/v1/bookings", headers={**auth, "Idempotency-Key": "ns1"},
                                  json={"offer_id": offer.json()["offer_id"]})).json()
    notifier, ops = served.runtime.notifier, served.runtime.operations
    late = PromiseAtRisk(b["id"], b["vehicle_id"], expected_s=2_000_000_000, promised_latest_s=1_999_999_000)
    await notifier.on_events([late])
    await notifier.on_events([late])  # told once, not on every fix
    served.clock.advance(300)
    await ops.report(ReportArrival(vehicle_id=b["vehicle_id"], client_event_id="ns-a", at=None,
                                   booking_ids=(b["id"],), stop_id="okuma_town_hall"))
    served.clock.advance(181)
    res = await ops.report(ReportNoShow(vehicle_id=b["vehicle_id"], client_event_id="ns-n", at=None,
                                        booking_id=b["id"]))
    assert res.result == "applied", res
    await notifier.drain()
    texts = [d.text for d in notifier.log_channel.sent if d.address == "+817012123434"]
    assert sum("遅れる見込み" in t for t in texts) == 1
    assert sum("乗車されませんでした" in t for t in texts) == 1
    async with served.runtime.services.uow(readonly=True) as uow:
        kinds = sorted(r["kind"] for r in await uow.notices.for_account(account_id))
    assert kinds == ["confirmed", "not_at_stop", "promise_at_risk"]
