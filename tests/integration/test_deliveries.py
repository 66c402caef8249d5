"""Deliveries end to end through the API and the driver events, on SQLite and PostgreSQL:
order → ready → picked up → handed over with the recipient's code; wrong codes, the lock, returns."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import websockets

from tests.conftest import T0, Served
from tests.integration.test_driver_ws import live_server
from transit.accounts import create_account
from transit.deliveries import MAX_HANDOVER_FAILURES, handover_code
from transit.events import DeliveryChanged, HandoverLocked
from transit.operations import ReportArrival, ReportParcelHandedOver, ReportParcelPickedUp

HOUSING = "ogawara_disaster_public_housing"
HALL = "okuma_town_hall"


def delivery(store: str = "kuma_sun_terrace", dest: str = HOUSING, start_h: int = 10, width_min: int = 60,
             **kw: Any) -> dict[str, Any]:
    start = T0.replace(hour=start_h)
    return {
        "kind": "delivery",
        "destination": {"stop_id": dest},
        "passenger_name": "大熊 花子",
        "delivery": {"store_id": store, "shopping_list": "牛乳 1本、食パン、卵 10個",
                     "window_start": start.isoformat(),
                     "window_end": (start + timedelta(minutes=width_min)).isoformat(), **kw},
    }


async def order(served: Served, role: str = "rider", **kw: Any) -> dict[str, Any]:
    c, h = served.client, served.auth(role)
    r = await c.post("/api/v1/offers", json=delivery(**kw), headers=h)
    assert r.status_code == 201, r.text
    offer = r.json()
    r = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                     headers={**h, "Idempotency-Key": f"k-{offer['offer_id']}"})
    assert r.status_code == 201, r.text
    return r.json()


async def driver_of(served: Served, vehicle_id: str) -> str:
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, tok = await create_account(uow, role="driver", name="運転士", vehicle_id=vehicle_id)
        await uow.commit()
    return tok


class Events:
    def __init__(self, served: Served) -> None:
        self.seen: list[Any] = []

        async def on(events: Any) -> None:
            self.seen.extend(events)

        served.runtime.bus.subscribe(on)  # type: ignore[attr-defined]


async def pick_up(served: Served, b: dict[str, Any], n: int = 0) -> Any:
    ops = served.runtime.operations  # type: ignore[attr-defined]
    vid = b["vehicle_id"]
    await ops.report(ReportArrival(vid, f"arr-{b['id']}-{n}", None, stop_id=b["origin"]["stop_id"],
                                   booking_ids=(b["id"],)))
    res = await ops.report(ReportParcelPickedUp(vid, f"pick-{b['id']}-{n}", None, booking_id=b["id"]))
    assert res.result == "applied", res
    return ops


async def test_delivery_offer_promises_the_chosen_window(served: Served) -> None:
    """The offer keeps the window as chosen, starts at the store's stop and is picked up after ready."""
    r = await served.client.post("/api/v1/offers", json=delivery(), headers=served.auth("rider"))
    assert r.status_code == 201, r.text
    o = r.json()
    assert o["kind"] == "delivery" and o["store_id"] == "kuma_sun_terrace"
    assert o["origin"]["stop_id"] == "kuma_sun_terrace" and o["destination"]["stop_id"] == HOUSING
    assert o["delivery_window_start"] == "2026-11-26T10:00:00+09:00"
    assert o["delivery_window_end"] == "2026-11-26T11:00:00+09:00"
    assert o["delivery_window_start"] <= o["planned_dropoff"] <= o["delivery_window_end"]
    # ready at the earliest after the store's preparation time (20 min at クマSUNテラス)
    assert o["pickup_window_start"] >= "2026-11-26T09:20:00+09:00"
    assert o["planned_pickup"] >= o["pickup_window_start"]
    assert o["parcels"] == 1 and o["party_size"] == 0


async def test_delivery_requests_are_checked(served: Served) -> None:
    """Bad deliveries get a clear 4xx with both languages, never a 500."""
    c, h = served.client, served.auth("rider")
    cases = [
        delivery(store="nowhere"),
        delivery(width_min=10),
        {**delivery(), "delivery": {**delivery()["delivery"], "shopping_list": None}},
        # 09:00-09:30: おおくまーと needs 30 min to prepare, then the drive to Ono
        delivery(store="okumart", dest="ono_station_west_plaza", start_h=9, width_min=30),
        {"kind": "delivery", "destination": {"stop_id": HOUSING}},
    ]
    for body in cases:
        r = await c.post("/api/v1/offers", json=body, headers=h)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.json()["message_ja"] and r.json()["message_en"], r.text
    r = await c.post("/api/v1/offers", json=delivery(store="okumart", dest="ono_station_west_plaza", start_h=9,
                                                     width_min=30), headers=h)
    assert r.status_code == 409 and r.json()["error"] == "DeliveryTooSoon"
    # a kiosk has things delivered to its own stop only
    r = await c.post("/api/v1/offers", json=delivery(dest="hara_regen_housing"),
                     headers=served.auth("kiosk"))
    assert r.status_code == 403


async def test_order_ready_picked_up_handed_over(served: Served) -> None:
    """The whole life: ordered, ready with parcels and temperature, picked up, delivered with the code;
    the resident and the store are told each step."""
    ev = Events(served)
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    assert b["kind"] == "delivery" and b["delivery"]["status"] == "ordered"
    code = b["delivery"]["handover_code"]
    assert code == handover_code(b["id"], served.runtime.operations.handover_secret)  # type: ignore[attr-defined]
    store = served.auth("store")
    listed = (await served.client.get("/api/v1/store/orders", headers=store)).json()
    assert listed["store"]["id"] == "okumart"
    [o] = [x for x in listed["orders"] if x["booking_id"] == b["id"]]
    assert o["handover_code"] is None  # the store never sees the code either
    assert o["planned_pickup"] is not None  # when the minibus comes
    # the other store does not see it and cannot mark it ready
    other = (await served.client.get("/api/v1/store/orders", headers=served.auth("store2"))).json()
    assert b["id"] not in {x["booking_id"] for x in other["orders"]}
    r = await served.client.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "chilled"},
                                 headers=served.auth("store2"))
    assert r.status_code == 404
    r = await served.client.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 2, "temperature": "chilled"},
                                 headers=store)
    assert r.status_code == 400  # more than booked
    r = await served.client.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "frozen"},
                                 headers=store)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready" and r.json()["temperature"] == "frozen"
    ops = await pick_up(served, b)
    me = (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("rider"))).json()
    assert me["status"] == "picked_up"
    res = await ops.report(ReportParcelHandedOver(b["vehicle_id"], "hand-1", None, booking_id=b["id"], code=code))
    assert res.result == "applied", res
    me = (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("rider"))).json()
    assert me["status"] == "delivered"
    listed = (await served.client.get("/api/v1/store/orders", headers=store)).json()
    assert {x["booking_id"]: x["status"] for x in listed["orders"]}[b["id"]] == "delivered"
    told = [e.status for e in ev.seen if isinstance(e, DeliveryChanged) and e.booking_id == b["id"]]
    assert told == ["ordered", "ready", "picked_up", "delivered"]


async def test_wrong_codes_are_refused_and_five_lock_the_delivery(served: Served) -> None:
    """A wrong code is refused; the fifth locks the delivery (even the right code is then refused),
    alerts the operator and sends the parcel back to the store, or to the pickup point the resident
    chooses, where the receiver (not the driver) records the return."""
    ev = Events(served)
    b = await order(served)
    right = b["delivery"]["handover_code"]
    wrong = f"{(int(right) + 1) % 10000:04d}"
    await served.client.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "ambient"},
                             headers=served.auth("store2"))
    ops = await pick_up(served, b)
    vid = b["vehicle_id"]
    for i in range(MAX_HANDOVER_FAILURES):
        res = await ops.report(ReportParcelHandedOver(vid, f"w{i}", None, booking_id=b["id"], code=wrong))
        assert res.result == "rejected"
        assert res.code == ("WrongHandoverCode" if i < MAX_HANDOVER_FAILURES - 1 else "HandoverLockedError"), res
    res = await ops.report(ReportParcelHandedOver(vid, "right-after-lock", None, booking_id=b["id"], code=right))
    assert res.result == "rejected" and res.code == "HandoverLockedError"
    d = (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("operator"))).json()
    assert d["status"] == "returning" and d["return_stop_id"] == "kuma_sun_terrace"
    assert d["handover_attempts_left"] == 0
    assert [e for e in ev.seen if isinstance(e, HandoverLocked) and e.booking_id == b["id"]]
    # the resident may choose a pickup point instead of the store
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/return", json={"stop_id": HALL},
                                 headers=served.auth("rider"))
    assert r.status_code == 200 and r.json()["return_stop_id"] == HALL
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        v = await uow.vehicles.get(vid)
    assert [x.stop_id for x in v.plan if x.booking_id == b["id"]] == [HALL]
    # the driver cannot close a return by himself; the desk at the pickup point records it
    res = await ops.report(ReportParcelHandedOver(vid, "back", None, booking_id=b["id"], code=right))
    assert res.result == "rejected" and res.code in ("HandoverLockedError", "ReturnNeedsReceiver"), res
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/received-back", headers=served.auth("store2"))
    assert r.status_code == 403  # it goes to the town hall now, not to the store
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/received-back", headers=served.auth("operator"))
    assert r.status_code == 200 and r.json()["status"] == "returned", r.text
    d = (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("rider"))).json()
    assert d["status"] == "returned"
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        v = await uow.vehicles.get(vid)
    assert not [x for x in v.plan if x.booking_id == b["id"]]


async def test_the_driver_never_reads_the_code(served: Served) -> None:
    """Neither the delivery nor the booking endpoints give a driver the handover code."""
    b = await order(served)
    tok = await driver_of(served, b["vehicle_id"])
    h = {"Authorization": f"Bearer {tok}"}
    assert (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=h)).status_code == 404
    r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=h)
    assert r.status_code == 200 and r.json()["delivery"] is None
    assert b["delivery"]["handover_code"] not in r.text


async def test_cancel_tells_the_store(served: Served) -> None:
    """A resident cancels like a ride; the store's list shows it cancelled."""
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    r = await served.client.post(f"/api/v1/bookings/{b['id']}/cancel", headers=served.auth("rider"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    listed = (await served.client.get("/api/v1/store/orders", headers=served.auth("store"))).json()
    assert {x["booking_id"]: x["status"] for x in listed["orders"]}[b["id"]] == "cancelled"


async def test_store_role_is_checked_on_every_endpoint(served: Served) -> None:
    """Store staff reach the store endpoints only; nobody else reaches them."""
    c = served.client
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    store = served.auth("store")
    for method, path, body in [
        ("POST", "/api/v1/offers", delivery()),
        ("POST", "/api/v1/bookings", {"offer_id": "off_x"}),
        ("GET", "/api/v1/bookings", None),
        ("POST", f"/api/v1/bookings/{b['id']}/cancel", None),
        ("POST", f"/api/v1/deliveries/{b['id']}/return", None),
        ("GET", "/api/v1/vehicles", None),
    ]:
        r = await c.request(method, path, json=body, headers=store)
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
    assert (await c.get(f"/api/v1/bookings/{b['id']}", headers=store)).status_code == 404
    for role in ("rider", "kiosk", "driver", "operator", "admin"):
        h = served.auth(role)
        assert (await c.get("/api/v1/store/orders", headers=h)).status_code == 403, role
        r = await c.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "ambient"},
                         headers=h)
        assert r.status_code == 403, role
    assert (await c.get("/api/v1/store/orders")).status_code == 401
    # the store reads its own order (without the code), not another store's
    r = await c.get(f"/api/v1/deliveries/{b['id']}", headers=store)
    assert r.status_code == 200 and r.json()["handover_code"] is None
    assert (await c.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("store2"))).status_code == 404


async def _first_frames(base: str, path: str, token: str, n: int = 3) -> list[dict[str, Any]]:
    """Connect, authenticate with a first hello message, read up to ``n`` frames (or the close)."""
    frames: list[dict[str, Any]] = []
    async with websockets.connect(f"{base}{path}", open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        try:
            for _ in range(n):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
        except (websockets.ConnectionClosed, TimeoutError):
            pass
    return frames


async def test_the_vehicles_driver_is_refused_on_the_booking_channel(served: Served) -> None:
    """/ws/bookings/{id} sends the handover code, so the vehicle's own driver is refused there;
    the recipient gets the code on it."""
    b = await order(served)
    code = b["delivery"]["handover_code"]
    tok = await driver_of(served, b["vehicle_id"])
    async with live_server(served.app) as base:
        frames = await _first_frames(base, f"/ws/bookings/{b['id']}", tok)
        assert frames and frames[0]["type"] == "error" and frames[0]["code"] == "NotFound"
        assert code not in json.dumps(frames)
        mine = await _first_frames(base, f"/ws/bookings/{b['id']}", served.tokens["rider"], n=1)
        assert mine[0]["type"] == "booking" and mine[0]["handover_code"] == code


async def test_store_channel_is_live_with_first_message_auth(served: Served) -> None:
    """/ws/store sends the store's orders after a hello with the token, and again when one is ready;
    other roles are refused."""
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    async with live_server(served.app) as base:
        refused = await _first_frames(base, "/ws/store", served.tokens["rider"], n=1)
        assert refused[0]["type"] == "error" and refused[0]["code"] == "Forbidden"
        async with websockets.connect(f"{base}/ws/store", open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "hello", "token": served.tokens["store"]}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 3))
            assert first["type"] == "store_orders" and first["store"]["id"] == "okumart"
            assert [o["status"] for o in first["orders"] if o["booking_id"] == b["id"]] == ["ordered"]
            r = await served.client.post(f"/api/v1/store/orders/{b['id']}/ready",
                                         json={"parcels": 1, "temperature": "chilled"}, headers=served.auth("store"))
            assert r.status_code == 200
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 3))
                if m["type"] == "store_orders":
                    break
            assert [o["status"] for o in m["orders"] if o["booking_id"] == b["id"]] == ["ready"]


async def test_the_operator_is_alerted_when_a_delivery_locks(served: Served) -> None:
    """The fifth wrong code reaches the operator console as a handover_locked message."""
    b = await order(served)
    wrong = f"{(int(b['delivery']['handover_code']) + 1) % 10000:04d}"
    ops = await pick_up(served, b)
    async with live_server(served.app) as base, websockets.connect(f"{base}/ws/operator", open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": served.tokens["operator"]}))
        await ws.send(json.dumps({"type": "ping", "t": 1}))
        while json.loads(await asyncio.wait_for(ws.recv(), 3))["type"] != "pong":
            pass  # registered for pushes once the ping is answered
        for i in range(MAX_HANDOVER_FAILURES):
            await ops.report(ReportParcelHandedOver(b["vehicle_id"], f"x{i}", None, booking_id=b["id"], code=wrong))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 3))
            if m["type"] == "handover_locked":
                break
        assert m["booking_id"] == b["id"] and m["failures"] == MAX_HANDOVER_FAILURES and m["message_ja"]


async def test_the_phone_desk_orders_for_a_caller_and_reads_the_code_out(served: Served) -> None:
    """The desk (operator) books a delivery for a caller and gets the code to read out; after the
    retention period the shopping list is gone with the name."""
    from transit.retention import purge_personal_data

    b = await order(served, role="operator", store="okumart", dest="ono_station_west_plaza")
    # the confirm answer carries no code for the desk: it reads it out through the audited fetch
    assert b["channel"] == "phone" and b["delivery"]["handover_code"] is None
    r = await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("operator"))
    assert r.status_code == 200 and len(r.json()["handover_code"]) == 4
    await served.client.post(f"/api/v1/bookings/{b['id']}/cancel", headers=served.auth("operator"))
    svc = served.runtime.services  # type: ignore[attr-defined]
    served.clock.advance(timedelta(days=svc.rules.personal_data_retention_days + 1).total_seconds())
    await purge_personal_data(svc)
    async with svc.uow(readonly=True) as uow:
        row = await uow.deliveries.get(b["id"])
    assert row["shopping_list"] is None and row["order_number"] is None


async def test_an_empty_code_is_asked_for_not_counted(served: Served) -> None:
    """A handover without a code (e.g. 'dropped off' pressed on a delivery) is refused and does not
    use up one of the five tries."""
    from transit.operations import ReportDropOff

    b = await order(served)
    ops = await pick_up(served, b)
    res = await ops.report(ReportDropOff(b["vehicle_id"], "drop-no-code", None, booking_id=b["id"]))
    assert res.result == "rejected"
    d = (await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("rider"))).json()
    assert d["handover_attempts_left"] == MAX_HANDOVER_FAILURES and d["status"] == "picked_up"


async def test_the_resident_is_told_each_change_on_the_booking_channel(served: Served) -> None:
    """The recipient's /ws/bookings/{id} carries delivery_status with a bilingual message, and a
    new one when the store marks the order ready."""
    b = await order(served)
    async with live_server(served.app) as base, websockets.connect(f"{base}/ws/bookings/{b['id']}",
                                                                    open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": served.tokens["rider"]}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 3))
        assert first["type"] == "booking" and first["delivery_status"] == "ordered" and first["message_ja"]
        r = await served.client.post(f"/api/v1/store/orders/{b['id']}/ready",
                                     json={"parcels": 1, "temperature": "chilled"}, headers=served.auth("store2"))
        assert r.status_code == 200
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 3))
            if m["type"] == "booking" and m["delivery_status"] == "ready":
                break
        assert "準備ができました" in m["message_ja"] and m["message_en"]


async def test_home_delivery_for_door_to_door_riders_only(served: Served) -> None:
    """A rider registered for door-to-door has it brought home; others must choose a stop."""
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, tok = await create_account(uow, role="rider", name="大熊 花子", door_to_door=True)
        await uow.commit()
    home = {"lat": 37.3836, "lon": 140.9622}  # inside the Ogawara base
    body = {**delivery(), "destination": home}
    r = await served.client.post("/api/v1/offers", json=body, headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 201, r.text
    assert r.json()["destination"]["stop_id"] is None and r.json()["destination"]["lat"] == home["lat"]
    r = await served.client.post("/api/v1/offers", json=body, headers=served.auth("rider"))
    assert r.status_code == 403


async def test_an_event_recorded_before_a_re_read_is_still_published(served: Served) -> None:
    """A booking read again in the same unit of work (as a re-plan does) does not swallow the
    events recorded on the object read first: the delivery change still reaches the bus."""
    ev = Events(served)
    b = await order(served)
    svc = served.runtime.services  # type: ignore[attr-defined]
    async with svc.uow() as uow:
        first = await uow.bookings.get(b["id"])
        first.events.append(DeliveryChanged(b["id"], "kuma_sun_terrace", "picked_up", b["vehicle_id"]))
        await uow.bookings.get(b["id"])  # read again: a new object for the same booking
        await uow.commit()
    assert [e.status for e in ev.seen if isinstance(e, DeliveryChanged)][-1] == "picked_up"


async def test_a_return_is_re_timed_and_goes_after_the_other_visits(served: Served) -> None:
    """Nobody at the door: the desk sends the parcel back. The plan is re-timed by the one writer
    (the invariants hold at once: no stale stored times, no untimed plan) and the way back comes
    after the vehicle's other visits (passengers first)."""
    from transit.invariants import check_invariants

    b = await order(served)
    await served.client.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "chilled"},
                             headers=served.auth("store2"))
    vid = b["vehicle_id"]
    await pick_up(served, b)
    ride = await served.client.post("/api/v1/offers", json={
        "origin": {"stop_id": HALL}, "destination": {"stop_id": HOUSING}, "time_mode": "leave_at",
        "time": T0.replace(hour=10, minute=40).isoformat(), "party_size": 1}, headers=served.auth("rider"))
    assert ride.status_code == 201, ride.text
    r = await served.client.post("/api/v1/bookings", json={"offer_id": ride.json()["offer_id"]},
                                 headers={**served.auth("rider"), "Idempotency-Key": "k-ride-return"})
    assert r.status_code == 201, r.text
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/return", json={}, headers=served.auth("operator"))
    assert r.status_code == 200, r.text
    svc = served.runtime.services  # type: ignore[attr-defined]
    async with svc.uow(readonly=True) as uow:
        v = await uow.vehicles.get(vid)
        found = await check_invariants(uow, svc, svc.clock.now())
    assert found == [], found
    assert v.plan[-1].booking_id == b["id"] and v.plan[-1].stop_id == "kuma_sun_terrace"
    assert all(x.arrival_at is not None for x in v.plan), "every visit is timed"
    # the store takes it back: the way back leaves the plan, which is re-timed again
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/received-back", headers=served.auth("store2"))
    assert r.status_code == 200 and r.json()["status"] == "returned", r.text
    async with svc.uow(readonly=True) as uow:
        v = await uow.vehicles.get(vid)
        found = await check_invariants(uow, svc, svc.clock.now())
    assert found == [], found
    assert v.plan and not [x for x in v.plan if x.booking_id == b["id"]]
