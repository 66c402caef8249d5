"""The compiled ruin-and-recreate search (routing.lns) behind routing.optimise."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from routing import lns
from routing import ortools_solver as ort
from routing.benchmarks import read_cordeau, route_cost
from routing.check import check
from routing.optimise import default_penalty, lns_instance, optimise
from tests.unit.routing.test_solver import _brute_force, _onboard_problem, _tiny

BENCH = Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks" / "darp"


def _improve_from_empty(problem, seed: int, iterations: int):
    built = ort.build(problem, unserved_penalty=default_penalty(problem))
    inst = lns_instance(built, default_penalty(problem))
    empty = [[] for _ in problem.vehicles]
    res = lns.improve(
        inst, empty, deadline=time.perf_counter() + 60, seed=seed, max_iterations=iterations
    )
    return built, res


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_search_alone_reaches_brute_force_optimum(seed):
    """Started from an empty plan (no OR-Tools), the search serves everyone at the optimum."""
    problem = _tiny(seed, n_req=5, n_veh=2, cap=2)
    opt = _brute_force(problem)
    assert opt < float("inf")
    built, res = _improve_from_empty(problem, seed, 3000)
    assert res.missing == 0
    assert res.cost == opt
    routes = {
        problem.vehicles[k].id: ort.node_stops(built, seq) for k, seq in enumerate(res.routes)
    }
    from routing.check import check_routes

    _, violations = check_routes(problem, routes)
    assert violations == []


def test_every_operator_runs_and_finds_improvements():
    problem = _tiny(21, n_req=6, n_veh=2, cap=3)
    _, res = _improve_from_empty(problem, 1, 4000)
    assert set(res.stats) == set(lns.OPERATORS)
    for name, (tried, better, _) in res.stats.items():
        assert tried > 0, name
    assert sum(better for _, better, _ in res.stats.values()) > 0


def test_same_seed_and_iterations_give_the_same_plan():
    problem = _tiny(31, n_req=8, n_veh=3, cap=2)
    plans = []
    for _ in range(2):
        sol = optimise(problem, time_limit_s=60, seed=5, max_iterations=500)
        plans.append([(r.vehicle_id, [s.stop for s in r.stops]) for r in sol.routes])
    assert plans[0] == plans[1]


def test_onboard_drop_off_is_never_moved():
    """The search never removes a rider's drop-off from the vehicle carrying them."""
    problem = _onboard_problem()
    sol = optimise(problem, time_limit_s=60, max_iterations=300)
    assert check(problem, sol) == []
    a = next(r for r in sol.routes if r.vehicle_id == "A")
    assert any(s.stop.request_id == "onboard" for s in a.stops)


@pytest.mark.skipif(not (BENCH / "a3-24.txt").exists(), reason="shared benchmarks not present")
def test_reaches_the_proven_optimum_of_a3_24():
    """a3-24 (Cordeau 2006): the previous Python search always stopped at 346.81; the proven
    optimum is 344.8336 (also found by a CP-SAT model with the same conventions)."""
    inst = read_cordeau(BENCH / "a3-24.txt")
    sol = optimise(inst.problem, time_limit_s=120, seed=0, max_iterations=40_000)
    assert check(inst.problem, sol, require_all_served=True, tolerance=1) == []
    vmap = {v.id: v for v in inst.problem.vehicles}
    routes = [
        [
            vmap[r.vehicle_id].start_location,
            *(s.location for s in r.stops),
            vmap[r.vehicle_id].end_location,
        ]
        for r in sol.routes
        if r.stops
    ]
    assert route_cost(inst, routes) == pytest.approx(344.8336, abs=0.01)


def test_improve_keeps_the_given_plan_when_nothing_can_change():
    """One request, one vehicle: the plan comes back as given, with its cost."""
    problem = _tiny(41, n_req=1, n_veh=1)
    built, res = _improve_from_empty(problem, 0, 50)
    assert res.missing == 0
    seq = res.routes[0]
    assert len(seq) == 2 and built.nodes.kind[seq[0]] == ort.PICKUP
    travel = np.asarray(problem.travel_s)
    r = problem.requests["r0"]
    assert res.cost == travel[0, r.pickup] + travel[r.pickup, r.dropoff] + travel[r.dropoff, 0]


def _two_rival_requests():
    """One vehicle 50 from each of u and r, both to be picked up by 60 but 100 apart: it can
    serve either, not both."""
    from routing.model import Load, Problem, Request, TimeWindow, Vehicle

    xy = np.array([[50, 0], [0, 5], [0, 6], [100, 5], [100, 6]], dtype=float)
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))).astype(np.int64)
    reqs = {
        rid: Request(
            rid, p, p + 1, Load(seats=1), TimeWindow(0, 60), TimeWindow(0, 1000), max_ride_s=50
        )
        for rid, p in (("u", 1), ("r", 3))
    }
    veh = Vehicle("v", 0, 0, 0, 1000, Load(seats=2))
    return Problem((veh,), reqs, travel)


def test_guided_ejection_swaps_in_the_request_that_failed_more_often():
    problem = _two_rival_requests()
    assert len(optimise(problem, time_limit_s=60, max_iterations=200).unserved) == 1
    built = ort.build(problem, unserved_penalty=default_penalty(problem))
    inst = lns_instance(built, default_penalty(problem))
    iu, ir = built.optional.index("u"), built.optional.index("r")
    P = tuple(inst.as_tuple())
    n_k, n_r, width = 1, 2, 8
    S = lns._scratch(len(inst.svc), n_k, n_r, width, 3)
    W = np.zeros((1, width + 2), dtype=np.int64)
    W[0, :2] = [inst.pick[iu], inst.drop[iu]]
    wl = np.array([2], dtype=np.int64)
    buf = tuple(np.zeros(width + 4, dtype=np.int64) for _ in range(4)) + (
        np.zeros((width + 4, 3), dtype=np.int64),
    )
    fails = np.zeros(2, dtype=np.int64)
    # r has failed as often as u: no swap
    fails[ir] = 0
    assert (
        lns._eject_insert(P, S, W, wl, ir, inst.pick, inst.drop, inst.req_of, fails, 40, buf) == -1
    )
    assert list(W[0, :2]) == [inst.pick[iu], inst.drop[iu]]
    # r has failed more often: u makes way
    fails[ir] = 3
    out = lns._eject_insert(P, S, W, wl, ir, inst.pick, inst.drop, inst.req_of, fails, 40, buf)
    assert out == iu
    assert wl[0] == 2 and list(W[0, :2]) == [inst.pick[ir], inst.drop[ir]]


def test_search_cost_matches_the_model_when_a_vehicle_ends_elsewhere():
    """A vehicle that starts away from its end depot drives back even when idle: the search's
    cost equals routing.model.route_travel_s summed over the plan, idle vehicles included."""
    from dataclasses import replace

    from routing.model import route_travel_s

    problem = _tiny(51, n_req=3, n_veh=3, cap=2)
    vehicles = tuple(replace(v, start_location=k + 1) for k, v in enumerate(problem.vehicles))
    problem = replace(problem, vehicles=vehicles)
    built, res = _improve_from_empty(problem, 0, 500)
    assert res.missing == 0
    total = sum(
        route_travel_s(problem, v, ort.node_stops(built, res.routes[k]))
        for k, v in enumerate(problem.vehicles)
    )
    assert res.cost == total


def _many_rivals(n: int = 8):
    """One vehicle and ``n`` requests that all must be picked up by 60 but lie 100 apart: it can
    serve one of them; every other one keeps failing and asks for a guided ejection."""
    from routing.model import Load, Problem, Request, TimeWindow, Vehicle

    pts = [[50.0, 0.0]]
    for k in range(n):
        pts += [[100.0 * k, 5.0], [100.0 * k, 6.0]]
    xy = np.array(pts)
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))).astype(np.int64)
    reqs = {
        f"r{k}": Request(
            f"r{k}", 1 + 2 * k, 2 + 2 * k, Load(seats=1), TimeWindow(0, 60), TimeWindow(0, 1000),
            max_ride_s=50,
        )
        for k in range(n)
    }
    return Problem((Vehicle("v", 0, 0, 0, 1000, Load(seats=2)),), reqs, travel)


_BOUNDS_SCRIPT = """
import time
from routing import lns, ortools_solver as ort
from routing.optimise import default_penalty, lns_instance
from tests.unit.routing.test_lns import _many_rivals

problem = _many_rivals()
built = ort.build(problem, unserved_penalty=default_penalty(problem))
inst = lns_instance(built, default_penalty(problem))
res = lns.improve(inst, [[]], deadline=time.perf_counter() + 600, seed=3, max_iterations=300)
assert res.missing == len(problem.requests) - 1, res
# every other path of the search, bounds-checked too: riders on board, pinned pickups, regret
from routing.check import check
from routing.optimise import optimise
from tests.unit.routing.test_pinned import _problem as pinned_problem
from tests.unit.routing.test_solver import _onboard_problem, _tiny
for other in (_tiny(21, n_req=6, n_veh=2, cap=3), _onboard_problem(), pinned_problem()):
    sol = optimise(other, time_limit_s=600, max_iterations=150)
    assert check(other, sol) == [], check(other, sol)
print("ok", res.iterations, res.cost)
"""


def test_search_stays_in_bounds_under_repeated_guided_ejection():
    """Finding 10: with every request pending, a guided ejection appended the request taken out
    past the end of the pending list (IndexError without JIT, heap corruption with it). Run
    uncompiled, where numpy checks every index."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _BOUNDS_SCRIPT], cwd=root, env=env, capture_output=True,
        text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok 300 ")
