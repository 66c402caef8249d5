"""ETAs of a vehicle whose shift is split by a break: the current segment's work is timed."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Served
from transit.operations import ReportPosition


async def test_etas_cover_the_current_segment_before_a_longer_one(served: Served) -> None:
    """09:00, ev_bus works 07-12 then 13-19: a 09:00 booking gets ETAs (not the afternoon's empty plan)."""
    h = served.auth("rider")
    body = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"}}
    offer = (await served.client.post("/api/v1/offers", json=body, headers=h)).json()
    b = (await served.client.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                                  headers={**h, "Idempotency-Key": "seg"})).json()
    ops = served.runtime.operations  # type: ignore[attr-defined]
    vehicle, etas = await ops.etas(b["vehicle_id"])
    segments = [s for s in vehicle.shifts if s.ends_at > served.clock.now()]
    current, *later = sorted(segments, key=lambda s: s.starts_at)
    assert later and (later[0].ends_at - later[0].starts_at) > (current.ends_at - served.clock.now())
    assert [(e.booking_id, e.kind) for e in etas] == [(b["id"], "pickup"), (b["id"], "dropoff")]
    # and after a GPS fix the same ETAs are pushed (not an empty list)
    await ops.report(ReportPosition(b["vehicle_id"], "seg-p", None, 37.3822, 140.9590))
    _, etas = await ops.etas(b["vehicle_id"])
    assert len(etas) == 2 and etas[0].eta <= served.clock.now() + timedelta(minutes=20)
