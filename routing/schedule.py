"""The one scheduler: how a vehicle's route is timed, everywhere in ``routing/``.

Every route the service publishes, stores, shows on a tablet or quotes to a rider is timed by
:func:`least_times` (through :func:`evaluate` in Python; the compiled search in
``routing/lns.py`` calls the same compiled function). The checker (``routing/check.py``) times
routes independently so that it can judge this one; nothing here is shared with it.

Timing rules (all integer seconds; positions ``0`` = the vehicle's start, ``1..n`` = the stops,
``n + 1`` = its end location):

* ``t[i]`` is the start of service at position ``i`` (``t[0]`` = departure from the start,
  ``t[n + 1]`` = arrival at the end location);
* travel: ``t[i + 1] >= t[i] + service[i] + travel(i, i + 1)``;
* windows: ``earliest <= t[i] <= latest`` (the stop's pickup or drop-off window; the start has
  ``[start_time_s, shift_end_s]``, the end ``[start_time_s, shift_end_s]``);
* ride limits: ``t[drop-off] - (t[pickup] + pickup service) <= max_ride_s`` for a request picked
  up in the route; for a rider already on board the drop-off's latest is capped at
  ``picked_up_at_s + max_ride_s`` (``start_time_s`` when unknown);
* route duration: ``t[n + 1] - t[0] <= max_route_duration_s`` when set.

These are difference constraints, so the pointwise least solution exists whenever any solution
exists: the **least-time schedule**. It is what :func:`least_times` computes (raise every time
to its lower bound until nothing moves, or report infeasible as soon as a time passes its
latest). Each stop starts as early as its window, the travel before it and the ride limits
allow: the vehicle waits (``start - arrival``) only where a window opens later or where a pickup
must be delayed so that the rider's ride stays within its limit (or a departure delayed so the
route stays within its duration). ``arrival = previous departure + travel`` (the departure from
the start is ``t[0]``); ``wait = start - arrival`` is what the tablet shows as "wait here until".

Loads are not part of the timing: the load on departure from each stop must fit ``capacity`` in
every dimension, starting with the loads of the vehicle's ``onboard`` requests.

:func:`evaluate` returns the least-time :class:`Schedule` with every violation as an amount (0 =
fine). When no timing can keep every rule (a driver running late, a promise already broken) it
falls back to the *earliest-start* timing (windows' earliest and travel only: ``start =
max(arrival, earliest)``, the departure from the start at ``start_time_s``), measures every
violation on it, and ``Schedule.feasible`` is false.

:class:`RouteSlack` (and its vectorised twin in ``routing/insertion.py``) hold the earliest-start
timing of a current route for the insertion search's *screens*: the earliest-start time of every
stop is a lower bound of any feasible timing, so a window or shift end it already misses proves
an insertion infeasible. Screens only prune; every accepted insertion is timed by
:func:`least_times`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from routing.model import (
    Load,
    Problem,
    Request,
    Route,
    ScheduledStop,
    Stop,
    TimeWindow,
    Vehicle,
    rider_due_s,
)

_INF = float("inf")


def stop_window(request: Request, kind: str) -> TimeWindow:
    """The time window that applies to the pickup or the drop-off of ``request``."""
    return request.pickup_window if kind == "pickup" else request.dropoff_window


def initial_load(vehicle: Vehicle, requests: Mapping[str, Request]) -> tuple[int, int, int]:
    """Load on board when the vehicle starts: the sum of its ``onboard`` requests' loads."""
    s = w = p = 0
    for rid in vehicle.onboard:
        q = requests[rid].load
        s += q.seats
        w += q.wheelchairs
        p += q.parcels
    return (s, w, p)


@njit(cache=True, nogil=True)
def least_times(m, step, lo, hi, nr, rpi, rpj, rpl, limit, t):  # pragma: no cover - compiled
    """The least-time schedule of one route, in place into ``t``; False when none exists.

    Positions ``0..m-1`` (the start, the stops, the end). ``step[i]`` = service at ``i`` +
    travel to ``i + 1``; ``lo``/``hi`` the window of each position; ride limits ``r < nr``:
    ``t[rpj[r]] - t[rpi[r]] <= rpl[r]`` (``rpl`` = max ride + pickup service); ``limit`` the
    route duration ``t[m-1] - t[0]`` (-1 = none). All int64 arrays. Lower bounds are raised
    until nothing moves (the least fixpoint of the difference constraints); as soon as a time
    passes its ``hi`` no timing exists. On a feasible system every pass but the last is caused
    by a ride or duration bound, so ``2 m + 4`` passes always suffice.
    """
    for i in range(m):
        if lo[i] > hi[i]:
            return False
        t[i] = lo[i]
    s = 0
    for _ in range(2 * m + 4):
        for i in range(s, m - 1):
            v = t[i] + step[i]
            if t[i + 1] < v:
                if v > hi[i + 1]:
                    return False
                t[i + 1] = v
        s = m
        for r in range(nr):
            need = t[rpj[r]] - rpl[r]
            pi = rpi[r]
            if t[pi] < need:
                if need > hi[pi]:
                    return False
                t[pi] = need
                s = min(s, pi)
        if limit >= 0:
            need = t[m - 1] - limit
            if t[0] < need:
                if need > hi[0]:
                    return False
                t[0] = need
                s = 0
        if s == m:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Schedule:
    """The least-time schedule of one route (see the module docstring), violations as amounts.

    All per-stop tuples are aligned with ``stops``. Loads are ``(seats, wheelchairs, parcels)``.
    ``wait_s[k] = start_s[k] - arrival_s[k]`` is how long the vehicle waits at stop ``k`` before
    service (a window not yet open, or a pickup held so a ride keeps its limit).
    ``start_departure_s`` is when the vehicle leaves its start location (``start_time_s`` unless
    a route duration limit makes it wait there). ``timed`` is true when the least-time schedule
    exists; otherwise the times are the earliest-start fallback and the violations are measured
    on it. ``excess[k]`` is the largest violation at stop ``k`` in seconds or load units
    (window lateness, ride-time excess, overload); ``end_excess_s`` is the lateness at the end
    location (shift end or route duration).
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
    start_departure_s: int = 0
    timed: bool = True

    @property
    def wait_s(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.arrival_s, self.start_s))

    @property
    def excess(self) -> tuple[int, ...]:
        return tuple(
            max(a, b, c) for a, b, c in zip(self.lateness_s, self.ride_excess_s, self.overload)
        )

    @property
    def feasible(self) -> bool:
        return (
            self.timed
            and self.end_excess_s == 0
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
            start_departure_s=self.start_departure_s,
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


def _timing_data(
    problem: Problem, vehicle: Vehicle, stops: Sequence[Stop], reqs: Mapping[str, Request]
):
    """Per-position arrays of :func:`least_times` for ``stops`` driven by ``vehicle``, plus the
    stops' requests, locations and the ride origin of every request picked up before the start."""
    n = len(stops)
    rs = [reqs[s.request_id] for s in stops]
    picks = [s.kind == "pickup" for s in stops]
    locs = [r.pickup if p else r.dropoff for p, r in zip(picks, rs)]
    path = np.fromiter(
        [vehicle.start_location, *locs, vehicle.end_location], dtype=np.int64, count=n + 2
    )
    legs = problem.travel_s[path[:-1], path[1:]].astype(np.int64)
    svc_l = [0] * (n + 2)
    lo_l = [vehicle.start_time_s] * (n + 2)
    hi_l = [vehicle.shift_end_s] * (n + 2)
    origin: dict[str, int] = {}
    for rid in vehicle.onboard:
        at = reqs[rid].picked_up_at_s
        origin[rid] = vehicle.start_time_s if at is None else at
    rpi: list[int] = []
    rpj: list[int] = []
    rpl: list[int] = []
    pos: dict[str, int] = {}
    for k in range(n):
        r, i = rs[k], k + 1
        if picks[k]:
            w = r.pickup_window
            svc_l[i] = r.pickup_service_s
            pos[r.id] = i
            lo_l[i], hi_l[i] = w.earliest_s, w.latest_s
        else:
            w = r.dropoff_window
            svc_l[i] = r.dropoff_service_s
            lo_l[i], hi_l[i] = w.earliest_s, w.latest_s
            p = pos.get(r.id)
            if p is not None:
                rpi.append(p)
                rpj.append(i)
                rpl.append(r.max_ride_s + r.pickup_service_s)
            elif r.id in origin:
                hi_l[i] = min(hi_l[i], origin[r.id] + r.max_ride_s)
    svc = np.array(svc_l, dtype=np.int64)
    lo = np.array(lo_l, dtype=np.int64)
    hi = np.array(hi_l, dtype=np.int64)
    step = svc[:-1] + legs
    rides = (
        np.array(rpi, dtype=np.int64),
        np.array(rpj, dtype=np.int64),
        np.array(rpl, dtype=np.int64),
    )
    return rs, picks, locs, legs, svc, step, lo, hi, rides, origin


def evaluate(
    problem: Problem,
    vehicle: Vehicle,
    stops: Sequence[Stop],
    *,
    requests: Mapping[str, Request] | None = None,
) -> Schedule:
    """The least-time schedule of ``stops`` driven by ``vehicle``, every violation measured.

    This is the one function that times a route for the service: the optimiser's result, the
    insertion search's final acceptance, the stored plan, the tablet's times and waits and the
    ETAs all come from it (through :func:`least_times`, which the compiled search shares).

    Parameters
    ----------
    problem:
        Supplies ``travel_s`` and (unless ``requests`` is given) the requests.
    vehicle:
        Start location/time, end location, shift end, route duration, capacity, on-board riders.
    stops:
        The route to time (need not be ``vehicle.route``). Must be well formed (see
        :func:`check_structure`; not re-checked here for speed).
    requests:
        Request lookup to use instead of ``problem.requests`` (e.g. with a new request added).

    Returns
    -------
    Schedule
        Times in seconds. ``feasible`` is true when the least-time schedule exists and no load
        exceeds the capacity; when it does not exist (``timed`` false) the times are the
        earliest-start fallback and the violations (lateness, ride excess, end lateness) are
        measured on them.
    """
    reqs = problem.requests if requests is None else requests
    n = len(stops)
    rs, picks, locs, legs, svc, step, lo, hi, rides, origin = _timing_data(
        problem, vehicle, stops, reqs
    )
    m = n + 2
    limit = -1 if vehicle.max_route_duration_s is None else vehicle.max_route_duration_s
    t = np.empty(m, dtype=np.int64)
    timed = bool(least_times(m, step, lo, hi, len(rides[0]), *rides, limit, t))  # type: ignore[call-arg]
    if not timed:  # earliest start: travel and windows' earliest only
        t[0] = lo[0]
        for i in range(m - 1):
            t[i + 1] = max(lo[i + 1], t[i] + step[i])
    times = t.tolist()
    legs_l = legs.tolist()
    svc_l = svc.tolist()
    cap = vehicle.capacity.as_tuple()
    load = list(initial_load(vehicle, reqs))
    pick_end = dict(origin)
    arrival: list[int] = []
    start: list[int] = []
    departure: list[int] = []
    load_after: list[tuple[int, int, int]] = []
    late: list[int] = []
    ride_x: list[int] = []
    over: list[int] = []
    prev_dep = times[0]
    for k in range(n):
        r = rs[k]
        b = times[k + 1]
        d = b + svc_l[k + 1]
        q = r.load
        if picks[k]:
            w = r.pickup_window
            pick_end[r.id] = d
            load[0] += q.seats
            load[1] += q.wheelchairs
            load[2] += q.parcels
            ride_x.append(0)
        else:
            w = r.dropoff_window
            ride = b - pick_end.get(r.id, b)
            ride_x.append(max(0, ride - r.max_ride_s))
            load[0] -= q.seats
            load[1] -= q.wheelchairs
            load[2] -= q.parcels
        arrival.append(prev_dep + legs_l[k])
        start.append(b)
        departure.append(d)
        late.append(max(0, b - w.latest_s))
        load_after.append((load[0], load[1], load[2]))
        over.append(max(0, load[0] - cap[0], load[1] - cap[1], load[2] - cap[2]))
        prev_dep = d
    end_arr = times[m - 1]
    end_limit = vehicle.shift_end_s
    if limit >= 0:
        end_limit = min(end_limit, times[0] + limit)
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
        end_excess_s=max(0, end_arr - end_limit),
        start_departure_s=times[0],
        timed=timed,
    )


class RouteSlack:
    """Earliest-start timing of a vehicle's current route, for the insertion search's screens.

    Earliest start (travel and windows' earliest only) is a lower bound of every timing of the
    route, so what it says about latest times is a *necessary* condition: a push that breaks a
    window or the shift end here breaks it under any timing. It says nothing certain about ride
    limits or the route duration (the least-time schedule may wait before a pickup or leave the
    start later), so those are not screened; :func:`evaluate` decides them.

    Positions ``0..n-1`` are the route's stops; position ``n`` is the end location. For each
    position ``k``:

    * ``pre_loc[k]``, ``pre_dep[k]``: location and departure time of whatever comes before
      position ``k`` (the vehicle start for ``k = 0``);
    * ``loc[k]``, ``arr[k]``, ``start[k]``, ``wait[k]``: location, arrival, start of service and
      waiting (``start - arrival``) at ``k``; ``dep[k]`` departure for stops;
    * ``load_before[k]``: load when arriving at ``k``;
    * ``win_slack[k]``: how much later service at ``k`` may start (window, or shift end at the
      end location), >= 0;
    * ``fwd[k]``: the *forward slack*: the largest ``delta`` by which the arrival at ``k`` may be
      pushed later such that every position ``m >= k`` keeps its window and the shift end. A
      push ``delta`` at ``k`` becomes ``max(0, delta - (wait[k] + ... + wait[m]))`` at ``m``.
    """

    __slots__ = (
        "_wc",
        "_wcc",
        "arr",
        "dep",
        "fwd",
        "leg",
        "load_before",
        "loc",
        "n",
        "pre_dep",
        "pre_loc",
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

        load = list(initial_load(vehicle, reqs))
        pre_dep = [vehicle.start_time_s]
        arr_l: list[int] = []
        start_l: list[int] = []
        wait_l: list[int] = []
        load_before: list[tuple[int, int, int]] = []
        win_slack: list[float] = []
        t = vehicle.start_time_s
        for k in range(n):
            r = rs[k]
            a = t + legs[k]
            load_before.append((load[0], load[1], load[2]))
            q = r.load
            sign = 1 if kinds[k] else -1
            w = r.pickup_window if kinds[k] else r.dropoff_window
            b = max(a, w.earliest_s)
            t = b + (r.pickup_service_s if kinds[k] else r.dropoff_service_s)
            load[0] += sign * q.seats
            load[1] += sign * q.wheelchairs
            load[2] += sign * q.parcels
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
        win_slack.append(max(0, vehicle.shift_end_s - end_arr))

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

        # prefix sums of waiting: W(k..m) = wc[m + 1] - wc[k]
        wc = [0] * (n + 2)
        for k in range(n + 1):
            wc[k + 1] = wc[k] + wait_l[k]
        self._wc = wc
        wcc = [0] * (n + 2)  # wcc[k] = wc[0] + ... + wc[k - 1]
        for k in range(n + 1):
            wcc[k + 1] = wcc[k] + wc[k]
        self._wcc = wcc

        # forward slack by a suffix minimum
        fwd: list[float] = [0.0] * (n + 1)
        best = _INF
        for k in range(n, -1, -1):
            v = win_slack[k] + wc[k + 1]
            best = min(best, v)
            fwd[k] = best - wc[k]
        self.fwd = fwd

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


def plan_rider_cost(problem: Problem, routes: Mapping[str, Sequence[Stop]]) -> int:
    """The riders' term of the objective for ``routes`` (vehicle id -> stops): the sum over every
    rider's drop-off of ``rider_delay_weight x (start of service - rider_due_s)`` in the
    least-time schedule of the one scheduler (:func:`evaluate`), as the optimisers
    count it. 0 when the weight is 0."""
    w = int(problem.rider_delay_weight)
    if w <= 0:
        return 0
    total = 0
    for v in problem.vehicles:
        stops = routes.get(v.id, ())
        if not stops:
            continue
        sched = evaluate(problem, v, stops)
        for s, start in zip(stops, sched.start_s, strict=True):
            due = rider_due_s(problem, problem.requests[s.request_id]) if s.kind == "dropoff" else None
            if due is not None and start > due:
                total += w * (start - due)
    return total
