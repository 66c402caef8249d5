"""TOMP webhooks as an outside MaaS app sees them: a real HTTP server on 127.0.0.1 that checks the
signature, answers 503 once, and counts what it got (no event twice, retries identical)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.conftest import Served
from tests.integration.test_tomp import HALL, _event, _maas, _offer
from tests.local_server import serve
from transit.events import BookingStatusChanged
from transit.feeds.tomp_webhooks import TompWebhooks
from transit.operations import (
    ReportArrival,
    ReportBoarded,
    ReportDropOff,
    ReportNoShow,
    ReportPosition,
)

SECRET = "maas-app-webhook-secret-0123"


@dataclass
class MaasApp:
    """The MaaS provider's side of TOMP 1.6: POST /legs/{id}/events, /bookings/{id}/events,
    /bookings/{id}/notifications under its base URL. ``script``: statuses to answer first;
    ``hold``: the first request waits until it is set."""

    secret: str = SECRET
    url: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # accepted, by event id
    hold: asyncio.Event | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        async def receive(request: Request, kind: str, tomp_id: str) -> Response:
            raw = await request.body()
            if self.hold is not None:
                await self.hold.wait()
            h = request.headers
            expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(expected, h.get("x-okuma-signature", ""))
            self.requests.append({"path": request.url.path, "raw": raw, "id": h.get("x-okuma-event-id"),
                                  "headers": dict(h), "signed": ok})
            if not ok:
                return JSONResponse({"errorcode": 401, "title": "bad signature"}, status_code=401)
            if self.script:
                return JSONResponse({"title": "busy"}, status_code=self.script.pop(0), headers={"Retry-After": "0"})
            event_id = h["x-okuma-event-id"]
            if event_id not in self.events:  # a receiver de-duplicates by event id
                self.events[event_id] = {"kind": kind, "tomp_id": tomp_id, "path": request.url.path,
                                         "body": json.loads(raw)}
            return Response(status_code=204) if kind != "leg" else JSONResponse({"id": tomp_id})

        @app.post("/tomp/legs/{tomp_id}/events")
        async def leg(tomp_id: str, request: Request) -> Response:
            return await receive(request, "leg", tomp_id)

        @app.post("/tomp/bookings/{tomp_id}/events")
        async def booking(tomp_id: str, request: Request) -> Response:
            return await receive(request, "booking", tomp_id)

        @app.post("/tomp/bookings/{tomp_id}/notifications")
        async def notification(tomp_id: str, request: Request) -> Response:
            return await receive(request, "notification", tomp_id)

        return app

    def bodies(self, tomp_id: str) -> list[dict[str, Any]]:
        return [e["body"] for e in self.events.values() if e["tomp_id"] == tomp_id]


@pytest.fixture
async def maas_app():  # type: ignore[no-untyped-def]
    app = MaasApp()
    async with serve(app.app()) as url:
        app.url = url
        yield app


def _hooks(served: Served):  # type: ignore[no-untyped-def]
    hooks = served.app.state.tomp_webhooks  # type: ignore[attr-defined]

    async def no_wait(s: float) -> None:
        await asyncio.sleep(0)

    hooks.sleep = no_wait  # retries without the real backoff (the waits are the shared helper's, tested there)
    return hooks


async def _register(served: Served, h: dict[str, str], app: MaasApp, **kw: str) -> dict:
    r = await served.client.put("/tomp/webhook", json={"callbackUrl": app.url + "/tomp", "secret": app.secret, **kw},
                                headers=h)
    assert r.status_code == 200, r.text
    return r.json()


async def _commit(served: Served, h: dict[str, str]) -> tuple[str, dict]:
    option = await _offer(served, h)
    await served.client.post("/tomp/bookings", json={"id": option["id"]}, headers=h)
    r = await _event(served, h, option["id"], "COMMIT")
    assert r.status_code == 200, r.text
    booking = (await served.client.get("/api/v1/bookings", headers=served.auth("operator"))).json()[0]
    return option["id"], booking


async def test_leg_events_signed_once_each_with_a_retry_after_503(served: Served, maas_app: MaasApp) -> None:
    c, h = served.client, await _maas(served)
    hooks = _hooks(served)
    reg = await _register(served, h, maas_app)
    assert reg["callbackUrl"] == maas_app.url + "/tomp" and "secret" not in reg and reg["maasId"] == h["maas-id"]

    maas_app.hold = asyncio.Event()  # the app is slow: the commit must not wait for it
    tid, booking = await _commit(served, h)
    assert maas_app.events == {}
    maas_app.hold.set()
    await hooks.drain()
    assert [b.get("operation") or b.get("event") for b in maas_app.bodies(tid)] == ["COMMIT", "ASSIGN_ASSET"]
    assign = maas_app.bodies(tid)[1]
    assert assign["asset"] == {"id": booking["vehicle_id"]} and assign["time"].endswith("+09:00")
    first = maas_app.requests[0]
    assert first["path"] == f"/tomp/bookings/{tid}/events" and first["signed"]
    assert first["headers"]["api"] == "TOMP" and first["headers"]["api-version"] == "1.6.0"
    assert first["headers"]["addressed-to"] == h["maas-id"] and first["headers"]["content-type"] == "application/json"

    maas_app.script = [503]  # the next delivery fails once
    ops = served.runtime.operations  # type: ignore[attr-defined]
    await ops.report(ReportArrival(booking["vehicle_id"], "w-a", None, HALL, (booking["id"],)))
    await hooks.drain()
    prepare = [r for r in maas_app.requests if r["path"] == f"/tomp/legs/{tid}/events"][1:]
    assert len(prepare) == 2 and prepare[0]["id"] == prepare[1]["id"] and prepare[0]["raw"] == prepare[1]["raw"]
    assert json.loads(prepare[1]["raw"])["event"] == "PREPARE"

    await ops.report(ReportBoarded(booking["vehicle_id"], "w-b", None, booking["id"], 1))
    await ops.report(ReportDropOff(booking["vehicle_id"], "w-d", None, booking["id"]))
    await hooks.drain()
    legs = [b["event"] for b in maas_app.bodies(tid) if "event" in b]
    assert legs == ["ASSIGN_ASSET", "PREPARE", "SET_IN_USE", "FINISH"]

    # the same domain event again (a Redis replay, a second process): nothing new is sent
    n = len(maas_app.requests)
    await served.runtime.bus.publish([BookingStatusChanged(booking["id"], booking["vehicle_id"], "on_board")])  # type: ignore[attr-defined]
    await hooks.drain()
    assert len(maas_app.requests) == n
    assert all(r["signed"] for r in maas_app.requests)
    assert len({r["id"] for r in maas_app.requests}) == len(maas_app.events)  # every retry reused its id
    # the booking path itself still reads as before
    assert (await c.get(f"/tomp/legs/{tid}", headers=h)).json()["state"] == "FINISHED"


async def test_eta_and_no_show_notifications(served: Served, maas_app: MaasApp) -> None:
    h = await _maas(served)
    hooks = _hooks(served)
    await _register(served, h, maas_app)
    tid, booking = await _commit(served, h)
    ops = served.runtime.operations  # type: ignore[attr-defined]
    await ops.report(ReportPosition(booking["vehicle_id"], "p-1", None, lat=37.4008, lon=140.9744))
    await ops.report(ReportPosition(booking["vehicle_id"], "p-2", None, lat=37.4008, lon=140.9744))
    await hooks.drain()
    etas = [b for b in maas_app.bodies(tid) if b.get("type") == "ETA"]
    assert len(etas) == 1, etas  # the same ETA again is not a change
    assert etas[0]["legId"] == tid and isinstance(etas[0]["minutes"], int) and "お迎え" in etas[0]["comment"]
    await ops.report(ReportArrival(booking["vehicle_id"], "n-a", None, HALL, (booking["id"],)))
    served.clock.advance(served.runtime.reference.rules.no_show_wait_s + 1)  # type: ignore[attr-defined]
    assert (await ops.report(ReportNoShow(booking["vehicle_id"], "n-n", None, booking["id"]))).result == "applied"
    await hooks.drain()
    [no_show] = [b for b in maas_app.bodies(tid) if b.get("type") == "USER_NO_SHOW"]
    assert no_show["legId"] == tid and no_show["comment"]


async def test_cancel_by_the_app_and_a_wrong_secret_is_refused_not_retried(served: Served, maas_app: MaasApp) -> None:
    c, h = served.client, await _maas(served)
    hooks = _hooks(served)
    await _register(served, h, maas_app)
    tid, _ = await _commit(served, h)
    assert (await _event(served, h, tid, "CANCEL")).status_code == 200
    await hooks.drain()
    assert maas_app.bodies(tid)[-1] == {"operation": "CANCEL", "origin": "MP"}

    maas_app.secret = "the-app-rotated-its-secret"  # now every signature is wrong for it: 401
    n = len(maas_app.requests)
    tid2, _ = await _commit(served, h)
    await hooks.drain()
    assert len(maas_app.requests) == n + 2 and not any(r["signed"] for r in maas_app.requests[n:])  # no retries
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        rows = await uow.tomp_webhooks.for_account((await c.get("/api/v1/me", headers=h)).json()["account_id"])
    assert [r["status"] for r in rows if r["tomp_id"] == tid2] == ["refused", "refused"]


async def test_registration_is_checked_and_can_be_removed(served: Served, maas_app: MaasApp) -> None:
    c, h = served.client, await _maas(served)
    r = await c.put("/tomp/webhook", json={"callbackUrl": "ftp://example.org/x", "secret": SECRET}, headers=h)
    assert r.status_code == 400 and r.json()["message_ja"] and r.json()["message_en"]
    r = await c.put("/tomp/webhook", json={"callbackUrl": maas_app.url, "secret": "short"}, headers=h)
    assert r.status_code in (400, 422)
    assert (await c.get("/tomp/webhook", headers=h)).status_code == 404
    await _register(served, h, maas_app)
    assert (await c.get("/tomp/webhook", headers={**h, "Accept-Language": "en"})).json()["language"] == "ja"
    assert (await c.delete("/tomp/webhook", headers=h)).status_code == 204
    await _commit(served, h)
    await _hooks(served).drain()
    assert maas_app.requests == []  # no webhook: nothing sent
    r = await c.put("/tomp/webhook", json={"callbackUrl": maas_app.url, "secret": SECRET},
                    headers=served.auth("rider"))
    assert r.status_code == 403


async def test_a_row_left_pending_by_a_restart_is_swept_without_a_new_event(served: Served, maas_app: MaasApp) -> None:
    """An outbox row nobody sent (the process stopped after writing it) goes out on the worker's sweep."""
    h = await _maas(served)
    hooks = _hooks(served)
    await _register(served, h, maas_app)
    tid, _ = await _commit(served, h)
    await hooks.drain()
    account = (await served.client.get("/api/v1/me", headers=h)).json()["account_id"]
    now = served.clock.now()
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        await uow.tomp_webhooks.add_event(dict(
            id="left-behind", account_id=account, tomp_id=tid, kind="eta", path=f"/bookings/{tid}/notifications",
            body='{"type":"ETA","minutes":7,"legId":"%s"}' % tid, eta_s=0, status="pending", attempts=0,
            created_at=now, updated_at=now))
        await uow.commit()
    restarted = TompWebhooks(hooks.uow, hooks.clock, operator_id="okuma", sweep_s=0.05)  # a new process
    restarted.start()
    try:
        for _ in range(200):
            if "left-behind" in maas_app.events:
                break
            await asyncio.sleep(0.05)
    finally:
        await restarted.close()
    assert maas_app.events["left-behind"]["body"] == {"type": "ETA", "minutes": 7, "legId": tid}
    assert maas_app.requests[-1]["signed"]
