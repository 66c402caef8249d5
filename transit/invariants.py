"""Invariants of operation, checked from the stored state (the simulator calls this after every event).

``check_invariants(uow, svc, now)`` reads every vehicle, its plan and the bookings and tablet
events behind it through ``uow`` (a read-only unit of work is enough) and returns every broken
invariant as data (empty = all hold). It never raises for a broken invariant and changes nothing.

Kinds (``InvariantViolation.kind``):

``untimed_plan``
    A vehicle has planned visits but no record of what they were timed from (``plan_origin``),
    or the visits the writer timed are no longer in the plan in the same order.
``schedule``
    The stored times of the timed visits (arrival, start of service, departure) are not what
    ``routing.schedule.evaluate`` gives for that route from the plan origin.
``checker``
    ``routing.check`` rejects the stored schedule (capacity by dimension, windows, ride limits,
    shift end, precedence, riders on board), judged against the bookings' promises as stored
    (widened only where a broken promise was flagged).
``silent_relax``
    A stored time is past the booking's original promise and the promise was not flagged broken.
``visit_stop``
    A visit's stop id differs from its booking's place, or names a stop without names.
``finished_in_plan``
    A visit of a booking that is no longer active (completed, cancelled, no-show) or assigned to
    another vehicle.
``pinned``
    A booking in ``arriving`` (the vehicle is at its pickup) is not on that vehicle's plan, or not
    among its first stops.
``no_show_early``
    A no-show recorded (server time) before max(arrival, window start) + ``no_show_wait_s``, or
    without an arrival.
``event_kind``
    A parcel event on a ride booking, or a boarding event on a parcel booking.
``eta_stale``
    A vehicle with visits whose stored ETAs are missing or older than its plan version or its
    latest position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from routing import check as rcheck
from routing import model as rm
from routing.schedule import evaluate
from transit.booking import ACTIVE, Booking, BookingStatus
from transit.clock import to_epoch
from transit.device_log import DeviceEventRepository
from transit.handlers import Services
from transit.planning import Locations, booking_request
from transit.uow import UnitOfWork
from transit.vehicle import Vehicle

PARCEL_EVENTS = ("parcel_picked_up", "parcel_handed_over")
RIDE_EVENTS = ("boarded", "dropped_off")


@dataclass(frozen=True)
class InvariantViolation:
    kind: str
    vehicle_id: str | None
    booking_id: str | None
    detail: str


async def check_invariants(uow: UnitOfWork, svc: Services, now: datetime) -> list[InvariantViolation]:
    """Every invariant of operation over the stored state at ``now``; an empty list when all hold.

    Contract: call it with any open unit of work (read-only is enough) after a committed event;
    it reads vehicles, plans, bookings and the last day of tablet events; it costs one schedule and
    one check per vehicle; it changes nothing and raises only for programming errors.
    """
    out: list[InvariantViolation] = []
    vehicles = await uow.vehicles.list()
    stops = {s["id"]: s for s in await uow.stops.list()}
    since = now - timedelta(days=1)
    log = DeviceEventRepository(uow.connection)
    for v in vehicles:
        bookings = {b.id: b for b in await uow.bookings.many({x.booking_id for x in v.plan})}
        out.extend(_visits(v, bookings, stops))
        out.extend(_plan(v, bookings, svc))
        out.extend(_etas(v))
        events = await log.for_vehicle(v.id, ("arrived", "no_show", *PARCEL_EVENTS, *RIDE_EVENTS), since)
        out.extend(await _events(uow, v, events, svc))
    for b in await uow.bookings.active():
        if b.status is BookingStatus.ARRIVING:
            out.extend(_pinned(b, {v.id: v for v in vehicles}))
    return out


def _visits(v: Vehicle, bookings: dict[str, Booking], stops: dict[str, dict]) -> list[InvariantViolation]:
    out = []
    for x in v.plan:
        b = bookings.get(x.booking_id)
        if b is None or b.status not in ACTIVE or b.vehicle_id != v.id:
            out.append(InvariantViolation("finished_in_plan", v.id, x.booking_id,
                                          f"{x.kind} of a booking that is {b.status.value if b else 'unknown'}"
                                          f" on {b.vehicle_id if b else '-'}"))
            continue
        place = b.origin if x.kind == "pickup" else b.destination
        if x.stop_id != place.stop_id:
            out.append(InvariantViolation("visit_stop", v.id, b.id,
                                          f"{x.kind} names stop {x.stop_id!r}, the booking {place.stop_id!r}"))
        elif x.stop_id is not None and not (stops.get(x.stop_id) or {}).get("name_ja"):
            out.append(InvariantViolation("visit_stop", v.id, b.id, f"stop {x.stop_id!r} has no name"))
    return out


def _plan(v: Vehicle, bookings: dict[str, Booking], svc: Services) -> list[InvariantViolation]:
    origin = v.plan_origin
    by_id = {f"{x.booking_id}:{x.kind}": x for x in v.plan}
    if not v.plan:
        return []
    if not origin:
        return [InvariantViolation("untimed_plan", v.id, None, "visits without a plan origin")]
    timed_ids = [i for i in origin["visits"] if i in by_id]
    if [i for i in (f"{x.booking_id}:{x.kind}" for x in v.plan) if i in set(timed_ids)] != timed_ids \
            or len(timed_ids) != len(origin["visits"]):
        return [InvariantViolation("untimed_plan", v.id, None, "the timed visits changed since they were timed")]
    visits = [by_id[i] for i in timed_ids]
    if any(x.booking_id not in bookings for x in visits):
        return []  # reported as finished_in_plan
    locs = Locations()
    start = locs.index(origin["lat"], origin["lon"])
    end = locs.index(v.depot_lat, v.depot_lon)
    requests = {bid: booking_request(bookings[bid], locs) for bid in {x.booking_id for x in visits}}
    onboard = tuple(b for b in requests if bookings[b].status is BookingStatus.ON_BOARD)
    rv = rm.Vehicle(v.id, start, origin["at_s"], end, origin["shift_end_s"],
                    rm.Load(v.seats, v.wheelchairs, v.parcels), onboard=onboard)
    travel = locs.matrix(svc.travel) if locs.points else np.zeros((0, 0), dtype=np.int64)
    problem = rm.Problem((rv,), requests, travel)
    route = [rm.Stop(x.booking_id, x.kind) for x in visits]  # type: ignore[arg-type]
    out = []
    sched = evaluate(problem, rv, route)
    for x, a, s, d in zip(visits, sched.arrival_s, sched.start_s, sched.departure_s):
        stored = (to_epoch(x.arrival_at) if x.arrival_at else None, to_epoch(x.planned_at),
                  to_epoch(x.departure_at) if x.departure_at else None)
        if stored != (a, s, d):
            out.append(InvariantViolation("schedule", v.id, x.booking_id,
                                          f"{x.kind} stored {stored}, the scheduler gives {(a, s, d)}"))
    stored_route = rm.Route(v.id, tuple(
        rm.ScheduledStop(st, loc, to_epoch(x.arrival_at or x.planned_at), to_epoch(x.planned_at),
                         to_epoch(x.departure_at or x.planned_at), rm.Load())
        for st, loc, x in zip(route, sched.locations, visits)), sched.end_arrival_s)
    for viol in rcheck.check(problem, rm.Solution(routes=(stored_route,))):
        out.append(InvariantViolation("checker", v.id, viol.request_id, f"{viol.kind}: {viol.detail}"))
    for x in visits:
        b = bookings[x.booking_id]
        latest = b.pickup_latest if x.kind == "pickup" else b.dropoff_latest
        if x.planned_at > latest and b.promise_broken_at is None:
            out.append(InvariantViolation("silent_relax", v.id, b.id,
                                          f"{x.kind} planned {x.planned_at.isoformat()} after the promised "
                                          f"{latest.isoformat()}, not flagged broken"))
    return out


def _etas(v: Vehicle) -> list[InvariantViolation]:
    if not v.plan:
        return []
    e = v.etas or {}
    pos = to_epoch(v.position_at) if v.position_at else None
    if not e or e.get("plan_version") != v.plan_version or e.get("position_at_s") != pos:
        return [InvariantViolation("eta_stale", v.id, None,
                                   f"ETAs of plan {e.get('plan_version')} / position {e.get('position_at_s')}, "
                                   f"vehicle at plan {v.plan_version} / position {pos}")]
    return []


def _pinned(b: Booking, vehicles: dict[str, Vehicle]) -> list[InvariantViolation]:
    v = vehicles.get(b.vehicle_id or "")
    plan = v.plan if v else []
    pinned_first = []
    for x in plan:
        if x.kind != "pickup":
            break
        pinned_first.append(x.booking_id)
    if b.id not in pinned_first:
        where = "not on the plan" if all(x.booking_id != b.id for x in plan) else "not among the first stops"
        return [InvariantViolation("pinned", b.vehicle_id, b.id, f"arriving rider {where} of {b.vehicle_id}")]
    return []


async def _events(uow: UnitOfWork, v: Vehicle, rows: list[dict], svc: Services) -> list[InvariantViolation]:
    out = []
    arrived: dict[str, datetime] = {}
    ids = {(r["payload"] or {}).get("booking_id") for r in rows} - {None}
    known = {b.id: b for b in await uow.bookings.many(ids)}  # type: ignore[arg-type]
    for r in rows:
        payload = r["payload"] or {}
        if r["type"] == "arrived":
            for bid in payload.get("booking_ids", []):
                arrived.setdefault(bid, datetime.fromisoformat(payload["at"]))
            continue
        b = known.get(payload.get("booking_id") or "")
        if b is None:
            continue
        if (r["type"] in PARCEL_EVENTS and b.kind == "ride") or (r["type"] in RIDE_EVENTS and b.kind != "ride"):
            out.append(InvariantViolation("event_kind", v.id, b.id, f"{r['type']} on a {b.kind} booking"))
        if r["type"] == "no_show":
            at = arrived.get(b.id)
            if at is None:
                out.append(InvariantViolation("no_show_early", v.id, b.id, "no-show without an arrival"))
                continue
            due = max(at, b.pickup_earliest) + timedelta(seconds=svc.rules.no_show_wait_s)
            if r["received_at"] < due:
                out.append(InvariantViolation("no_show_early", v.id, b.id,
                                              f"no-show at {r['received_at'].isoformat()}, allowed from "
                                              f"{due.isoformat()}"))
    return out


__all__ = ["InvariantViolation", "check_invariants"]
