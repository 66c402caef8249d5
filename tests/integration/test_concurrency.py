"""Fifty riders confirm at once for one vehicle with ten free seats: no seat is sold twice."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.conftest import start_served
from transit.reference_data import load_okuma


def one_minibus():
    ref = load_okuma()
    bus = next(v for v in ref.fleet if v.seats == 10)
    return dataclasses.replace(ref, fleet=(bus,))


@pytest.mark.slow
async def test_fifty_confirms_for_ten_seats(database_url, clock) -> None:  # type: ignore[no-untyped-def]
    """Exactly the feasible number of confirms succeed, the rest get a clear refusal, seats never exceed."""
    served, ctx = await start_served(database_url, clock, reference=one_minibus())
    try:
        c, h = served.client, served.auth("rider")
        ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"}}
        offers = []
        for _ in range(50):
            r = await c.post("/api/v1/offers", json=ride, headers=h)
            assert r.status_code == 201, r.text
            offers.append(r.json()["offer_id"])

        async def confirm(i: int, offer_id: str):  # type: ignore[no-untyped-def]
            return await c.post("/api/v1/bookings", json={"offer_id": offer_id},
                                headers={**h, "Idempotency-Key": f"k{i}"})

        results = await asyncio.gather(*(confirm(i, o) for i, o in enumerate(offers)))
        ok = [r for r in results if r.status_code == 201]
        refused = [r for r in results if r.status_code != 201]
        assert {r.status_code for r in refused} <= {409}
        assert all(r.json()["error"] == "OfferNoLongerAvailable" and r.json()["message_ja"] for r in refused)
        # The feasible number: ten seats, and the windows of these parameters let all ten pool.
        assert len(ok) == 10
        assert len({r.json()["id"] for r in ok}) == 10
        # An eleventh rider now gets a refusal at the offer stage already.
        r = await c.post("/api/v1/offers", json=ride, headers=h)
        assert r.status_code == 409
        # The stored plan agrees: ten pickups, never more than ten seats on board.
        async with served.runtime.services.uow(readonly=True) as uow:
            v = (await uow.vehicles.list())[0]
            active = await uow.bookings.active()
        assert len(active) == 10
        on_board = peak = 0
        party = {b.id: b.party_size for b in active}
        for visit in v.plan:
            on_board += party[visit.booking_id] if visit.kind == "pickup" else -party[visit.booking_id]
            peak = max(peak, on_board)
        assert peak <= 10 and sum(1 for x in v.plan if x.kind == "pickup") == 10
        # every promise holds in the stored plan
        by_id = {b.id: b for b in active}
        for visit in v.plan:
            b = by_id[visit.booking_id]
            if visit.kind == "pickup":
                assert b.pickup_earliest <= visit.planned_at <= b.pickup_latest
            else:
                assert visit.planned_at <= b.dropoff_latest
    finally:
        await served.client.aclose()
        await ctx.__aexit__(None, None, None)


def two_small_buses():
    ref = load_okuma()
    bus = next(v for v in ref.fleet if v.seats == 10)
    small = [dataclasses.replace(bus, id=f"small_{i}", seats=2) for i in (1, 2)]
    return dataclasses.replace(ref, fleet=tuple(small))


async def test_a_taken_seat_moves_the_booking_to_another_vehicle_with_the_same_promise(database_url, clock) -> None:  # type: ignore[no-untyped-def]
    """When the offered vehicle filled up meanwhile, confirm uses another vehicle that keeps the offer's promise."""
    served, ctx = await start_served(database_url, clock, reference=two_small_buses())
    try:
        c, h = served.client, served.auth("rider")
        ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
                "party_size": 2}
        offers = [(await c.post("/api/v1/offers", json=ride, headers=h)).json() for _ in range(3)]
        assert len({o["offer_id"] for o in offers}) == 3
        assert len({o.get("planned_pickup") for o in offers}) == 1  # all made against the same empty plans
        results = []
        for i, o in enumerate(offers):
            results.append(await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                                        headers={**h, "Idempotency-Key": f"m{i}"}))
        assert [r.status_code for r in results] == [201, 201, 409]
        a, b = results[0].json(), results[1].json()
        assert {a["vehicle_id"], b["vehicle_id"]} == {"small_1", "small_2"}
        for booking, offer in ((a, offers[0]), (b, offers[1])):
            assert booking["pickup_window_start"] == offer["pickup_window_start"]
            assert booking["latest_dropoff"] == offer["latest_dropoff"]
    finally:
        await served.client.aclose()
        await ctx.__aexit__(None, None, None)
