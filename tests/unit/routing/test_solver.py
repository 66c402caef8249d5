"""Tests of the optimiser (routing.optimise / routing.ortools_solver) on tiny instances.

The optimum of each tiny instance is found here by brute force with a small exact scheduler of
its own (least fixpoint of the route's difference constraints), so the test does not trust the
solver's code to judge the solver.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from routing.check import check
from routing.model import Load, Problem, Request, Stop, TimeWindow, UnservedCause, Vehicle
from routing.optimise import optimise, warm_up
from routing.schedule import evaluate

# ---------------------------------------------------------------------------------------------
# tiny instance generator and brute force


def _tiny(seed: int, n_req: int = 4, n_veh: int = 2, cap: int = 2) -> Problem:
    rng = random.Random(seed)
    pts = [(0, 0)] + [(rng.randint(-6, 6), rng.randint(-6, 6)) for _ in range(2 * n_req)]
    xy = np.array(pts, dtype=float)
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) * 10).astype(np.int64)
    reqs = {}
    for i in range(n_req):
        p, d = 1 + 2 * i, 2 + 2 * i
        e = rng.randint(100, 500)
        reqs[f"r{i}"] = Request(
            id=f"r{i}",
            pickup=p,
            dropoff=d,
            load=Load(seats=1),
            pickup_window=TimeWindow(e, e + 150),
            dropoff_window=TimeWindow(0, 2000),
            max_ride_s=int(travel[p, d]) + 80,
            pickup_service_s=5,
            dropoff_service_s=5,
        )
    vehicles = tuple(
        Vehicle(
            id=f"v{k}",
            start_location=0,
            start_time_s=0,
            end_location=0,
            shift_end_s=2000,
            capacity=Load(seats=cap),
            max_route_duration_s=1500,
        )
        for k in range(n_veh)
    )
    return Problem(vehicles, reqs, travel)


def _feasible(problem: Problem, v: Vehicle, stops) -> bool:
    """Independent exact feasibility of a stop sequence (windows, ride, capacity, duration)."""
    load = 0
    for s in stops:
        r = problem.requests[s.request_id]
        load += r.load.seats if s.kind == "pickup" else -r.load.seats
        if load > v.capacity.seats:
            return False
    locs = (
        [v.start_location]
        + [
            problem.requests[s.request_id].pickup
            if s.kind == "pickup"
            else problem.requests[s.request_id].dropoff
            for s in stops
        ]
        + [v.end_location]
    )
    svc = (
        [0]
        + [
            problem.requests[s.request_id].pickup_service_s
            if s.kind == "pickup"
            else problem.requests[s.request_id].dropoff_service_s
            for s in stops
        ]
        + [0]
    )
    lo = (
        [v.start_time_s]
        + [
            (
                problem.requests[s.request_id].pickup_window
                if s.kind == "pickup"
                else problem.requests[s.request_id].dropoff_window
            ).earliest_s
            for s in stops
        ]
        + [v.start_time_s]
    )
    hi = (
        [v.shift_end_s]
        + [
            (
                problem.requests[s.request_id].pickup_window
                if s.kind == "pickup"
                else problem.requests[s.request_id].dropoff_window
            ).latest_s
            for s in stops
        ]
        + [v.shift_end_s]
    )
    pairs = []
    for i, s in enumerate(stops, 1):
        if s.kind == "dropoff":
            j = next(
                k
                for k, x in enumerate(stops, 1)
                if x.request_id == s.request_id and x.kind == "pickup"
            )
            r = problem.requests[s.request_id]
            pairs.append((j, i, r.max_ride_s + r.pickup_service_s))
    t = list(lo)
    for _ in range(100):
        for i in range(len(t) - 1):
            t[i + 1] = max(t[i + 1], t[i] + svc[i] + problem.travel(locs[i], locs[i + 1]))
        moved = False
        for p, d, lim in pairs:
            if t[p] < t[d] - lim:
                t[p], moved = t[d] - lim, True
        if t[0] < t[-1] - v.max_route_duration_s:
            t[0], moved = t[-1] - v.max_route_duration_s, True
        if any(a > b for a, b in zip(t, hi)):
            return False
        if not moved:
            return True
    return False


def _sequences(rids):
    """All stop orders of the given requests with each pickup before its drop-off."""
    stops = [Stop(r, "pickup") for r in rids] + [Stop(r, "dropoff") for r in rids]
    for perm in itertools.permutations(stops):
        seen = set()
        ok = True
        for s in perm:
            if s.kind == "pickup":
                seen.add(s.request_id)
            elif s.request_id not in seen:
                ok = False
                break
        if ok:
            yield list(perm)


def _route_cost(problem: Problem, v: Vehicle, stops) -> int:
    locs = (
        [v.start_location]
        + [
            problem.requests[s.request_id].pickup
            if s.kind == "pickup"
            else problem.requests[s.request_id].dropoff
            for s in stops
        ]
        + [v.end_location]
    )
    return sum(problem.travel(a, b) for a, b in itertools.pairwise(locs))


def _brute_force(problem: Problem) -> int:
    rids = sorted(problem.requests)
    v0 = problem.vehicles[0]  # identical vehicles: best single-route cost per subset
    best_for: dict[frozenset, float] = {}
    for mask in range(1 << len(rids)):
        sub = frozenset(r for i, r in enumerate(rids) if mask >> i & 1)
        best = (
            0
            if not sub
            else min(
                (
                    _route_cost(problem, v0, seq)
                    for seq in _sequences(sorted(sub))
                    if _feasible(problem, v0, seq)
                ),
                default=float("inf"),
            )
        )
        best_for[sub] = best
    allr = frozenset(rids)
    return int(min(best_for[s] + best_for[allr - s] for s in best_for))


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_brute_force_optimum(seed):
    """On a tiny DARP the optimiser finds the brute-force optimum and the checker accepts it."""
    problem = _tiny(seed)
    opt = _brute_force(problem)
    assert opt < float("inf")
    warm_up()  # load the compiled search first: the budget below is wall-clock
    sol = optimise(problem, time_limit_s=1.0, seed=seed)
    assert not sol.unserved
    assert check(problem, sol) == []
    assert sol.objective.travel == opt


def test_plain_model_is_feasible():
    """The plain OR-Tools model (no LNS) returns a checker-clean plan serving everyone."""
    problem = _tiny(4)
    sol = optimise(problem, time_limit_s=0.5, lns=False)
    assert not sol.unserved and check(problem, sol) == []


def test_schedule_keeps_ride_time_by_delaying_pickup():
    """The one scheduler holds the vehicle at the pickup (not too early) so the ride limit
    holds: least-time pickup 470 = drop-off 500 - 30; the optimiser's plan has those times."""
    travel = np.array([[0, 10, 20], [10, 0, 10], [20, 10, 0]], dtype=np.int64)
    req = Request(
        "r", 1, 2, Load(seats=1), TimeWindow(0, 1000), TimeWindow(500, 520), max_ride_s=30
    )
    veh = Vehicle("v", 0, 0, 0, 2000, Load(seats=1))
    problem = Problem((veh,), {"r": req}, travel)
    sched = evaluate(problem, veh, [Stop("r", "pickup"), Stop("r", "dropoff")])
    assert sched.feasible
    assert sched.arrival_s == (10, 480) and sched.start_s == (470, 500)
    assert sched.wait_s == (460, 20)
    sol = optimise(problem, time_limit_s=0.3)
    assert not sol.unserved and check(problem, sol) == []
    (route,) = sol.routes
    assert [(s.arrival_s, s.start_s) for s in route.stops] == [(10, 470), (480, 500)]


def _onboard_problem() -> Problem:
    # locations: 0 depot A, 1 depot B, 2 drop-off of the on-board rider (next to B), 3/4 new request
    xy = np.array([[0, 0], [10, 0], [11, 0], [1, 0], [2, 0]], dtype=float)
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) * 10).astype(np.int64)
    ride = Request(
        "onboard",
        0,
        2,
        Load(seats=1, wheelchairs=1),
        TimeWindow(0, 10),
        TimeWindow(0, 1000),
        max_ride_s=500,
        picked_up_at_s=0,
    )
    new = Request(
        "new", 3, 4, Load(seats=1), TimeWindow(0, 1000), TimeWindow(0, 1000), max_ride_s=500
    )
    va = Vehicle(
        "A",
        0,
        0,
        0,
        1000,
        Load(seats=2, wheelchairs=1),
        onboard=("onboard",),
        route=(Stop("onboard", "dropoff"),),
    )
    vb = Vehicle("B", 1, 0, 1, 1000, Load(seats=2, wheelchairs=1))
    return Problem((va, vb), {"onboard": ride, "new": new}, travel)


def test_onboard_rider_stays_in_vehicle():
    """A rider on board is dropped by the vehicle carrying them even when another is closer."""
    problem = _onboard_problem()
    sol = optimise(problem, time_limit_s=0.5)
    assert check(problem, sol) == []
    by_vehicle = {r.vehicle_id: [s.stop for s in r.stops] for r in sol.routes}
    assert Stop("onboard", "dropoff") in by_vehicle["A"]
    assert all(s.request_id != "onboard" for s in by_vehicle.get("B", []))
    first_a = next(r for r in sol.routes if r.vehicle_id == "A").stops
    assert first_a[-1].load_after.as_tuple() == (0, 0, 0)


def test_warm_start_keeps_promises():
    """Every request of a feasible warm start stays served and the plan stays checker-clean."""
    problem = _tiny(5, n_req=5, n_veh=2, cap=3)
    base = optimise(problem, time_limit_s=0.5)
    assert not base.unserved
    plan = {r.vehicle_id: [s.stop for s in r.stops] for r in base.routes}
    sol = optimise(problem, time_limit_s=0.3, warm_start=plan)
    assert not sol.unserved
    assert check(problem, sol) == []
    assert sol.objective.travel <= base.objective.travel


def test_rejected_warm_start_is_handled():
    """A warm start that breaks a rule (drop-off before pickup) is replaced, not followed."""
    problem = _tiny(6)
    bad = {"v0": [Stop("r0", "dropoff"), Stop("r0", "pickup")]}
    sol = optimise(problem, time_limit_s=0.5, warm_start=bad)
    assert check(problem, sol, require_all_served=False) == []
    assert not sol.unserved


def test_infeasible_promise_is_reported_not_broken():
    """A promised request no plan can keep comes back unserved with PROMISE_INFEASIBLE."""
    problem = _tiny(7, n_req=3)
    r0 = problem.requests["r0"]
    # drop-off window closes before the bus can get there from the pickup
    impossible = Request(
        r0.id,
        r0.pickup,
        r0.dropoff,
        r0.load,
        TimeWindow(100, 100),
        TimeWindow(0, 101),
        max_ride_s=r0.max_ride_s,
    )
    reqs = dict(problem.requests, r0=impossible)
    vehicles = (
        Vehicle(
            "v0",
            0,
            0,
            0,
            2000,
            Load(seats=2),
            route=(Stop("r0", "pickup"), Stop("r0", "dropoff")),
            max_route_duration_s=1500,
        ),
        problem.vehicles[1],
    )
    p2 = Problem(vehicles, reqs, problem.travel_s)
    sol = optimise(p2, time_limit_s=0.5)
    assert sol.unserved == {"r0": UnservedCause.PROMISE_INFEASIBLE}
    assert check(p2, sol, require_all_served=False) == []


def test_load_too_big_for_every_vehicle():
    """A load no vehicle can carry is reported NO_VEHICLE_FITS; the rest is still planned."""
    problem = _tiny(8, n_req=3)
    big = problem.requests["r1"]
    reqs = dict(
        problem.requests,
        r1=Request(
            big.id,
            big.pickup,
            big.dropoff,
            Load(seats=1, wheelchairs=1),
            big.pickup_window,
            big.dropoff_window,
            big.max_ride_s,
        ),
    )
    p2 = Problem(problem.vehicles, reqs, problem.travel_s)
    sol = optimise(p2, time_limit_s=0.3)
    assert sol.unserved == {"r1": UnservedCause.NO_VEHICLE_FITS}
    assert check(p2, sol, require_all_served=False) == []


def test_wheelchair_capacity_dimension_respected():
    """Two wheelchair users never ride together in a vehicle with one wheelchair space."""
    xy = np.array([[0, 0], [1, 0], [2, 0], [1, 1], [2, 1]], dtype=float)
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) * 10).astype(np.int64)
    reqs = {
        rid: Request(
            rid,
            p,
            d,
            Load(seats=1, wheelchairs=1),
            TimeWindow(0, 400),
            TimeWindow(0, 800),
            max_ride_s=400,
        )
        for rid, p, d in (("w1", 1, 2), ("w2", 3, 4))
    }
    veh = Vehicle("v", 0, 0, 0, 1000, Load(seats=4, wheelchairs=1))
    problem = Problem((veh,), reqs, travel)
    sol = optimise(problem, time_limit_s=0.3)
    assert not sol.unserved and check(problem, sol) == []
    assert max(s.load_after.wheelchairs for r in sol.routes for s in r.stops) <= 1


def test_late_onboard_rider_is_reported_never_relaxed(caplog):
    """A rider on board who can no longer arrive in time: optimise does not open their window
    by itself. It keeps the current plan (timed by the one scheduler, the drop-off still in
    vehicle A) and reports the rider as PROMISE_INFEASIBLE; the checker sees the lateness."""
    problem = _onboard_problem()
    ride = problem.requests["onboard"]
    late = Request(
        ride.id,
        ride.pickup,
        ride.dropoff,
        ride.load,
        ride.pickup_window,
        TimeWindow(0, 50),
        max_ride_s=50,
        picked_up_at_s=0,
    )
    p2 = Problem(problem.vehicles, dict(problem.requests, onboard=late), problem.travel_s)
    sol = optimise(p2, time_limit_s=0.3)
    assert sol.unserved == {
        "onboard": UnservedCause.PROMISE_INFEASIBLE,
        "new": UnservedCause.TIME_LIMIT,  # in no current route, and no plan was made
    }
    route_a = next(r for r in sol.routes if r.vehicle_id == "A")
    assert [s.stop for s in route_a.stops] == [Stop("onboard", "dropoff")]
    assert route_a.stops[0].start_s == 110  # as early as the vehicle can be there
    kinds = {v.kind for v in check(p2, sol, require_all_served=False)}
    assert kinds & {"time_window", "ride_time"}
    assert "relax" not in caplog.text


def test_search_starts_from_the_current_plan_when_ortools_finds_none(monkeypatch):
    """When OR-Tools returns no first plan (e.g. it refuses the warm start) but the current plan is
    feasible under the one scheduler, optimise improves that plan instead of giving up."""
    from routing import ortools_solver as ort
    from routing.check import check

    problem = _onboard_problem()
    real_solve = ort.solve

    def no_plan(built, params, initial_routes=None):  # type: ignore[no-untyped-def]
        r = real_solve(built, params, initial_routes=initial_routes)
        return ort.SolveResult(None, None, r.status, False, True, r.seconds)

    monkeypatch.setattr(ort, "solve", no_plan)
    sol = optimise(problem, time_limit_s=1.0, seed=1, max_iterations=200)
    assert "onboard" not in sol.unserved  # not given up as PROMISE_INFEASIBLE
    served = {s.stop.request_id for r in sol.routes for s in r.stops}
    assert {"onboard", "new"} <= served  # the search also inserted the new request
    assert check(problem, sol) == []
