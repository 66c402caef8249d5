"""Public entry of the optimiser: plan (or re-plan) every vehicle's route within a time budget.

Search = OR-Tools routing model (``routing.ortools_solver``) driven as the repair engine of a
large-neighbourhood search:

1. first solution: the warm start (the plan being followed) if OR-Tools accepts it, else
   parallel cheapest insertion + guided local search for a slice of the budget;
2. ruin & recreate until the budget is spent: remove a set of related requests (close in space
   and time, or one whole route, or random), read the rest back with
   ``ReadAssignmentFromRoutes``, let OR-Tools re-insert and improve with a short local search,
   accept when not worse (plus a small random-walk allowance), keep the best;
3. extract: every route gets its own schedule (earliest feasible, pickups delayed to cut ride
   time) and is verified; unserved requests come back with a cause.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Mapping, Sequence

from routing import ortools_solver as ort
from routing.model import (
    Objective,
    Problem,
    Route,
    Solution,
    Stop,
    UnservedCause,
)

log = logging.getLogger(__name__)


def default_penalty(problem: Problem) -> int:
    """A penalty per unserved request far above any detour: 100 x the largest travel time x
    (number of requests + 2), so serving is always preferred when feasible."""
    big = int(problem.travel_s.max()) if problem.travel_s.size else 1
    return max(1, big) * 100 * (len(problem.requests) + 2)


def optimise(
    problem: Problem,
    *,
    time_limit_s: float,
    seed: int = 0,
    warm_start: Mapping[str, Sequence[Stop]] | None = None,
    unserved_penalty: int | None = None,
    lns: bool = True,
) -> Solution:
    """Plan routes for ``problem`` minimising total travel, serving as many requests as possible.

    Parameters
    ----------
    problem:
        Vehicles (with on-board riders and current plans), requests, integer travel matrix.
    time_limit_s:
        Wall-clock budget in seconds (the call returns within about this time plus model
        building and extraction, a few tens of milliseconds).
    seed:
        Random seed of the neighbourhood choice and node ordering; same seed, same machine
        speed -> same search.
    warm_start:
        Vehicle id -> stop sequence to start from (defaults to each vehicle's ``route``). If
        OR-Tools rejects it (it breaks a constraint), the search starts from scratch and the
        promised requests it could not keep come back as ``PROMISE_INFEASIBLE``.
    unserved_penalty:
        Objective penalty per unserved request (travel units); default ``default_penalty``.
    lns:
        ``False`` runs the plain OR-Tools model (first solution + GLS) for the whole budget.

    Returns
    -------
    Solution
        Routes with schedules (integer times), unserved requests with causes, objective parts
        (``travel`` = summed integer travel, ``unserved_penalty``).
    """
    t_start = time.perf_counter()
    deadline = t_start + max(0.05, float(time_limit_s))
    penalty = default_penalty(problem) if unserved_penalty is None else int(unserved_penalty)
    rng = random.Random(seed)

    # requests whose load fits no vehicle never enter the model
    unserved: dict[str, UnservedCause] = {}
    reqs = problem.requests
    onboard = {rid for v in problem.vehicles for rid in v.onboard}
    model_reqs = {}
    for rid, r in reqs.items():
        if rid not in onboard and not ort.request_fits_somewhere(problem, r):
            unserved[rid] = UnservedCause.NO_VEHICLE_FITS
        else:
            model_reqs[rid] = r
    sub = Problem(problem.vehicles, model_reqs, problem.travel_s) if unserved else problem

    if warm_start is None and any(v.route for v in problem.vehicles):
        warm_start = {v.id: v.route for v in problem.vehicles}
    promised = {s.request_id for stops in (warm_start or {}).values() for s in stops}

    built = ort.build(sub, unserved_penalty=penalty, seed=seed)
    remaining = deadline - time.perf_counter()
    first_share = remaining if not lns else max(0.05, min(remaining * 0.3, 2.0))
    params = ort.search_parameters(first_share, first_solution="parallel_cheapest_insertion")
    init = ort.node_routes_from_stops(built, warm_start) if warm_start else None
    res = ort.solve(built, params, initial_routes=init)
    if res.routes is None and any(v.onboard for v in sub.vehicles):
        log.warning("no plan keeps every on-board rider's promise; relaxing their drop-off times")
        relaxed = _relax_onboard(sub)
        built = ort.build(relaxed, unserved_penalty=penalty, seed=seed)
        res = ort.solve(built, ort.search_parameters(max(0.05, deadline - time.perf_counter())))
    if res.routes is None:
        for rid in model_reqs:
            unserved[rid] = UnservedCause.TIME_LIMIT
        return Solution((), unserved, Objective(0, 0, penalty * len(unserved)))

    best = res.routes
    best_cost = _cost(built, best, penalty)
    if lns:
        best, best_cost = _lns(built, best, best_cost, penalty, deadline, rng)

    return _extract(problem, built, best, unserved, promised, penalty, res.warm_start_rejected)


# ---------------------------------------------------------------------------------------------


def _cost(built: ort.Built, routes: list[list[int]], penalty: int) -> int:
    p = built.problem
    travel = 0
    served = 0
    for k, seq in enumerate(routes):
        travel += ort.route_travel(p, k, ort.node_stops(built, seq))
        served += sum(1 for n in seq if built.nodes.kind[n] == ort.PICKUP)
    return travel + penalty * (len(built.optional) - served)


def _lns(built, current, current_cost, penalty, deadline, rng):
    """Ruin & recreate around OR-Tools. Returns (best routes, best cost)."""
    nodes = built.nodes
    p = built.problem
    manager = built.manager
    best, best_cost = current, current_cost
    n_req = len(built.optional)
    if n_req < 2:
        return best, best_cost
    # request "position": pickup/dropoff locations and window midpoints, for relatedness
    info = {}
    for rid in built.optional:
        r = p.requests[rid]
        info[rid] = (
            r.pickup,
            r.dropoff,
            (r.pickup_window.earliest_s + min(r.pickup_window.latest_s, r.dropoff_window.latest_s)) // 2,
        )
    tt = p.travel_s
    time_scale = max(1, int(tt.max()))
    it = 0
    temp = 0.002 * current_cost / max(1, n_req)  # small random-walk allowance
    while time.perf_counter() < deadline - 0.02:
        it += 1
        served = [
            nodes.request[n] for seq in current for n in seq if nodes.kind[n] == ort.PICKUP
        ]
        if not served:
            break
        q = rng.randint(max(2, n_req // 10), max(3, min(n_req // 3, 30)))
        mode = rng.random()
        if mode < 0.6:  # related (Shaw) removal
            seed_r = rng.choice(served)
            a = info[seed_r]

            def rel(rid, a=a):
                b = info[rid]
                return (
                    tt[a[0], b[0]] + tt[a[1], b[1]] + abs(a[2] - b[2]) * 0.5
                ) * (0.8 + 0.4 * rng.random())

            removed = set(sorted(served, key=rel)[:q])
        elif mode < 0.8:  # one or two whole routes
            used = [k for k, seq in enumerate(current) if seq]
            ks = rng.sample(used, min(len(used), rng.choice((1, 2))))
            removed = {nodes.request[n] for k in ks for n in current[k] if nodes.request[n] in info}
        else:
            removed = set(rng.sample(served, min(q, len(served))))
        partial = [
            [manager.NodeToIndex(n) for n in seq if nodes.request[n] not in removed] for seq in current
        ]
        left = deadline - time.perf_counter()
        if left < 0.05:
            break
        tl = min(left, 0.25 + 0.01 * len(removed))
        params = ort.search_parameters(tl, metaheuristic=rng.choice(("gls", "greedy")))
        res = ort.solve(built, params, initial_routes=partial)
        if res.routes is None:
            continue
        cost = _cost(built, res.routes, penalty)
        log.debug("lns it %d removed %d mode %.2f cost %d cur %d best %d t %.2f used %s", it, len(removed), mode, cost, current_cost, best_cost, res.seconds, res.warm_start_used)
        if cost < best_cost:
            best, best_cost = res.routes, cost
        if cost <= current_cost + temp * rng.random():
            current, current_cost = res.routes, cost
        elif rng.random() < 0.05:
            current, current_cost = best, best_cost
    log.debug("lns: %d iterations, best %d", it, best_cost)
    return best, best_cost


def _relax_onboard(problem: Problem) -> Problem:
    """Same problem with the latest drop-off of every on-board rider opened to the shift end."""
    from dataclasses import replace

    from routing.model import TimeWindow

    reqs = dict(problem.requests)
    for v in problem.vehicles:
        for rid in v.onboard:
            r = reqs.get(rid)
            if r is None:
                continue
            reqs[rid] = replace(
                r,
                dropoff_window=TimeWindow(r.dropoff_window.earliest_s, max(v.shift_end_s, r.dropoff_window.latest_s)),
                max_ride_s=max(r.max_ride_s, v.shift_end_s),
            )
    return Problem(problem.vehicles, reqs, problem.travel_s)


def _extract(problem, built, routes, unserved, promised, penalty, warm_rejected) -> Solution:
    """Schedules, verification and unserved causes."""
    nodes = built.nodes
    out: list[Route] = []
    travel = 0
    served: set[str] = set()
    for k, seq in enumerate(routes):
        stops = ort.node_stops(built, seq)
        route = ort.scheduled_route(problem, k, stops)
        if route is None:
            # OR-Tools accepted it but our own scheduler cannot time it: drop the new requests
            # of this route one by one until it can be timed (on-board drop-offs stay).
            log.warning("route %s could not be scheduled; dropping requests", problem.vehicles[k].id)
            keep = list(stops)
            for rid in [s.request_id for s in stops if s.kind == "pickup"][::-1]:
                keep = [s for s in keep if s.request_id != rid]
                unserved[rid] = UnservedCause.NO_FEASIBLE_INSERTION
                route = ort.scheduled_route(problem, k, keep)
                if route is not None:
                    break
            if route is None:
                route = ort.scheduled_route(problem, k, [s for s in keep if s.kind == "dropoff"])
            if route is None:
                continue
            stops = [s.stop for s in route.stops]
        if route.stops or problem.vehicles[k].onboard:
            out.append(route)
        travel += ort.route_travel(problem, k, stops)
        served.update(s.request_id for s in stops)
    for rid in problem.requests:
        if rid in served or rid in unserved:
            continue
        unserved[rid] = (
            UnservedCause.PROMISE_INFEASIBLE if rid in promised else UnservedCause.NO_FEASIBLE_INSERTION
        )
    del nodes, warm_rejected
    return Solution(tuple(out), unserved, Objective(travel=travel, ride=0, unserved_penalty=penalty * len(unserved)))
