"""Personal data goes after the retention period; active bookings and trip facts stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.conftest import Served
from tests.integration.test_numbers_kiosk_console import add_rider
from transit import tables as t
from transit.retention import purge_personal_data


async def test_old_finished_bookings_lose_their_personal_data(served: Served) -> None:
    """A cancelled booking past the retention period keeps its trip but loses name, phone and card."""
    c, h = served.client, served.auth("operator")
    await add_rider(served, "大熊 一郎", "OKM-7777")  # the desk books with a registered rider's card
    ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"},
            "passenger_name": "大熊 一郎", "contact_phone": "0240-00-0001", "rider_card": "OKM-7777"}
    ids = []
    for i in range(2):
        o = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
        b = (await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                          headers={**h, "Idempotency-Key": f"r{i}"})).json()
        ids.append(b["id"])
    await c.post(f"/api/v1/bookings/{ids[0]}/cancel", json={"reason": "入院のため"}, headers=h)
    svc = served.runtime.services
    assert (await purge_personal_data(svc)).bookings_anonymised == 0  # not old enough yet
    served.clock.advance(timedelta(days=svc.rules.personal_data_retention_days + 1).total_seconds())
    res = await purge_personal_data(svc)
    assert res.bookings_anonymised == 1
    async with svc.uow(readonly=True) as uow:
        old, active = await uow.bookings.get(ids[0]), await uow.bookings.get(ids[1])
    assert old.passenger_name == "" and old.contact_phone is None and old.origin.stop_id == "okuma_town_hall"
    assert old.cancel_reason is None and old.rider_card is None
    assert active.passenger_name == "大熊 一郎"  # still active: kept
    # the confirmed offers keep no copy of what the purge removed from their booking
    async with svc.uow(readonly=True) as uow:
        rows = (await uow.connection.execute(select(t.offers.c.booking_id, t.offers.c.request))).all()
    requests = {bid: req for bid, req in rows}
    assert {requests[ids[0]][k] for k in ("passenger_name", "contact_phone", "rider_card")} == {None}
    assert requests[ids[0]]["party_size"] == 1  # the trip facts stay
    assert requests[ids[1]]["passenger_name"] == "大熊 一郎"
    assert res.offers_anonymised == 1
    assert (await purge_personal_data(svc)).offers_anonymised == 0  # nothing left to blank


async def test_door_to_door_address_and_note_go_too(served: Served) -> None:
    """A finished door-to-door booking loses its address and note (the point stays), even without a name."""
    c, h = served.client, served.auth("operator")
    await add_rider(served, "大熊 一郎", "OKM-7777")  # the desk books with a registered rider's card
    ride = {"origin": {"lat": 37.3850, "lon": 140.9645, "address": "大熊町大川原 1-2"},
            "destination": {"stop_id": "okumart"}, "driver_note": "玄関は裏手です"}
    o = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
    b = (await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]}, headers={**h, "Idempotency-Key": "d"})).json()
    assert b["passenger_name"] == "" and b["origin"]["address"] == "大熊町大川原 1-2"
    await c.post(f"/api/v1/bookings/{b['id']}/cancel", headers=h)
    svc = served.runtime.services
    served.clock.advance(timedelta(days=svc.rules.personal_data_retention_days + 1).total_seconds())
    assert (await purge_personal_data(svc)).bookings_anonymised == 1
    async with svc.uow(readonly=True) as uow:
        old = await uow.bookings.get(b["id"])
    assert old.origin.address is None and old.driver_note is None and old.origin.lat == 37.3850


async def test_expired_offers_old_tablet_events_and_webhook_events_go(served: Served) -> None:
    """An unconfirmed offer goes 1 h after it expired (a confirmed one stays); tablet events and
    finished TOMP webhook events go after the retention period."""
    from transit.operations import ReportPosition

    c, h = served.client, served.auth("operator")
    ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"}}
    kept = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
    await c.post("/api/v1/bookings", json={"offer_id": kept["offer_id"]}, headers={**h, "Idempotency-Key": "k"})
    unused = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
    svc = served.runtime.services
    vehicle = served.runtime.reference.fleet[0].id
    await served.runtime.operations.report(ReportPosition(vehicle, "pos-1", None, lat=37.40, lon=140.97))
    now = served.clock.now()
    async with svc.uow() as uow:
        await uow.tomp_webhooks.add_event(dict(id="ev-1", account_id="a", tomp_id="o", kind="eta", path="/x",
                                               body="{}", status="sent", attempts=1, created_at=now, updated_at=now))
        await uow.commit()
    first = await purge_personal_data(svc)
    assert (first.offers_deleted, first.device_events_deleted, first.webhook_events_deleted) == (0, 0, 0)
    served.clock.advance(svc.rules.offer_ttl_s + 3601)
    res = await purge_personal_data(svc)
    assert res.offers_deleted == 1 and res.device_events_deleted == 0
    async with svc.uow(readonly=True) as uow:
        assert await uow.offers.get(unused["offer_id"]) is None
        assert await uow.offers.get(kept["offer_id"]) is not None
    served.clock.advance(timedelta(days=svc.rules.personal_data_retention_days + 1).total_seconds())
    res = await purge_personal_data(svc)
    assert res.device_events_deleted >= 1 and res.webhook_events_deleted == 1
    async with svc.uow(readonly=True) as uow:
        assert await uow.tomp_webhooks.event("ev-1") is None
        rows = (await uow.connection.execute(select(t.device_events.c.client_event_id))).all()
    assert ("pos-1",) not in rows
