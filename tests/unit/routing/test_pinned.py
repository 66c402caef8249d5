"""Pinned pickups (Vehicle.pinned): the vehicle is arriving at, or waiting at, the rider's stop.

Locations 0..10 on a line, 10 s per unit. Vehicle "near" waits at 0; vehicle "pinned" is at 9 and
arriving at the pickup of "p" at location 1. Moving "p" to "near" (or serving a new request
before it) would be cheaper: only the pin keeps it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from routing.check import check
from routing.insertion import find_insertions
from routing.model import Load, Problem, Request, Solution, Stop, TimeWindow, Vehicle
from routing.optimise import optimise
from routing.schedule import evaluate

LINE = np.array([[10 * abs(i - j) for j in range(11)] for i in range(11)], dtype=np.int64)
OPEN = TimeWindow(0, 10_000)


def _req(rid: str, pickup: int, dropoff: int) -> Request:
    return Request(rid, pickup, dropoff, Load(seats=1), OPEN, OPEN, 10_000)


def _problem() -> Problem:
    p = _req("p", 1, 2)
    q = _req("q", 3, 4)
    near = Vehicle("near", 0, 0, 0, 10_000, Load(seats=4))
    pinned = Vehicle(
        "pinned", 9, 0, 9, 10_000, Load(seats=4),
        route=(Stop("p", "pickup"), Stop("p", "dropoff")), pinned=("p",),
    )  # fmt: skip
    return Problem((near, pinned), {"p": p, "q": q}, LINE)


def test_optimise_never_moves_a_pinned_pickup() -> None:
    problem = _problem()
    for seed, warm in ((0, None), (1, None), (2, {}), (3, {})):  # {}: no warm start
        sol = optimise(problem, time_limit_s=0.5, seed=seed, warm_start=warm, max_iterations=300)
        assert check(problem, sol) == []
        routes = {r.vehicle_id: [s.stop for s in r.stops] for r in sol.routes}
        assert routes["pinned"][0] == Stop("p", "pickup")
        assert all(s.request_id != "p" for s in routes.get("near", []))
    # without the pin the optimiser gives p to the vehicle next to it
    free = replace(problem, vehicles=(problem.vehicles[0], replace(problem.vehicles[1], pinned=())))
    sol = optimise(free, time_limit_s=0.5, max_iterations=300)
    near = next(r for r in sol.routes if r.vehicle_id == "near")
    assert Stop("p", "pickup") in [s.stop for s in near.stops]


def test_insertion_never_goes_before_a_pinned_pickup() -> None:
    problem = _problem()
    new = _req("n", 8, 7)  # on the pinned vehicle's way: cheapest before its pinned pickup
    pinned_only = replace(problem, vehicles=(problem.vehicles[1],))
    res = find_insertions(pinned_only, new)
    assert res.options
    for o in res.options:
        assert o.route[0] == Stop("p", "pickup")
    unpinned = replace(pinned_only, vehicles=(replace(problem.vehicles[1], pinned=()),))
    assert find_insertions(unpinned, new).options[0].route[0] == Stop("n", "pickup")


def test_checker_reports_a_moved_pin() -> None:
    problem = _problem()
    near, pinned = problem.vehicles

    def timed(routes: dict[str, tuple[Stop, ...]]) -> Solution:
        vs = {v.id: v for v in problem.vehicles}
        return Solution(
            tuple(evaluate(problem, vs[k], r).to_route(k) for k, r in routes.items() if r),
        )

    q = (Stop("q", "pickup"), Stop("q", "dropoff"))
    ok = timed({"near": q, "pinned": pinned.route})
    assert check(problem, ok) == []
    second = timed({"pinned": (*q[:1], *pinned.route, *q[1:])})
    assert [v.kind for v in check(problem, second)] == ["pinned_moved"]
    elsewhere = timed({"near": (*pinned.route, *q), "pinned": ()})
    assert [(v.kind, v.request_id) for v in check(problem, elsewhere)] == [("pinned_moved", "p")]
