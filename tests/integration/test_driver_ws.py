"""The driver tablet channel over a real websocket (uvicorn on a free port), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import websockets

from tests.conftest import TOKYO, Served, book, start_served
from tests.local_server import serve
from transit.accounts import create_account

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"
SKIP = {"ping", "pong", "eta"}


def live_server(app: Any) -> AbstractAsyncContextManager[str]:
    """Serve an app whose lifespan already ran, in this event loop; yields ws://host:port."""
    return serve(app, "ws", ws="websockets-sansio")


class Tablet:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.hello: dict[str, Any] = {}
        self.snapshot: dict[str, Any] = {}

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def next(self, *types: str, timeout: float = 3.0) -> dict[str, Any]:
        """The next message of one of ``types``; others wait in order for a later call (heartbeats dropped)."""
        for i, m in enumerate(self.pending):
            if m["type"] in types:
                return self.pending.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - loop.time()))
            m = json.loads(raw)
            self.seen.append(m)
            if m["type"] in types:
                return m
            if m["type"] not in SKIP:
                self.pending.append(m)

    async def event(self, **msg: Any) -> dict[str, Any]:
        await self.send(**msg)
        return await self.next("ack", "error")


@asynccontextmanager
async def tablet(base: str, token: str | None, *, ready: bool = False, **query: Any) -> AsyncIterator[Tablet]:
    """A driver tablet on the channel; ``ready``: wait for its hello and snapshot (``.hello``, ``.snapshot``)."""
    q = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    async with websockets.connect(f"{base}/ws/driver?{q}", open_timeout=5) as ws:
        if token is not None:
            await ws.send(json.dumps({"type": "hello", "token": token}))
        t = Tablet(ws)
        if ready:
            t.hello = await t.next("hello")
            t.snapshot = await t.next("snapshot")
        yield t


@asynccontextmanager
async def watcher(url: str, token: str) -> AsyncIterator[Any]:
    """A rider or operator channel, authenticated by its first message."""
    async with websockets.connect(url, open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        yield ws


async def drivers_for_all(served: Served) -> dict[str, str]:
    """A driver token for every vehicle of the fleet."""
    tokens = {}
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        for v in served.runtime.reference.fleet:  # type: ignore[attr-defined]
            _, tok = await create_account(uow, role="driver", name=f"driver {v.id}", vehicle_id=v.id)
            tokens[v.id] = tok
        await uow.commit()
    return tokens


async def test_snapshot_then_delta_on_booking(served: Served) -> None:
    """A tablet gets hello and a snapshot on connect, then a delta with the new booking within a second."""
    tokens = await drivers_for_all(served)
    async with live_server(served.app) as base:
        async with contextlib_all([tablet(base, t) for t in tokens.values()]) as tabs:
            by_vehicle = dict(zip(tokens, tabs))
            for vid, t in by_vehicle.items():
                hello = await t.next("hello")
                assert hello["vehicle_id"] == vid and hello["no_show_wait_s"] == 180
                snap = await t.next("snapshot")
                assert snap["seq"] == snap["plan_version"] and snap["visits"] == []
            b = await book(served, "d1", passenger_name="大熊 太郎", contact_phone="0240-11-2222")
            t = by_vehicle[b["vehicle_id"]]
            delta = await t.next("delta", timeout=1.0)
            assert delta["added"] == [b["id"]] and delta["reason"] == "booking"
            assert delta["seq"] > snap["seq"]
            kinds = [(v["booking_id"], v["kind"]) for v in delta["visits"]]
            assert kinds == [(b["id"], "pickup"), (b["id"], "dropoff")]
            pick = delta["visits"][0]
            assert pick["passenger_name"] == "大熊 太郎" and pick["stop_name_ja"] and pick["party_size"] == 1
            assert "0240" not in json.dumps(delta), "no phone numbers go to drivers"
            # cancelling reaches the tablet too
            r = await served.client.post(f"/api/v1/bookings/{b['id']}/cancel", headers=served.auth("rider"))
            assert r.status_code == 200
            delta2 = await t.next("delta", timeout=1.0)
            assert delta2["removed"] == [b["id"]] and delta2["visits"] == [] and delta2["seq"] > delta["seq"]


@asynccontextmanager
async def contextlib_all(cms: list[Any]) -> AsyncIterator[list[Any]]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(cm) for cm in cms]


async def _booked_on_driver(served: Served, key: str) -> tuple[dict[str, Any], str]:
    """A booking and a driver token for the vehicle it landed on."""
    b = await book(served, key)
    first = served.runtime.reference.fleet[0].id  # type: ignore[attr-defined]
    if b["vehicle_id"] == first:
        return b, served.tokens["driver"]
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, tok = await create_account(uow, role="driver", name="driver", vehicle_id=b["vehicle_id"])
        await uow.commit()
    return b, tok


async def test_events_exactly_once_and_no_show_rules(served: Served) -> None:
    """Arrived, boarded, dropped off: applied once (a resend is 'duplicate'); an early no-show is refused."""
    b, driver = await _booked_on_driver(served, "x")
    async with live_server(served.app) as base, tablet(base, driver, ready=True) as t:
        snap = t.snapshot
        mine = {v["booking_id"] for v in snap["visits"]}
        assert b["id"] in mine
        pickup = next(v for v in snap["visits"] if v["booking_id"] == b["id"] and v["kind"] == "pickup")
        # a no-show before arriving, and too early after arriving, is refused with a reason
        a = await t.event(type="no_show", client_event_id="ns-1", booking_id=b["id"])
        assert a["result"] == "rejected" and a["code"] == "NotArrived"
        a = await t.event(type="arrived", client_event_id="arr-1", stop_id=pickup["stop_id"], booking_ids=[b["id"]])
        assert a["result"] == "applied"
        d = await t.next("delta")  # the arrival pins the rider: the plan version rises
        assert d["reason"] == "arrived" and d["seq"] > snap["seq"]
        served.clock.advance(60)
        a = await t.event(type="no_show", client_event_id="ns-2", booking_id=b["id"])
        assert a["result"] == "rejected" and a["code"] == "NoShowTooEarly"
        assert "分" in a["message_ja"] and "min" in a["message_en"]
        # boarded: applied, plan shrinks, booking on board; a resend is a duplicate and changes nothing
        a = await t.event(type="boarded", client_event_id="brd-1", booking_id=b["id"], count=1)
        assert a["result"] == "applied"
        d = await t.next("delta")
        assert d["reason"] == "boarded" and [v["kind"] for v in d["visits"] if v["booking_id"] == b["id"]] == ["dropoff"]
        a = await t.event(type="boarded", client_event_id="brd-1", booking_id=b["id"], count=1)
        assert a["result"] == "duplicate"
        r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider"))
        assert r.json()["status"] == "on_board"
        plan = (await served.client.get(f"/api/v1/vehicles/{b['vehicle_id']}/plan",
                                        headers={"Authorization": f"Bearer {driver}"})).json()
        assert plan["plan_version"] == d["seq"]
        a = await t.event(type="dropped_off", client_event_id="drp-1", booking_id=b["id"])
        assert a["result"] == "applied"
        a = await t.event(type="dropped_off", client_event_id="drp-1", booking_id=b["id"])
        assert a["result"] == "duplicate"
        r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider"))
        assert r.json()["status"] == "completed"
        # a rider not on this vehicle, an unknown booking: rejected, the link stays
        a = await t.event(type="boarded", client_event_id="brd-x", booking_id="bkg_nope", count=1)
        assert a["result"] == "rejected" and a["code"] == "NotOnThisVehicle"
        await t.send(type="ping", t=1.5)
        assert (await t.next("pong"))["t"] == 1.5


async def test_no_show_after_the_wait(served: Served) -> None:
    """After no_show_wait_s at the pickup, a no-show is applied and both visits leave the plan."""
    b, driver = await _booked_on_driver(served, "n")
    async with live_server(served.app) as base, tablet(base, driver, ready=True) as t:
        a = await t.event(type="arrived", client_event_id="a1", booking_ids=[b["id"]])
        assert a["result"] == "applied"
        assert (await t.next("delta"))["reason"] == "arrived"
        served.clock.advance(served.runtime.reference.rules.no_show_wait_s)  # type: ignore[attr-defined]
        a = await t.event(type="no_show", client_event_id="n1", booking_id=b["id"])
        assert a["result"] == "applied", a
        d = await t.next("delta")
        assert d["reason"] == "no_show" and b["id"] not in {v["booking_id"] for v in d["visits"]}
        r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider"))
        assert r.json()["status"] == "no_show"


async def test_malformed_and_unauthorised(served: Served) -> None:
    """Malformed JSON and unknown types get an error and the link stays; wrong tokens and roles are refused."""
    async with live_server(served.app) as base:
        async with tablet(base, served.tokens["driver"], ready=True) as t:
            await t.ws.send("{not json")
            assert (await t.next("error"))["code"] == "InvalidJson"
            await t.send(type="teleport", client_event_id="z")
            e = await t.next("error")
            assert e["code"] == "UnknownType" and e["message_ja"] and e["message_en"]
            await t.send(type="boarded", client_event_id="b", booking_id="x", count=0)
            e = await t.next("error")
            assert e["code"] == "InvalidMessage" and e["client_event_id"] == "b"
            await t.ws.send(b"\xff\xfe")
            assert (await t.next("error"))["code"] == "InvalidJson"
            await t.send(type="ping")
            await t.next("pong")
            a = await t.event(type="position", client_event_id="p1", lat=37.41, lon=141.0)
            assert a["result"] == "applied"
        for token, role_code in [("nope", "Unauthorised"), (served.tokens["rider"], "Forbidden"), (None, "Unauthorised")]:
            async with tablet(base, token) as t:
                if token is None:
                    await t.send(type="ping")
                e = await t.next("error")
                assert e["code"] == role_code
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await t.ws.recv()
                assert closed.value.rcvd.code in (4401, 4403)
        # first-message authentication works, and a driver cannot claim another vehicle
        other = served.runtime.reference.fleet[1].id  # type: ignore[attr-defined]
        async with tablet(base, None) as t:
            await t.send(type="hello", token=served.tokens["driver"], vehicle_id=other, last_seq=0)
            assert (await t.next("error"))["code"] == "Forbidden"
        async with tablet(base, None) as t:
            await t.send(type="hello", token=served.tokens["driver"], last_seq=0)
            assert (await t.next("hello"))["resumed_from_seq"] == 0
            await t.next("snapshot")


async def test_offline_five_minutes_then_reconnect(served: Served) -> None:
    """Tablets away 5 minutes reconnect with their last seq and get a snapshot with every change they missed."""
    tokens = await drivers_for_all(served)
    async with live_server(served.app) as base:
        last: dict[str, int] = {}
        for vid, tok in tokens.items():
            async with tablet(base, tok, ready=True) as t:
                last[vid] = t.snapshot["seq"]
        booked: dict[str, set[str]] = {}
        for i in range(6):
            served.clock.advance(50)
            b = await book(served, f"off-{i}")
            booked.setdefault(b["vehicle_id"], set()).add(b["id"])
        for vid, ids in booked.items():
            async with tablet(base, tokens[vid], last_seq=last[vid]) as t:
                assert (await t.next("hello"))["resumed_from_seq"] == last[vid]
                snap = await t.next("snapshot")
                assert snap["seq"] > last[vid]
                assert ids <= {v["booking_id"] for v in snap["visits"]}


async def test_restart_loses_nothing(database_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    """A new app on the same database keeps bookings, the plan and acknowledged events (resend = duplicate)."""
    s, ctx = await start_served(database_url, clock)
    try:
        b, driver = await _booked_on_driver(s, "r")
        async with live_server(s.app) as base, tablet(base, driver, ready=True) as t:
            before = t.snapshot
            a = await t.event(type="arrived", client_event_id="r-arr", booking_ids=[b["id"]])
            assert a["result"] == "applied"
    finally:
        await s.client.aclose()
        await ctx.__aexit__(None, None, None)

    from api.app import create_app
    from transit.settings import Settings

    app2 = create_app(Settings(database_url=database_url, dispatcher=False), clock=clock)
    ctx2 = app2.router.lifespan_context(app2)
    await ctx2.__aenter__()
    try:
        async with live_server(app2) as base, tablet(base, driver, last_seq=before["seq"], ready=True) as t:
            snap = t.snapshot
            assert snap["seq"] == before["seq"] + 1, "the arrival raised the plan version; seq never goes backwards"
            assert snap["visits"] == before["visits"] or [v["visit_id"] for v in snap["visits"]] == [
                v["visit_id"] for v in before["visits"]]
            a = await t.event(type="arrived", client_event_id="r-arr", booking_ids=[b["id"]])
            assert a["result"] == "duplicate"
            pickup = next(v for v in snap["visits"] if v["visit_id"] == f"{b['id']}:pickup")
            assert pickup["status"] == "arriving" and pickup["arrived_at"]
    finally:
        await ctx2.__aexit__(None, None, None)


async def test_rider_channel_follows_the_booking(served: Served) -> None:
    """The rider's page gets the booking's status live; another rider is refused."""
    b, driver = await _booked_on_driver(served, "rc")
    async with live_server(served.app) as base:
        async with watcher(f"{base}/ws/bookings/{b['id']}", served.tokens['rider2']) as ws:
            e = json.loads(await ws.recv())
            assert e["type"] == "error" and e["code"] == "NotFound"
        async with watcher(f"{base}/ws/bookings/{b['id']}", served.tokens['rider']) as ws, \
                tablet(base, driver) as t:
            rider = Tablet(ws)
            first = await rider.next("booking")
            assert first["status"] == "confirmed" and first["booking_id"] == b["id"]
            assert first["number"] == b["number"]  # the same number as the REST answers
            await t.next("snapshot")
            served.clock.advance(30)
            a = await t.event(type="position", client_event_id="pos-1", lat=37.4046, lon=140.9853)
            assert a["result"] == "applied"
            a = await t.event(type="boarded", client_event_id="b-1", booking_id=b["id"], count=1)
            assert a["result"] == "applied"
            for _ in range(5):
                m = await rider.next("booking", timeout=2)
                if m["status"] == "on_board":
                    break
            assert m["status"] == "on_board"
        async with watcher(f"{base}/ws/operator", served.tokens['operator']) as ws:
            m = json.loads(await ws.recv())
            assert m["type"] == "vehicle"
    r = await served.client.get("/api/v1/vehicles", headers=served.auth("operator"))
    assert r.status_code == 200 and len(r.json()) == len(served.runtime.reference.fleet)  # type: ignore[attr-defined]
    assert (await served.client.get("/api/v1/vehicles", headers=served.auth("driver"))).status_code == 403


async def test_operator_channel_reports_booking_changes(served: Served) -> None:
    """Operators hear of every booking made, cancelled or changing status (ids and status only),
    also when no plan changes."""
    async with (
        live_server(served.app) as base,
        watcher(f"{base}/ws/operator", served.tokens['operator']) as ws,
    ):
        op = Tablet(ws)
        b = await book(served, "op-live-1")
        m = await op.next("booking_changed")
        assert m == {"type": "booking_changed", "booking_id": b["id"],
                     "vehicle_id": b["vehicle_id"], "status": "confirmed"}
        r = await served.client.post(f"/api/v1/bookings/{b['id']}/cancel", headers=served.auth("rider"))
        assert r.status_code == 200, r.text
        m = await op.next("booking_changed")
        assert (m["booking_id"], m["status"]) == (b["id"], "cancelled")
        assert set(m) == {"type", "booking_id", "vehicle_id", "status"}  # no personal data


del TOKYO


async def test_delay_flag_reaches_rider_operator_and_tablet_once_and_clears(served: Served) -> None:
    """Far away: promise_at_risk once to rider, operator and tablet; back: promise_cleared, 'delay expected' goes."""
    b, driver = await _booked_on_driver(served, "risk")
    hall = next(s for s in served.runtime.reference.stops if s.stop_id == HALL)  # type: ignore[attr-defined]
    async with live_server(served.app) as base, \
            watcher(f"{base}/ws/bookings/{b['id']}", served.tokens['rider']) as rws, \
            watcher(f"{base}/ws/operator", served.tokens['operator']) as ows, \
            tablet(base, driver) as t:
        rider, op = Tablet(rws), Tablet(ows)
        assert (await rider.next("booking"))["at_risk"] is False
        await t.next("snapshot")
        for i, (lat, lon) in enumerate([(35.68, 139.77), (35.69, 139.76)]):  # Tokyo, twice
            served.clock.advance(5)
            assert (await t.event(type="position", client_event_id=f"far-{i}", lat=lat, lon=lon))["result"] == "applied"
        for ch in (rider, op, t):
            m = await ch.next("promise_at_risk")
            assert m["booking_id"] == b["id"] and m["late_s"] > 3600
        for _ in range(5):
            live = await rider.next("booking")
            if live["at_risk"]:
                break
        assert live["at_risk"] is True and "遅れ" in live["message_ja"]
        served.clock.advance(5)
        assert (await t.event(type="position", client_event_id="near", lat=hall.lat, lon=hall.lon))["result"] == "applied"
        for ch in (rider, op, t):
            m = await ch.next("promise_cleared")
            assert (m["booking_id"], m["reason"]) == (b["id"], "on_time")
        # booking messages set aside while waiting for promise_cleared were sent before it: only later ones count
        rider.pending = [m for m in rider.pending if m["type"] != "booking"]
        for _ in range(5):
            live = await rider.next("booking")
            if live["at_risk"] is False:
                break
        assert live["at_risk"] is False and "遅れ" not in live["message_ja"]
        seen = [m["type"] for ch in (rider, op, t) for m in ch.seen + ch.pending]
        assert seen.count("promise_at_risk") == 3 and seen.count("promise_cleared") == 3


async def test_etas_follow_the_clock_without_positions(database_url: str, clock, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """No GPS for 20 minutes while a pickup is due: the ETAs are recomputed and the promise flagged."""
    from api.realtime import Hub

    monkeypatch.setattr(Hub, "ETA_REFRESH_S", 0.1)
    served, ctx = await start_served(database_url, clock)
    try:
        b, driver = await _booked_on_driver(served, "clock")
        async with live_server(served.app) as base, tablet(base, driver) as t:
            await t.next("snapshot")
            served.clock.advance(20 * 60)
            m = await t.next("promise_at_risk", timeout=5)
            assert m["booking_id"] == b["id"] and m["late_s"] > 0
            for _ in range(5):  # the recomputed ETAs follow the flag
                eta = await t.next("eta")
                pickup = next(e for e in eta["etas"] if e["booking_id"] == b["id"] and e["kind"] == "pickup")
                if pickup["at_risk"]:
                    break
            assert pickup["at_risk"] and pickup["late_s"] > 0
    finally:
        await served.client.aclose()
        await ctx.__aexit__(None, None, None)
