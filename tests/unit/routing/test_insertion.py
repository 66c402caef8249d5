"""Insertion search on exact scenarios.

Locations are points 0..10 on a line; driving between i and j takes 10 x |i - j| seconds, so
every expected time below can be worked out by hand.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from routing.insertion import (
    InsertionWeights,
    find_insertions,
    make_promise,
    max_ride_time_s,
    nearest_feasible_times,
    promised_request,
    request_windows,
)
from routing.model import Load, Problem, Request, Stop, TimeWindow, UnservedCause, Vehicle
from routing.schedule import RouteSlack, evaluate

LINE = np.array([[10 * abs(i - j) for j in range(11)] for i in range(11)], dtype=np.int64)
CAP = Load(seats=4, wheelchairs=1, parcels=2)
OPEN = TimeWindow(0, 10_000)
ONE_SEAT = Load(seats=1)
FIRST = TimeWindow(0, 10)  # a pickup at location 1 that must come first (the bus is there at 10)


def req(
    rid: str,
    pickup: int,
    dropoff: int,
    *,
    load: Load = ONE_SEAT,
    pw: TimeWindow = OPEN,
    dw: TimeWindow = OPEN,
    max_ride_s: int = 10_000,
    service_s: int = 0,
) -> Request:
    return Request(rid, pickup, dropoff, load, pw, dw, max_ride_s, service_s, service_s)


def bus(
    vid: str = "v",
    *,
    at: int = 0,
    end: int | None = None,
    start_s: int = 0,
    shift_end_s: int = 10_000,
    capacity: Load = CAP,
    route: tuple[Stop, ...] = (),
    onboard: tuple[str, ...] = (),
) -> Vehicle:
    return Vehicle(
        vid, at, start_s, at if end is None else end, shift_end_s, capacity, onboard, route
    )


def P(rid: str) -> Stop:
    return Stop(rid, "pickup")


def D(rid: str) -> Stop:
    return Stop(rid, "dropoff")


def problem(*vehicles: Vehicle, requests: tuple[Request, ...] = ()) -> Problem:
    return Problem(tuple(vehicles), {r.id: r for r in requests}, LINE)


def test_empty_vehicle_drives_out_and_back() -> None:
    """An empty vehicle serves the request directly; times and added vehicle time are exact."""
    res = find_insertions(problem(bus()), req("n", 2, 5))
    assert res.cause is None
    (opt,) = res.options
    assert opt.route == (P("n"), D("n"))
    assert (opt.pickup_s, opt.dropoff_s) == (20, 50)
    assert opt.added_vehicle_s == 20 + 30 + 50  # 0 -> 2 -> 5 -> 0
    assert opt.added_delay_s == 0
    assert opt.cost == 100


def test_waits_for_pickup_window() -> None:
    """A vehicle arriving early waits: the pickup starts at the window's earliest time."""
    res = find_insertions(problem(bus()), req("n", 2, 5, pw=TimeWindow(100, 200)))
    (opt,) = res.options
    assert (opt.pickup_s, opt.dropoff_s) == (100, 130)
    assert opt.added_vehicle_s == 100  # waiting is not vehicle time


def test_insertion_between_existing_stops_on_the_way() -> None:
    """A trip lying on an existing ride is inserted inside it at zero added vehicle time."""
    a = req("a", 1, 9, pw=FIRST)
    v = bus(route=(P("a"), D("a")))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5))
    best = res.options[0]
    assert best.route == (P("a"), P("n"), D("n"), D("a"))
    assert (best.pickup_s, best.dropoff_s) == (30, 50)
    assert best.added_vehicle_s == 0
    assert best.added_delay_s == 0
    assert (best.pickup_index, best.dropoff_index) == (1, 2)


def test_service_time_delays_promised_riders() -> None:
    """Dwell at the new stops delays later stops; added delay sums the shift of every old stop."""
    a = req("a", 1, 9, pw=FIRST)
    v = bus(route=(P("a"), D("a")))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5, service_s=15))
    # (a+ n+ n- a-): +30 s, a 30 s later: 60; (a+ n+ a- n-): +30 s, a 15 s later: 45;
    # (a+ a- n+ n-): +70 s: 70; (n+ ...) breaks a's pickup window
    best = res.options[0]
    assert best.route == (P("a"), P("n"), D("a"), D("n"))
    assert (best.pickup_s, best.dropoff_s) == (30, 145)
    assert best.added_vehicle_s == 30
    assert best.added_delay_s == 15  # a's drop-off starts at 105 instead of 90
    assert best.cost == 45


@pytest.mark.parametrize(
    ("existing", "new", "capacity"),
    [
        (Load(seats=2), Load(seats=1), Load(seats=2, wheelchairs=1, parcels=2)),
        (Load(seats=1, wheelchairs=1), Load(seats=1, wheelchairs=1), Load(seats=4, wheelchairs=1)),
        (Load(parcels=1), Load(parcels=2), Load(seats=4, parcels=2)),
    ],
    ids=["seats-full", "wheelchair-space-taken", "parcels"],
)
def test_capacity_by_dimension(existing: Load, new: Load, capacity: Load) -> None:
    """A load that does not fit next to the riders on board in some dimension must wait until they leave."""
    a = req("a", 1, 9, load=existing, pw=FIRST)
    v = bus(capacity=capacity, route=(P("a"), D("a")))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5, load=new))
    (opt,) = res.options
    assert opt.route == (P("a"), D("a"), P("n"), D("n"))
    assert (opt.pickup_s, opt.dropoff_s) == (150, 170)  # a dropped at 90, 9 -> 3 is 60 s


def test_capacity_full_and_window_closed_means_no_feasible_insertion() -> None:
    """When capacity forces a later pickup than the window allows, nothing is offered."""
    a = req("a", 1, 9, load=Load(seats=4), pw=FIRST)
    v = bus(route=(P("a"), D("a")))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5, pw=TimeWindow(0, 149)))
    assert res.options == ()
    assert res.cause is UnservedCause.NO_FEASIBLE_INSERTION


def test_existing_promise_is_never_broken() -> None:
    """A detour that would make a promised drop-off late is infeasible; only later options remain."""
    a = req("a", 1, 9, pw=FIRST, dw=TimeWindow(0, 90))  # exactly on time with no detour
    v = bus(route=(P("a"), D("a")))
    new = req("n", 5, 3, service_s=1)  # picking it up on a's way costs a 1 s
    res = find_insertions(problem(v, requests=(a,)), new)
    (opt,) = res.options
    assert opt.route == (P("a"), D("a"), P("n"), D("n"))
    assert (opt.pickup_s, opt.dropoff_s) == (130, 151)
    on_the_way = replace(new, pickup_service_s=0)
    res = find_insertions(problem(v, requests=(a,)), on_the_way)
    assert res.options[0].route == (P("a"), P("n"), D("a"), D("n"))
    tight = replace(new, pickup_window=TimeWindow(0, 129))
    res = find_insertions(problem(v, requests=(a,)), tight)
    assert res.cause is UnservedCause.NO_FEASIBLE_INSERTION


def test_existing_pickup_window_is_never_broken() -> None:
    """Pushing a promised pickup past its window's end is infeasible."""
    new = req("n", 3, 5, service_s=1)
    a = req("a", 6, 9, pw=TimeWindow(0, 60))
    v = bus(route=(P("a"), D("a")))
    # picking n up first reaches 6 at 61 at the earliest: one second too late
    res = find_insertions(problem(v, requests=(a,)), new)
    assert all(o.route.index(P("n")) > o.route.index(P("a")) for o in res.options)
    assert res.options[0].route == (P("a"), D("a"), P("n"), D("n"))
    assert res.options[0].cost == 42  # 6 -> 9 -> 3 -> 5 -> 0 instead of 6 -> 9 -> 0
    a = replace(a, pickup_window=TimeWindow(0, 61))
    res = find_insertions(problem(v, requests=(a,)), new)
    assert res.options[0].route == (P("n"), P("a"), D("a"), D("n"))
    assert res.options[0].cost == 2 + 2  # +2 s dwell, a's pickup and drop-off 1 s later


def test_promised_max_ride_time_holds() -> None:
    """Dwell added inside a promised ride is infeasible when that ride has no slack left."""
    a = req("a", 1, 9, pw=FIRST, max_ride_s=80)  # exactly the direct time
    v = bus(route=(P("a"), D("a")))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5, service_s=10))
    assert [o.route for o in res.options] == [(P("a"), D("a"), P("n"), D("n"))]
    roomy = replace(a, max_ride_s=90)  # room for exactly one 10 s dwell
    res = find_insertions(problem(v, requests=(roomy,)), req("n", 3, 5, service_s=10))
    assert res.options[0].route == (P("a"), P("n"), D("a"), D("n"))
    assert res.options[0].cost == 20 + 10


def test_new_request_max_ride_time_holds() -> None:
    """The new rider's own ride may not exceed max_ride_s, counting dwell for others on the way."""
    b = req("b", 4, 4, service_s=10)  # someone boards and alights at 4 (10 s each)
    v = bus(route=(P("b"), D("b")))
    tight = req("n", 2, 6, max_ride_s=40)
    res = find_insertions(problem(v, requests=(b,)), tight)
    for o in res.options:
        r = o.route
        assert not (r.index(P("n")) < r.index(P("b")) < r.index(D("n")))
    loose = replace(tight, max_ride_s=60)
    res = find_insertions(problem(v, requests=(b,)), loose)
    assert res.options[0].route == (P("n"), P("b"), D("b"), D("n"))
    assert res.options[0].dropoff_s - res.options[0].pickup_s == 60


def test_rider_on_board_counts_for_capacity_and_ride_time() -> None:
    """A rider already on board occupies capacity until dropped and keeps its ride limit."""
    a = replace(req("a", 0, 9, load=Load(seats=4), max_ride_s=100), picked_up_at_s=0)
    v = bus(at=1, start_s=10, route=(D("a"),), onboard=("a",))
    res = find_insertions(problem(v, requests=(a,)), req("n", 3, 5))
    (opt,) = res.options
    assert opt.route == (D("a"), P("n"), D("n"))
    a2 = replace(a, load=Load(seats=1), max_ride_s=90)  # room, but no ride slack for any dwell
    res = find_insertions(problem(v, requests=(a2,)), req("n", 3, 5, service_s=1))
    assert [o.route for o in res.options] == [(D("a"), P("n"), D("n"))]
    res = find_insertions(problem(v, requests=(a2,)), req("n", 5, 3))  # on the way, no dwell
    assert res.options[0].route == (P("n"), D("a"), D("n"))


def test_shift_end_is_exact() -> None:
    """Returning to the end location exactly at shift end is fine; one second later is not."""
    ok = find_insertions(problem(bus(shift_end_s=100)), req("n", 3, 5))
    assert ok.options and ok.options[0].added_vehicle_s == 100
    late = find_insertions(problem(bus(shift_end_s=99)), req("n", 3, 5))
    assert late.cause is UnservedCause.NO_FEASIBLE_INSERTION


def test_max_route_duration() -> None:
    """A route-duration limit is enforced like a shift end relative to the vehicle's start."""
    v = replace(bus(start_s=50), max_route_duration_s=99)
    assert find_insertions(problem(v), req("n", 3, 5)).options == ()
    v = replace(v, max_route_duration_s=100)
    assert find_insertions(problem(v), req("n", 3, 5)).options


def test_ranking_by_cost() -> None:
    """Options come cheapest first, one per vehicle, and max_options caps them."""
    far = bus("far", at=0)  # 0 -> 3 -> 5 -> 0: 100 s
    near = bus("near", at=4)  # 4 -> 3 -> 5 -> 4: 40 s
    mid = bus("mid", at=7)  # 7 -> 3 -> 5 -> 7: 80 s
    res = find_insertions(problem(far, near, mid), req("n", 3, 5))
    assert [o.vehicle_id for o in res.options] == ["near", "mid", "far"]
    assert [o.cost for o in res.options] == [40, 80, 100]
    res = find_insertions(problem(far, near, mid), req("n", 3, 5), max_options=2)
    assert [o.vehicle_id for o in res.options] == ["near", "mid"]


def test_weights_trade_vehicle_time_against_promised_delay() -> None:
    """A high weight on delay to promised riders prefers the vehicle that delays nobody."""
    a = req("a", 1, 9, pw=FIRST)
    busy = bus("busy", route=(P("a"), D("a")))
    idle = bus("idle", at=3)
    new = req("n", 3, 5, pw=TimeWindow(0, 100), service_s=30)
    # busy: best (a+ n+ a- n-) = +60 s dwell, a 30 s later; idle: 30 + 20 + 30 + 20 = 100 s
    cheap = find_insertions(problem(busy, idle, requests=(a,)), new)
    assert [(o.vehicle_id, o.cost) for o in cheap.options] == [("busy", 90), ("idle", 100)]
    heavy = find_insertions(
        problem(busy, idle, requests=(a,)), new, weights=InsertionWeights(promised_delay=2.0)
    )
    assert [(o.vehicle_id, o.cost) for o in heavy.options] == [("idle", 100), ("busy", 120)]


def test_cause_no_vehicle_fits() -> None:
    """A load exceeding every vehicle's capacity in some dimension is reported as no_vehicle_fits."""
    res = find_insertions(
        problem(bus(), bus("w")), req("n", 3, 5, load=Load(seats=1, wheelchairs=2))
    )
    assert res.options == () and res.cause is UnservedCause.NO_VEHICLE_FITS


def test_cause_no_feasible_insertion() -> None:
    """A load that fits but cannot be served in time is reported as no_feasible_insertion."""
    res = find_insertions(problem(bus()), req("n", 5, 3, pw=TimeWindow(0, 49)))
    assert res.options == () and res.cause is UnservedCause.NO_FEASIBLE_INSERTION


def test_a_plan_that_cannot_be_timed_gets_no_new_request() -> None:
    """A vehicle whose plan no timing can keep (its driver is already late) is offered nothing,
    even where the new stops would make nothing later; another vehicle still is."""
    a = req("a", 1, 9, pw=FIRST, dw=TimeWindow(0, 80))  # already 10 s late at 90
    late = bus("late", route=(P("a"), D("a")))
    assert not evaluate(problem(late, requests=(a,)), late, late.route).feasible
    res = find_insertions(problem(late, requests=(a,)), req("n", 3, 5, service_s=5))
    assert res.options == () and res.cause is UnservedCause.NO_FEASIBLE_INSERTION
    res = find_insertions(problem(late, bus("free"), requests=(a,)), req("n", 3, 5, service_s=5))
    assert [o.vehicle_id for o in res.options] == ["free"]


def test_insertion_refuses_a_route_no_timing_can_serve() -> None:
    """Finding 9: the old search measured a's ride on earliest-start times (490 s > 300 s, an
    "existing violation" it tolerated), so it accepted n between a's pickup and drop-off, the
    cheapest place. But a's ride limit forces its pickup to 200 s or later (drop-off at 500 s
    earliest) and n must be picked up by 60 s just after it: no timing serves that route. Only
    n before a is feasible, with the vehicle waiting at a's pickup until 200 s."""
    from routing.check import check_routes

    a = req("a", 1, 3, pw=TimeWindow(0, 300), dw=TimeWindow(500, 600), max_ride_s=300)
    v = bus(route=(P("a"), D("a")))
    pr = problem(v, requests=(a,))
    assert evaluate(pr, v, v.route).feasible  # the plan itself is fine: it waits before a
    n = req("n", 2, 3, pw=TimeWindow(0, 60), dw=TimeWindow(0, 100))
    inside = (P("a"), P("n"), D("n"), D("a"))
    with_n = Problem(pr.vehicles, {**pr.requests, "n": n}, LINE)
    assert not evaluate(with_n, v, inside).feasible
    assert check_routes(with_n, {"v": inside})[1]  # the checker's own timing rejects it too
    res = find_insertions(pr, n)
    assert [o.route for o in res.options] == [(P("n"), D("n"), P("a"), D("a"))]
    (opt,) = res.options
    assert (opt.pickup_s, opt.dropoff_s) == (20, 30)
    timed = evaluate(with_n, v, opt.route).to_route("v")
    assert [(s.arrival_s, s.start_s, s.wait_s) for s in timed.stops] == [
        (20, 20, 0), (30, 30, 0), (50, 200, 150), (220, 500, 280),
    ]  # fmt: skip
    assert check_routes(with_n, {"v": opt.route})[1] == []


def test_nearest_feasible_times() -> None:
    """Shifting the windows by whole steps finds the nearest times that work, nearest first."""
    v = bus(shift_end_s=10_000)
    new = req("n", 5, 3, pw=TimeWindow(0, 10), dw=TimeWindow(0, 1000))
    assert find_insertions(problem(v), new).options == ()  # reaching 5 takes 50 s
    times = nearest_feasible_times(problem(v), new, step_s=30, horizon_s=300, count=3)
    assert times == [60, 90, 120]
    assert nearest_feasible_times(problem(v), new, step_s=30, horizon_s=30) == []


def test_nearest_feasible_times_earlier() -> None:
    """Earlier times are tried too, but never ones whose window closed before now."""
    a = req("a", 0, 10, load=Load(seats=4), pw=TimeWindow(200, 200), dw=TimeWindow(300, 300))
    v = bus(route=(P("a"), D("a")))
    new = req("n", 2, 4, pw=TimeWindow(200, 210), dw=TimeWindow(0, 400))
    assert find_insertions(problem(v, requests=(a,)), new).options == ()
    times = nearest_feasible_times(problem(v, requests=(a,)), new, step_s=100, horizon_s=400)
    # -100 works; +100 fails (bus full until 300, then 2 is reached at 380 > 310); -200 fails
    # (2 is reached at 20 > 10); +200 and +300 work after a; -300 closed before now
    assert times == [100, 400, 500]


def test_promise_keeps_route_feasible() -> None:
    """The promised windows contain the plan, respect the request, and keep the route feasible."""
    a = req("a", 1, 9, pw=FIRST)
    v = bus(route=(P("a"), D("a")))
    new = req(
        "n", 3, 5, pw=TimeWindow(0, 600), dw=TimeWindow(0, 2000), max_ride_s=200, service_s=10
    )
    pr = problem(v, requests=(a,))
    opt = find_insertions(pr, new).options[0]
    window, latest_drop = make_promise(opt, new, pickup_window_s=600)
    assert window == TimeWindow(0, 600)  # clipped below at the request's earliest
    assert latest_drop == 600 + 10 + 200
    window, latest_drop = make_promise(opt, new, pickup_window_s=20)
    assert window == TimeWindow(opt.pickup_s - 10, opt.pickup_s + 10)
    assert latest_drop == opt.pickup_s + 10 + 10 + 200
    promised = promised_request(new, (window, latest_drop))
    reqs = {**pr.requests, "n": promised}
    sched = evaluate(Problem(pr.vehicles, reqs, LINE), v, opt.route)
    assert sched.feasible
    assert sched.start_s[opt.pickup_index] == opt.pickup_s


def test_max_ride_time_formula() -> None:
    """max ride = min(direct + abs, floor(alpha x direct) + beta), never below direct."""
    assert max_ride_time_s(600, alpha=1.5, beta_s=300, abs_s=1200) == 1200
    assert max_ride_time_s(600, alpha=2.0, beta_s=600, abs_s=900) == 1500
    assert max_ride_time_s(0, alpha=1.5, beta_s=0, abs_s=0) == 0
    assert max_ride_time_s(101, alpha=1.5, beta_s=0, abs_s=1000) == 151
    with pytest.raises(ValueError):
        max_ride_time_s(100, alpha=0.9, beta_s=0, abs_s=0)


def test_request_windows_by_direction() -> None:
    """Leave-at opens the pickup at T for max_wait; arrive-by closes the drop-off at T."""
    pw, dw = request_windows(
        "leave_at", 1000, direct_s=300, max_ride_s=450, max_wait_s=600, pickup_service_s=30
    )
    assert pw == TimeWindow(1000, 1600) and dw == TimeWindow(1330, 2080)
    pw, dw = request_windows(
        "arrive_by", 5000, direct_s=300, max_ride_s=450, max_wait_s=600, pickup_service_s=30
    )
    assert dw == TimeWindow(4400, 5000) and pw == TimeWindow(3920, 4670)


def test_arrive_by_request_is_served_in_time() -> None:
    """An arrive-by request gets a drop-off no later than the asked time."""
    direct = 20
    pw, dw = request_windows("arrive_by", 500, direct_s=direct, max_ride_s=40, max_wait_s=60)
    new = Request("n", 3, 5, Load(seats=1), pw, dw, 40)
    (opt,) = find_insertions(problem(bus()), new).options
    assert 440 <= opt.dropoff_s <= 500
    assert opt.dropoff_s - opt.pickup_s <= 40


def test_request_already_in_a_route_is_rejected() -> None:
    """Inserting a request that is already planned is a programming error."""
    a = req("a", 1, 9)
    with pytest.raises(ValueError):
        find_insertions(problem(bus(route=(P("a"), D("a"))), requests=(a,)), a)


def _random_problem(rng: random.Random) -> tuple[Problem, Request]:
    def rand_req(rid: str) -> Request:
        p, d = rng.sample(range(11), 2)
        e = rng.randint(0, 300)
        w = rng.randint(0, 120)
        direct = int(LINE[p, d])
        mr = direct + rng.randint(0, 80)
        return Request(
            rid,
            p,
            d,
            Load(rng.randint(0, 2), rng.choice((0, 0, 1)), rng.choice((0, 1))),
            TimeWindow(e, e + w),
            TimeWindow(e + direct - rng.randint(0, 50), e + w + mr + rng.randint(0, 100)),
            mr,
            rng.randint(0, 10),
            rng.randint(0, 10),
        )

    vehicles = [
        bus(
            f"v{k}",
            at=rng.randrange(11),
            end=rng.randrange(11),
            shift_end_s=rng.randint(400, 900),
            capacity=Load(rng.randint(1, 3), rng.randint(0, 1), rng.randint(0, 2)),
        )
        for k in range(2)
    ]
    pr = problem(*vehicles)
    for k in range(rng.randint(1, 7)):
        r = rand_req(f"r{k}")
        res = find_insertions(pr, r, max_options=2)
        if res.options:
            o = rng.choice(res.options)
            vs = tuple(
                replace(v, route=o.route) if v.id == o.vehicle_id else v for v in pr.vehicles
            )
            pr = Problem(vs, {**pr.requests, r.id: r}, LINE)
    return _disturb(rng, pr), rand_req("new")


def _disturb(rng: random.Random, pr: Problem) -> Problem:
    """Put a first rider on board (pickup served) and make a promise already late, at random."""
    reqs = dict(pr.requests)
    vehicles = []
    for v in pr.vehicles:
        if v.route and v.route[0].kind == "pickup" and rng.random() < 0.5:
            rid = v.route[0].request_id
            sched = evaluate(pr, v, v.route)
            reqs[rid] = replace(reqs[rid], picked_up_at_s=sched.departure_s[0])
            v = replace(
                v,
                start_location=reqs[rid].pickup,
                start_time_s=sched.departure_s[0],
                onboard=(rid,),
                route=v.route[1:],
            )
        if v.route and rng.random() < 0.3:
            stop = rng.choice(v.route)
            r = reqs[stop.request_id]
            if stop.kind == "dropoff":
                late = TimeWindow(
                    r.dropoff_window.earliest_s - 500, r.dropoff_window.earliest_s - 400
                )
                reqs[r.id] = replace(r, dropoff_window=late)
        vehicles.append(v)
    return Problem(tuple(vehicles), reqs, LINE)


def test_generator_agrees_with_exhaustive_evaluation() -> None:
    """On random small instances (riders on board, plans already late) the screens never rule
    out a pair whose whole route the scheduler can time, both generators agree, and every
    option find_insertions returns is the cheapest exactly feasible pair of its vehicle."""
    from routing.insertion import _generate_stacked, _new_route, _Stack, generate_insertions

    rng = random.Random(7)
    checked = 0
    for _ in range(200):
        pr, new = _random_problem(rng)
        stacked = _generate_stacked(pr, _Stack(pr, range(len(pr.vehicles))), new)
        reqs = {**pr.requests, "new": new}
        options = {o.vehicle_id: o for o in find_insertions(pr, new, max_options=9).options}
        for vi, v in enumerate(pr.vehicles):
            n = len(v.route)
            feasible = {}
            for i in range(n + 1):
                for j in range(i, n + 1):
                    route, _, _ = _new_route(v.route, "new", i, j)
                    sched = evaluate(pr, v, route, requests=reqs)
                    if sched.feasible:
                        feasible[(i, j)] = route
            got = generate_insertions(pr, vi, new, slack=RouteSlack(pr, v))
            assert set(feasible) <= {(c.i, c.j) for c in got}
            assert sorted(c for c in stacked if c.vehicle_index == vi) == sorted(got)
            if not feasible:
                assert v.id not in options
                continue
            opt = options[v.id]
            assert opt.route in feasible.values()
            sched = evaluate(pr, v, opt.route, requests=reqs)
            assert (sched.start_s[opt.pickup_index], sched.start_s[opt.dropoff_index]) == (
                opt.pickup_s,
                opt.dropoff_s,
            )
            checked += 1
    assert checked > 100


def test_prepared_plans_give_the_same_answers() -> None:
    """Reusing PreparedPlans between searches changes nothing but speed."""
    from routing.insertion import PreparedPlans

    rng = random.Random(11)
    for _ in range(40):
        pr, new = _random_problem(rng)
        prepared = PreparedPlans(pr)
        assert find_insertions(pr, new, prepared=prepared) == find_insertions(pr, new)
        other = replace(new, id="other", pickup=(new.pickup + 3) % 11)
        assert find_insertions(pr, other, prepared=prepared) == find_insertions(pr, other)
    with pytest.raises(ValueError):
        find_insertions(pr, new, prepared=PreparedPlans(problem(bus())))


def test_nearest_feasible_times_one_direction() -> None:
    """shift="later" never proposes an earlier time, shift="earlier" never a later one."""
    v = bus()
    new = req("n", 5, 3, pw=TimeWindow(600, 610), dw=TimeWindow(0, 5000))
    a = req("a", 0, 10, load=Load(seats=4), pw=TimeWindow(550, 560), dw=TimeWindow(650, 700))
    pr = problem(replace(v, route=(P("a"), D("a"))), requests=(a,))
    assert find_insertions(pr, new).options == ()
    later = nearest_feasible_times(pr, new, step_s=60, horizon_s=600, shift="later")
    earlier = nearest_feasible_times(pr, new, step_s=60, horizon_s=600, shift="earlier")
    assert later and all(t > 600 for t in later)
    assert earlier and all(t < 600 for t in earlier)
