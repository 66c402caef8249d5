"""GTFS-Realtime feeds and the static zip over HTTP, parsed back with gtfs-realtime-bindings."""

from __future__ import annotations

import asyncio
from datetime import datetime

from google.transit import gtfs_realtime_pb2 as rt

from tests.conftest import Served
from transit.clock import to_epoch
from transit.feeds import gtfs
from transit.operations import ReportArrival, ReportBoarded, ReportPosition

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"
VP = rt.VehiclePosition


async def _feed(served: Served, which: str) -> rt.FeedMessage:
    r = await served.client.get(f"/gtfs-rt/{which}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    msg = rt.FeedMessage()
    msg.ParseFromString(r.content)
    assert msg.header.gtfs_realtime_version == "2.0"
    assert msg.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert msg.header.timestamp == to_epoch(served.clock.now())
    return msg


async def _book(served: Served, party: int = 2) -> dict:
    h = served.auth("rider")
    body = {"origin": {"stop_id": HALL}, "destination": {"stop_id": WEST}, "party_size": party}
    offer = (await served.client.post("/api/v1/offers", json=body, headers=h)).json()
    r = await served.client.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                                 headers={**h, "Idempotency-Key": "rt-1"})
    assert r.status_code == 201, r.text
    return r.json()


async def test_vehicle_positions_list_the_vehicles_on_shift(served: Served) -> None:
    """Thursday 09:00: the vehicles with a shift now, at their depot, empty, on a NEW run."""
    msg = await _feed(served, "vehicle-positions")
    ref = served.runtime.reference  # type: ignore[attr-defined]
    now = served.clock.now().astimezone(ref.rules.tz)
    sod = now.hour * 3600 + now.minute * 60
    on_shift = {v.id for v in ref.fleet for sh in v.shifts_on(now.date())
                if sh.start_s <= sod <= sh.end_s
                and not any(b.start_local <= now.time() < b.end_local for b in sh.breaks)}
    assert {e.id for e in msg.entity} == on_shift and on_shift
    hall = ref.stop(HALL)
    for e in msg.entity:
        p = e.vehicle
        assert p.vehicle.id == e.id and p.vehicle.label
        # GTFS-RT positions are 32-bit floats: about 1 m at this latitude.
        assert abs(p.position.latitude - hall.lat) < 2e-5 and abs(p.position.longitude - hall.lon) < 2e-5
        assert p.occupancy_status == VP.EMPTY and p.occupancy_percentage == 0
        assert p.trip.schedule_relationship == rt.TripDescriptor.NEW
        assert p.trip.route_id == "okuma_demand" and p.trip.start_date == now.strftime("%Y%m%d")


async def test_trip_updates_follow_a_booking_and_its_boarding(served: Served) -> None:
    """A booking appears at once as stop times; boarding shows as occupancy and drops the pickup."""
    assert len((await _feed(served, "trip-updates")).entity) == 0
    b = await _book(served, party=2)
    tu = await _feed(served, "trip-updates")  # the booking's events made the cached feed stale
    [e] = list(tu.entity)
    upd = e.trip_update
    assert upd.vehicle.id == b["vehicle_id"] and upd.trip.schedule_relationship == rt.TripDescriptor.NEW
    assert [(u.stop_sequence, u.stop_id) for u in upd.stop_time_update] == [(1, HALL), (2, WEST)]
    pick, drop = (u.arrival.time for u in upd.stop_time_update)
    window = [to_epoch(datetime.fromisoformat(b[k])) for k in ("pickup_window_start", "pickup_window_end")]
    assert window[0] <= pick <= window[1] and pick < drop
    _, etas = await served.runtime.operations.etas(b["vehicle_id"])  # type: ignore[attr-defined]
    assert [to_epoch(e.eta) for e in etas] == [pick, drop]  # the checker's ETAs, not stale plan times
    assert drop <= to_epoch(datetime.fromisoformat(b["latest_dropoff"]))

    ops = served.runtime.operations  # type: ignore[attr-defined]
    assert (await ops.report(ReportArrival(b["vehicle_id"], "a1", None, HALL, (b["id"],)))).result == "applied"
    at_stop = {e.id: e.vehicle for e in (await _feed(served, "vehicle-positions")).entity}[b["vehicle_id"]]
    assert (at_stop.stop_id, at_stop.current_status) == (HALL, VP.STOPPED_AT)
    assert (await ops.report(ReportBoarded(b["vehicle_id"], "b1", None, b["id"], 2))).result == "applied"
    vp = await _feed(served, "vehicle-positions")
    pos = {e.id: e.vehicle for e in vp.entity}[b["vehicle_id"]]
    seats = served.runtime.reference.vehicles_by_id[b["vehicle_id"]].seats  # type: ignore[attr-defined]
    assert pos.occupancy_percentage == round(100 * 2 / seats)
    assert pos.occupancy_status == VP.MANY_SEATS_AVAILABLE
    tu = await _feed(served, "trip-updates")
    assert [u.stop_id for u in tu.entity[0].trip_update.stop_time_update] == [WEST]
    assert pos.stop_id == WEST and pos.current_status == VP.IN_TRANSIT_TO


async def test_a_position_report_shows_in_the_next_poll(served: Served) -> None:
    """A GPS fix (an event) makes the next poll rebuild: the new position, well within 30 s."""
    b = await _book(served)
    await _feed(served, "vehicle-positions")
    ops = served.runtime.operations  # type: ignore[attr-defined]
    lat, lon = 37.3855, 140.9800
    r = await ops.report(ReportPosition(b["vehicle_id"], "p1", None, lat, lon))
    assert r.result == "applied"
    await asyncio.sleep(0)  # in-process bus delivery
    pos = {e.id: e.vehicle for e in (await _feed(served, "vehicle-positions")).entity}[b["vehicle_id"]]
    assert abs(pos.position.latitude - lat) < 2e-5 and abs(pos.position.longitude - lon) < 2e-5
    assert pos.timestamp == to_epoch(served.clock.now())


async def test_feeds_refresh_by_age_without_any_event(served: Served) -> None:
    """With no event at all, a cached feed is served until it is older than max_age_s (<= 30 s)."""
    r = await served.client.get("/gtfs-rt/vehicle-positions")
    first = rt.FeedMessage.FromString(r.content)
    feeds = served.app.state.gtfs_realtime  # type: ignore[attr-defined]
    assert feeds.max_age_s <= 30
    served.clock.advance(20)
    again = rt.FeedMessage.FromString((await served.client.get("/gtfs-rt/vehicle-positions")).content)
    assert again.header.timestamp == first.header.timestamp  # cached: nothing happened
    feeds.max_age_s = 0.05
    await asyncio.sleep(0.06)
    later = await _feed(served, "vehicle-positions")
    assert later.header.timestamp == first.header.timestamp + 20


async def test_static_zip_is_served_and_matches_the_export(served: Served) -> None:
    """/gtfs/okuma.zip is the same feed as the exporter builds for today, and its RT version matches."""
    r = await served.client.get("/gtfs/okuma.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    feed = gtfs.read_feed(r.content)
    ref = served.runtime.reference  # type: ignore[attr-defined]
    today = served.clock.now().astimezone(ref.rules.tz).date()
    files = gtfs.build_feed(ref, gtfs.FeedMeta.load(), today=today, base_url="http://test/")
    assert r.content == gtfs.zip_bytes(files)
    assert feed.tables["booking_rules.txt"][0]["booking_url"] == "http://test/"
    vp = await _feed(served, "vehicle-positions")
    assert vp.header.feed_version == gtfs.feed_version(files)
