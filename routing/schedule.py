"""Fast route evaluation for the insertion search.

This is the planner's own view of a route's timing. The checker (``routing/check.py``) computes
schedules independently so that it can judge the planner; nothing here is shared with it.

Timing rules (all integer seconds):

* the vehicle leaves ``start_location`` at ``start_time_s`` and drives straight on;
* at each stop: ``arrival = departure of the previous stop + travel``,
  ``start = max(arrival, window.earliest_s)`` (it waits when early), ``departure = start +
  service``; the window is the request's ``pickup_window`` or ``dropoff_window``;
* ride time of a request = start of service at the drop-off minus the end of service at the
  pickup (``picked_up_at_s`` for a rider already on board; the vehicle's ``start_time_s`` if that
  is unknown) and must be ``<= max_ride_s``;
* after the last stop it drives to ``end_location``; that arrival must be ``<= shift_end_s`` and,
  when ``max_route_duration_s`` is set, ``<= start_time_s + max_route_duration_s``;
* load on departure from each stop must fit ``capacity`` in every dimension; the vehicle starts
  with the loads of its ``onboard`` requests.

This "earliest start" schedule is what a driver who never idles except to respect a window would
do. Waiting before a pickup could in principle shorten someone's ride; we never rely on that, so a
route that is feasible here is feasible for any reasonable driver behaviour.

:func:`evaluate` computes the full schedule with every violation as an amount (0 = fine).
:class:`RouteSlack` precomputes, for a vehicle's current route, everything an insertion test needs
to decide in O(1) whether pushing the arrival at one position later by ``delta`` keeps all later
stops feasible (the *forward time slack*), and how much total delay such a push causes.

A route that is *already* violating something (a driver running late) is handled tolerantly: a
push must not make any existing violation worse, but the existing violation itself does not make
every insertion infeasible.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from routing.model import Load, Problem, Request, Route, ScheduledStop, Stop, TimeWindow, Vehicle

_INF = float("inf")


def stop_window(request: Request, kind: str) -> TimeWindow:
    """The time window that applies to the pickup or the drop-off of ``request``."""
    return request.pickup_window if kind == "pickup" else request.dropoff_window


def end_limit_s(vehicle: Vehicle) -> int:
    """Latest allowed arrival at the vehicle's end location (shift end and route duration)."""
    limit = vehicle.shift_end_s
    if vehicle.max_route_duration_s is not None:
        limit = min(limit, vehicle.start_time_s + vehicle.max_route_duration_s)
    return limit


def initial_load(vehicle: Vehicle, requests: Mapping[str, Request]) -> tuple[int, int, int]:
    """Load on board when the vehicle starts: the sum of its ``onboard`` requests' loads."""
    s = w = p = 0
    for rid in vehicle.onboard:
        q = requests[rid].load
        s += q.seats
        w += q.wheelchairs
        p += q.parcels
    return (s, w, p)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The earliest-start schedule of one route, with violations as amounts.

    All per-stop tuples are aligned with ``stops``. Loads are ``(seats, wheelchairs, parcels)``.
    ``excess[k]`` is the largest violation at stop ``k`` in seconds or load units (window
    lateness, ride-time excess, overload); ``end_excess_s`` is the lateness at the end location.
    """

    stops: tuple[Stop, ...]
    locations: tuple[int, ...]
    arrival_s: tuple[int, ...]
    start_s: tuple[int, ...]
    departure_s: tuple[int, ...]
    load_after: tuple[tuple[int, int, int], ...]
    lateness_s: tuple[int, ...]
    ride_excess_s: tuple[int, ...]
    overload: tuple[int, ...]
    end_arrival_s: int
    end_excess_s: int

    @property
    def excess(self) -> tuple[int, ...]:
        return tuple(
            max(a, b, c) for a, b, c in zip(self.lateness_s, self.ride_excess_s, self.overload)
        )

    @property
    def feasible(self) -> bool:
        return (
            self.end_excess_s == 0
            and not any(self.lateness_s)
            and not any(self.ride_excess_s)
            and not any(self.overload)
        )

    def to_route(self, vehicle_id: str) -> Route:
        """The schedule as the shared model's :class:`~routing.model.Route`."""
        return Route(
            vehicle_id=vehicle_id,
            stops=tuple(
                ScheduledStop(
                    stop=s,
                    location=loc,
                    arrival_s=a,
                    start_s=b,
                    departure_s=d,
                    load_after=Load(*ld),
                )
                for s, loc, a, b, d, ld in zip(
                    self.stops,
                    self.locations,
                    self.arrival_s,
                    self.start_s,
                    self.departure_s,
                    self.load_after,
                )
            ),
            end_arrival_s=self.end_arrival_s,
        )


def check_structure(
    vehicle: Vehicle, stops: Sequence[Stop], requests: Mapping[str, Request]
) -> None:
    """Raise ``ValueError`` if ``stops`` is not a well-formed route for ``vehicle``.

    Well formed: every request is known, visited at most once per kind, picked up before it is
    dropped off, on-board requests are only dropped off, and every picked-up request (or one on
    board) is dropped off. These are programming errors, not planning outcomes.
    """
    onboard = set(vehicle.onboard)
    picked: set[str] = set()
    dropped: set[str] = set()
    for s in stops:
        if s.request_id not in requests:
            raise ValueError(f"unknown request {s.request_id!r} in route of {vehicle.id!r}")
        if s.kind == "pickup":
            if s.request_id in onboard or s.request_id in picked:
                raise ValueError(f"request {s.request_id!r} picked up twice in {vehicle.id!r}")
            picked.add(s.request_id)
        elif s.kind == "dropoff":
            if s.request_id in dropped:
                raise ValueError(f"request {s.request_id!r} dropped off twice in {vehicle.id!r}")
            if s.request_id not in onboard and s.request_id not in picked:
                raise ValueError(
                    f"request {s.request_id!r} dropped before pickup in {vehicle.id!r}"
                )
            dropped.add(s.request_id)
        else:
            raise ValueError(f"unknown stop kind {s.kind!r}")
    missing = (onboard | picked) - dropped
    if missing:
        raise ValueError(f"requests {sorted(missing)} never dropped off in {vehicle.id!r}")


def evaluate(
    problem: Problem,
    vehicle: Vehicle,
    stops: Sequence[Stop],
    *,
    requests: Mapping[str, Request] | None = None,
) -> Schedule:
    """Earliest-start schedule of ``stops`` driven by ``vehicle``, with every violation measured.

    Parameters
    ----------
    problem:
        Supplies ``travel_s`` and (unless ``requests`` is given) the requests.
    vehicle:
        Start location/time, end location, shift end, capacity, on-board requests.
    stops:
        The route to evaluate (need not be ``vehicle.route``). Must be well formed (see
        :func:`check_structure`; not re-checked here for speed).
    requests:
        Request lookup to use instead of ``problem.requests`` (e.g. with a new request added).

    Returns
    -------
    Schedule
        Times in seconds; ``feasible`` is true when no violation was found.
    """
    reqs = problem.requests if requests is None else requests
    cap = vehicle.capacity.as_tuple()
    n = len(stops)
    rs = [reqs[s.request_id] for s in stops]
    locs = [r.pickup if s.kind == "pickup" else r.dropoff for s, r in zip(stops, rs)]
    path = np.fromiter(
        [vehicle.start_location, *locs, vehicle.end_location], dtype=np.int64, count=n + 2
    )
    legs = problem.travel_s[path[:-1], path[1:]].tolist()

    load = list(initial_load(vehicle, reqs))
    pick_end: dict[str, int] = {}
    for rid in vehicle.onboard:
        at = reqs[rid].picked_up_at_s
        pick_end[rid] = vehicle.start_time_s if at is None else at

    t = vehicle.start_time_s
    arrival: list[int] = []
    start: list[int] = []
    departure: list[int] = []
    load_after: list[tuple[int, int, int]] = []
    late: list[int] = []
    ride_x: list[int] = []
    over: list[int] = []
    for k in range(n):
        s, r = stops[k], rs[k]
        arr = t + legs[k]
        q = r.load
        if s.kind == "pickup":
            w = r.pickup_window
            b = max(arr, w.earliest_s)
            d = b + r.pickup_service_s
            pick_end[s.request_id] = d
            load[0] += q.seats
            load[1] += q.wheelchairs
            load[2] += q.parcels
            ride_x.append(0)
        else:
            w = r.dropoff_window
            b = max(arr, w.earliest_s)
            d = b + r.dropoff_service_s
            ride = b - pick_end.get(s.request_id, b)
            ride_x.append(max(0, ride - r.max_ride_s))
            load[0] -= q.seats
            load[1] -= q.wheelchairs
            load[2] -= q.parcels
        arrival.append(arr)
        start.append(b)
        departure.append(d)
        late.append(max(0, b - w.latest_s))
        load_after.append((load[0], load[1], load[2]))
        over.append(max(0, load[0] - cap[0], load[1] - cap[1], load[2] - cap[2]))
        t = d
    end_arr = t + legs[n]
    return Schedule(
        stops=tuple(stops),
        locations=tuple(locs),
        arrival_s=tuple(arrival),
        start_s=tuple(start),
        departure_s=tuple(departure),
        load_after=tuple(load_after),
        lateness_s=tuple(late),
        ride_excess_s=tuple(ride_x),
        overload=tuple(over),
        end_arrival_s=end_arr,
        end_excess_s=max(0, end_arr - end_limit_s(vehicle)),
    )


def no_worse(new: Schedule, old: Schedule, new_request_id: str) -> bool:
    """True when ``new`` (old route plus one request) breaks nothing that ``old`` kept.

    Stops of ``new_request_id`` must have no violation; every other stop's violation must not
    exceed what it was in ``old``; nor may the lateness at the end location.
    """
    return no_worse_than(new, dict(zip(old.stops, old.excess)), old.end_excess_s, new_request_id)


def no_worse_than(
    new: Schedule, before: Mapping[Stop, int], end_excess_s: int, new_request_id: str
) -> bool:
    """:func:`no_worse` against violations given as stop -> excess and the end excess."""
    if new.end_excess_s > end_excess_s:
        return False
    for s, x in zip(new.stops, new.excess):
        if s.request_id == new_request_id:
            if x:
                return False
        elif x > before.get(s, 0):
            return False
    return True


class RouteSlack:
    """Precomputed timing of a vehicle's current route for O(1) insertion tests.

    Positions ``0..n-1`` are the route's stops; position ``n`` is the end location. For each
    position ``k``:

    * ``pre_loc[k]``, ``pre_dep[k]``: location and departure time of whatever comes before
      position ``k`` (the vehicle start for ``k = 0``);
    * ``loc[k]``, ``arr[k]``, ``start[k]``, ``wait[k]``: location, arrival, start of service and
      waiting (``start - arrival``) at ``k``; ``dep[k]`` departure for stops;
    * ``load_before[k]``: load when arriving at ``k``;
    * ``win_slack[k]``: how much later service at ``k`` may start (window or end limit), >= 0;
    * ``ride_slack[k]``, ``ride_from[k]``: for a drop-off, how much longer the ride may become and
      the position of its pickup (-1 when on board); ``inf`` / ``n + 1`` otherwise;
    * ``fwd[k]``: the *forward slack*: the largest ``delta`` by which the arrival at ``k`` may be
      pushed later such that every position ``m >= k`` keeps its window, ride time (for riders
      picked up before ``k``) and the end limit. A push ``delta`` at ``k`` becomes
      ``max(0, delta - (wait[k] + ... + wait[m]))`` at ``m``.
    """

    __slots__ = (
        "_wc",
        "_wcc",
        "arr",
        "dep",
        "end_excess",
        "excess",
        "fwd",
        "fwd_win",
        "leg",
        "load_before",
        "loc",
        "n",
        "pre_dep",
        "pre_loc",
        "ride_from",
        "ride_slack",
        "start",
        "stops",
        "vehicle",
        "wait",
        "win_slack",
    )

    def __init__(
        self, problem: Problem, vehicle: Vehicle, *, legs: list[int] | None = None
    ) -> None:
        """``legs`` (optional): travel times along start, stops..., end, if already looked up."""
        reqs = problem.requests
        stops = vehicle.route
        n = len(stops)
        self.vehicle = vehicle
        self.stops = stops
        self.n = n
        rs = [reqs[s.request_id] for s in stops]
        kinds = [s.kind == "pickup" for s in stops]
        locs = [r.pickup if p else r.dropoff for p, r in zip(kinds, rs)]
        locs.append(vehicle.end_location)
        if legs is None:
            path = np.fromiter([vehicle.start_location, *locs], dtype=np.int64, count=n + 2)
            legs = problem.travel_s[path[:-1], path[1:]].tolist()
        cap = vehicle.capacity.as_tuple()

        load = list(initial_load(vehicle, reqs))
        pick_end: dict[str, int] = {}
        pick_pos: dict[str, int] = {}
        excess: dict[Stop, int] = {}
        for rid in vehicle.onboard:
            at = reqs[rid].picked_up_at_s
            pick_end[rid] = vehicle.start_time_s if at is None else at
            pick_pos[rid] = -1

        pre_dep = [vehicle.start_time_s]
        arr_l: list[int] = []
        start_l: list[int] = []
        wait_l: list[int] = []
        load_before: list[tuple[int, int, int]] = []
        win_slack: list[float] = []
        ride_slack: list[float] = []
        ride_from: list[int] = []
        t = vehicle.start_time_s
        for k in range(n):
            r = rs[k]
            a = t + legs[k]
            load_before.append((load[0], load[1], load[2]))
            q = r.load
            if kinds[k]:
                w = r.pickup_window
                b = max(a, w.earliest_s)
                t = b + r.pickup_service_s
                rid = stops[k].request_id
                pick_end[rid] = t
                pick_pos[rid] = k
                load[0] += q.seats
                load[1] += q.wheelchairs
                load[2] += q.parcels
                ride_slack.append(_INF)
                ride_from.append(n + 1)
                x = 0
            else:
                w = r.dropoff_window
                b = max(a, w.earliest_s)
                t = b + r.dropoff_service_s
                rid = stops[k].request_id
                x = b - pick_end[rid] - r.max_ride_s
                ride_slack.append(-x if x < 0 else 0)
                ride_from.append(pick_pos[rid])
                load[0] -= q.seats
                load[1] -= q.wheelchairs
                load[2] -= q.parcels
            x = max(x, b - w.latest_s, load[0] - cap[0], load[1] - cap[1], load[2] - cap[2])
            if x > 0:
                excess[stops[k]] = x
            arr_l.append(a)
            start_l.append(b)
            wait_l.append(b - a)
            win_slack.append(max(0, w.latest_s - b))
            pre_dep.append(t)
        end_arr = t + legs[n]
        arr_l.append(end_arr)
        start_l.append(end_arr)
        wait_l.append(0)
        load_before.append((load[0], load[1], load[2]))
        win_slack.append(max(0, end_limit_s(vehicle) - end_arr))
        self.excess = excess  # violations already in the plan (a driver running late), by stop
        self.end_excess = max(0, end_arr - end_limit_s(vehicle))
        ride_slack.append(_INF)
        ride_from.append(n + 1)

        self.pre_loc = [vehicle.start_location, *locs[:n]]
        self.pre_dep = pre_dep
        self.loc = locs
        self.arr = arr_l
        self.start = start_l
        self.dep = pre_dep[1:]
        self.wait = wait_l
        self.leg = legs
        self.load_before = load_before
        self.win_slack = win_slack
        self.ride_slack = ride_slack
        self.ride_from = ride_from

        # prefix sums of waiting: W(k..m) = wc[m + 1] - wc[k]
        wc = [0] * (n + 2)
        for k in range(n + 1):
            wc[k + 1] = wc[k] + wait_l[k]
        self._wc = wc
        wcc = [0] * (n + 2)  # wcc[k] = wc[0] + ... + wc[k - 1]
        for k in range(n + 1):
            wcc[k + 1] = wcc[k] + wc[k]
        self._wcc = wcc

        # forward slack: windows part by a suffix minimum, ride part per drop-off
        fwd_win: list[float] = [0.0] * (n + 1)
        best = _INF
        for k in range(n, -1, -1):
            v = win_slack[k] + wc[k + 1]
            best = min(best, v)
            fwd_win[k] = best - wc[k]
        fwd = list(fwd_win)
        for m in range(n):
            rsl = ride_slack[m]
            if rsl == _INF:
                continue
            top = rsl + wc[m + 1]
            for k in range(ride_from[m] + 1, m + 1):
                fwd[k] = min(fwd[k], top - wc[k])
        self.fwd = fwd
        self.fwd_win = fwd_win

    def push_delay(self, k: int, delta: int) -> int:
        """Total start-time shift over stops ``k..n-1`` when the arrival at ``k`` is ``delta`` later.

        The shift at stop ``m`` is ``max(0, delta - (wait[k] + ... + wait[m]))``; the end location
        is not counted. O(log n).
        """
        if delta <= 0 or k >= self.n:
            return 0
        wc = self._wc
        base = delta + wc[k]
        # stops m in [k, n-1] with wc[m + 1] < base are shifted by base - wc[m + 1]
        hi = bisect_left(wc, base, k + 1, self.n + 1)
        c = hi - (k + 1)
        if c <= 0:
            return 0
        return c * base - (self._wcc[hi] - self._wcc[k + 1])
