"""The one scheduler (routing.schedule) against the independent checker (routing.check)."""

from __future__ import annotations

import random

import numpy as np

from routing.check import check, check_routes, schedule_route
from routing.model import Load, Problem, Request, Solution, Stop, TimeWindow, Vehicle
from routing.schedule import evaluate


def _random_case(rng: random.Random) -> tuple[Problem, Vehicle, tuple[Stop, ...]]:
    """A vehicle, riders on board and new requests, in a random well-formed order, with random
    (often tight) windows, ride limits, service times and sometimes a route duration limit."""
    n_loc = 8
    xy = np.array([[rng.uniform(0, 100), rng.uniform(0, 100)] for _ in range(n_loc)])
    travel = np.rint(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))).astype(np.int64)
    reqs: dict[str, Request] = {}
    onboard = []
    for k in range(rng.randint(0, 2)):
        rid = f"b{k}"
        e = rng.randint(0, 300)
        reqs[rid] = Request(
            rid, 0, rng.randrange(n_loc), Load(seats=1), TimeWindow(0, 0),
            TimeWindow(e, e + rng.randint(0, 300)), rng.randint(50, 400),
            0, rng.randint(0, 10), picked_up_at_s=-rng.randint(0, 100),
        )  # fmt: skip
        onboard.append(rid)
    for k in range(rng.randint(1, 4)):
        rid = f"r{k}"
        e = rng.randint(0, 400)
        de = e + rng.randint(0, 300)
        reqs[rid] = Request(
            rid, rng.randrange(n_loc), rng.randrange(n_loc), Load(seats=1),
            TimeWindow(e, e + rng.randint(0, 200)), TimeWindow(de, de + rng.randint(0, 300)),
            rng.randint(60, 400), rng.randint(0, 10), rng.randint(0, 10),
        )  # fmt: skip
    # a random well-formed order: each pickup before its drop-off
    todo = [Stop(r, "dropoff") for r in onboard] + [Stop(r, "pickup") for r in reqs if r[0] == "r"]
    stops: list[Stop] = []
    while todo:
        s = todo.pop(rng.randrange(len(todo)))
        stops.append(s)
        if s.kind == "pickup":
            todo.append(Stop(s.request_id, "dropoff"))
    vehicle = Vehicle(
        "v", rng.randrange(n_loc), 0, rng.randrange(n_loc), rng.randint(600, 2000),
        Load(seats=4), onboard=tuple(onboard), route=tuple(stops),
        max_route_duration_s=rng.choice([None, rng.randint(200, 900)]),
    )  # fmt: skip
    return Problem((vehicle,), reqs, travel), vehicle, tuple(stops)


def test_scheduler_and_checker_agree_on_random_routes() -> None:
    """For random routes: a route the scheduler times passes ``check`` exactly as timed, and the
    checker's own least-time schedule has the same times; a route the scheduler cannot time is
    rejected by the checker's own scheduling."""
    rng = random.Random(3)
    feasible = infeasible = waits = 0
    for _ in range(600):
        problem, vehicle, stops = _random_case(rng)
        sched = evaluate(problem, vehicle, stops)
        route = sched.to_route(vehicle.id)
        if sched.feasible:
            feasible += 1
            assert check(problem, Solution((route,))) == []
            theirs = schedule_route(problem, vehicle, stops)
            assert theirs is not None
            assert [s.start_s for s in theirs] == list(sched.start_s)
            waits += any(w > 0 for w in sched.wait_s)
        else:
            infeasible += 1
            assert not sched.timed or any(sched.overload)
            assert check_routes(problem, {vehicle.id: stops})[1] != []
            assert check(problem, Solution((route,))) != []
        assert all(w >= 0 for w in sched.wait_s)
    assert feasible > 60 and infeasible > 60 and waits > 20


def test_fallback_timing_measures_the_lateness() -> None:
    """When no timing keeps every rule, evaluate times the route as early as possible and says
    by how much each rule breaks."""
    travel = np.array([[0, 100], [100, 0]], dtype=np.int64)
    late = Request("a", 0, 1, Load(seats=1), TimeWindow(0, 0), TimeWindow(0, 60), 500,
                   picked_up_at_s=0)  # fmt: skip
    v = Vehicle("v", 0, 0, 0, 1000, Load(seats=1), onboard=("a",), route=(Stop("a", "dropoff"),))
    sched = evaluate(Problem((v,), {"a": late}, travel), v, v.route)
    assert not sched.timed and not sched.feasible
    assert sched.start_s == (100,) and sched.lateness_s == (40,) and sched.end_arrival_s == 200


def test_route_duration_delays_the_departure() -> None:
    """With a route duration limit the vehicle leaves its start only as late as the limit needs
    (the least time: end 530 - 60), not at once; the checker accepts the published departure."""
    travel = np.array([[0, 10, 20], [10, 0, 10], [20, 10, 0]], dtype=np.int64)
    r = Request("r", 1, 2, Load(seats=1), TimeWindow(500, 600), TimeWindow(0, 2000), 100)
    v = Vehicle("v", 0, 0, 0, 2000, Load(seats=1), max_route_duration_s=60)
    problem = Problem((v,), {"r": r}, travel)
    sched = evaluate(problem, v, (Stop("r", "pickup"), Stop("r", "dropoff")))
    assert sched.feasible and sched.start_departure_s == 470
    assert sched.arrival_s == (480, 510) and sched.wait_s == (20, 0)
    assert sched.end_arrival_s == 530
    assert check(problem, Solution((sched.to_route("v"),))) == []
