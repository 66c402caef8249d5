"""Tests of the independent checker (routing/check.py) and the benchmark readers."""

from __future__ import annotations

import csv
import glob
import re
from pathlib import Path

import numpy as np
import pytest

from routing.benchmarks import (
    load_best_known,
    read_cordeau,
    read_cordeau_solution,
    read_cordeau_solution_schedule,
    read_lilim,
    route_cost,
)
from routing.check import KINDS, check, check_routes, schedule_route
from routing.model import (
    Load,
    Problem,
    Request,
    Route,
    ScheduledStop,
    Solution,
    Stop,
    TimeWindow,
    UnservedCause,
    Vehicle,
)

BENCH = Path("/work/shared/benchmarks")
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="benchmark folder not available")

# --------------------------------------------------------------------------------------------
# a small hand-made world: 5 locations on a line, 100 time units apart; 0 is the depot

TRAVEL = np.array([[abs(i - j) * 100 for j in range(5)] for i in range(5)], dtype=np.int64)
OPEN = TimeWindow(0, 10_000)


def _request(rid: str, pickup: int, dropoff: int, **kw) -> Request:
    base = {
        "id": rid,
        "pickup": pickup,
        "dropoff": dropoff,
        "load": Load(seats=1),
        "pickup_window": OPEN,
        "dropoff_window": OPEN,
        "max_ride_s": 1_000,
        "pickup_service_s": 10,
        "dropoff_service_s": 10,
    }
    base.update(kw)
    return Request(**base)


def _vehicle(vid: str = "v", **kw) -> Vehicle:
    base = {
        "id": vid,
        "start_location": 0,
        "start_time_s": 0,
        "end_location": 0,
        "shift_end_s": 10_000,
        "capacity": Load(seats=2),
    }
    base.update(kw)
    return Vehicle(**base)


def _problem(requests, vehicles=None) -> Problem:
    return Problem(
        vehicles=tuple(vehicles or [_vehicle()]),
        requests={r.id: r for r in requests},
        travel_s=TRAVEL,
    )


def _p(rid: str) -> Stop:
    return Stop(rid, "pickup")


def _d(rid: str) -> Stop:
    return Stop(rid, "dropoff")


def _kinds(violations) -> list[str]:
    return [v.kind for v in violations]


def _manual_route(problem: Problem, vid: str, timed: list[tuple[Stop, int]], end_s: int) -> Route:
    """A route with hand-set start times (arrival = start, loads not filled in)."""
    stops = []
    for stop, start in timed:
        req = problem.requests[stop.request_id]
        loc = req.pickup if stop.kind == "pickup" else req.dropoff
        service = req.pickup_service_s if stop.kind == "pickup" else req.dropoff_service_s
        stops.append(ScheduledStop(stop, loc, start, start, start + service, Load()))
    return Route(vid, tuple(stops), end_s)


# --------------------------------------------------------------------------------------------
# hand-made cases, one per violation kind


def test_feasible_route_has_no_violation():
    """A plain feasible pickup/drop-off pair is accepted and scheduled as expected."""
    problem = _problem([_request("a", 1, 3)])
    solution, violations = check_routes(problem, {"v": [_p("a"), _d("a")]})
    assert violations == []
    (route,) = solution.routes
    assert [s.start_s for s in route.stops] == [100, 310]
    assert route.end_arrival_s == 320 + 300
    assert [s.load_after.seats for s in route.stops] == [1, 0]


def test_time_window_violation():
    """A drop-off that cannot start by its latest time is reported as time_window."""
    problem = _problem([_request("a", 1, 3, dropoff_window=TimeWindow(0, 250))])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a")]})
    assert _kinds(violations) == ["time_window"]
    assert violations[0].request_id == "a"


def test_time_window_tolerance():
    """A start within the tolerance of the window is accepted."""
    problem = _problem([_request("a", 1, 3, dropoff_window=TimeWindow(0, 305))])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a")]}, tolerance=5)
    assert violations == []


def test_ride_time_violation():
    """A detour making the ride longer than max_ride_s is reported as ride_time."""
    problem = _problem([_request("a", 1, 2, max_ride_s=150), _request("b", 4, 3)])
    _, violations = check_routes(problem, {"v": [_p("a"), _p("b"), _d("b"), _d("a")]})
    assert _kinds(violations) == ["ride_time"]
    assert violations[0].request_id == "a"


def test_capacity_violation_per_dimension():
    """Loads are checked per dimension: a second wheelchair over a capacity of one is flagged."""
    wheel = Load(seats=1, wheelchairs=1)
    problem = _problem(
        [_request("a", 1, 3, load=wheel), _request("b", 2, 4, load=wheel)],
        [_vehicle(capacity=Load(seats=4, wheelchairs=1))],
    )
    _, violations = check_routes(problem, {"v": [_p("a"), _p("b"), _d("a"), _d("b")]})
    assert _kinds(violations) == ["capacity"]
    assert violations[0].request_id == "b"


def test_capacity_counts_riders_on_board():
    """The initial load is the riders on board, so one more pickup can overflow."""
    problem = _problem(
        [
            _request("x", 0, 2, picked_up_at_s=0),
            _request("y", 0, 3, picked_up_at_s=0),
            _request("a", 1, 4),
        ],
        [_vehicle(onboard=("x", "y"))],
    )
    _, violations = check_routes(problem, {"v": [_p("a"), _d("x"), _d("y"), _d("a")]})
    assert _kinds(violations) == ["capacity"]


def test_precedence_violation():
    """A drop-off before its pickup, and a pickup never dropped off, are precedence errors."""
    problem = _problem([_request("a", 1, 3), _request("b", 2, 4)])
    _, violations = check_routes(problem, {"v": [_d("a"), _p("a"), _p("b")]})
    assert sorted(_kinds(violations)) == ["precedence", "precedence", "precedence"]
    assert {v.request_id for v in violations} == {"a", "b"}


def test_route_duration_violation():
    """End arrival minus start departure beyond max_route_duration_s is route_duration."""
    problem = _problem([_request("a", 1, 4)], [_vehicle(max_route_duration_s=800)])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a")]})
    assert _kinds(violations) == ["route_duration"]


def test_route_duration_counts_from_late_departure():
    """Waiting at the start does not count: duration runs from the latest possible departure."""
    problem = _problem(
        [_request("a", 1, 2, pickup_window=TimeWindow(5_000, 5_100))],
        [_vehicle(max_route_duration_s=420)],
    )
    solution, violations = check_routes(problem, {"v": [_p("a"), _d("a")]})
    assert violations == []
    assert solution.routes[0].stops[0].arrival_s == 5_000  # left the depot at 4 900


def test_shift_end_violation():
    """Arriving at the end location after shift_end_s is shift_end."""
    problem = _problem([_request("a", 1, 4)], [_vehicle(shift_end_s=700)])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a")]})
    assert _kinds(violations) == ["shift_end"]


def test_not_served_unless_allowed():
    """A request in no route is not_served; listed as unserved it passes only if allowed."""
    problem = _problem([_request("a", 1, 3), _request("b", 2, 4)])
    routes = {"v": [_p("a"), _d("a")]}
    _, violations = check_routes(problem, routes)
    assert [(v.kind, v.request_id) for v in violations] == [("not_served", "b")]
    unserved = {"b": UnservedCause.NO_FEASIBLE_INSERTION}
    _, violations = check_routes(problem, routes, unserved=unserved)
    assert _kinds(violations) == ["not_served"]
    _, violations = check_routes(problem, routes, unserved=unserved, require_all_served=False)
    assert violations == []


def test_served_twice():
    """A request visited by two vehicles is served_twice."""
    problem = _problem([_request("a", 1, 3)], [_vehicle("v"), _vehicle("w")])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a")], "w": [_p("a"), _d("a")]})
    assert _kinds(violations) == ["served_twice"]
    assert violations[0].vehicle_id == "w"


def test_served_and_listed_unserved():
    """A request both routed and listed as unserved is served_twice."""
    problem = _problem([_request("a", 1, 3)])
    _, violations = check_routes(
        problem,
        {"v": [_p("a"), _d("a")]},
        unserved={"a": UnservedCause.TIME_LIMIT},
        require_all_served=False,
    )
    assert _kinds(violations) == ["served_twice"]


def test_wrong_vehicle_for_rider_on_board():
    """A rider on board of one vehicle may not be dropped off by another."""
    rider = _request("x", 0, 2, picked_up_at_s=0)
    problem = _problem([rider], [_vehicle("v", onboard=("x",)), _vehicle("w")])
    _, violations = check_routes(problem, {"v": [], "w": [_d("x")]})
    kinds = _kinds(violations)
    assert "wrong_vehicle" in kinds
    assert "not_served" in kinds  # and its drop-off is missing from its own vehicle


def test_rider_on_board_must_be_dropped():
    """A rider on board whose drop-off is missing is not_served even if listed as unserved."""
    rider = _request("x", 0, 2, picked_up_at_s=0)
    problem = _problem([rider], [_vehicle(onboard=("x",))])
    _, violations = check_routes(
        problem, {}, unserved={"x": UnservedCause.TIME_LIMIT}, require_all_served=False
    )
    assert [(v.kind, v.request_id) for v in violations] == [("not_served", "x")]


def test_ride_of_rider_on_board_counts_from_pickup_time():
    """For a rider on board the ride runs from picked_up_at_s, not from the plan start."""
    rider = _request("x", 0, 3, picked_up_at_s=-800, max_ride_s=1_000)
    problem = _problem([rider], [_vehicle(onboard=("x",))])
    _, violations = check_routes(problem, {"v": [_d("x")]})
    assert _kinds(violations) == ["ride_time"]  # 300 - (-800) = 1 100 > 1 000


def test_unknown_request():
    """A stop naming a request the problem does not know is unknown_request."""
    problem = _problem([_request("a", 1, 3)])
    _, violations = check_routes(problem, {"v": [_p("a"), _d("a"), _p("zz")]})
    assert _kinds(violations) == ["unknown_request"]
    assert violations[0].request_id == "zz"


def test_travel_time_violation():
    """A given start earlier than the previous departure plus travel is travel_time."""
    problem = _problem([_request("a", 1, 3)])
    route = _manual_route(problem, "v", [(_p("a"), 100), (_d("a"), 250)], 620)
    violations = check(problem, Solution((route,)))
    assert _kinds(violations) == ["travel_time"]
    route = _manual_route(problem, "v", [(_p("a"), 100), (_d("a"), 310)], 500)
    assert _kinds(check(problem, Solution((route,)))) == ["travel_time"]  # end too early


def test_every_kind_is_listed():
    """Every kind the hand-made tests produce is in KINDS (the documented vocabulary)."""
    assert set(KINDS) >= {
        "time_window",
        "ride_time",
        "capacity",
        "precedence",
        "route_duration",
        "shift_end",
        "not_served",
        "served_twice",
        "wrong_vehicle",
        "unknown_request",
        "travel_time",
    }


def test_schedule_holds_the_pickup_just_enough_for_the_ride_limit():
    """The checker's own schedule is the least-time one: the pickup is held only until the
    ride (drop-off start - pickup end) is at its limit; the rest of the waiting stays before
    the drop-off window opens."""
    problem = _problem(
        [_request("a", 1, 2, dropoff_window=TimeWindow(1_000, 1_050), max_ride_s=200)]
    )
    stops = schedule_route(problem, problem.vehicles[0], [_p("a"), _d("a")])
    assert stops is not None
    pickup, dropoff = stops
    assert dropoff.start_s == 1_000
    assert pickup.start_s == 1_000 - 200 - 10  # ride exactly at its limit of 200
    assert pickup.arrival_s < pickup.start_s
    assert dropoff.arrival_s == pickup.departure_s + 100 < dropoff.start_s


def test_schedule_route_unknown_request_is_none():
    """schedule_route returns None for a stop it cannot schedule."""
    problem = _problem([_request("a", 1, 3)])
    assert schedule_route(problem, problem.vehicles[0], [_p("nope")]) is None


# --------------------------------------------------------------------------------------------
# the published pr01 solution


def _published_solution(instance) -> Solution:
    """res1.txt with its published start times (0.01 minute precision) as a Solution."""
    schedule = read_cordeau_solution_schedule(BENCH / "darp/solutions/res1.txt", instance)
    problem = instance.problem
    by_location = {}
    for req in problem.requests.values():
        by_location[req.pickup] = Stop(req.id, "pickup")
        by_location[req.dropoff] = Stop(req.id, "dropoff")
    routes = []
    for vehicle, timed in zip(problem.vehicles, schedule):
        stops = []
        for loc, minutes in timed[1:-1]:
            stop = by_location[loc]
            req = problem.requests[stop.request_id]
            service = req.pickup_service_s if stop.kind == "pickup" else req.dropoff_service_s
            start = round(minutes * instance.scale)
            stops.append(ScheduledStop(stop, loc, start, start, start + service, Load()))
        routes.append(Route(vehicle.id, tuple(stops), round(timed[-1][1] * instance.scale)))
    return Solution(tuple(routes))


@needs_bench
def test_published_pr01_solution_is_feasible_on_r1a():
    """Cordeau's published pr01 schedule passes every check on R1a and costs 190.0187."""
    instance = read_cordeau(BENCH / "darp/R1a.txt")
    assert instance.name == "pr01"
    solution = _published_solution(instance)
    assert check(instance.problem, solution, tolerance=instance.scale // 100) == []
    routes = read_cordeau_solution(BENCH / "darp/solutions/res1.txt", instance)
    assert len(routes) == 3 and all(r[0] == 0 and r[-1] == 49 for r in routes)
    assert route_cost(instance, routes) == pytest.approx(190.0187, abs=1e-4)
    assert instance.best_known == pytest.approx(190.02)


@needs_bench
def test_checker_schedule_of_pr01_sequence_is_feasible():
    """The checker's own schedule of the pr01 sequence is feasible, and as the least-time
    schedule never later than the published one (to its 0.01-minute rounding)."""
    instance = read_cordeau(BENCH / "darp/R1a.txt")
    published = _published_solution(instance)
    plans = {r.vehicle_id: [s.stop for s in r.stops] for r in published.routes}
    solution, violations = check_routes(instance.problem, plans)
    assert violations == []
    for mine, theirs in zip(solution.routes, published.routes):
        for a, b in zip(mine.stops, theirs.stops):
            assert a.start_s <= b.start_s + 10


@needs_bench
def test_published_pr01_solution_breaks_windows_on_r1b():
    """The same schedule on R1b (wider, shifted windows) breaks time windows."""
    instance = read_cordeau(BENCH / "darp/R1b.txt")
    assert instance.name == "pr11"
    violations = check(instance.problem, _published_solution(instance), tolerance=10)
    assert violations and {v.kind for v in violations} == {"time_window"}


# --------------------------------------------------------------------------------------------
# readers


@needs_bench
def test_reads_all_48_cordeau_ab_files():
    """All a/b files parse: 2n+2 locations, requests i -> n+i, depot window, best-known found."""
    files = sorted(glob.glob(str(BENCH / "darp/[ab]*.txt")))
    assert len(files) == 48
    for f in files:
        inst = read_cordeau(f)
        m, n = (int(x) for x in re.match(r"[ab](\d+)-(\d+)", Path(f).stem).groups())
        problem = inst.problem
        assert inst.kind == "darp" and inst.name == Path(f).stem
        assert inst.max_vehicles == m == len(problem.vehicles)
        assert len(problem.requests) == n
        assert inst.coords.shape == (2 * n + 2, 2) == (len(inst.node_ids), 2)
        assert problem.travel_s.shape == (2 * n + 2, 2 * n + 2)
        assert problem.travel_s.dtype == np.int64
        v = problem.vehicles[0]
        assert (v.start_location, v.end_location) == (0, 2 * n + 1)
        assert v.shift_end_s == v.max_route_duration_s  # depot window [0, T]
        req = problem.requests["1"]
        assert (req.pickup, req.dropoff) == (1, n + 1)
        widths = [
            min(
                r.pickup_window.latest_s - r.pickup_window.earliest_s,
                r.dropoff_window.latest_s - r.dropoff_window.earliest_s,
            )
            for r in problem.requests.values()
        ]
        assert set(widths) == {15 * inst.scale}
        assert inst.best_known is not None


@needs_bench
def test_reads_all_20_pr_files():
    """All R files parse with an appended end depot and map to pr01...pr20 with a best-known."""
    files = sorted(glob.glob(str(BENCH / "darp/R*.txt")))
    assert len(files) == 20
    with open(BENCH / "darp/pr_name_map.csv", newline="") as fh:
        mapping = {row["file"]: row for row in csv.DictReader(fh)}
    names = set()
    for f in files:
        inst = read_cordeau(f)
        row = mapping[Path(f).name]
        n = int(row["requests"])
        names.add(inst.name)
        assert inst.name == row["literature_name"]
        assert inst.max_vehicles == int(row["vehicles"])
        assert len(inst.problem.requests) == n
        assert inst.coords.shape == (2 * n + 2, 2)
        assert inst.node_ids[-1] == 0 and (inst.coords[-1] == inst.coords[0]).all()
        v = inst.problem.vehicles[0]
        assert (v.end_location, v.shift_end_s, v.max_route_duration_s) == (
            2 * n + 1,
            1440 * inst.scale,
            480 * inst.scale,
        )
        assert inst.problem.requests["1"].max_ride_s == 90 * inst.scale
        assert inst.best_known is not None
    assert names == {f"pr{k:02d}" for k in range(1, 21)}


@needs_bench
def test_reads_all_116_lilim_files():
    """All Li & Lim files parse: pairs match, end depot appended, best-known found."""
    files = sorted(glob.glob(str(BENCH / "pdptw/*.txt")))
    assert len(files) == 116
    for f in files:
        inst = read_lilim(f)
        lines = [ln for ln in Path(f).read_text().splitlines() if ln.strip()]
        ntasks = len(lines) - 1  # including the depot
        problem = inst.problem
        assert inst.kind == "pdptw"
        assert inst.coords.shape == (ntasks + 1, 2)
        assert inst.node_ids[-1] == 0
        assert 2 * len(problem.requests) == ntasks - 1
        assert inst.max_vehicles == len(problem.vehicles) in (25, 50)
        v = problem.vehicles[0]
        assert v.end_location == ntasks and v.max_route_duration_s is None
        for req in problem.requests.values():
            assert req.id == str(req.pickup)
            assert req.max_ride_s == v.shift_end_s
            assert req.pickup_window.latest_s <= v.shift_end_s
        assert inst.best_known is not None


@needs_bench
def test_best_known_keys():
    """best_known.csv is keyed by literature names: a/b stems, pr01...pr20, Li & Lim stems."""
    best = load_best_known(BENCH / "best_known.csv")
    assert len(best) == 184
    assert best["pr01"] == pytest.approx(190.02)
    assert "R1a" not in best
    assert best["lc101"] == pytest.approx(828.9369)


@needs_bench
def test_lilim_best_known_solutions_pass_the_checker():
    """The 116 published Li & Lim best-known solutions are feasible and cost what they claim."""
    for path in sorted(glob.glob(str(BENCH / "pdptw/bks_solutions/*.txt"))):
        name = Path(path).name.split(".")[0]
        inst = read_lilim(BENCH / f"pdptw/{name}.txt")
        problem = inst.problem
        stop_at = {}
        for req in problem.requests.values():
            stop_at[req.pickup] = Stop(req.id, "pickup")
            stop_at[req.dropoff] = Stop(req.id, "dropoff")
        plans, sequences = {}, []
        for line in Path(path).read_text().splitlines():
            match = re.match(r"\s*Route\s+\d+\s*:(.*)", line)
            if match:
                ids = [int(x) for x in match.group(1).split()]
                plans[problem.vehicles[len(plans)].id] = [stop_at[i] for i in ids]
                sequences.append([0, *ids, len(inst.node_ids) - 1])
        _, violations = check_routes(problem, plans)
        assert violations == [], name
        assert route_cost(inst, sequences) == pytest.approx(inst.best_known, abs=1e-3)
