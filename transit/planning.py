"""The bridge between the domain and routing/: plain data in, plans out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from routing import model as rm
from routing.schedule import Schedule, evaluate
from routing.traveltime import TravelTimeProvider
from transit.booking import Booking, BookingStatus
from transit.clock import from_epoch, to_epoch
from transit.reference_data import ServiceRules
from transit.vehicle import Shift, Vehicle, Visit


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


class Locations:
    """Unique points -> matrix indices, and the travel-time matrix over them.

    An index is a coordinate only: stops (or a stop and the depot) may share one, so a visit's
    stop always comes from its booking's place, never from here.
    """

    def __init__(self) -> None:
        self.points: list[Point] = []
        self._index: dict[tuple[float, float], int] = {}

    def index(self, lat: float, lon: float) -> int:
        key = (round(lat, 6), round(lon, 6))
        i = self._index.get(key)
        if i is None:
            i = len(self.points)
            self._index[key] = i
            self.points.append(Point(lat, lon))
        return i

    def matrix(self, travel: TravelTimeProvider) -> np.ndarray:
        lat = np.array([p.lat for p in self.points], dtype=float)
        lon = np.array([p.lon for p in self.points], dtype=float)
        return travel.matrix(lat, lon)


def buffered_latest(pickup_earliest_s: int, pickup_latest_s: int, dropoff_latest_s: int, buffer_s: int,
                    planned_pickup_s: int | None = None, planned_dropoff_s: int | None = None) -> tuple[int, int]:
    """The latest pickup and drop-off planning uses for a promise: ``buffer_s`` earlier (the rule
    ``promise_buffer_s``), never earlier than the planned times (clipped to the promise) nor than
    the pickup window's start."""
    if buffer_s <= 0:
        return pickup_latest_s, dropoff_latest_s
    pp = min(pickup_latest_s, planned_pickup_s) if planned_pickup_s is not None else pickup_earliest_s
    pd = min(dropoff_latest_s, planned_dropoff_s) if planned_dropoff_s is not None else pickup_earliest_s
    return (max(pickup_earliest_s, pickup_latest_s - buffer_s, pp),
            max(pickup_earliest_s, dropoff_latest_s - buffer_s, pd))


def booking_request(b: Booking, locs: Locations, *, buffer_s: int = 0) -> rm.Request:
    """A booking's promise as the planner's hard constraints (widened only where it was flagged broken).

    ``buffer_s`` (the rule ``promise_buffer_s``; 0 = the promise itself, as the invariant checker
    judges) keeps planning that much inside the promised latest pickup and latest drop-off, so
    that a late leg has room before a promise breaks; never tighter than the time the booking is
    already planned for (the room a delay already used stays used, it is not taken back) nor
    than the window's start.
    """
    pe, pl, dl = to_epoch(b.pickup_earliest), to_epoch(b.pickup_latest), to_epoch(b.dropoff_latest)
    pl, dl = buffered_latest(pe, pl, dl, buffer_s,
                             to_epoch(b.planned_pickup) if b.planned_pickup else None,
                             to_epoch(b.planned_dropoff) if b.planned_dropoff else None)
    max_ride = b.max_ride_s
    if b.relaxed:
        pl = max(pl, b.relaxed.get("pickup_latest_s", pl))
        dl = max(dl, b.relaxed.get("dropoff_latest_s", dl))
        max_ride = max(max_ride, b.relaxed.get("max_ride_s", max_ride))
    # a delivery is dropped inside its window, never before the window starts
    de = max(pe, to_epoch(b.dropoff_earliest)) if b.dropoff_earliest else pe
    return rm.Request(
        id=b.id,
        pickup=locs.index(b.origin.lat, b.origin.lon),
        dropoff=locs.index(b.destination.lat, b.destination.lon),
        load=rm.Load(b.party_size, b.wheelchairs, b.parcels),
        pickup_window=rm.TimeWindow(pe, pl),
        dropoff_window=rm.TimeWindow(de, max(de, dl)),
        max_ride_s=max_ride,
        pickup_service_s=b.pickup_service_s,
        dropoff_service_s=b.dropoff_service_s,
        picked_up_at_s=to_epoch(b.picked_up_at) if b.picked_up_at else None,
    )


def pinned_ids(vehicle: Vehicle, bookings: Mapping[str, Booking]) -> tuple[str, ...]:
    """Riders whose pickup this vehicle is at (arrival recorded: status ``arriving``), in plan order."""
    out: list[str] = []
    for visit in vehicle.plan:
        b = bookings.get(visit.booking_id)
        if (visit.kind == "pickup" and b is not None and b.status is BookingStatus.ARRIVING
                and b.vehicle_id == vehicle.id and b.id not in out):
            out.append(b.id)
    return tuple(out)


def alighting_ids(stops: Sequence[rm.Stop], pinned: Sequence[str], onboard: Sequence[str],
                  requests: Mapping[str, rm.Request]) -> tuple[str, ...]:
    """Riders on board whose drop-off comes before the pinned pickups in ``stops`` (plan order), at
    the place of those pickups.

    The vehicle is at that stop and serves drop-offs before boardings, so these riders are getting
    off now. Pinned pickups are the first stops of a route (the routing core's rule), so timing
    them would put the boardings on top of the riders getting off (a full minibus over capacity,
    the arrival refused); they are left out of the timed plan instead, and their drop-off visit
    stays in the stored plan until it is reported (``transit.handlers.apply_route``).
    """
    if not pinned:
        return ()
    at = requests[pinned[0]].pickup
    out: list[str] = []
    for s in stops:
        if s.kind == "pickup" and s.request_id in pinned:
            break
        if s.kind == "dropoff" and s.request_id in onboard and requests[s.request_id].dropoff == at:
            out.append(s.request_id)
    return tuple(out)


def relax_to_schedule(sched: Schedule, requests: Mapping[str, rm.Request]) -> dict[str, rm.Request]:
    """The requests of a timed route widened exactly where ``sched`` is late: a late pickup's or
    drop-off's latest to its time in ``sched``, a ride over its limit to that ride. Returns only
    the widened requests. With ``sched`` the earliest-start fallback of a route no timing keeps
    (``evaluate``), the widened requests make that timing feasible: it is what the vehicle can
    still do in that order."""
    out: dict[str, rm.Request] = {}
    for stop, b, late, ride_x in zip(sched.stops, sched.start_s, sched.lateness_s, sched.ride_excess_s):
        r = out.get(stop.request_id, requests[stop.request_id])
        if stop.kind == "pickup":
            if late:
                r = replace(r, pickup_window=rm.TimeWindow(r.pickup_window.earliest_s, b))
        else:
            if late:
                r = replace(r, dropoff_window=rm.TimeWindow(r.dropoff_window.earliest_s, b))
            if ride_x:
                r = replace(r, max_ride_s=r.max_ride_s + ride_x)
        if r is not requests[stop.request_id]:
            out[stop.request_id] = r
    return out


def relax_to_order(problem: rm.Problem, rv: rm.Vehicle) -> tuple[dict[str, rm.Request], rm.Vehicle]:
    """A vehicle running late: the riders of its current route (on board, pinned or not yet picked
    up) widened to what its current order can still achieve from its position now, and its shift
    end to that order's return when it would overrun.

    Only when no timing of the current route keeps every window and ride limit: the route is
    timed earliest-start (``routing.schedule.evaluate``'s fallback, the earliest the vehicle can
    be at each stop in this order) and exactly the late stops are widened to those times
    (:func:`relax_to_schedule`), so the re-plan and the insertion search have the plan being
    followed as a feasible start, and no widened rider is planned later than that order would
    bring them. A route over
    capacity is left as it is (no timing mends it). A widening past the booking's promise is
    flagged broken when a plan is stored (``transit.handlers.apply_route``), never silently.
    """
    if not rv.route:
        return {}, rv
    sched = evaluate(problem, rv, rv.route)
    if sched.feasible or any(sched.overload):
        return {}, rv
    widened = relax_to_schedule(sched, problem.requests)
    if sched.end_excess_s:
        rv = replace(rv, shift_end_s=max(rv.shift_end_s, sched.end_arrival_s))
    return widened, rv


def relax_broken(problem_travel: np.ndarray, rv: rm.Vehicle, requests: dict[str, rm.Request]) -> dict[str, rm.Request]:
    """Riders tied to ``rv`` (on board, or pinned at their pickup) whose promise it cannot keep even
    driving there first, widened.

    The earliest feasible time is the vehicle's start plus the direct drive (for a pinned rider,
    its pickup first and then the direct drive to the drop-off); a window or ride limit is widened
    to exactly that, never more. Other riders are not widened: another vehicle may still keep their
    promise. Returns only the widened requests.
    """
    out: dict[str, rm.Request] = {}
    start, t0 = rv.start_location, rv.start_time_s
    for rid in (*rv.onboard, *rv.pinned):
        r = requests[rid]
        pw, dw, ride = r.pickup_window, r.dropoff_window, r.max_ride_s
        if rid in rv.onboard:
            drop = t0 + int(problem_travel[start, r.dropoff])
            picked = r.picked_up_at_s if r.picked_up_at_s is not None else t0
            ride = max(ride, drop - picked)
        else:
            pick = max(pw.earliest_s, t0 + int(problem_travel[start, r.pickup]))
            if pick > pw.latest_s:
                pw = rm.TimeWindow(pw.earliest_s, pick)
            drop = pick + r.pickup_service_s + int(problem_travel[r.pickup, r.dropoff])
        if drop > dw.latest_s:
            dw = rm.TimeWindow(dw.earliest_s, drop)
        if (pw, dw, ride) != (r.pickup_window, r.dropoff_window, r.max_ride_s):
            out[rid] = replace(r, pickup_window=pw, dropoff_window=dw, max_ride_s=ride)
    return out


def shift_for(vehicle: Vehicle, start: datetime, end: datetime) -> Shift | None:
    """The shift segment of ``vehicle`` overlapping [start, end] most, if any."""
    best, overlap = None, timedelta(0)
    for s in vehicle.shifts:
        o = min(s.ends_at, end) - max(s.starts_at, start)
        if o >= overlap and s.ends_at >= start and s.starts_at <= end:
            best, overlap = s, o
    return best


def relevant_booking_ids(vehicles: Sequence[Vehicle], window: tuple[datetime, datetime]) -> set[str]:
    """Bookings on the plans a snapshot of ``window`` looks at (so only those are loaded)."""
    ids: set[str] = set()
    for v in vehicles:
        shift = shift_for(v, window[0], window[1])
        if shift is None:
            continue
        for visit in v.plan:
            if shift.starts_at <= visit.planned_at <= shift.ends_at:
                ids.add(visit.booking_id)
    return ids


@dataclass
class Snapshot:
    """A routing Problem built from the domain, with the maps back."""

    problem: rm.Problem
    locations: Locations
    vehicles: dict[str, Vehicle]
    bookings: dict[str, Booking]
    shifts: dict[str, Shift]
    # requests widened because reality already broke their promise (flagged when a plan is stored)
    relaxed: dict[str, rm.Request] = field(default_factory=dict)
    # per vehicle: riders on board getting off at the stop where its pinned pickups are (their
    # drop-off comes before those pickups in the plan); not in the problem (see alighting_ids)
    alighting: dict[str, tuple[str, ...]] = field(default_factory=dict)


def build_snapshot(
    vehicles: Sequence[Vehicle],
    bookings: Mapping[str, Booking],
    *,
    now: datetime,
    window: tuple[datetime, datetime],
    travel: TravelTimeProvider,
    extra: Iterable[tuple[float, float]] = (),
    buffer_s: int = 0,
) -> Snapshot:
    """Every vehicle with a shift during ``window``, with its current plan, as a Problem.

    ``extra`` are points (lat, lon) that must have a location index (a new request's).
    ``buffer_s``: planning keeps this much inside every promise (:func:`booking_request`). A
    vehicle whose current plan can no longer be timed inside those windows has its riders widened
    to what its current order achieves (:func:`relax_to_order`), then any rider on board or pinned
    whose window even a direct drive misses to that (:func:`relax_broken`); ``Snapshot.relaxed``
    holds every widened request.
    """
    locs = Locations()
    for lat, lon in extra:
        locs.index(lat, lon)
    requests: dict[str, rm.Request] = {}
    rvehicles: list[rm.Vehicle] = []
    shifts: dict[str, Shift] = {}
    alighting: dict[str, tuple[str, ...]] = {}
    for v in vehicles:
        shift = shift_for(v, window[0], window[1])
        if shift is None or shift.ends_at <= now:
            continue
        start_time = max(now, shift.starts_at)
        lat, lon = v.position() if start_time <= now + timedelta(minutes=1) else (v.depot_lat, v.depot_lon)
        start_loc = locs.index(lat, lon)
        stops: list[rm.Stop] = []
        onboard: list[str] = []
        for visit in v.plan:
            b = bookings.get(visit.booking_id)
            if b is None or not b.active:
                continue
            on_board = b.status is BookingStatus.ON_BOARD
            if visit.kind == "pickup" and on_board:
                continue
            if not on_board and not (shift.starts_at <= visit.planned_at <= shift.ends_at):
                continue  # another shift segment's work
            if b.id not in requests:
                requests[b.id] = booking_request(b, locs, buffer_s=buffer_s)
            stops.append(rm.Stop(b.id, visit.kind))  # type: ignore[arg-type]
            if on_board and b.id not in onboard:
                onboard.append(b.id)
        shifts[v.id] = shift
        pinned = tuple(i for i in pinned_ids(v, bookings) if rm.Stop(i, "pickup") in stops)
        # the vehicle is at their pickup: those visits come first, whatever was planned before
        first = [rm.Stop(i, "pickup") for i in pinned]
        if pinned:
            # riders planned to get off at that stop before the pinned boardings are getting off now
            # (drop-offs first): out of the timed plan, so the boardings are not timed on top of them
            off = alighting_ids(stops, pinned, onboard, requests)
            if off:
                alighting[v.id] = off
                stops = [s for s in stops if s.request_id not in off]
                onboard = [i for i in onboard if i not in off]
                for i in off:
                    requests.pop(i, None)
        stops = first + [s for s in stops if s not in first]
        rvehicles.append(
            rm.Vehicle(
                id=v.id,
                start_location=start_loc,
                start_time_s=to_epoch(start_time),
                end_location=locs.index(v.depot_lat, v.depot_lon),
                shift_end_s=to_epoch(shift.ends_at),
                capacity=rm.Load(v.seats, v.wheelchairs, v.parcels),
                onboard=tuple(onboard),
                route=tuple(stops),
                pinned=pinned,
            )
        )
    travel_s = locs.matrix(travel) if locs.points else np.zeros((0, 0), dtype=np.int64)
    relaxed: dict[str, rm.Request] = {}
    for k, rv in enumerate(rvehicles):
        widened, rvehicles[k] = relax_to_order(rm.Problem((rv,), requests, travel_s), rv)
        requests.update(widened)
        relaxed.update(widened)
        direct = relax_broken(travel_s, rvehicles[k], requests)
        requests.update(direct)
        relaxed.update(direct)
    problem = rm.Problem(vehicles=tuple(rvehicles), requests=requests, travel_s=travel_s)
    return Snapshot(problem, locs, {v.id: v for v in vehicles}, dict(bookings), shifts, relaxed, alighting)


def visits_for(snapshot: Snapshot, vehicle_id: str, sched: Schedule) -> list[Visit]:
    """Planned visits for a timed route: each visit's place and stop come from its booking."""
    visits: list[Visit] = []
    for stop, a, b, d in zip(sched.stops, sched.arrival_s, sched.start_s, sched.departure_s):
        bk = snapshot.bookings[stop.request_id]
        place = bk.origin if stop.kind == "pickup" else bk.destination
        visits.append(Visit(stop.request_id, stop.kind, place.lat, place.lon, place.stop_id,
                            from_epoch(b), from_epoch(a), from_epoch(d)))
    return visits


def time_route(snapshot: Snapshot, vehicle_id: str, route: Sequence[rm.Stop],
               requests: Mapping[str, rm.Request]) -> Schedule:
    """The one schedule of a route (routing.schedule.evaluate) from the snapshot's vehicle start."""
    rv = next(v for v in snapshot.problem.vehicles if v.id == vehicle_id)
    return evaluate(snapshot.problem, rv, route, requests=requests)


def service_times(rules: ServiceRules, party: int, wheelchairs: int, parcels: int) -> tuple[int, int]:
    """Dwell at pickup and at drop-off for one booking."""
    s = rules.dwell_s(boardings=party, wheelchairs=wheelchairs, parcels=parcels)
    return s, s
