"""Invariants of operation through the real handlers, on SQLite and PostgreSQL (issue 8, Deliver 1 and 2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from routing import model as rm
from tests.conftest import TOKYO, Served, book
from transit import operations as ops
from transit import tables as t
from transit.handlers import PlanRejected, Services, Snapshot, apply_route, load_snapshot
from transit.invariants import check_invariants
from transit.uow import UnitOfWork
from transit.vehicle import Vehicle

HALL, WEST, HOT, KUMA = "okuma_town_hall", "ono_station_west_plaza", "hot_okuma", "kuma_sun_terrace"


def at(hhmm: str) -> str:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 11, 26, h, m, tzinfo=TOKYO).isoformat()


def services(served: Served) -> Services:
    return served.runtime.services  # type: ignore[attr-defined,no-any-return]


@asynccontextmanager
async def planning(served: Served, vehicle_id: str | None = None) -> AsyncIterator[
        tuple[UnitOfWork, Services, list[Vehicle], Snapshot]]:
    """A writing unit of work with the planning snapshot of one vehicle (locked) or of all, now."""
    svc = services(served)
    async with svc.uow() as uow:
        now = svc.clock.now()
        vehicles = ([await uow.vehicles.get(vehicle_id, for_update=True)] if vehicle_id is not None
                    else await uow.vehicles.list((now, now)))
        yield uow, svc, vehicles, await load_snapshot(uow, svc, vehicles, (now, now))  # type: ignore[arg-type]


def operations(served: Served) -> ops.Operations:
    return served.runtime.operations  # type: ignore[attr-defined,no-any-return]


async def event(served: Served, cmd: ops.DriverEvent) -> ops.EventResult:
    return await operations(served).report(cmd)


async def plan(served: Served, vehicle_id: str) -> dict[str, Any]:
    r = await served.client.get(f"/api/v1/vehicles/{vehicle_id}/plan", headers=served.auth("operator"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def violations(served: Served) -> list[Any]:
    svc = services(served)
    async with svc.uow(readonly=True) as uow:
        return await check_invariants(uow, svc, svc.clock.now())


async def logged(served: Served, type_: str, booking_id: str) -> list[dict[str, Any]]:
    svc = services(served)
    async with svc.uow(readonly=True) as uow:
        rows = (await uow.connection.execute(
            select(t.event_log).where(t.event_log.c.type == type_, t.event_log.c.aggregate_id == booking_id)
        )).mappings().all()
    return [dict(r) for r in rows]


def fid(prefix: str) -> str:
    fid.n = getattr(fid, "n", 0) + 1  # type: ignore[attr-defined]
    return f"{prefix}-{fid.n}"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ 1. visits keep their stop


async def test_visits_keep_their_stop_when_stops_share_coordinates(served: Served) -> None:
    """The town hall shares the depot's coordinates: every visit still names its stop (finding 1)."""
    a = await book(served, "s1", HALL, WEST, time_mode="leave_at", time=at("15:00"))
    b = await book(served, "s2", HOT, KUMA, time_mode="leave_at", time=at("15:02"))
    expected = {(a["id"], "pickup"): HALL, (a["id"], "dropoff"): WEST,
                (b["id"], "pickup"): HOT, (b["id"], "dropoff"): KUMA}
    seen = {}
    for vid in {a["vehicle_id"], b["vehicle_id"]}:
        for v in (await plan(served, vid))["visits"]:
            seen[(v["booking_id"], v["kind"])] = v["stop_id"]
            assert v["stop_name_ja"] and v["stop_name_en"], v
    assert seen == expected
    assert await violations(served) == []


# ------------------------------------------------------------------ 3. arrival and no-show rules


async def test_arrival_refused_before_the_booking_in_the_future_and_long_before_the_window(served: Served) -> None:
    """'arrived' one day back, in the future, or an hour before the window away from the stop is refused."""
    b = await book(served, "a1", HALL, WEST, time_mode="leave_at", time=at("10:30"))
    vid, now = b["vehicle_id"], served.clock.now()
    r = await event(served, ops.ReportArrival(vid, fid("arr"), now - timedelta(days=1), booking_ids=(b["id"],)))
    assert (r.result, r.code) == ("rejected", "ArrivalOutOfOrder") and r.message_ja and r.message_en
    r = await event(served, ops.ReportArrival(vid, fid("arr"), now + timedelta(minutes=10), booking_ids=(b["id"],)))
    assert (r.result, r.code) == ("rejected", "EventInFuture")
    # 90 min before a 10:30 window, the vehicle 4 km away (its position: Ono station)
    await event(served, ops.ReportPosition(vid, fid("pos"), now, lat=37.4057, lon=141.0330))
    r = await event(served, ops.ReportArrival(vid, fid("arr"), now, booking_ids=(b["id"],)))
    assert (r.result, r.code) == ("rejected", "ArrivalTooEarly")
    assert "分" in r.message_ja and "min" in r.message_en
    r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider"))
    assert r.json()["status"] == "confirmed"
    assert await violations(served) == []


async def test_early_arrival_allowed_at_the_stop_and_not_before_the_last_event(served: Served) -> None:
    """Reported at the stop, an early arrival is applied; one timed before the vehicle's last event is not."""
    b = await book(served, "a2", HOT, WEST, time_mode="leave_at", time=at("10:30"))
    vid, now = b["vehicle_id"], served.clock.now()
    r = await event(served, ops.ReportBreak(vid, fid("brk"), now, started=False))
    assert r.result == "applied"
    r = await event(served, ops.ReportArrival(vid, fid("arr"), now - timedelta(seconds=30), booking_ids=(b["id"],),
                                              lat=37.4024, lon=140.9712))
    assert (r.result, r.code) == ("rejected", "ArrivalOutOfOrder")
    stop = next(s for s in served.runtime.reference.stops if s.stop_id == HOT)  # type: ignore[attr-defined]
    r = await event(served, ops.ReportArrival(vid, fid("arr"), now, booking_ids=(b["id"],), lat=stop.lat, lon=stop.lon))
    assert r.result == "applied", r


async def test_no_show_only_after_window_start_plus_wait_on_the_server_clock(served: Served) -> None:
    """Arrived 10 min early: a no-show is refused until window start + no_show_wait_s, whatever 'at' says."""
    b = await book(served, "n1", HALL, WEST, time_mode="leave_at", time=at("09:20"), wheelchairs=1)
    vid = b["vehicle_id"]
    window = datetime.fromisoformat(b["pickup_window_start"])
    served.clock.advance((window - served.clock.now()).total_seconds() - 600)  # 10 min before the window
    r = await event(served, ops.ReportArrival(vid, fid("arr"), served.clock.now(), booking_ids=(b["id"],)))
    assert r.result == "applied", r
    wait = served.runtime.reference.rules.no_show_wait_s  # type: ignore[attr-defined]
    served.clock.advance(wait + 60)  # waited longer than the wait since arriving, but the window has not begun
    r = await event(served, ops.ReportNoShow(vid, fid("ns"), served.clock.now() + timedelta(seconds=50),
                                             booking_id=b["id"]))
    assert (r.result, r.code) == ("rejected", "NoShowTooEarly")
    served.clock.advance((window - served.clock.now()).total_seconds() + wait - 5)
    r = await event(served, ops.ReportNoShow(vid, fid("ns"), None, booking_id=b["id"]))
    assert (r.result, r.code) == ("rejected", "NoShowTooEarly")
    served.clock.advance(5)
    r = await event(served, ops.ReportNoShow(vid, fid("ns"), None, booking_id=b["id"]))
    assert r.result == "applied", r
    assert await violations(served) == []


# ------------------------------------------------------------------ 4. event kinds


async def test_parcel_events_only_on_parcels_and_boarding_only_on_rides(served: Served) -> None:
    """parcel_picked_up on a ride, boarded on a grocery delivery: refused, nothing changes (finding 6)."""
    ride = await book(served, "k1")
    parcel = await book(served, "k2", HOT, KUMA)
    svc = services(served)
    async with svc.uow() as uow:
        g = await uow.bookings.get(parcel["id"])
        g.kind = "grocery"
        await uow.bookings.save(g, now=svc.clock.now())
        await uow.commit()
    now = served.clock.now()
    r = await event(served, ops.ReportParcelPickedUp(ride["vehicle_id"], fid("pp"), now, booking_id=ride["id"]))
    assert (r.result, r.code) == ("rejected", "WrongEventForBooking")
    r = await event(served, ops.ReportBoarded(parcel["vehicle_id"], fid("bd"), now, booking_id=parcel["id"]))
    assert (r.result, r.code) == ("rejected", "WrongEventForBooking")
    r = await event(served, ops.ReportDropOff(parcel["vehicle_id"], fid("do"), now, booking_id=parcel["id"]))
    assert (r.result, r.code) == ("rejected", "WrongEventForBooking")
    r = await event(served, ops.ReportNoShow(parcel["vehicle_id"], fid("ns"), now, booking_id=parcel["id"]))
    assert (r.result, r.code) == ("rejected", "WrongEventForBooking")  # no_show is a rider's, not a parcel's
    for bid in (ride["id"], parcel["id"]):
        r = await served.client.get(f"/api/v1/bookings/{bid}", headers=served.auth("rider"))
        assert r.json()["status"] == "confirmed"


# ------------------------------------------------------------------ 2. pinning


async def test_arrival_pins_the_rider_and_no_plan_may_move_them(served: Served) -> None:
    """After 'arrived' the plan version rises, the rider is pinned first, and the writer refuses moves."""
    b = await book(served, "p1")
    other = await book(served, "p2", HOT, KUMA)
    vid = b["vehicle_id"]
    before = (await plan(served, vid))["plan_version"]
    r = await event(served, ops.ReportArrival(vid, fid("arr"), served.clock.now(), booking_ids=(b["id"],)))
    assert r.result == "applied"
    after = await plan(served, vid)
    assert after["plan_version"] == before + 1
    assert after["visits"][0]["visit_id"] == f"{b['id']}:pickup"
    async with planning(served) as (uow, svc, _, snap):
        mine = next(v for v in snap.problem.vehicles if v.id == vid)
        assert mine.pinned == (b["id"],)
        elsewhere = next(v for v in snap.problem.vehicles if v.id != vid)
        stolen = (*elsewhere.route, rm.Stop(b["id"], "pickup"), rm.Stop(b["id"], "dropoff"))
        with pytest.raises(PlanRejected) as e:
            await apply_route(uow, svc, snap, elsewhere.id, stolen, dict(snap.problem.requests), "test", ())
        assert {v.kind for v in e.value.violations} == {"pinned"}
        if other["vehicle_id"] == vid:  # another stop first on its own vehicle: refused too
            reordered = tuple(s for s in mine.route if s.request_id != b["id"])
            reordered = (*reordered[:1], rm.Stop(b["id"], "pickup"), *reordered[1:], rm.Stop(b["id"], "dropoff"))
            with pytest.raises(PlanRejected):
                await apply_route(uow, svc, snap, vid, reordered, dict(snap.problem.requests), "test", ())
    assert (await plan(served, vid))["plan_version"] == before + 1  # nothing stored
    assert await violations(served) == []


# ------------------------------------------------------------------ 5. the checker gate, waits


async def test_writer_refuses_a_plan_the_checker_rejects(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """A route the independent checker rejects is not stored; the violations are logged and counted."""
    b = await book(served, "g1")
    vid = b["vehicle_id"]
    before = await plan(served, vid)
    rejected = services(served).plan_stats.rejected
    async with planning(served, vid) as (uow, svc, _, snap):
        rv = snap.problem.vehicles[0]
        req = snap.problem.requests[b["id"]]
        past = rm.TimeWindow(req.pickup_window.earliest_s - 7200, req.pickup_window.earliest_s - 3600)
        bad = {**snap.problem.requests, b["id"]: replace(req, pickup_window=past)}
        with pytest.raises(PlanRejected) as e:
            await apply_route(uow, svc, snap, vid, rv.route, bad, "test", ())
    assert "time_window" in {v.kind for v in e.value.violations}
    assert svc.plan_stats.rejected == rejected + 1
    assert any("not stored" in r.message and "time_window" in r.message for r in caplog.records)
    assert (await plan(served, vid)) == before


async def test_stored_visits_carry_arrival_start_departure_and_wait_until(served: Served) -> None:
    """A ride booked hours ahead from the depot's stop: the stored visit waits until the window opens."""
    b = await book(served, "w1", HALL, WEST, time_mode="leave_at", time=at("11:00"))
    pickup = next(v for v in (await plan(served, b["vehicle_id"]))["visits"] if v["kind"] == "pickup")
    arrival, start = datetime.fromisoformat(pickup["arrival_at"]), datetime.fromisoformat(pickup["planned_at"])
    assert start >= datetime.fromisoformat(b["pickup_window_start"]) and start - arrival > timedelta(minutes=1)
    assert pickup["wait_until"] == pickup["planned_at"]
    assert datetime.fromisoformat(pickup["departure_at"]) > start
    assert await violations(served) == []


# ------------------------------------------------------------------ 6. ETAs


async def test_etas_follow_the_position_and_the_flag_is_raised_and_cleared_once(served: Served) -> None:
    """Far away: ETAs later and one PromiseAtRisk; again far: no second; back: one PromiseCleared."""
    b = await book(served, "e1")
    vid = b["vehicle_id"]
    hall = next(s for s in served.runtime.reference.stops if s.stop_id == HALL)  # type: ignore[attr-defined]
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=hall.lat, lon=hall.lon))
    _, near = await operations(served).etas(vid)
    assert near and not any(e.at_risk for e in near)
    served.clock.advance(5)
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=35.68, lon=139.77))  # Tokyo
    _, far = await operations(served).etas(vid)
    assert far[0].eta - near[0].eta > timedelta(hours=1) and far[0].at_risk
    served.clock.advance(5)
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=35.69, lon=139.76))
    assert len(await logged(served, "PromiseAtRisk", b["id"])) == 1
    assert await violations(served) == []
    served.clock.advance(5)
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=hall.lat, lon=hall.lon))
    served.clock.advance(5)
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=hall.lat, lon=hall.lon))
    cleared = await logged(served, "PromiseCleared", b["id"])
    assert [c["payload"]["reason"] for c in cleared] == ["on_time"]
    assert len(await logged(served, "PromiseAtRisk", b["id"])) == 1


async def test_completing_the_ride_clears_the_flag(served: Served) -> None:
    """A ride flagged at risk and then completed is cleared once (the rider's 'delay expected' ends)."""
    b = await book(served, "e2")
    vid = b["vehicle_id"]
    await event(served, ops.ReportPosition(vid, fid("pos"), served.clock.now(), lat=35.68, lon=139.77))
    assert len(await logged(served, "PromiseAtRisk", b["id"])) == 1
    # the tablet's position stays far away (no fix at the stop): the flag stands until the ride ends
    r = await event(served, ops.ReportArrival(vid, fid("arr"), served.clock.now(), booking_ids=(b["id"],)))
    assert r.result == "applied", r
    assert (await event(served, ops.ReportBoarded(vid, fid("bd"), served.clock.now(), booking_id=b["id"]))).result \
        == "applied"
    served.clock.advance(600)
    assert (await event(served, ops.ReportDropOff(vid, fid("do"), served.clock.now(), booking_id=b["id"]))).result \
        == "applied"
    cleared = await logged(served, "PromiseCleared", b["id"])
    assert [c["payload"]["reason"] for c in cleared] == ["ended"]
    r = await served.client.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider"))
    assert r.json()["status"] == "completed"
    assert await violations(served) == []


# ------------------------------------------------------------------ 7. the checker sees breakage


async def test_invariant_checker_reports_a_tampered_plan_and_stale_etas(served: Served) -> None:
    """Shift a stored time, or move the vehicle without ETAs: check_invariants names each."""
    b = await book(served, "i1")
    vid = b["vehicle_id"]
    assert await violations(served) == []
    svc = services(served)
    async with svc.uow() as uow:
        v = await uow.vehicles.get(vid, for_update=True)
        v.plan[0] = replace(v.plan[0], planned_at=v.plan[0].planned_at + timedelta(minutes=30), stop_id=None)
        v.lat, v.lon, v.position_at = 37.40, 141.0, svc.clock.now()
        await uow.vehicles.save(v)
        await uow.commit()
    kinds = {x.kind for x in await violations(served)}
    assert {"schedule", "visit_stop", "eta_stale"} <= kinds


async def test_a_promise_reality_broke_is_widened_explicitly_and_flagged(served: Served) -> None:
    """On board, the vehicle far away: the snapshot widens the drop-off to the earliest feasible time,
    the stored plan keeps it, and the booking is marked broken with one PromiseBroken (never silently)."""
    from transit.handlers import replan_vehicle

    b = await book(served, "r1")
    vid = b["vehicle_id"]
    now = served.clock.now()
    assert (await event(served, ops.ReportArrival(vid, fid("arr"), now, booking_ids=(b["id"],)))).result == "applied"
    assert (await event(served, ops.ReportBoarded(vid, fid("bd"), now, booking_id=b["id"]))).result == "applied"
    assert await logged(served, "PromiseBroken", b["id"]) == []
    await event(served, ops.ReportPosition(vid, fid("pos"), now, lat=37.00, lon=140.90))  # ~45 km south
    async with planning(served, vid) as (uow, svc, [v], snap):
        rv = snap.problem.vehicles[0]
        req = snap.problem.requests[b["id"]]
        earliest = rv.start_time_s + snap.problem.travel(rv.start_location, req.dropoff)
        assert snap.relaxed[b["id"]].dropoff_window.latest_s == earliest
        await replan_vehicle(uow, svc, v, "test")
        await uow.commit()
    broken = await logged(served, "PromiseBroken", b["id"])
    assert len(broken) == 1 and broken[0]["payload"]["earliest_feasible_s"] == earliest
    async with svc.uow(readonly=True) as uow:
        bk = await uow.bookings.get(b["id"])
    assert bk.promise_broken_at is not None and bk.relaxed["dropoff_latest_s"] == earliest
    drop = next(x for x in (await plan(served, vid))["visits"] if x["kind"] == "dropoff")
    assert int(datetime.fromisoformat(drop["planned_at"]).timestamp()) == earliest
    assert await violations(served) == []


async def test_a_busy_morning_keeps_every_invariant_after_every_event(served: Served) -> None:
    """Bookings, a re-plan, arrivals, boardings, drop-offs and a cancellation: no violation after any step."""
    import random

    from transit.dispatcher import Dispatcher

    stops = [HALL, WEST, HOT, KUMA, "okumart", "okuma_clinic_welfare_centre", "ono_station_east_plaza"]
    rng = random.Random(8)
    booked = []
    for i in range(8):
        o, d = rng.sample(stops, 2)
        when = served.clock.now() + timedelta(minutes=rng.randrange(0, 60))
        booked.append(await book(served, f"day-{i}", o, d, time_mode="leave_at", time=when.isoformat()))
        assert await violations(served) == []
    svc = services(served)
    await Dispatcher(svc, served.runtime.engine).reoptimise("test")  # type: ignore[attr-defined]
    assert await violations(served) == []
    r = await served.client.post(f"/api/v1/bookings/{booked[-1]['id']}/cancel", headers=served.auth("rider"))
    assert r.status_code == 200
    assert await violations(served) == []
    stops_by_id = {s.stop_id: s for s in served.runtime.reference.stops}  # type: ignore[attr-defined]
    steps = 0
    for _ in range(40):  # drive each vehicle along its plan, one visit at a time
        async with svc.uow(readonly=True) as uow:
            vehicles = [v for v in await uow.vehicles.list() if v.plan]
        if not vehicles:
            break
        v = min(vehicles, key=lambda x: x.plan[0].planned_at)
        x = v.plan[0]
        if x.planned_at > served.clock.now():
            served.clock.advance((x.planned_at - served.clock.now()).total_seconds())
        s = stops_by_id[x.stop_id]
        await event(served, ops.ReportPosition(v.id, fid("pos"), served.clock.now(), lat=s.lat, lon=s.lon))
        if x.kind == "pickup":
            r = await event(served, ops.ReportArrival(v.id, fid("arr"), served.clock.now(), booking_ids=(x.booking_id,)))
            assert r.result == "applied", r
            assert await violations(served) == []
            served.clock.advance(30)
            r = await event(served, ops.ReportBoarded(v.id, fid("bd"), served.clock.now(), booking_id=x.booking_id))
        else:
            served.clock.advance(30)
            r = await event(served, ops.ReportDropOff(v.id, fid("do"), served.clock.now(), booking_id=x.booking_id))
        assert r.result == "applied", r
        steps += 1
        assert await violations(served) == [], steps
    assert steps >= 2 * (len(booked) - 1)
    assert svc.plan_stats.rejected == 0
