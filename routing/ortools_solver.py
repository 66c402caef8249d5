"""The one module that imports OR-Tools: build -> solve -> extract for the dial-a-ride problem.

The model (see ``docs/optimiser.md``):

* one routing node per vehicle start, per vehicle end, per pickup and per drop-off (a drop-off
  only for a request already on board). Nodes carry a location index into ``problem.travel_s``;
  several nodes may share a location.
* arc cost = integer travel time; time transit = service at the origin node + travel time.
* with ``Problem.rider_delay_weight`` > 0, each rider's drop-off gets a soft upper bound at its
  earliest possible start (``routing.model.rider_due_s``) with that weight: the riders' term.
* ``AddPickupAndDelivery`` + same-vehicle + precedence for every pair.
* one capacity dimension per load dimension in use (seats, wheelchairs, parcels).
* maximum ride time as ``AddNodePrecedence(dropoff, pickup, -(L + service_pickup))`` on the time
  dimension, i.e. ``T(pickup) >= T(dropoff) - L - s(pickup)`` (lets local search work, unlike a
  ``solver.Add`` on the cumul variables).
* maximum route duration as a span upper bound, shift end as the end-node cumul upper bound.
* on-board riders: drop-off restricted to their vehicle and mandatory, start load = what is on
  board, latest drop-off = ``picked_up_at_s + max_ride_s``.
* optional requests with a penalty (``AddDisjunction`` over the pair, cardinality 2).
* pinned pickups (``Vehicle.pinned``): mandatory, vehicle variable fixed, and the next-variable
  chain start -> pinned pickups fixed, so they stay the vehicle's first stops in order.

Only integer callbacks/matrices are used (a float callback silently zeroes costs). The API used
here exists in OR-Tools 9.12-9.15 (``ortools.constraint_solver.pywrapcp``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.constraint_solver import (
    pywrapcp,
    routing_enums_pb2,
    routing_ils_pb2,
)
from ortools.util import optional_boolean_pb2

from routing.model import (
    DIMENSIONS,
    Problem,
    Request,
    Stop,
    rider_due_s,
)

log = logging.getLogger(__name__)

EXTRA_CP = True

#: Node kinds of the OR-Tools model.
START, END, PICKUP, DROPOFF = 0, 1, 2, 3

FIRST_SOLUTION = {
    "parallel_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    "local_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION,
    "global_cheapest_arc": routing_enums_pb2.FirstSolutionStrategy.GLOBAL_CHEAPEST_ARC,
    "path_cheapest_arc": routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC,
    "savings": routing_enums_pb2.FirstSolutionStrategy.SAVINGS,
    "automatic": routing_enums_pb2.FirstSolutionStrategy.AUTOMATIC,
}
METAHEURISTIC = {
    "gls": routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    "sa": routing_enums_pb2.LocalSearchMetaheuristic.SIMULATED_ANNEALING,
    "tabu": routing_enums_pb2.LocalSearchMetaheuristic.TABU_SEARCH,
    "greedy": routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT,
}


@dataclass
class NodeTable:
    """The flat node layout of one OR-Tools model (index = OR-Tools node index)."""

    location: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    request: list[str | None] = field(default_factory=list)
    service: list[int] = field(default_factory=list)
    earliest: list[int] = field(default_factory=list)
    latest: list[int] = field(default_factory=list)
    vehicle: list[int] = field(default_factory=list)  # owning vehicle for start/end/on-board nodes
    pickup_node: dict[str, int] = field(default_factory=dict)
    dropoff_node: dict[str, int] = field(default_factory=dict)

    def add(self, loc, kind, req, service, earliest, latest, vehicle=-1) -> int:
        self.location.append(int(loc))
        self.kind.append(kind)
        self.request.append(req)
        self.service.append(int(service))
        self.earliest.append(int(earliest))
        self.latest.append(int(latest))
        self.vehicle.append(vehicle)
        return len(self.location) - 1


@dataclass
class Built:
    """An OR-Tools model ready to solve, with the tables to translate back."""

    problem: Problem
    nodes: NodeTable
    starts: list[int]
    ends: list[int]
    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    time_dim: pywrapcp.RoutingDimension
    optional: list[str]  # request ids that may be left unserved
    horizon: int
    keep_alive: list = field(default_factory=list)  # callbacks must outlive the model
    closed: bool = False
    solved: bool = False


@dataclass
class SolveResult:
    """Node sequences (OR-Tools node numbers, depots excluded) per vehicle, or None."""

    routes: list[list[int]] | None
    objective: int | None
    status: int
    warm_start_used: bool
    warm_start_rejected: bool
    seconds: float


def _horizon(problem: Problem) -> int:
    h = max(v.shift_end_s for v in problem.vehicles)
    for r in problem.requests.values():
        h = max(h, r.pickup_window.latest_s, r.dropoff_window.latest_s)
    return int(h) + 1


def tightened_windows(problem: Problem, r: Request) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pickup and drop-off windows implied by the request's own rules (DARP preprocessing).

    With t = travel(pickup, dropoff), s = pickup service, L = max ride:
    pickup in [e_d - s - L, l_d - s - t], drop-off in [e_p + s + t, l_p + s + L], and both
    reachable from some vehicle start and able to reach some vehicle end before its shift
    ends. Returns the original windows if the tightened ones would be empty (the request is
    then simply not servable and ends up unserved).
    """
    tt = problem.travel_s
    t = int(tt[r.pickup, r.dropoff])
    s, L = r.pickup_service_s, r.max_ride_s
    reach = min(v.start_time_s + int(tt[v.start_location, r.pickup]) for v in problem.vehicles)
    leave = max(
        v.shift_end_s - r.dropoff_service_s - int(tt[r.dropoff, v.end_location])
        for v in problem.vehicles
    )
    p_lo, p_hi = max(r.pickup_window.earliest_s, reach), r.pickup_window.latest_s
    d_lo, d_hi = r.dropoff_window.earliest_s, min(r.dropoff_window.latest_s, leave)
    for _ in range(2):
        p_lo = max(p_lo, d_lo - s - L)
        p_hi = min(p_hi, d_hi - s - t)
        d_lo = max(d_lo, p_lo + s + t)
        d_hi = min(d_hi, p_hi + s + L)
    if p_lo > p_hi or d_lo > d_hi:
        return (
            (r.pickup_window.earliest_s, r.pickup_window.latest_s),
            (r.dropoff_window.earliest_s, r.dropoff_window.latest_s),
        )
    return (p_lo, p_hi), (d_lo, d_hi)


def build(
    problem: Problem,
    *,
    unserved_penalty: int | None = None,
    seed: int = 0,
    capacity_dims: Sequence[str] | None = None,
    tighten: bool = False,
) -> Built:
    """Build the OR-Tools model for ``problem``.

    Parameters
    ----------
    problem:
        The planning problem (integer units).
    unserved_penalty:
        Penalty per request left unserved (objective units). ``None`` makes every request
        mandatory, which turns an infeasible set into "no solution".
    seed:
        Permutes the order of requests in the node table; OR-Tools breaks ties by node order,
        so different seeds give different (equally valid) searches. ``0`` keeps input order.
    capacity_dims:
        Which load dimensions get a capacity dimension; default: those any request uses.
    tighten:
        Narrow each pickup/drop-off window by what the other end, the ride limit and the
        fleet's reach imply (``tightened_windows``). Off by default: measured on the Cordeau
        a-set it did not help OR-Tools (same results on small instances, a slower first
        solution on the largest); the Python insertion uses the tightened windows instead.

    Returns
    -------
    Built
        Model, index manager and node tables.
    """
    vehicles = problem.vehicles
    reqs = problem.requests
    horizon = _horizon(problem)
    nodes = NodeTable()
    starts, ends = [], []
    veh_index = {v.id: k for k, v in enumerate(vehicles)}
    onboard_vehicle: dict[str, int] = {}
    for k, v in enumerate(vehicles):
        for rid in v.onboard:
            onboard_vehicle[rid] = k
    for k, v in enumerate(vehicles):
        starts.append(nodes.add(v.start_location, START, None, 0, v.start_time_s, v.shift_end_s, k))
        ends.append(nodes.add(v.end_location, END, None, 0, v.start_time_s, v.shift_end_s, k))
    order = sorted(reqs)  # deterministic
    if seed:
        random.Random(seed).shuffle(order)
    pinned_vehicle: dict[str, int] = {}
    for k, v in enumerate(vehicles):
        for rid in v.pinned:
            pinned_vehicle[rid] = k
    optional = []
    for rid in order:
        r = reqs[rid]
        if rid in pinned_vehicle:
            k = pinned_vehicle[rid]
            nodes.pickup_node[rid] = nodes.add(
                r.pickup,
                PICKUP,
                rid,
                r.pickup_service_s,
                r.pickup_window.earliest_s,
                r.pickup_window.latest_s,
                k,
            )
            nodes.dropoff_node[rid] = nodes.add(
                r.dropoff,
                DROPOFF,
                rid,
                r.dropoff_service_s,
                r.dropoff_window.earliest_s,
                r.dropoff_window.latest_s,
                k,
            )
        elif rid in onboard_vehicle:
            k = onboard_vehicle[rid]
            # the ride runs from picked_up_at_s (the vehicle's start time when unknown), as in
            # routing.schedule
            at = vehicles[k].start_time_s if r.picked_up_at_s is None else r.picked_up_at_s
            latest = min(r.dropoff_window.latest_s, at + r.max_ride_s)
            latest = max(latest, r.dropoff_window.earliest_s)
            nodes.dropoff_node[rid] = nodes.add(
                r.dropoff, DROPOFF, rid, r.dropoff_service_s, r.dropoff_window.earliest_s, latest, k
            )
        else:
            (p_lo, p_hi), (d_lo, d_hi) = (
                tightened_windows(problem, r)
                if tighten
                else (
                    (r.pickup_window.earliest_s, r.pickup_window.latest_s),
                    (r.dropoff_window.earliest_s, r.dropoff_window.latest_s),
                )
            )
            nodes.pickup_node[rid] = nodes.add(
                r.pickup, PICKUP, rid, r.pickup_service_s, p_lo, p_hi
            )
            nodes.dropoff_node[rid] = nodes.add(
                r.dropoff, DROPOFF, rid, r.dropoff_service_s, d_lo, d_hi
            )
            optional.append(rid)
    n = len(nodes.location)
    manager = pywrapcp.RoutingIndexManager(n, len(vehicles), starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    keep: list[object] = []

    loc = np.asarray(nodes.location, dtype=np.int64)
    travel = np.asarray(problem.travel_s, dtype=np.int64)
    arc = travel[np.ix_(loc, loc)]  # node x node travel
    service = np.asarray(nodes.service, dtype=np.int64)
    time_mat = arc + service[:, None]
    arc_l = arc.tolist()
    time_l = time_mat.tolist()

    # integer matrices evaluated on the C++ side (RegisterTransitMatrix takes node indices);
    # much faster than Python callbacks, and integer so costs are never silently zeroed.
    cost_idx = routing.RegisterTransitMatrix(arc_l)
    time_idx = routing.RegisterTransitMatrix(time_l)
    routing.SetArcCostEvaluatorOfAllVehicles(cost_idx)

    routing.AddDimension(time_idx, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for node in range(n):
        if nodes.kind[node] in (START, END):
            continue
        idx = manager.NodeToIndex(node)
        tdim.CumulVar(idx).SetRange(nodes.earliest[node], nodes.latest[node])
    for k, v in enumerate(vehicles):
        s_idx, e_idx = routing.Start(k), routing.End(k)
        tdim.CumulVar(s_idx).SetRange(v.start_time_s, v.shift_end_s)
        tdim.CumulVar(e_idx).SetRange(v.start_time_s, v.shift_end_s)
        dur = v.max_route_duration_s
        if dur is not None and v.shift_end_s - v.start_time_s > dur:
            # (skipped when the shift is no longer than the limit: it is implied then)
            tdim.SetSpanUpperBoundForVehicle(int(dur), k)
        routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(e_idx))
        routing.AddVariableMaximizedByFinalizer(tdim.CumulVar(s_idx))

    # capacity dimensions
    if capacity_dims is None:
        used = [False] * len(DIMENSIONS)
        for r in reqs.values():
            for d, q in enumerate(r.load.as_tuple()):
                used[d] = used[d] or q != 0
        capacity_dims = [DIMENSIONS[d] for d in range(len(DIMENSIONS)) if used[d]]
    for dname in capacity_dims:
        d = DIMENSIONS.index(dname)
        demand = [0] * n
        for rid, node in nodes.pickup_node.items():
            demand[node] = reqs[rid].load.as_tuple()[d]
        for rid, node in nodes.dropoff_node.items():
            demand[node] = -reqs[rid].load.as_tuple()[d]
        caps = [v.capacity.as_tuple()[d] for v in vehicles]

        didx = routing.RegisterUnaryTransitVector(demand)
        routing.AddDimensionWithVehicleCapacity(didx, 0, caps, False, dname)
        cdim = routing.GetDimensionOrDie(dname)
        for k, v in enumerate(vehicles):
            init = sum(reqs[rid].load.as_tuple()[d] for rid in v.onboard if rid in reqs)
            cdim.CumulVar(routing.Start(k)).SetRange(init, init)

    # pairs, ride time, on-board riders, optional requests
    solver = routing.solver()
    for rid, p in nodes.pickup_node.items():
        r = reqs[rid]
        d = nodes.dropoff_node[rid]
        pi, di = manager.NodeToIndex(p), manager.NodeToIndex(d)
        routing.AddPickupAndDelivery(pi, di)
        if EXTRA_CP:
            solver.Add(routing.VehicleVar(pi) == routing.VehicleVar(di))
            solver.Add(tdim.CumulVar(pi) <= tdim.CumulVar(di))
        tdim.AddNodePrecedence(di, pi, -(int(r.max_ride_s) + int(r.pickup_service_s)))
        if unserved_penalty is not None and rid not in pinned_vehicle:
            routing.AddDisjunction([pi, di], int(unserved_penalty), 2)
    # pinned pickups: the first stops of their vehicle, in the given order, mandatory
    for k, v in enumerate(vehicles):
        prev = routing.Start(k)
        for rid in v.pinned:
            if rid not in nodes.pickup_node:  # not in this problem: nothing to pin
                continue
            pi = manager.NodeToIndex(nodes.pickup_node[rid])
            routing.VehicleVar(pi).SetValue(k)
            routing.NextVar(prev).SetValue(pi)
            prev = pi
    for rid, d in nodes.dropoff_node.items():
        if rid in nodes.pickup_node:
            continue
        di = manager.NodeToIndex(d)
        # (SetAllowedVehiclesForIndex's Python wrapper rejects every argument in 9.15, so the
        # vehicle variable's domain is cut directly; OR-Tools' vehicle-var filter honours it)
        routing.VehicleVar(di).SetValue(nodes.vehicle[d])
    # the riders' term of the objective (docs/optimiser.md): per rider, weight x (drop-off
    # start - the earliest it could be), as a soft upper bound at that earliest time (the cumul
    # can never be below it, so the soft cost is exactly the term); off at weight 0
    w = int(problem.rider_delay_weight)
    if w > 0:
        for rid, d in nodes.dropoff_node.items():
            due = rider_due_s(problem, reqs[rid])
            if due is not None:
                tdim.SetCumulVarSoftUpperBound(manager.NodeToIndex(d), int(due), w)
    del veh_index
    return Built(problem, nodes, starts, ends, manager, routing, tdim, optional, horizon, keep)


def search_parameters(
    time_limit_s: float,
    *,
    first_solution: str = "parallel_cheapest_insertion",
    metaheuristic: str = "gls",
    ils: bool = False,
    log_search: bool = False,
    solution_limit: int | None = None,
    lns_operators: bool = False,
    close_nodes: int = 6,
) -> object:
    """OR-Tools search parameters; ``ils=True`` switches to its iterated local search with
    SISR ruin & recreate (OR-Tools >= 9.12)."""
    p = pywrapcp.DefaultRoutingSearchParameters()
    p.first_solution_strategy = FIRST_SOLUTION[first_solution]
    p.local_search_metaheuristic = METAHEURISTIC[metaheuristic]
    p.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    p.log_search = log_search
    if solution_limit:
        p.solution_limit = solution_limit
    if lns_operators:
        ops = p.local_search_operators
        ops.use_global_cheapest_insertion_close_nodes_lns = optional_boolean_pb2.BOOL_TRUE
        ops.use_local_cheapest_insertion_close_nodes_lns = optional_boolean_pb2.BOOL_TRUE
        ops.use_global_cheapest_insertion_expensive_chain_lns = optional_boolean_pb2.BOOL_TRUE
        ops.use_local_cheapest_insertion_expensive_chain_lns = optional_boolean_pb2.BOOL_TRUE
        p.heuristic_close_nodes_lns_num_nodes = close_nodes
    if ils:
        p.use_iterated_local_search = True
        ilsp = p.iterated_local_search_parameters
        ilsp.perturbation_strategy = routing_ils_pb2.PerturbationStrategy.RUIN_AND_RECREATE
        rr = ilsp.ruin_recreate_parameters
        ruin = rr.ruin_strategies.add()
        ruin.sisr.max_removed_sequence_size = 10
        ruin.sisr.avg_num_removed_visits = 10
        ruin.sisr.bypass_factor = 0.01
        rr.recreate_strategy.heuristic = (
            routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION
        )
        ilsp.improve_perturbed_solution = True
        acc = ilsp.reference_solution_acceptance_strategy.simulated_annealing
        acc.cooling_schedule_strategy = routing_ils_pb2.CoolingScheduleStrategy.EXPONENTIAL
        acc.automatic_temperatures = True
        ilsp.best_solution_acceptance_strategy.greedy_descent.SetInParent()
    return p


def node_routes_from_stops(built: Built, plan: Mapping[str, Sequence[Stop]]) -> list[list[int]]:
    """Vehicle id -> stops  ->  OR-Tools index routes (one list per vehicle, depots excluded).

    Stops of unknown requests are dropped."""
    nodes, manager = built.nodes, built.manager
    out: list[list[int]] = []
    for v in built.problem.vehicles:
        seq = []
        for s in plan.get(v.id, ()):
            table = nodes.pickup_node if s.kind == "pickup" else nodes.dropoff_node
            node = table.get(s.request_id)
            if node is not None:
                seq.append(manager.NodeToIndex(node))
        out.append(seq)
    return out


def solve(
    built: Built,
    params,
    *,
    initial_routes: list[list[int]] | None = None,
) -> SolveResult:
    """Run the search. ``initial_routes`` (index routes per vehicle) warm-starts it; when
    OR-Tools rejects them (``ReadAssignmentFromRoutes`` returns None because they break a
    constraint) the search starts from scratch and ``warm_start_rejected`` is set."""
    t0 = time.perf_counter()
    routing = built.routing
    if not built.closed:
        routing.CloseModelWithParameters(params)
        built.closed = True
    used = rejected = False
    sol = None
    if initial_routes is not None and any(initial_routes):
        if not built.solved:
            # first use of the model: let OR-Tools verify the routes (None = breaks a constraint)
            init = routing.ReadAssignmentFromRoutes(initial_routes, True)
        else:
            # ReadAssignmentFromRoutes is unreliable on a model that has already searched
            # (measured: it returns None for valid routes); set the next variables only and let
            # the search's own propagation restore the rest.
            init = routing.solver().Assignment()
            if not routing.RoutesToAssignment(initial_routes, True, True, init):
                init = None
        if init is not None:
            sol = routing.SolveFromAssignmentWithParameters(init, params)
        if sol is None:
            rejected = True
            log.warning(
                "warm start rejected by OR-Tools (breaks a constraint); solving from scratch"
            )
        else:
            used = True
    built.solved = True
    if sol is None:
        sol = routing.SolveWithParameters(params)
    status = routing.status()
    if sol is None:
        return SolveResult(None, None, status, used, rejected, time.perf_counter() - t0)
    routes = []
    for k in range(len(built.problem.vehicles)):
        idx = routing.Start(k)
        seq = []
        idx = sol.Value(routing.NextVar(idx))
        while not routing.IsEnd(idx):
            seq.append(built.manager.IndexToNode(idx))
            idx = sol.Value(routing.NextVar(idx))
        routes.append(seq)
    return SolveResult(
        routes, sol.ObjectiveValue(), status, used, rejected, time.perf_counter() - t0
    )


# ---------------------------------------------------------------------------------------------
# extraction (pure Python, independent of OR-Tools search state; routes are timed by
# routing.schedule.evaluate, the one scheduler)


def node_stops(built: Built, node_seq: Sequence[int]) -> list[Stop]:
    """OR-Tools node numbers -> Stops."""
    nodes = built.nodes
    return [
        Stop(nodes.request[n], "pickup" if nodes.kind[n] == PICKUP else "dropoff")  # type: ignore[arg-type]
        for n in node_seq
    ]


def request_fits_somewhere(problem: Problem, r: Request) -> bool:
    return any(r.load.fits_in(v.capacity) for v in problem.vehicles)
