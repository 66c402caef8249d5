"""The bridge between the domain and routing/: plain data in, plans out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from routing import model as rm
from routing.schedule import evaluate
from routing.traveltime import TravelTimeProvider
from transit.booking import Booking, BookingStatus
from transit.clock import from_epoch, to_epoch
from transit.reference_data import ServiceRules
from transit.vehicle import Shift, Vehicle, Visit


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float
    stop_id: str | None = None


class Locations:
    """Unique points -> matrix indices, and the travel-time matrix over them."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self._index: dict[tuple[float, float], int] = {}

    def index(self, lat: float, lon: float, stop_id: str | None = None) -> int:
        key = (round(lat, 6), round(lon, 6))
        i = self._index.get(key)
        if i is None:
            i = len(self.points)
            self._index[key] = i
            self.points.append(Point(lat, lon, stop_id))
        return i

    def matrix(self, travel: TravelTimeProvider) -> np.ndarray:
        lat = np.array([p.lat for p in self.points], dtype=float)
        lon = np.array([p.lon for p in self.points], dtype=float)
        return travel.matrix(lat, lon)


def booking_request(b: Booking, locs: Locations) -> rm.Request:
    """A booking's promise as the planner's hard constraints."""
    pe, pl, dl = to_epoch(b.pickup_earliest), to_epoch(b.pickup_latest), to_epoch(b.dropoff_latest)
    # a delivery is dropped inside its window, never before the window starts
    de = max(pe, to_epoch(b.dropoff_earliest)) if b.dropoff_earliest else pe
    return rm.Request(
        id=b.id,
        pickup=locs.index(b.origin.lat, b.origin.lon, b.origin.stop_id),
        dropoff=locs.index(b.destination.lat, b.destination.lon, b.destination.stop_id),
        load=rm.Load(b.party_size, b.wheelchairs, b.parcels),
        pickup_window=rm.TimeWindow(pe, pl),
        dropoff_window=rm.TimeWindow(de, max(de, dl)),
        max_ride_s=b.max_ride_s,
        pickup_service_s=b.pickup_service_s,
        dropoff_service_s=b.dropoff_service_s,
        picked_up_at_s=to_epoch(b.picked_up_at) if b.picked_up_at else None,
    )


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


def build_snapshot(
    vehicles: Sequence[Vehicle],
    bookings: Mapping[str, Booking],
    *,
    now: datetime,
    window: tuple[datetime, datetime],
    travel: TravelTimeProvider,
    extra: Iterable[tuple[float, float, str | None]] = (),
) -> Snapshot:
    """Every vehicle with a shift during ``window``, with its current plan, as a Problem.

    ``extra`` are points (lat, lon, stop_id) that must have a location index (a new request's).
    """
    locs = Locations()
    for lat, lon, sid in extra:
        locs.index(lat, lon, sid)
    requests: dict[str, rm.Request] = {}
    rvehicles: list[rm.Vehicle] = []
    shifts: dict[str, Shift] = {}
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
                requests[b.id] = booking_request(b, locs)
            stops.append(rm.Stop(b.id, visit.kind))  # type: ignore[arg-type]
            if on_board and b.id not in onboard:
                onboard.append(b.id)
        shifts[v.id] = shift
        rvehicles.append(
            rm.Vehicle(
                id=v.id,
                start_location=start_loc,
                start_time_s=to_epoch(start_time),
                end_location=locs.index(v.depot_lat, v.depot_lon, v.depot_stop_id),
                shift_end_s=to_epoch(shift.ends_at),
                capacity=rm.Load(v.seats, v.wheelchairs, v.parcels),
                onboard=tuple(onboard),
                route=tuple(stops),
            )
        )
    travel_s = locs.matrix(travel) if locs.points else np.zeros((0, 0), dtype=np.int64)
    problem = rm.Problem(vehicles=tuple(rvehicles), requests=requests, travel_s=travel_s)
    return Snapshot(problem, locs, {v.id: v for v in vehicles}, dict(bookings), shifts)


def visits_for(snapshot: Snapshot, vehicle_id: str, route: Sequence[rm.Stop],
               requests: Mapping[str, rm.Request]) -> tuple[list[Visit], dict[str, tuple[int, int]]]:
    """Planned visits (with times from the schedule) for a route, and per booking (pickup, drop-off) times."""
    rv = next(v for v in snapshot.problem.vehicles if v.id == vehicle_id)
    sched = evaluate(snapshot.problem, rv, route, requests=requests)
    visits: list[Visit] = []
    times: dict[str, list[int]] = {}
    for stop, loc, start in zip(sched.stops, sched.locations, sched.start_s):
        p = snapshot.locations.points[loc]
        visits.append(Visit(stop.request_id, stop.kind, p.lat, p.lon, p.stop_id, from_epoch(start)))
        times.setdefault(stop.request_id, [0, 0])[0 if stop.kind == "pickup" else 1] = start
    return visits, {k: (v[0], v[1]) for k, v in times.items()}


def service_times(rules: ServiceRules, party: int, wheelchairs: int, parcels: int) -> tuple[int, int]:
    """Dwell at pickup and at drop-off for one booking."""
    s = rules.dwell_s(boardings=party, wheelchairs=wheelchairs, parcels=parcels)
    return s, s
