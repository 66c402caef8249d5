"""Open feeds: validator findings, export time and GTFS-Realtime refresh time.

1. Builds the static feed (GTFS-JP + GTFS-Flex) for Okuma and for a synthetic 200-vehicle city
   (1,000 stops, 100 kiosks, one 20 x 20 km zone), times ``build_feed`` + ``zip_bytes`` (median of
   ``--runs``), and runs the canonical GTFS rules (``gtfs-validator``) plus our Flex and GTFS-JP
   checks on both, counting errors and warnings.
2. GTFS-Realtime: on a SQLite database with the Okuma fleet and ``--bookings`` real bookings made
   through the handlers, times a full rebuild of both feeds (positions, occupancy, trip updates
   with the checker's ETAs); and times ``realtime.build`` alone for 200 vehicles with 8 planned
   stops each. The feeds must be refreshed within 30 s of a change; the ratio says how much of
   that budget one rebuild takes.

Last line: one JSON object. Run: ``.venv/bin/python bench/feeds.py [--runs 5] [--bookings 12]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google.transit import gtfs_realtime_pb2 as rt

from transit.booking import Booking, BookingStatus, Place
from transit.feeds import gtfs, realtime
from transit.reference_data import (
    AreaFeature,
    FleetVehicle,
    ReferenceData,
    ServiceArea,
    StopInfo,
    load_okuma,
)
from transit.vehicle import Shift, Visit
from transit.vehicle import Vehicle as LiveVehicle

TOKYO = ZoneInfo("Asia/Tokyo")
TODAY = date(2026, 11, 26)  # a Thursday
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO)
REFRESH_BUDGET_S = 30.0


def city(okuma: ReferenceData, vehicles: int = 200, stops: int = 1000, seed: int = 1) -> ReferenceData:
    """A synthetic city: one square zone of about 20 km, random stops, ``vehicles`` minibuses."""
    rng = random.Random(seed)
    lat0, lon0, half = 37.40, 140.97, 0.09
    ring = ((lon0 - half, lat0 - half), (lon0 + half, lat0 - half), (lon0 + half, lat0 + half),
            (lon0 - half, lat0 + half))
    area = ServiceArea((AreaFeature("zone_city", "other", "市内", "City", ((ring,),)),))
    made = tuple(
        StopInfo(f"city_stop_{i}", f"停留所{i}", "ていりゅうじょ", f"Stop {i}",
                 round(lat0 + rng.uniform(-0.95, 0.95) * half, 6), round(lon0 + rng.uniform(-0.95, 0.95) * half, 6),
                 i % 10 == 0, True, "other", "synthetic")
        for i in range(stops)
    )
    shifts = okuma.fleet[0].shifts
    fleet = tuple(FleetVehicle(f"city_bus_{i}", f"市バス{i}", f"City bus {i}", 10, 1, 6, made[0].stop_id, shifts)
                  for i in range(vehicles))
    return ReferenceData(made, fleet, okuma.rules, area)


def time_export(ref: ReferenceData, meta: gtfs.FeedMeta, runs: int) -> tuple[float, dict[str, bytes], int]:
    times, files = [], {}
    for _ in range(runs):
        t = time.perf_counter()
        files = gtfs.build_feed(ref, meta, today=TODAY, base_url="https://example.org/okuma/")
        blob = gtfs.zip_bytes(files)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, files, len(blob)


def findings(files: dict[str, bytes], work: Path) -> dict[str, object]:
    d = gtfs.write_dir(files, work / "feed")
    t = time.perf_counter()
    notices = gtfs.validate(d, on=TODAY, out_dir=work / "report")
    took = time.perf_counter() - t
    count = {sev: sum(n["totalNotices"] for n in notices if n["severity"] == sev) for sev in ("ERROR", "WARNING")}
    feed = gtfs.read_feed(d)
    return {"errors": count["ERROR"], "warnings": count["WARNING"],
            "codes": sorted({n["code"] for n in notices if n["severity"] in ("ERROR", "WARNING")}),
            "flex_problems": len(gtfs.check_flex(feed)), "gtfs_jp_problems": len(gtfs.check_gtfs_jp(feed)),
            "validator_s": round(took, 2)}


async def okuma_refresh(bookings: int, runs: int) -> tuple[float, int, int]:
    """Median ms of a full GTFS-RT rebuild on a database with ``bookings`` real bookings."""
    from transit.accounts import create_account
    from transit.bootstrap import bootstrap
    from transit.clock import FakeClock
    from transit.commands import Actor, ConfirmOffer, PlaceRef, RequestRide
    from transit.db import migrate
    from transit.errors import DomainError
    from transit.handlers import confirm_offer, request_offer
    from transit.loading import load_reference
    from transit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(T0)
        runtime = bootstrap(Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", dispatcher=False),
                            clock=clock)
        await migrate(runtime.engine)
        svc = runtime.services
        async with svc.uow() as uow:
            await load_reference(uow, runtime.reference, today=TODAY, days=2)
            acc, _ = await create_account(uow, role="operator", name="bench desk")
            await uow.commit()
        actor = Actor(acc, "operator", "bench desk")
        rng = random.Random(3)
        ids = [s.stop_id for s in runtime.reference.stops]
        made = 0
        for i in range(bookings * 3):
            if made >= bookings:
                break
            a, b = rng.sample(ids, 2)
            when = T0 + timedelta(minutes=rng.randint(5, 120))
            try:
                o = await request_offer(RequestRide(PlaceRef(a), PlaceRef(b), "leave_at", when), actor, svc)
                await confirm_offer(ConfirmOffer(o.id, f"bench-{i}"), actor, svc)
                made += 1
            except DomainError:
                continue
        feeds = realtime.RealtimeFeeds(svc, route_id="okuma_demand", etas=runtime.operations.etas)  # type: ignore[union-attr]
        times = []
        built = None
        for _ in range(runs):
            t = time.perf_counter()
            built = await feeds.rebuild()
            times.append(time.perf_counter() - t)
        await runtime.close()
    assert built is not None
    tu = rt.FeedMessage.FromString(built.trip_updates)
    stops = sum(len(e.trip_update.stop_time_update) for e in tu.entity)
    return statistics.median(times) * 1000, made, stops


def city_build(ref: ReferenceData, runs: int) -> tuple[float, int]:
    """Median ms of realtime.build for the city fleet, 8 planned stops per vehicle, half on board."""
    rng = random.Random(5)
    now = T0.astimezone(ZoneInfo("UTC"))
    vehicles, bookings = [], {}
    stops = ref.stops
    for k, fv in enumerate(ref.fleet):
        plan = []
        for j in range(4):
            a, b = rng.sample(stops, 2)
            bid = f"b{k}_{j}"
            at = now + timedelta(minutes=5 + 6 * j)
            plan += [Visit(bid, "pickup", a.lat, a.lon, a.stop_id, at),
                     Visit(bid, "dropoff", b.lat, b.lon, b.stop_id, at + timedelta(minutes=9))]
            bookings[bid] = Booking(bid, None, "bench", "app", "", 1 + j % 3, 0, 0, Place(a.lat, a.lon, a.stop_id),
                                    Place(b.lat, b.lon, b.stop_id), at, at, at, 900, 30, 30,
                                    status=BookingStatus.ON_BOARD if j % 2 else BookingStatus.CONFIRMED,
                                    vehicle_id=fv.id)
        vehicles.append(LiveVehicle(fv.id, fv.name_ja, fv.name_en, fv.seats, fv.wheelchairs, fv.parcels,
                                    fv.depot_stop_id, stops[0].lat, stops[0].lon, plan=plan,
                                    shifts=[Shift(f"{fv.id}:s", fv.id, now - timedelta(hours=1),
                                                  now + timedelta(hours=6))]))
    times = []
    built = None
    for _ in range(runs):
        t = time.perf_counter()
        built = realtime.build(vehicles, bookings, now=now, route_id="okuma_demand", tz=TOKYO)
        times.append(time.perf_counter() - t)
    assert built is not None
    return statistics.median(times) * 1000, len(built.vehicle_positions) + len(built.trip_updates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bookings", type=int, default=12)
    args = p.parse_args()
    okuma = load_okuma()
    meta = gtfs.FeedMeta.load()
    big = city(okuma)
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ref in (("okuma", okuma), ("city200", big)):
            ms, files, size = time_export(ref, meta, args.runs)
            f = findings(files, Path(tmp) / name)
            print(f"{name:8s} stops={len(ref.stops):5d} vehicles={len(ref.fleet):4d} export {ms:8.1f} ms, "
                  f"zip {size / 1024:7.1f} KiB; validator: {f['errors']} errors, {f['warnings']} warnings "
                  f"{f['codes']} ({f['validator_s']} s); own checks: flex {f['flex_problems']}, "
                  f"gtfs-jp {f['gtfs_jp_problems']}")
            result[name] = {"stops": len(ref.stops), "vehicles": len(ref.fleet), "export_ms": round(ms, 1),
                            "zip_kib": round(size / 1024, 1), **f}
    rt_ms, made, stop_updates = asyncio.run(okuma_refresh(args.bookings, args.runs))
    print(f"GTFS-RT rebuild, Okuma database with {made} bookings ({stop_updates} stop updates): {rt_ms:.1f} ms")
    city_ms, size = city_build(big, args.runs)
    print(f"GTFS-RT build, 200 vehicles x 8 planned stops: {city_ms:.1f} ms ({size / 1024:.0f} KiB both feeds)")
    result["rt"] = {
        "okuma_rebuild_ms": round(rt_ms, 1), "okuma_bookings": made, "okuma_stop_updates": stop_updates,
        "city200_build_ms": round(city_ms, 1), "refresh_budget_s": REFRESH_BUDGET_S,
        "okuma_rebuild_share_of_budget": round(rt_ms / 1000 / REFRESH_BUDGET_S, 5),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
