"""Public entry of the optimiser: plan (or re-plan) every vehicle's route within a time budget.

1. first plan: the warm start (the plan being followed) if OR-Tools accepts it, else OR-Tools'
   parallel cheapest insertion (``routing.ortools_solver``; every request optional with a large
   penalty), stopping at the first solution;
2. improvement until the budget is spent: the compiled ruin-and-recreate search of
   ``routing.lns`` (related / string / random / route / worst removal, greedy-with-blinks or
   regret insertion proved by the exact schedule, annealing in rounds restarting from the best);
3. extract: every route gets its own schedule (earliest feasible, pickups delayed to cut ride
   time) and is verified; unserved requests come back with a cause.

``optimise(..., lns=False)`` runs the plain OR-Tools model (first solution + guided local search
for the whole budget), kept as the baseline the benchmarks compare against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np

from routing import lns as ruin_recreate
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

#: most of the budget OR-Tools may take to build the first plan (it stops at the first one)
FIRST_SHARE = 0.5
#: seconds kept back from the budget for extracting and timing the routes
EXTRACT_RESERVE_S = 0.02


def warm_up() -> float:
    """Compile the ruin-and-recreate search (or load it from numba's cache); seconds taken."""
    return ruin_recreate.warm_up()


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
    max_iterations: int | None = None,
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
    max_iterations:
        Stop the ruin-and-recreate phase after this many iterations instead of at the
        deadline (the deadline still applies); with it, the same seed gives the same plan.

    Returns
    -------
    Solution
        Routes with schedules (integer times), unserved requests with causes, objective parts
        (``travel`` = summed integer travel, ``unserved_penalty``).
    """
    t_start = time.perf_counter()
    deadline = t_start + max(0.05, float(time_limit_s))
    penalty = default_penalty(problem) if unserved_penalty is None else int(unserved_penalty)

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
    # with the search, OR-Tools only builds the first plan (and stops there); without it,
    # OR-Tools' guided local search gets the whole budget
    first_share = remaining if not lns else max(0.05, remaining * FIRST_SHARE)
    params = ort.search_parameters(
        first_share,
        first_solution="parallel_cheapest_insertion",
        solution_limit=1 if lns else None,
    )
    init = ort.node_routes_from_stops(built, warm_start) if warm_start else None
    res = ort.solve(built, params, initial_routes=init)
    timing = problem
    if res.routes is None and any(v.onboard for v in sub.vehicles):
        # Riders on board must be dropped by their vehicle; if no plan can do it in time, plan
        # with their latest drop-off opened and let the checker report the late drop-off.
        log.warning("no plan keeps every on-board rider's promise; relaxing their drop-off times")
        relaxed = _relax_onboard(sub)
        timing = Problem(
            problem.vehicles, {**problem.requests, **relaxed.requests}, problem.travel_s
        )
        built = ort.build(relaxed, unserved_penalty=penalty, seed=seed)
        res = ort.solve(built, ort.search_parameters(max(0.05, deadline - time.perf_counter())))
    if res.routes is None:
        for rid in model_reqs:
            unserved[rid] = UnservedCause.TIME_LIMIT
        return Solution((), unserved, Objective(0, 0, penalty * len(unserved)))

    best = res.routes
    best_cost = _cost(built, best, penalty)
    if lns:
        res_lns = ruin_recreate.improve(
            lns_instance(built, penalty),
            best,
            deadline=deadline - EXTRACT_RESERVE_S,
            seed=seed,
            max_iterations=max_iterations,
        )
        log.debug(
            "lns: %d iterations, cost %d -> %d, operators %s",
            res_lns.iterations,
            best_cost,
            res_lns.cost,
            res_lns.stats,
        )
        if res_lns.cost <= best_cost:
            best, best_cost = res_lns.routes, res_lns.cost

    return _extract(problem, timing, built, best, unserved, promised, penalty)


# ---------------------------------------------------------------------------------------------


def _cost(built: ort.Built, routes: list[list[int]], penalty: int) -> int:
    p = built.problem
    travel = 0
    served = 0
    for k, seq in enumerate(routes):
        travel += ort.route_travel(p, k, ort.node_stops(built, seq))
        served += sum(1 for n in seq if built.nodes.kind[n] == ort.PICKUP)
    return travel + penalty * (len(built.optional) - served)


def lns_instance(built: ort.Built, penalty: int) -> ruin_recreate.Instance:
    """The flat arrays of :mod:`routing.lns` for an OR-Tools model's node table.

    Windows are narrowed by what each request's own rules imply (``tightened_windows``): the
    insertion screen then prunes more positions, and no feasible plan is lost."""
    nodes = built.nodes
    p = built.problem
    n = len(nodes.location)
    loc = np.asarray(nodes.location, dtype=np.int64)
    arc = np.ascontiguousarray(np.asarray(p.travel_s, dtype=np.int64)[np.ix_(loc, loc)])
    lo = np.asarray(nodes.earliest, dtype=np.int64)
    hi = np.asarray(nodes.latest, dtype=np.int64)
    kind = np.full(n, ruin_recreate.OTHER, dtype=np.int64)
    kind[[i for i in range(n) if nodes.kind[i] == ort.PICKUP]] = ruin_recreate.PICK
    kind[[i for i in range(n) if nodes.kind[i] == ort.DROPOFF]] = ruin_recreate.DROP
    partner = np.full(n, -1, dtype=np.int64)
    ride = np.zeros(n, dtype=np.int64)
    load = np.zeros((n, 3), dtype=np.int64)
    req_of = np.full(n, -1, dtype=np.int64)
    rids = list(built.optional)
    pick = np.asarray([nodes.pickup_node[r] for r in rids], dtype=np.int64)
    drop = np.asarray([nodes.dropoff_node[r] for r in rids], dtype=np.int64)
    for rid, dn in nodes.dropoff_node.items():
        load[dn] = [-x for x in p.requests[rid].load.as_tuple()]
    for i, rid in enumerate(rids):
        r = p.requests[rid]
        pn, dn = int(pick[i]), int(drop[i])
        (p_lo, p_hi), (d_lo, d_hi) = ort.tightened_windows(p, r)
        lo[pn], hi[pn] = max(lo[pn], p_lo), min(hi[pn], p_hi)
        lo[dn], hi[dn] = max(lo[dn], d_lo), min(hi[dn], d_hi)
        partner[pn], partner[dn] = dn, pn
        ride[dn] = r.max_ride_s + r.pickup_service_s
        load[pn] = r.load.as_tuple()
        req_of[pn] = req_of[dn] = i
    vehicles = p.vehicles
    init_load = np.asarray(
        [
            [
                sum(p.requests[r].load.as_tuple()[d] for r in v.onboard if r in p.requests)
                for d in range(3)
            ]
            for v in vehicles
        ],
        dtype=np.int64,
    ).reshape(len(vehicles), 3)
    # relatedness (Shaw): pickups close, drop-offs close, windows close
    mid = (lo[pick] + hi[drop]) / 2.0
    rel = arc[np.ix_(pick, pick)] + arc[np.ix_(drop, drop)] + 0.5 * np.abs(mid[:, None] - mid)
    np.fill_diagonal(rel, -1.0)
    order = np.argsort(rel, axis=1, kind="stable")[:, 1:] if len(rids) else np.zeros((0, 0))
    return ruin_recreate.Instance(
        arc=arc,
        svc=np.asarray(nodes.service, dtype=np.int64),
        lo=lo,
        hi=hi,
        kind=kind,
        partner=partner,
        ride=ride,
        load=load,
        req_of=req_of,
        pick=pick,
        drop=drop,
        starts=np.asarray(built.starts, dtype=np.int64),
        ends=np.asarray(built.ends, dtype=np.int64),
        cap=np.asarray([v.capacity.as_tuple() for v in vehicles], dtype=np.int64).reshape(
            len(vehicles), 3
        ),
        init_load=init_load,
        dur=np.asarray(
            [-1 if v.max_route_duration_s is None else v.max_route_duration_s for v in vehicles],
            dtype=np.int64,
        ),
        related=np.ascontiguousarray(order, dtype=np.int64),
        penalty=int(penalty),
    )


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
                dropoff_window=TimeWindow(
                    r.dropoff_window.earliest_s, max(v.shift_end_s, r.dropoff_window.latest_s)
                ),
                max_ride_s=max(r.max_ride_s, v.shift_end_s),
            )
    return Problem(problem.vehicles, reqs, problem.travel_s)


def _extract(problem, timing, built, routes, unserved, promised, penalty) -> Solution:
    """Schedules (computed on ``timing``: the problem, or its on-board-relaxed copy),
    verification and unserved causes."""
    nodes = built.nodes
    out: list[Route] = []
    travel = 0
    served: set[str] = set()
    for k, seq in enumerate(routes):
        stops = ort.node_stops(built, seq)
        route = ort.scheduled_route(timing, k, stops)
        if route is None:
            # OR-Tools accepted it but our own scheduler cannot time it: drop the new requests
            # of this route one by one until it can be timed (on-board drop-offs stay).
            log.warning(
                "route %s could not be scheduled; dropping requests", problem.vehicles[k].id
            )
            keep = list(stops)
            for rid in [s.request_id for s in stops if s.kind == "pickup"][::-1]:
                keep = [s for s in keep if s.request_id != rid]
                unserved[rid] = UnservedCause.NO_FEASIBLE_INSERTION
                route = ort.scheduled_route(timing, k, keep)
                if route is not None:
                    break
            if route is None:
                route = ort.scheduled_route(timing, k, [s for s in keep if s.kind == "dropoff"])
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
            UnservedCause.PROMISE_INFEASIBLE
            if rid in promised
            else UnservedCause.NO_FEASIBLE_INSERTION
        )
    del nodes
    return Solution(
        tuple(out),
        unserved,
        Objective(travel=travel, ride=0, unserved_penalty=penalty * len(unserved)),
    )
