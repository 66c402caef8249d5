"""The riders' term of the objective: counted alike by the compiled search, OR-Tools and the model,
off at weight 0 (the benchmarks), and it lowers what riders lose when it is on."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from routing import lns
from routing import ortools_solver as ort
from routing.model import Load, plan_travel_s, rider_due_s
from routing.schedule import plan_rider_cost
from routing.optimise import default_penalty, lns_instance, optimise
from tests.unit.routing.test_solver import _tiny


def _routes(problem, built, seqs):  # type: ignore[no-untyped-def]
    return {problem.vehicles[k].id: ort.node_stops(built, seq) for k, seq in enumerate(seqs)}


def test_off_at_weight_zero() -> None:
    problem = _tiny(41, n_req=6, n_veh=2, cap=3)
    assert problem.rider_delay_weight == 0
    built = ort.build(problem, unserved_penalty=default_penalty(problem))
    inst = lns_instance(built, default_penalty(problem))
    assert inst.rider_w is None and inst.rider_due is None
    sol = optimise(problem, time_limit_s=2, seed=0, max_iterations=500)
    routes = {r.vehicle_id: [s.stop for s in r.stops] for r in sol.routes}
    assert plan_rider_cost(problem, routes) == 0
    assert sol.objective.ride == 0


@pytest.mark.parametrize("seed", [42, 43])
def test_the_search_counts_the_term_as_the_model_does(seed: int) -> None:
    """The compiled search's cost of its plan = driving + the model's riders' term (same schedule)."""
    problem = replace(_tiny(seed, n_req=6, n_veh=2, cap=3), rider_delay_weight=3)
    pen = default_penalty(problem)
    built = ort.build(problem, unserved_penalty=pen)
    inst = lns_instance(built, pen)
    assert inst.rider_w is not None and int(inst.rider_w.sum()) == 3 * len(problem.requests)
    empty = [[] for _ in problem.vehicles]
    res = lns.improve(inst, empty, deadline=time.perf_counter() + 60, seed=1, max_iterations=2000)
    assert res.missing == 0
    routes = _routes(problem, built, res.routes)
    term = plan_rider_cost(problem, routes)
    assert term > 0
    assert res.cost == plan_travel_s(problem, routes) + term


def test_or_tools_counts_the_same_term() -> None:
    """OR-Tools' objective of its plan (lns off) is driving + the riders' soft bounds, i.e. the
    model's term (its cumuls are at least the least times, so it is never below)."""
    problem = replace(_tiny(44, n_req=5, n_veh=2, cap=3), rider_delay_weight=2)
    pen = default_penalty(problem)
    built = ort.build(problem, unserved_penalty=pen)
    res = ort.solve(built, ort.search_parameters(2))
    assert res.routes is not None
    routes = _routes(problem, built, res.routes)
    served = {s.request_id for stops in routes.values() for s in stops}
    assert served == set(problem.requests)
    assert res.objective >= plan_travel_s(problem, routes) + plan_rider_cost(problem, routes)
    base = replace(problem, rider_delay_weight=0)
    b0 = ort.build(base, unserved_penalty=pen)
    r0 = ort.solve(b0, ort.search_parameters(2))
    assert r0.objective == plan_travel_s(base, _routes(base, b0, r0.routes))


def test_a_parcel_has_no_term() -> None:
    problem = _tiny(45, n_req=2, n_veh=1, cap=3)
    r = problem.requests["r0"]
    assert rider_due_s(problem, r) == r.pickup_window.earliest_s + r.pickup_service_s + problem.travel(r.pickup,
                                                                                                          r.dropoff)
    parcel = replace(r, load=Load(seats=0, wheelchairs=0, parcels=2))
    assert rider_due_s(problem, parcel) is None


@pytest.mark.parametrize("seed", [46, 47, 48])
def test_the_term_lowers_what_riders_lose(seed: int) -> None:
    """With the weight on, the riders' delays of the optimiser's plan are no larger than with
    driving alone (same problem, seed and iterations), and so is the sum it minimises."""
    problem = _tiny(seed, n_req=8, n_veh=2, cap=4)
    weighted = replace(problem, rider_delay_weight=2)
    plain = optimise(problem, time_limit_s=5, seed=0, max_iterations=3000)
    rider = optimise(weighted, time_limit_s=5, seed=0, max_iterations=3000)
    assert not plain.unserved and not rider.unserved
    r_plain = {r.vehicle_id: [s.stop for s in r.stops] for r in plain.routes}
    r_rider = {r.vehicle_id: [s.stop for s in r.stops] for r in rider.routes}
    lost_plain = plan_rider_cost(weighted, r_plain)
    lost_rider = plan_rider_cost(weighted, r_rider)
    assert lost_rider <= lost_plain
    assert plan_travel_s(problem, r_rider) + lost_rider <= plan_travel_s(problem, r_plain) + lost_plain
    assert rider.objective.ride == lost_rider
