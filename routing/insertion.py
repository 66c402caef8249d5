"""Insertion search: where (if anywhere) a new request fits into the vehicles' current plans.

Used for offers (quote) and again for confirmation (inside the transaction that holds the plans).
It is a pipeline of small named roles:

1. :func:`filter_candidates` — *candidate filter*: vehicles whose capacity fits the load and that
   can still reach the pickup in time and finish before their shift ends.
2. *insertion generator*: every (pickup position, drop-off position) pair of every candidate
   vehicle that the screens cannot rule out. The screens are necessary conditions only,
   measured on the earliest-start timing (a lower bound of any timing): windows and the shift
   end through the route's forward window slack (see :mod:`routing.schedule`), capacity, and
   the new ride against the latest pickup. :func:`generate_insertions` is the readable
   per-vehicle reference; :func:`find_insertions` runs ``_generate_stacked``, the same tests
   vectorised with numpy over vehicles x positions x positions (identical results, checked by
   the unit tests). No pickup goes before a vehicle's pinned pickups.
3. :func:`insertion_cost` — *insertion cost*: added vehicle time + ``weights.promised_delay`` x
   added delay to riders already promised (+ optional terms for the new rider); ``math.inf`` means
   infeasible.
4. :func:`rank` — *ranking and proof*: per vehicle, candidates cheapest first are timed as a
   whole new route by the one scheduler (:func:`routing.schedule.evaluate`) until one is
   feasible; best option per vehicle, cheapest first, ties broken by earlier pickup and then
   vehicle id. An option is returned only if its whole new route is feasible.

Then the *offer policy* :func:`make_promise` turns the chosen option into the promise shown to the
rider, and the service layer updates the plan.

Request directions
------------------
The service layer builds a :class:`~routing.model.Request` from what the rider asked
(:func:`request_windows` does it). With ``direct_s`` the direct travel time pickup → drop-off,
``max_ride = max_ride_time_s(direct_s, alpha=..., beta_s=..., abs_s=...)`` and ``s_p`` the pickup
service time:

* **leave now** (``T`` = now) and **leave at T**: pickup window ``[T, T + max_wait_s]``; drop-off
  window ``[T + s_p + direct_s, T + max_wait_s + s_p + max_ride]`` (the earliest possible and the
  latest allowed arrival).
* **arrive by T**: drop-off window ``[T - arrive_early_s, T]`` (arriving more than
  ``arrive_early_s`` early is not useful to the rider); pickup window
  ``[T - arrive_early_s - s_p - max_ride, T - s_p - direct_s]``: every pickup time from which the
  drop-off window is reachable within the max ride time.

``max_ride_time_s(direct, alpha, beta_s, abs_s) = min(direct + abs_s, floor(alpha x direct) +
beta_s)``, never below ``direct``.

Hard promises: ``problem.requests`` holds every request already promised; their windows and max
ride times are hard. An option is returned only when the whole new route has a least-time
schedule that keeps all of them (a vehicle whose current plan is already infeasible, e.g. a
driver running late, gets no new request until the service layer has re-planned it).
"""

from __future__ import annotations

import math
from collections import ChainMap
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from typing import Literal, NamedTuple, cast

import numpy as np

from routing.model import Problem, Request, Stop, TimeWindow, UnservedCause
from routing.schedule import RouteSlack, evaluate

_INF = float("inf")

__all__ = [
    "Insertion",
    "InsertionResult",
    "InsertionWeights",
    "filter_candidates",
    "find_insertions",
    "generate_insertions",
    "insertion_cost",
    "make_promise",
    "max_ride_time_s",
    "nearest_feasible_times",
    "rank",
    "request_windows",
]


# --------------------------------------------------------------------------------------------
# parameters and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsertionWeights:
    """Weights of the insertion cost (all per second; must be finite and >= 0).

    ``cost = vehicle_time x added_vehicle_s + promised_delay x added_delay_s
    + new_rider_wait x (pickup_s - pickup_window.earliest_s) + new_rider_ride x ride_s``.
    """

    vehicle_time: float = 1.0
    promised_delay: float = 1.0
    new_rider_wait: float = 0.0
    new_rider_ride: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vehicle_time", "promised_delay", "new_rider_wait", "new_rider_ride"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"InsertionWeights.{name} must be finite and >= 0, got {v!r}")


@dataclass(frozen=True, slots=True)
class Insertion:
    """One way to serve the new request.

    ``route`` is the vehicle's new full route. ``pickup_s``/``dropoff_s`` are the planned starts
    of service. ``added_vehicle_s`` is the extra driving plus dwell time of the vehicle (idle
    waiting is not counted); ``added_delay_s`` is the sum, over every stop already planned, of how
    much later its service starts. ``pickup_index``/``dropoff_index`` are the positions of the new
    stops in ``route``.
    """

    vehicle_id: str
    route: tuple[Stop, ...]
    cost: float
    pickup_s: int
    dropoff_s: int
    added_vehicle_s: int
    added_delay_s: int
    pickup_index: int = 0
    dropoff_index: int = 0


@dataclass(frozen=True, slots=True)
class InsertionResult:
    """Options, cheapest first; ``cause`` is set exactly when there is none."""

    options: tuple[Insertion, ...]
    cause: UnservedCause | None = None

    @property
    def best(self) -> Insertion | None:
        return self.options[0] if self.options else None


class _Candidate(NamedTuple):
    """An insertion found feasible by the generator (positions in the old route)."""

    vehicle_index: int
    i: int  # pickup goes before old stop i
    j: int  # drop-off goes before old stop j (j >= i; j == i: right after the pickup)
    pickup_s: int
    dropoff_s: int
    added_vehicle_s: int
    added_delay_s: int


# --------------------------------------------------------------------------------------------
# helpers for the service layer
# --------------------------------------------------------------------------------------------


def max_ride_time_s(direct_s: int, *, alpha: float, beta_s: int, abs_s: int) -> int:
    """Longest allowed ride for a trip whose direct travel time is ``direct_s`` seconds.

    ``min(direct_s + abs_s, floor(alpha * direct_s) + beta_s)``, but never less than
    ``direct_s``. ``alpha >= 1``; ``beta_s, abs_s >= 0``.
    """
    if direct_s < 0:
        raise ValueError(f"direct_s must be >= 0, got {direct_s}")
    if not (math.isfinite(alpha) and alpha >= 1.0):
        raise ValueError(f"alpha must be finite and >= 1, got {alpha!r}")
    if beta_s < 0 or abs_s < 0:
        raise ValueError("beta_s and abs_s must be >= 0")
    return max(direct_s, min(direct_s + abs_s, math.floor(alpha * direct_s) + beta_s))


Direction = Literal["leave_now", "leave_at", "arrive_by"]


def request_windows(
    direction: Direction,
    time_s: int,
    *,
    direct_s: int,
    max_ride_s: int,
    max_wait_s: int,
    pickup_service_s: int = 0,
    arrive_early_s: int | None = None,
) -> tuple[TimeWindow, TimeWindow]:
    """Pickup and drop-off windows for what the rider asked; see the module docstring.

    Parameters
    ----------
    direction:
        ``"leave_now"``/``"leave_at"`` (``time_s`` = earliest departure) or ``"arrive_by"``
        (``time_s`` = latest arrival).
    direct_s, max_ride_s:
        Direct travel time and the allowed ride time, seconds.
    max_wait_s:
        Width of the pickup window for leave requests, seconds.
    pickup_service_s:
        Dwell at the pickup, seconds.
    arrive_early_s:
        For ``arrive_by``: how much earlier than ``time_s`` arriving is still acceptable
        (defaults to ``max_wait_s``).

    Returns
    -------
    (pickup_window, dropoff_window)
    """
    if max_ride_s < direct_s:
        raise ValueError("max_ride_s must be >= direct_s")
    if max_wait_s < 0:
        raise ValueError("max_wait_s must be >= 0")
    if direction in ("leave_now", "leave_at"):
        pickup = TimeWindow(time_s, time_s + max_wait_s)
        dropoff = TimeWindow(
            time_s + pickup_service_s + direct_s,
            time_s + max_wait_s + pickup_service_s + max_ride_s,
        )
        return pickup, dropoff
    if direction == "arrive_by":
        early = max_wait_s if arrive_early_s is None else arrive_early_s
        if early < 0:
            raise ValueError("arrive_early_s must be >= 0")
        dropoff = TimeWindow(time_s - early, time_s)
        pickup = TimeWindow(
            time_s - early - pickup_service_s - max_ride_s,
            time_s - pickup_service_s - direct_s,
        )
        return pickup, dropoff
    raise ValueError(f"unknown direction {direction!r}")


# --------------------------------------------------------------------------------------------
# 1. candidate filter
# --------------------------------------------------------------------------------------------


def _fits(load: tuple[int, int, int], capacity: tuple[int, int, int]) -> bool:
    return load[0] <= capacity[0] and load[1] <= capacity[1] and load[2] <= capacity[2]


def filter_candidates(problem: Problem, request: Request) -> tuple[list[int], bool]:
    """Indices of vehicles worth trying, and whether any vehicle's capacity fits the load at all.

    A vehicle is dropped when its capacity is too small in some dimension, when even driving
    straight to the pickup now it arrives after the pickup window closes, when the direct trip
    cannot meet the drop-off window, or when it could not reach its end location by the end of
    its shift after the direct trip.
    """
    q = request.load.as_tuple()
    travel = problem.travel_s
    p, d = request.pickup, request.dropoff
    t_pd = int(travel[p, d])
    sp, sd = request.pickup_service_s, request.dropoff_service_s
    e_p, l_p = request.pickup_window.earliest_s, request.pickup_window.latest_s
    e_d, l_d = request.dropoff_window.earliest_s, request.dropoff_window.latest_s
    any_fits = False
    out: list[int] = []
    starts = [v.start_location for v in problem.vehicles]
    ends = [v.end_location for v in problem.vehicles]
    to_p = travel[starts, p].tolist() if starts else []
    d_to_end = travel[d, ends].tolist() if ends else []
    for idx, v in enumerate(problem.vehicles):
        if not _fits(q, v.capacity.as_tuple()):
            continue
        any_fits = True
        a_p = v.start_time_s + to_p[idx]
        if a_p > l_p:
            continue
        b_p = max(a_p, e_p)
        a_d = b_p + sp + t_pd
        if a_d > l_d:
            continue
        b_d = max(a_d, e_d)
        if b_d + sd + d_to_end[idx] > v.shift_end_s:
            continue
        out.append(idx)
    return out, any_fits


# --------------------------------------------------------------------------------------------
# 2. insertion generator (+ 3. cost terms measured on the way)
# --------------------------------------------------------------------------------------------


class _Rows:
    """Travel times to and from the new request's two locations, as Python lists (one per quote)."""

    __slots__ = ("d_to", "p_to", "t_pd", "to_d", "to_p")

    def __init__(self, problem: Problem, request: Request) -> None:
        travel = problem.travel_s
        p, d = request.pickup, request.dropoff
        self.to_p: list[int] = travel[:, p].tolist()
        self.p_to: list[int] = travel[p].tolist()
        self.to_d: list[int] = travel[:, d].tolist()
        self.d_to: list[int] = travel[d].tolist()
        self.t_pd = int(travel[p, d])


class PreparedPlans:
    """The vehicles' current plans, preprocessed once for many insertion searches.

    Holds every vehicle's route timing and forward slack as arrays, built on first use. Valid
    as long as ``problem`` (its vehicles, their routes, the promised requests and the travel-time
    matrix) does not change: keep one per plan version, e.g. in the dispatcher between commits,
    and make a new one after every plan change. :func:`nearest_feasible_times` uses one for its
    repeated searches.
    """

    __slots__ = ("_stack", "problem", "starts")

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self._stack: _Stack | None = None
        #: vehicle index -> least-time starts of its current route (filled by :func:`rank`)
        self.starts: dict[int, tuple[int, ...]] = {}

    def stack(self) -> _Stack:
        """Every vehicle's timing and slack as arrays, built on first use and then reused."""
        if self._stack is None:
            self._stack = _Stack(self.problem, range(len(self.problem.vehicles)))
        return self._stack


def generate_insertions(
    problem: Problem,
    vehicle_index: int,
    request: Request,
    *,
    slack: RouteSlack | None = None,
    rows: _Rows | None = None,
) -> list[_Candidate]:
    """Every (pickup position, drop-off position) for one vehicle that the screens cannot rule
    out.

    Positions refer to the vehicle's current route of ``n`` stops: the pickup goes before old
    stop ``i`` (``len(pinned) <= i <= n``: never before a pinned pickup), the drop-off before
    old stop ``j`` (``i <= j <= n``; ``j == i`` means directly after the pickup). The screens
    are necessary conditions only, measured on the earliest-start timing (a lower bound of any
    timing): the new stops' windows, the capacity on every leg the request is on board (per
    dimension), the new ride against the latest pickup (``l_p + s_p + max_ride``), and the
    forward window slack of everything after; stops between the two new stops are walked once
    per pickup position, so a stop whose window breaks ends the scan. A candidate is not yet
    an option: :func:`rank` times the whole new route with :func:`routing.schedule.evaluate`.
    ``pickup_s``/``dropoff_s`` of a candidate are earliest-start times (lower bounds).
    """
    vehicle = problem.vehicles[vehicle_index]
    S = slack if slack is not None else RouteSlack(problem, vehicle)
    R = rows if rows is not None else _Rows(problem, request)
    n = S.n
    q = request.load.as_tuple()
    cap = vehicle.capacity.as_tuple()
    # dimensions the request occupies; only those can be overloaded by it
    dims = [k for k in range(3) if q[k] > 0]
    head = [cap[k] - q[k] for k in range(3)]  # load_before must be <= head[k] in used dims

    e_p, l_p = request.pickup_window.earliest_s, request.pickup_window.latest_s
    e_d, l_d = request.dropoff_window.earliest_s, request.dropoff_window.latest_s
    sp, sd = request.pickup_service_s, request.dropoff_service_s
    # the latest start of the drop-off any timing could give the new ride
    ride_top = l_p + sp + request.max_ride_s
    l_d = min(l_d, ride_top)
    t_pd = R.t_pd

    pre_loc, pre_dep, loc, arr, wait = S.pre_loc, S.pre_dep, S.loc, S.arr, S.wait
    dep, leg, load_before = S.dep, S.leg, S.load_before
    win_slack, fwd = S.win_slack, S.fwd
    # travel from what precedes position k to the pickup, pickup -> position k, stop m -> drop-off,
    # drop-off -> position k
    row = R.to_p
    to_p = [row[x] for x in pre_loc]
    row = R.p_to
    p_to = [row[x] for x in loc]
    row = R.to_d
    to_d = [row[x] for x in loc]
    row = R.d_to
    d_to = [row[x] for x in loc]
    push_delay = S.push_delay

    def load_ok(k: int) -> bool:
        lb = load_before[k]
        for dim in dims:  # noqa: SIM110 - hot path; a plain loop is cheaper than all(<genexpr>)
            if lb[dim] > head[dim]:
                return False
        return True

    out: list[_Candidate] = []
    for i in range(min(len(vehicle.pinned), n), n + 1):
        prev_dep = pre_dep[i]
        if prev_dep > l_p:
            break  # departures only grow along the route
        a_p = prev_dep + to_p[i]
        if a_p > l_p:
            continue
        if not load_ok(i):
            continue
        b_p = max(a_p, e_p)
        dep_p = b_p + sp
        detour_p = to_p[i] + sp  # vehicle time to get to and serve the pickup

        # j == i: drop-off right after the pickup
        a_d = dep_p + t_pd
        b_d = max(a_d, e_d)
        if b_d <= l_d:
            dep_d = b_d + sd
            delta = dep_d + d_to[i] - arr[i]
            if delta <= fwd[i]:
                out.append(
                    _Candidate(
                        vehicle_index,
                        i,
                        i,
                        b_p,
                        b_d,
                        detour_p + t_pd + sd + d_to[i] - leg[i],
                        push_delay(i, delta),
                    )
                )
        if i == n:
            continue

        # j > i: walk the stops between the pickup and the drop-off
        shift = dep_p + p_to[i] - arr[i]  # push of the arrival at old stop i
        added_p = detour_p + p_to[i] - leg[i]
        delay_between = 0
        for m in range(i, n):
            shift = shift - wait[m] if shift > wait[m] else 0
            if shift > win_slack[m]:
                break
            if not load_ok(m + 1):
                break  # the request would be on board when leaving stop m
            delay_between += shift
            dep_m = dep[m] + shift
            if dep_m > l_d:
                break
            a_d = dep_m + to_d[m]
            b_d = max(a_d, e_d)
            if b_d > l_d:
                continue
            dep_d = b_d + sd
            delta = dep_d + d_to[m + 1] - arr[m + 1]
            if delta > fwd[m + 1]:
                continue
            out.append(
                _Candidate(
                    vehicle_index,
                    i,
                    m + 1,
                    b_p,
                    b_d,
                    added_p + to_d[m] + sd + d_to[m + 1] - leg[m + 1],
                    delay_between + push_delay(m + 1, delta),
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# 2b. the same generator, vectorised over vehicles and positions (what find_insertions runs)
# --------------------------------------------------------------------------------------------


class _Stack:
    """Timing and slack of many vehicles' routes as padded numpy arrays ``(V, K + 1)``.

    The vectorised twin of :class:`~routing.schedule.RouteSlack` (same fields, same meaning),
    computed for all vehicles at once: Python only reads each stop's request once; the schedule
    is a loop over positions with numpy operations across vehicles. ``K`` is the longest route;
    position ``n_v`` of vehicle ``v`` is its end location, positions beyond it are padding
    (``valid`` is false there).
    """

    __slots__ = (
        "K",
        "arr",
        "cap",
        "dep",
        "first",
        "fwd",
        "leg",
        "load_before",
        "loc",
        "n",
        "pre_dep",
        "pre_loc",
        "problem",
        "valid",
        "vehicle_index",
        "wait",
        "wc",
        "win_slack",
    )  # fmt: skip

    def __init__(self, problem: Problem, vehicle_index: Sequence[int]) -> None:
        self.problem = problem
        vidx = list(vehicle_index)
        self.vehicle_index = np.asarray(vidx, dtype=np.int64)
        V = len(vidx)
        reqs = problem.requests
        vehicles = [problem.vehicles[vi] for vi in vidx]

        # -- read the plain data once -------------------------------------------------------
        rows: list[tuple[int, ...]] = []  # one per stop: v, k, loc, e, l, svc, q x3 (signed)
        head: list[tuple[int, ...]] = []  # one per vehicle
        for v, veh in enumerate(vehicles):
            s0 = w0 = p0 = 0
            for rid in veh.onboard:
                r = reqs[rid]
                s0 += r.load.seats
                w0 += r.load.wheelchairs
                p0 += r.load.parcels
            for k, st in enumerate(veh.route):
                r = reqs[st.request_id]
                q = r.load
                if st.kind == "pickup":
                    w = r.pickup_window
                    rows.append((v, k, r.pickup, w.earliest_s, w.latest_s, r.pickup_service_s,
                                 q.seats, q.wheelchairs, q.parcels))  # fmt: skip
                else:
                    w = r.dropoff_window
                    rows.append((v, k, r.dropoff, w.earliest_s, w.latest_s, r.dropoff_service_s,
                                 -q.seats, -q.wheelchairs, -q.parcels))  # fmt: skip
            c = veh.capacity
            head.append((len(veh.route), veh.start_location, veh.start_time_s, veh.end_location,
                         veh.shift_end_s, c.seats, c.wheelchairs, c.parcels, s0, w0, p0))  # fmt: skip
        hd = np.array(head, dtype=np.int64).reshape(V, 11)
        n = hd[:, 0]
        K = int(n.max()) if V else 0
        P = K + 1
        self.K = K
        self.n = n
        pos_ = np.arange(P)
        valid = pos_[None, :] <= n[:, None]
        self.valid = valid
        vv = np.arange(V)
        self.cap = hd[:, 5:8]
        # first position a pickup may take: after the pinned pickups
        self.first = np.minimum(
            np.asarray([len(veh.pinned) for veh in vehicles], dtype=np.int64).reshape(V), n
        )

        def grid(fill: int) -> np.ndarray:
            return np.full((V, K), fill, dtype=np.int64)

        loc_s, e_s, l_s, svc_s = grid(0), grid(0), grid(0), grid(0)
        dq = np.zeros((V, K, 3), dtype=np.int64)
        if rows:
            a = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=9 * len(rows)).reshape(
                len(rows), 9
            )
            rv, rk = a[:, 0], a[:, 1]
            loc_s[rv, rk] = a[:, 2]
            e_s[rv, rk] = a[:, 3]
            l_s[rv, rk] = a[:, 4]
            svc_s[rv, rk] = a[:, 5]
            dq[rv, rk] = a[:, 6:9]

        # -- locations and legs -----------------------------------------------------------------
        loc = np.empty((V, P), dtype=np.int64)
        loc[:, :K] = loc_s
        loc[:, K] = 0
        pad = pos_[None, :] >= n[:, None]
        loc[pad] = np.broadcast_to(hd[:, 3:4], (V, P))[pad]  # end location at n and beyond
        pre_loc = np.empty((V, P), dtype=np.int64)
        pre_loc[:, 0] = hd[:, 1]
        pre_loc[:, 1:] = loc[:, :K]
        travel = problem.travel_s
        leg = travel[pre_loc, loc].astype(np.int64, copy=False)
        self.loc, self.pre_loc, self.leg = loc, pre_loc, leg

        # -- earliest-start schedule without a loop -------------------------------------------
        # departure d_k = max(d_{k-1} + leg_k, e_k) + svc_k. With C_k = sum_{k' <= k} (leg + svc),
        # d_k - C_k = max(d_{k-1} - C_{k-1}, e_k + svc_k - C_k), a running maximum:
        # d_k = C_k + max(t0, max_{k' <= k} (e_k' + svc_k' - C_k')).
        is_stop = pos_[None, :] < n[:, None]
        t0 = hd[:, 2]
        pre_dep = np.empty((V, P), dtype=np.int64)
        pre_dep[:, 0] = t0
        if K:
            stop_leg = np.where(is_stop[:, :K], leg[:, :K], 0)
            cum = np.cumsum(stop_leg + svc_s, axis=1)
            g = np.where(is_stop[:, :K], e_s + svc_s - cum, np.iinfo(np.int64).min // 2)
            run = np.maximum.accumulate(np.maximum(g, t0[:, None]), axis=1)
            pre_dep[:, 1:] = cum + run
        arr = pre_dep + leg
        start = arr.copy()
        if K:
            start[:, :K] = np.where(is_stop[:, :K], pre_dep[:, 1:] - svc_s, arr[:, :K])
        end_arr = arr[vv, n]
        wait = np.where(is_stop, start - arr, 0)
        self.arr, self.pre_dep, self.wait = arr, pre_dep, wait
        self.dep = pre_dep[:, 1:]  # dep[k] = departure from stop k (k < n)

        # -- loads ----------------------------------------------------------------------------
        load_before = np.empty((V, P, 3), dtype=np.int64)
        load_before[:, 0] = hd[:, 8:11]
        if K:
            np.cumsum(dq, axis=1, out=load_before[:, 1:])
            load_before[:, 1:] += hd[:, None, 8:11]
        self.load_before = load_before

        # -- window slack -----------------------------------------------------------------------
        stop_k = is_stop[:, :K]
        win_slack = np.full((V, P), -1.0)
        win_slack[:, :K] = np.where(stop_k, np.maximum(0, l_s - start[:, :K]), -1.0)
        win_slack[vv, n] = np.maximum(0, hd[:, 4] - end_arr)
        self.win_slack = win_slack

        wc = np.zeros((V, P + 1), dtype=np.int64)
        np.cumsum(wait, axis=1, out=wc[:, 1:])
        self.wc = wc
        # forward (window) slack by a suffix minimum
        val = np.where(valid, win_slack + wc[:, 1:], _INF)
        fwd = np.minimum.accumulate(val[:, ::-1], axis=1)[:, ::-1] - wc[:, :P]
        fwd[~valid] = -1.0
        self.fwd = fwd


def _push_delays(st: _Stack, v: np.ndarray, k: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Vectorised :meth:`RouteSlack.push_delay` for entries ``(v, k, delta)``."""
    K = st.K
    if K == 0 or len(v) == 0:
        return np.zeros(len(v), dtype=np.int64)
    m = np.arange(K)[None, :]
    wc = st.wc[v]  # (F, P + 1)
    w = wc[:, 1 : K + 1] - wc[np.arange(len(v)), k][:, None]  # W(k..m)
    sh = np.maximum(0, delta[:, None] - w)
    sh[(m < k[:, None]) | (m >= st.n[v][:, None])] = 0
    return sh.sum(axis=1)


def _generate_stacked(
    problem: Problem, st: _Stack, request: Request, *, only: Sequence[int] | None = None
) -> list[_Candidate]:
    """Every candidate the screens leave for the stacked vehicles; the same result as
    :func:`generate_insertions`.

    ``only``: restrict to these vehicle indices (when the stack holds every vehicle).
    """
    travel = problem.travel_s
    p, d = request.pickup, request.dropoff
    K = st.K
    P = K + 1
    V = len(st.vehicle_index)
    if V == 0:
        return []
    e_p, l_p = request.pickup_window.earliest_s, request.pickup_window.latest_s
    e_d, l_d = request.dropoff_window.earliest_s, request.dropoff_window.latest_s
    sp, sd = request.pickup_service_s, request.dropoff_service_s
    l_d = min(l_d, l_p + sp + request.max_ride_s)  # the latest drop-off any timing could give
    t_pd = int(travel[p, d])
    q = request.load.as_tuple()

    to_p = travel[st.pre_loc, p]
    p_to = travel[p, st.loc]
    to_d = travel[st.loc, d]
    d_to = travel[d, st.loc]

    load_ok = np.ones((V, P), dtype=bool)
    for dim in range(3):
        if q[dim] > 0:
            load_ok &= st.load_before[:, :, dim] <= (st.cap[:, dim] - q[dim])[:, None]

    a_p = st.pre_dep + to_p
    ok_p = st.valid & (a_p <= l_p) & load_ok & (np.arange(P)[None, :] >= st.first[:, None])
    if only is not None and len(only) < V:
        chosen = np.zeros(V, dtype=bool)
        chosen[np.searchsorted(st.vehicle_index, np.asarray(only, dtype=np.int64))] = True
        ok_p &= chosen[:, None]
    if not ok_p.any():
        return []
    b_p = np.maximum(a_p, e_p)
    dep_p = b_p + sp
    out: list[_Candidate] = []

    # -- drop-off right after the pickup ------------------------------------------------------
    b_d = np.maximum(dep_p + t_pd, e_d)
    delta = b_d + sd + d_to - st.arr
    ok0 = ok_p & (b_d <= l_d) & (delta <= st.fwd)
    vs, is_ = np.nonzero(ok0)
    if len(vs):
        added_v = (to_p + sp + t_pd + sd + d_to - st.leg)[vs, is_]
        added_d = _push_delays(st, vs, is_, delta[vs, is_])
        vi = st.vehicle_index[vs]
        out.extend(
            map(
                _Candidate._make,
                zip(
                    vi.tolist(), is_.tolist(), is_.tolist(), b_p[vs, is_].tolist(),
                    b_d[vs, is_].tolist(), added_v.tolist(), added_d.tolist(),
                ),
            )
        )  # fmt: skip
    if K == 0:
        return out

    # -- drop-off after old stop m (i <= m < n) -------------------------------------------------
    ii = np.arange(P)[None, :, None]
    mm = np.arange(K)[None, None, :]
    d1 = dep_p + p_to - st.arr  # push of the arrival at old stop i
    wc = st.wc
    w = wc[:, None, 1 : K + 1] - wc[:, :P, None]  # W(i..m), (V, P, K)
    shift = np.maximum(0, d1[:, :, None] - w)
    after = mm >= ii
    stop_ok = (shift <= st.win_slack[:, None, :K]) & load_ok[:, None, 1:]
    stop_ok |= ~after
    run_ok = np.logical_and.accumulate(stop_ok, axis=2)
    run_ok &= after & (mm < st.n[:, None, None]) & ok_p[:, :, None]
    if not run_ok.any():
        return out
    dep_m = st.dep[:, None, :K] + shift
    b_d2 = np.maximum(dep_m + to_d[:, None, :K], e_d)
    delta2 = b_d2 + sd + d_to[:, None, 1:] - st.arr[:, None, 1:]
    ok2 = run_ok & (b_d2 <= l_d) & (delta2 <= st.fwd[:, None, 1:])
    vs, is_, ms = np.nonzero(ok2)
    if len(vs):
        between = np.cumsum(np.where(after, shift, 0), axis=2)[vs, is_, ms]
        added_v = (to_p + sp + p_to - st.leg)[vs, is_] + (
            to_d[vs, ms] + sd + d_to[vs, ms + 1] - st.leg[vs, ms + 1]
        )
        added_d = between + _push_delays(st, vs, ms + 1, delta2[vs, is_, ms])
        vi = st.vehicle_index[vs]
        out.extend(
            map(
                _Candidate._make,
                zip(
                    vi.tolist(), is_.tolist(), (ms + 1).tolist(), b_p[vs, is_].tolist(),
                    b_d2[vs, is_, ms].tolist(), added_v.tolist(), added_d.tolist(),
                ),
            )
        )  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# 3. insertion cost
# --------------------------------------------------------------------------------------------


def insertion_cost(
    added_vehicle_s: int,
    added_delay_s: int,
    *,
    wait_s: int = 0,
    ride_s: int = 0,
    weights: InsertionWeights,
    feasible: bool = True,
) -> float:
    """Cost of one option; ``math.inf`` when it is infeasible.

    ``weights.vehicle_time x added_vehicle_s + weights.promised_delay x added_delay_s
    + weights.new_rider_wait x wait_s + weights.new_rider_ride x ride_s``.
    """
    if not feasible:
        return math.inf
    return (
        weights.vehicle_time * added_vehicle_s
        + weights.promised_delay * added_delay_s
        + weights.new_rider_wait * wait_s
        + weights.new_rider_ride * ride_s
    )


# --------------------------------------------------------------------------------------------
# 4. ranking
# --------------------------------------------------------------------------------------------


def _new_route(
    stops: Sequence[Stop], rid: str, i: int, j: int
) -> tuple[tuple[Stop, ...], int, int]:
    """Old ``stops`` with the pickup before old stop ``i`` and the drop-off before old stop ``j``."""
    pick, drop = Stop(rid, "pickup"), Stop(rid, "dropoff")
    route = (*stops[:i], pick, *stops[i:j], drop, *stops[j:])
    return route, i, j + 1


#: at most this many candidates of one vehicle are timed exactly (cheapest first) per search
MAX_EXACT_CHECKS = 64


def rank(
    problem: Problem,
    request: Request,
    candidates: Iterable[_Candidate],
    *,
    weights: InsertionWeights,
    max_options: int,
    max_checks: int = MAX_EXACT_CHECKS,
    old_starts: dict[int, tuple[int, ...]] | None = None,
) -> tuple[Insertion, ...]:
    """Best option per vehicle, cheapest first (ties: earlier pickup, then vehicle id).

    Candidates come from the screens (necessary conditions only). Per vehicle they are taken
    cheapest first by their estimated cost (delays measured on the earliest-start timing) and
    the whole new route is timed by the one scheduler, :func:`routing.schedule.evaluate`; the
    first whose route is feasible (least-time schedule exists, every window, ride limit,
    capacity, duration and shift end kept) is the vehicle's option, at most ``max_checks``
    tried per vehicle. The option's times come from that schedule; its ``added_delay_s`` is
    measured against the least-time schedule of the old route, and its ``cost`` recomputed
    from the measured figures. ``old_starts`` caches those old schedules by vehicle index
    between searches against the same plans (``PreparedPlans.starts``).
    """
    e_p = request.pickup_window.earliest_s
    sp = request.pickup_service_s
    wv, wd = weights.vehicle_time, weights.promised_delay
    ww, wr = weights.new_rider_wait, weights.new_rider_ride
    per_vehicle: dict[int, list[tuple[float, int, _Candidate]]] = {}
    for c in candidates:
        # insertion_cost(), inlined: this loop sees every candidate
        cost = (
            wv * c.added_vehicle_s
            + wd * c.added_delay_s
            + ww * (c.pickup_s - e_p)
            + wr * (c.dropoff_s - c.pickup_s - sp)
        )
        lst = per_vehicle.get(c.vehicle_index)
        if lst is None:
            per_vehicle[c.vehicle_index] = [(cost, c.pickup_s, c)]
        else:
            lst.append((cost, c.pickup_s, c))
    order = []
    for vi, lst in per_vehicle.items():
        lst.sort(key=lambda x: (x[0], x[1], x[2].i, x[2].j))
        order.append((lst[0][0], lst[0][1], problem.vehicles[vi].id, vi))
    order.sort()
    reqs = ChainMap({request.id: request}, cast(MutableMapping[str, Request], problem.requests))
    out: list[Insertion] = []
    for _, _, vid, vi in order:
        if len(out) >= max_options:
            break
        vehicle = problem.vehicles[vi]
        old = None if old_starts is None else old_starts.get(vi)
        if old is None:
            old = evaluate(problem, vehicle, vehicle.route).start_s
            if old_starts is not None:
                old_starts[vi] = old
        for _, _, c in per_vehicle[vi][:max_checks]:
            route, pi, di = _new_route(vehicle.route, request.id, c.i, c.j)
            new = evaluate(problem, vehicle, route, requests=reqs)
            if not new.feasible:
                continue
            starts = new.start_s
            kept = starts[: c.i] + starts[c.i + 1 : c.j + 1] + starts[c.j + 2 :]
            delay = sum(max(0, b - a) for a, b in zip(old, kept))
            pickup_s, dropoff_s = starts[pi], starts[di]
            out.append(
                Insertion(
                    vehicle_id=vid,
                    route=route,
                    cost=insertion_cost(
                        c.added_vehicle_s,
                        delay,
                        wait_s=pickup_s - e_p,
                        ride_s=dropoff_s - pickup_s - sp,
                        weights=weights,
                    ),
                    pickup_s=pickup_s,
                    dropoff_s=dropoff_s,
                    added_vehicle_s=c.added_vehicle_s,
                    added_delay_s=delay,
                    pickup_index=pi,
                    dropoff_index=di,
                )
            )
            break
    out.sort(key=lambda o: (o.cost, o.pickup_s, o.vehicle_id))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------


def _check_request(problem: Problem, request: Request) -> None:
    n = problem.travel_s.shape[0]
    if not (0 <= request.pickup < n and 0 <= request.dropoff < n):
        raise ValueError(f"request {request.id!r} refers to a location outside the matrix")
    if request.on_board:
        raise ValueError(f"request {request.id!r} is already on board; it cannot be inserted")
    if request.id not in problem.requests:
        return  # every stop in a route refers to a request in problem.requests
    for v in problem.vehicles:
        if v.route and any(s.request_id == request.id for s in v.route):
            raise ValueError(f"request {request.id!r} is already in the route of {v.id!r}")


def find_insertions(
    problem: Problem,
    request: Request,
    *,
    max_options: int = 5,
    weights: InsertionWeights = InsertionWeights(),
    check: bool = True,
    prepared: PreparedPlans | None = None,
) -> InsertionResult:
    """Cheapest ways to add ``request`` to the vehicles' current plans.

    Parameters
    ----------
    problem:
        ``vehicles`` with their current routes; ``requests`` holds every request already
        promised (their windows and max ride times stay hard). ``request`` need not be in it.
    request:
        The new request (in no route yet).
    max_options:
        At most this many options, at most one per vehicle.
    weights:
        Cost weights; see :class:`InsertionWeights`.
    check:
        Validate that the request is new and its locations exist (cheap).
    prepared:
        The same plans preprocessed by :class:`PreparedPlans` (must wrap this ``problem``);
        saves rebuilding each vehicle's slack when many requests are searched against one plan.

    Returns
    -------
    InsertionResult
        ``options`` cheapest first; when empty, ``cause`` is
        :attr:`~routing.model.UnservedCause.NO_VEHICLE_FITS` if the load exceeds every vehicle's
        capacity in some dimension, else
        :attr:`~routing.model.UnservedCause.NO_FEASIBLE_INSERTION`.
    """
    if max_options < 1:
        raise ValueError("max_options must be >= 1")
    if check:
        _check_request(problem, request)
    candidates, any_fits = filter_candidates(problem, request)
    if not any_fits:
        return InsertionResult((), UnservedCause.NO_VEHICLE_FITS)
    if prepared is not None and prepared.problem is not problem:
        raise ValueError("prepared plans belong to another problem")
    if prepared is not None:
        stack = prepared.stack()
        found = _generate_stacked(problem, stack, request, only=candidates)
    else:
        stack = _Stack(problem, candidates)
        found = _generate_stacked(problem, stack, request)
    options = rank(
        problem,
        request,
        found,
        weights=weights,
        max_options=max_options,
        old_starts=None if prepared is None else prepared.starts,
    )
    if not options:
        return InsertionResult((), UnservedCause.NO_FEASIBLE_INSERTION)
    return InsertionResult(options, None)


# --------------------------------------------------------------------------------------------
# alternatives and the offer policy
# --------------------------------------------------------------------------------------------


def shift_request(request: Request, offset_s: int) -> Request:
    """``request`` with both windows moved by ``offset_s`` seconds."""
    pw, dw = request.pickup_window, request.dropoff_window
    return replace(
        request,
        pickup_window=TimeWindow(pw.earliest_s + offset_s, pw.latest_s + offset_s),
        dropoff_window=TimeWindow(dw.earliest_s + offset_s, dw.latest_s + offset_s),
    )


def nearest_feasible_times(
    problem: Problem,
    request: Request,
    *,
    step_s: int = 900,
    horizon_s: int = 3 * 3600,
    count: int = 3,
    shift: Literal["both", "earlier", "later"] = "both",
    not_before_s: int | None = None,
    weights: InsertionWeights = InsertionWeights(),
) -> list[int]:
    """Nearest departure times at which the same trip could be served.

    Tries the request with both windows shifted by ``+-step_s, +-2 step_s, ...`` up to
    ``horizon_s`` (nearest first; at equal distance earlier first), and returns the shifted
    ``pickup_window.earliest_s`` of the first ``count`` that have a feasible insertion, in the
    order found. For an arrive-by request the caller applies the same offset
    (``time - request.pickup_window.earliest_s``) to the arrive-by time. The unshifted request is
    not tried.

    Parameters
    ----------
    step_s, horizon_s:
        Granularity and reach of the search, seconds (> 0).
    count:
        How many times to return at most.
    shift:
        ``"earlier"``, ``"later"`` or ``"both"``.
    not_before_s:
        Shifts whose pickup window would close before this time are skipped (default: the
        earliest vehicle start time, i.e. "now").
    """
    if step_s <= 0 or horizon_s <= 0 or count < 1:
        raise ValueError("step_s and horizon_s must be > 0 and count >= 1")
    if not_before_s is None:
        not_before_s = min((v.start_time_s for v in problem.vehicles), default=0)
    offsets: list[int] = []
    for k in range(1, horizon_s // step_s + 1):
        if shift in ("both", "earlier"):
            offsets.append(-k * step_s)
        if shift in ("both", "later"):
            offsets.append(k * step_s)
    out: list[int] = []
    prepared = PreparedPlans(problem)
    for off in offsets:
        if request.pickup_window.latest_s + off < not_before_s:
            continue
        shifted = shift_request(request, off)
        res = find_insertions(
            problem, shifted, max_options=1, weights=weights, check=False, prepared=prepared
        )
        if res.options:
            out.append(shifted.pickup_window.earliest_s)
            if len(out) >= count:
                break
    return out


def make_promise(
    insertion: Insertion, request: Request, *, pickup_window_s: int
) -> tuple[TimeWindow, int]:
    """The promise for a rider offered ``insertion``: pickup window and latest drop-off.

    Pickup window: ``[planned - w // 2, planned - w // 2 + w]`` with ``w = pickup_window_s``,
    clipped to the request's own pickup window (so it always contains the planned pickup).
    Latest drop-off: the promised pickup window's end + pickup service + ``max_ride_s``, capped
    at the request's latest drop-off; it is never before the planned drop-off.

    The returned route stays feasible under the promise, with the same times: the promised
    windows contain the least-time schedule's pickup and drop-off starts, and narrowing bounds
    that the least solution of the route's difference constraints already keeps leaves it the
    least solution.
    """
    if pickup_window_s < 0:
        raise ValueError("pickup_window_s must be >= 0")
    pw, dw = request.pickup_window, request.dropoff_window
    planned = insertion.pickup_s
    if not pw.contains(planned):
        raise ValueError("insertion does not belong to this request (pickup outside its window)")
    lo = max(pw.earliest_s, planned - pickup_window_s // 2)
    hi = min(pw.latest_s, lo + pickup_window_s)
    hi = max(hi, planned)
    latest_drop = min(dw.latest_s, hi + request.pickup_service_s + request.max_ride_s)
    latest_drop = max(latest_drop, insertion.dropoff_s)
    return TimeWindow(lo, hi), latest_drop


def promised_request(request: Request, promise: tuple[TimeWindow, int]) -> Request:
    """``request`` with the windows of ``promise`` (as stored for a confirmed booking)."""
    pickup_window, latest_drop = promise
    dw = request.dropoff_window
    return replace(
        request,
        pickup_window=pickup_window,
        dropoff_window=TimeWindow(min(dw.earliest_s, latest_drop), latest_drop),
    )
