"""The planning model shared by the insertion search, the optimiser and the checker.

Everything here is plain, frozen data in integer units. In the service the time unit is the
second (POSIX seconds, UTC) and locations are indices into a travel-time matrix; benchmark
readers may scale other units (e.g. minutes x 1000) as long as they stay integers.

Nothing in ``routing/`` imports a database, a web framework or settings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

#: The load dimensions every capacity and every request has, in this order.
DIMENSIONS: tuple[str, ...] = ("seats", "wheelchairs", "parcels")


@dataclass(frozen=True, slots=True)
class Load:
    """A load or capacity by dimension: seats, wheelchair spaces, parcel units."""

    seats: int = 0
    wheelchairs: int = 0
    parcels: int = 0

    def __post_init__(self) -> None:
        for name in DIMENSIONS:
            value = getattr(self, name)
            if not isinstance(value, int):
                raise TypeError(f"Load.{name} must be an int, got {value!r}")

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.seats, self.wheelchairs, self.parcels)

    def __add__(self, other: Load) -> Load:
        return Load(
            self.seats + other.seats,
            self.wheelchairs + other.wheelchairs,
            self.parcels + other.parcels,
        )

    def __sub__(self, other: Load) -> Load:
        return Load(
            self.seats - other.seats,
            self.wheelchairs - other.wheelchairs,
            self.parcels - other.parcels,
        )

    def fits_in(self, capacity: Load) -> bool:
        """True when every dimension of this load is within ``capacity`` and none is negative."""
        return all(0 <= a <= b for a, b in zip(self.as_tuple(), capacity.as_tuple()))


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A closed interval ``[earliest_s, latest_s]`` for the start of service."""

    earliest_s: int
    latest_s: int

    def __post_init__(self) -> None:
        if self.latest_s < self.earliest_s:
            raise ValueError(f"empty time window [{self.earliest_s}, {self.latest_s}]")

    def contains(self, t: int) -> bool:
        return self.earliest_s <= t <= self.latest_s


StopKind = Literal["pickup", "dropoff"]


@dataclass(frozen=True, slots=True)
class Request:
    """A transport request: a load carried from ``pickup`` to ``dropoff``.

    Parameters
    ----------
    id:
        Stable identifier (a booking id in the service).
    pickup, dropoff:
        Location indices into the travel-time matrix.
    load:
        What it occupies on board (seats, wheelchair spaces, parcel units).
    pickup_window, dropoff_window:
        Hard windows for the start of service at each end. For a confirmed booking these are
        the promise (pickup window and latest drop-off).
    max_ride_s:
        Longest allowed time from the end of service at the pickup to the start of service at
        the drop-off.
    pickup_service_s, dropoff_service_s:
        Dwell at each end (boarding, alighting, wheelchair securing, parcel handover).
    picked_up_at_s:
        For a request already on board: when its pickup service ended. ``None`` otherwise.
    """

    id: str
    pickup: int
    dropoff: int
    load: Load
    pickup_window: TimeWindow
    dropoff_window: TimeWindow
    max_ride_s: int
    pickup_service_s: int = 0
    dropoff_service_s: int = 0
    picked_up_at_s: int | None = None

    @property
    def on_board(self) -> bool:
        return self.picked_up_at_s is not None


@dataclass(frozen=True, slots=True)
class Stop:
    """One visit in a route: the pickup or the drop-off of one request."""

    request_id: str
    kind: StopKind


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle as the planner sees it now.

    ``start_location``/``start_time_s`` is where and when it is next free (its position now, or
    the depot at shift start). ``route`` is the plan it follows from there (stops not yet served),
    which must contain the drop-off of every request in ``onboard``. ``onboard`` riders stay in
    this vehicle whatever the optimiser does.

    ``pinned`` names requests whose pickup is fixed as the next stop(s) of this vehicle (the
    vehicle is arriving at, or waiting at, their stop): ``route`` must begin with those pickups,
    in that order, and no search moves them, puts a stop before them or gives them to another
    vehicle (``routing.check`` reports ``pinned_moved`` otherwise).
    """

    id: str
    start_location: int
    start_time_s: int
    end_location: int
    shift_end_s: int
    capacity: Load
    onboard: tuple[str, ...] = ()
    route: tuple[Stop, ...] = ()
    max_route_duration_s: int | None = None
    pinned: tuple[str, ...] = ()


class UnservedCause(str, Enum):
    """Why a request was not served. Data, never an exception."""

    NO_FEASIBLE_INSERTION = "no_feasible_insertion"
    NO_VEHICLE_FITS = "no_vehicle_fits"  # load exceeds every vehicle's capacity
    OUTSIDE_SERVICE_AREA = "outside_service_area"
    OUTSIDE_SERVICE_HOURS = "outside_service_hours"
    TOO_FAR_AHEAD = "too_far_ahead"
    IN_THE_PAST = "in_the_past"
    PROMISE_INFEASIBLE = "promise_infeasible"  # an existing promise cannot be kept
    TIME_LIMIT = "time_limit"


@dataclass(frozen=True, slots=True)
class Problem:
    """Everything one planning step needs.

    ``travel_s[i][j]`` is the integer travel time from location i to location j.
    ``requests`` holds every request that appears in a vehicle route or is to be planned,
    including those on board.
    """

    vehicles: tuple[Vehicle, ...]
    requests: Mapping[str, Request]
    travel_s: np.ndarray
    #: cost units per second a rider reaches the destination later than it could have (see
    #: :func:`rider_due_s`), on top of one unit per second of driving; 0 (the default, and the
    #: benchmarks'): the objective is driving only. The service sets it from its rules.
    rider_delay_weight: int = 0

    def travel(self, i: int, j: int) -> int:
        return int(self.travel_s[i, j])


def rider_due_s(problem: Problem, r: Request) -> int | None:
    """The earliest start of a rider's drop-off: picked up at the start of the window (or when it
    was), driven directly. ``None`` for a request with nobody on board (parcels).

    The optimisers' rider term is ``rider_delay_weight x (drop-off start - this)``: the wait after
    the window opens plus the time ridden beyond the direct drive."""
    if r.load.seats + r.load.wheelchairs == 0:
        return None
    direct = problem.travel(r.pickup, r.dropoff)
    if r.picked_up_at_s is not None:
        return r.picked_up_at_s + direct
    return r.pickup_window.earliest_s + r.pickup_service_s + direct


@dataclass(frozen=True, slots=True)
class ScheduledStop:
    """A stop with its schedule: arrival, start of service, departure, load after it.

    ``wait_s = start_s - arrival_s``: how long the vehicle waits at the stop before service
    ("wait here until ``start_s``")."""

    stop: Stop
    location: int
    arrival_s: int
    start_s: int
    departure_s: int
    load_after: Load

    @property
    def wait_s(self) -> int:
        return self.start_s - self.arrival_s


@dataclass(frozen=True, slots=True)
class Route:
    """A vehicle's timed route. ``start_departure_s``: when it leaves its start location
    (``None``: at its ``start_time_s``; later only when the schedule makes it wait there)."""

    vehicle_id: str
    stops: tuple[ScheduledStop, ...]
    end_arrival_s: int
    start_departure_s: int | None = None


@dataclass(frozen=True, slots=True)
class Objective:
    """The objective broken into its parts (all in the problem's integer units)."""

    travel: int = 0
    ride: int = 0
    unserved_penalty: int = 0

    @property
    def total(self) -> int:
        return self.travel + self.ride + self.unserved_penalty


@dataclass(frozen=True, slots=True)
class Solution:
    routes: tuple[Route, ...]
    unserved: Mapping[str, UnservedCause] = field(default_factory=dict)
    objective: Objective = Objective()


def route_travel_s(problem: Problem, vehicle: Vehicle, stops: Sequence[Stop]) -> int:
    """Driving time of ``vehicle`` along ``stops`` from its start to its end location, in the
    problem's integer time unit (no waiting, no dwell)."""
    locs = [vehicle.start_location]
    for s in stops:
        r = problem.requests[s.request_id]
        locs.append(r.pickup if s.kind == "pickup" else r.dropoff)
    locs.append(vehicle.end_location)
    return sum(problem.travel(a, b) for a, b in itertools.pairwise(locs))


def plan_travel_s(problem: Problem, routes: Mapping[str, Sequence[Stop]]) -> int:
    """Driving time of every vehicle of ``problem`` along ``routes`` (vehicle id -> stops), by
    :func:`route_travel_s`; a vehicle not named drives an empty route (from its start to its end
    location), so two plans of the same problem are always compared like with like."""
    return sum(route_travel_s(problem, v, routes.get(v.id, ())) for v in problem.vehicles)
