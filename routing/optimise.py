"""Public entry of the optimiser: plan (or re-plan) every vehicle's route within a time budget.

1. first plan: the warm start (the plan being followed) if OR-Tools accepts it, else OR-Tools'
   parallel cheapest insertion (``routing.ortools_solver``; every request optional with a large
   penalty), stopping at the first solution;
2. improvement until the budget is spent: the compiled ruin-and-recreate search of
   ``routing.lns`` (related / string / random / route / worst removal, greedy-with-blinks or
   regret insertion proved by the exact schedule, annealing in rounds restarting from the best);
3. extract: every route is timed by the one scheduler (``routing.schedule.evaluate``, the
   least-time schedule; the search proved each route with the same compiled function);
   unserved requests come back with a cause.

Promises are never relaxed here: when the riders on board (or pinned pickups) cannot all be
served in time, no plan is made and the result says so (``PROMISE_INFEASIBLE``, see
:func:`optimise`); the service layer relaxes a broken promise explicitly
(``transit.planning.relax_to_order``, ``relax_broken``) and plans again.

``optimise(..., lns=False)`` runs the plain OR-Tools model (first solution + guided local search
for the whole budget), kept as the baseline the benchmarks compare against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

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
    rider_due_s,
    route_travel_s,
)
from routing.schedule import evaluate, plan_rider_cost

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
        When no plan at all serves every rider on board and every pinned pickup in time, the
        result keeps each vehicle's current ``route`` (timed by ``evaluate``, violations and
        all) and lists those riders of the vehicles whose route cannot be timed as
        ``PROMISE_INFEASIBLE`` in ``unserved`` (requests in no current route as
        ``TIME_LIMIT``): the cause as data, never a changed window.
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
    sub = replace(problem, requests=model_reqs) if unserved else problem

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
    routes = res.routes
    if routes is None and warm_start and lns and _timed(sub, warm_start):
        # OR-Tools found no plan in its short share (it also refuses a warm start its own model
        # judges infeasible), but the plan the vehicles follow is feasible under the one
        # scheduler: the compiled search starts from it instead of giving the re-plan up.
        log.info("OR-Tools found no first plan; the search starts from the current plan")
        routes = [[built.manager.IndexToNode(i) for i in seq] for seq in init or []]
    if routes is None and any(v.onboard or v.pinned for v in sub.vehicles):
        log.warning("no plan keeps every on-board rider's and pinned pickup's promise")
        return _promise_infeasible(problem, penalty)
    if routes is None:
        for rid in model_reqs:
            unserved[rid] = UnservedCause.TIME_LIMIT
        return Solution((), unserved, Objective(0, 0, penalty * len(unserved)))

    best = routes
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
        # (compared on the search's own objective, which adds the riders' term when it is on)
        if res_lns.cost <= res_lns.start_cost:
            best, best_cost = res_lns.routes, res_lns.cost

    return _extract(problem, built, best, unserved, promised, penalty)


# ---------------------------------------------------------------------------------------------


def _timed(problem: Problem, plan: Mapping[str, Sequence[Stop]]) -> bool:
    """Every vehicle's route of ``plan`` exists and is feasible under the one scheduler."""
    try:
        return all(evaluate(problem, v, plan.get(v.id, ())).feasible for v in problem.vehicles)
    except KeyError:  # a stop of a request the model left out
        return False


def _cost(built: ort.Built, routes: list[list[int]], penalty: int) -> int:
    p = built.problem
    travel = 0
    served = 0
    optional = set(built.optional)
    for k, seq in enumerate(routes):
        travel += route_travel_s(p, p.vehicles[k], ort.node_stops(built, seq))
        served += sum(
            1
            for n in seq
            if built.nodes.kind[n] == ort.PICKUP and built.nodes.request[n] in optional
        )
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
    # pinned pickups: timed and loaded like any pickup, never removed (no request index) and
    # kept first (``pinned`` = how many leading stops of each route are fixed)
    for v in p.vehicles:
        for rid in v.pinned:
            if rid not in nodes.pickup_node:
                continue
            r = p.requests[rid]
            pn, dn = nodes.pickup_node[rid], nodes.dropoff_node[rid]
            partner[pn], partner[dn] = dn, pn
            ride[dn] = r.max_ride_s + r.pickup_service_s
            load[pn] = r.load.as_tuple()
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
        pinned=np.asarray([len(v.pinned) for v in vehicles], dtype=np.int64),
        **_rider_arrays(built),
    )


def _rider_arrays(built: ort.Built) -> dict[str, np.ndarray]:
    """The riders' term for :mod:`routing.lns`, as OR-Tools has it (``ortools_solver.build``):
    the weight and earliest possible start at every rider's drop-off node; none at weight 0."""
    p, nodes = built.problem, built.nodes
    w = int(p.rider_delay_weight)
    if w <= 0:
        return {}
    n = len(nodes.location)
    rider_w = np.zeros(n, dtype=np.int64)
    rider_due = np.zeros(n, dtype=np.int64)
    for rid, dn in nodes.dropoff_node.items():
        due = rider_due_s(p, p.requests[rid])
        if due is not None:
            rider_w[dn], rider_due[dn] = w, due
    return {"rider_w": rider_w, "rider_due": rider_due}


def _promise_infeasible(problem: Problem, penalty: int) -> Solution:
    """The current plan kept as it is, timed by the one scheduler; the riders on board and the
    pinned pickups of every vehicle whose route cannot be timed are listed as
    ``PROMISE_INFEASIBLE``, requests in no current route as ``TIME_LIMIT``."""
    out: list[Route] = []
    unserved: dict[str, UnservedCause] = {}
    travel = 0
    for v in problem.vehicles:
        sched = evaluate(problem, v, v.route)
        if not sched.feasible:
            for rid in (*v.onboard, *v.pinned):
                unserved[rid] = UnservedCause.PROMISE_INFEASIBLE
        if v.route or v.onboard:
            out.append(sched.to_route(v.id))
        travel += route_travel_s(problem, v, v.route)
    routed = {s.request_id for v in problem.vehicles for s in v.route}
    for rid in problem.requests:
        if rid not in routed and rid not in unserved:
            unserved[rid] = UnservedCause.TIME_LIMIT  # not planned: no plan was made
    return Solution(
        tuple(out),
        unserved,
        Objective(travel=travel, ride=0, unserved_penalty=penalty * len(unserved)),
    )


def _extract(problem, built, routes, unserved, promised, penalty) -> Solution:
    """Time every route with the one scheduler; unserved causes."""
    out: list[Route] = []
    travel = 0
    served: set[str] = set()
    for k, seq in enumerate(routes):
        vehicle = problem.vehicles[k]
        stops = ort.node_stops(built, seq)
        sched = evaluate(problem, vehicle, stops)
        if not sched.feasible:
            # the search proved every route with the same scheduler, so this is a bug; drop the
            # new requests of this route one by one (riders on board and pinned pickups stay)
            log.error("route %s could not be timed; dropping requests", vehicle.id)
            fixed = set(vehicle.pinned)
            for rid in [s.request_id for s in stops if s.kind == "pickup"][::-1]:
                if rid in fixed:
                    continue
                stops = [s for s in stops if s.request_id != rid]
                unserved[rid] = UnservedCause.NO_FEASIBLE_INSERTION
                sched = evaluate(problem, vehicle, stops)
                if sched.feasible:
                    break
        if stops or vehicle.onboard:
            out.append(sched.to_route(vehicle.id))
        travel += route_travel_s(problem, vehicle, stops)
        served.update(s.request_id for s in stops)
    for rid in problem.requests:
        if rid in served or rid in unserved:
            continue
        unserved[rid] = (
            UnservedCause.PROMISE_INFEASIBLE
            if rid in promised
            else UnservedCause.NO_FEASIBLE_INSERTION
        )
    ride = plan_rider_cost(problem, {r.vehicle_id: [s.stop for s in r.stops] for r in out})
    return Solution(
        tuple(out),
        unserved,
        Objective(travel=travel, ride=ride, unserved_penalty=penalty * len(unserved)),
    )
