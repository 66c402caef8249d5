"""The independent plan checker.

``check()`` takes a solution as given (the start of service of every stop) and reports every
broken rule as data. ``schedule_route()`` turns a plain stop sequence (the plan a driver
follows) into the checker's own schedule, so ``check_routes()`` can judge a sequence.

This module shares no code with the optimiser or the insertion search: it only uses the data
types of ``routing.model``, so it can judge both of them. All times are in the problem's
integer time unit (seconds in the service, minutes x scale in the benchmarks).

Rules checked (violation ``kind``):

``travel_time``
    A stop starts before the vehicle can be there: start of service of stop k must be at least
    the departure of the previous stop (or the vehicle's ``start_time_s`` at its
    ``start_location``) plus the travel time; the same for the arrival at ``end_location``.
    Also reported when a scheduled stop's ``location`` is not the request's location.
``time_window``
    Start of service outside the pickup or drop-off window.
``ride_time``
    Drop-off start minus the end of pickup service (or ``picked_up_at_s`` for a rider already
    on board) exceeds ``max_ride_s``.
``capacity``
    Load after a stop exceeds the vehicle capacity or is negative, in some dimension. The
    initial load is the sum of the loads of the requests on board.
``precedence``
    A drop-off without an earlier pickup in the same route, a pickup without a later drop-off,
    or a pickup of a rider already on board.
``route_duration``
    Arrival at the end location minus departure from the start exceeds
    ``max_route_duration_s``. The departure is the latest one that still reaches the first stop
    by its start of service (never before ``start_time_s``): waiting at the start location does
    not count, as in the DARP literature.
``shift_end``
    Arrival at the end location after ``shift_end_s``.
``not_served``
    A request neither routed nor listed as unserved (or listed as unserved while
    ``require_all_served``), or a rider on board whose drop-off is missing.
``served_twice``
    A request visited in more than one route, or more than once in one route, or both routed
    and listed as unserved.
``wrong_vehicle``
    A rider on board of one vehicle dropped off by another.
``unknown_request``
    A stop, an on-board entry or an unserved entry names a request the problem does not know,
    or a route names an unknown vehicle, or a vehicle has two routes.
``pinned_moved``
    A pickup pinned to a vehicle (``Vehicle.pinned``: the vehicle is arriving at or waiting at
    that stop) is not where it was pinned: the route of that vehicle must begin with the pinned
    pickups in the given order (so it is in no other vehicle's route and not left unserved).

A route's ``start_departure_s``, when given, is the departure from the start location: it must
not be before ``start_time_s`` (``travel_time``) and the first stop is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.model import (
    DIMENSIONS,
    Load,
    Problem,
    Request,
    Route,
    ScheduledStop,
    Solution,
    Stop,
    Vehicle,
)

__all__ = ["KINDS", "Violation", "check", "check_routes", "schedule_route"]

#: Every violation kind ``check`` can report.
KINDS: tuple[str, ...] = (
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
    "pinned_moved",
)


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes
    ----------
    kind:
        One of ``KINDS``.
    vehicle_id:
        The vehicle whose route breaks the rule, or ``None``.
    request_id:
        The request concerned, or ``None``.
    detail:
        A human-readable explanation with the numbers involved (problem time units).
    """

    kind: str
    vehicle_id: str | None
    request_id: str | None
    detail: str


def _location(request: Request, stop: Stop) -> int:
    return request.pickup if stop.kind == "pickup" else request.dropoff


def _window(request: Request, stop: Stop):
    return request.pickup_window if stop.kind == "pickup" else request.dropoff_window


def _service(request: Request, stop: Stop) -> int:
    return request.pickup_service_s if stop.kind == "pickup" else request.dropoff_service_s


# --------------------------------------------------------------------------------------------
# check


def check(
    problem: Problem,
    solution: Solution,
    *,
    require_all_served: bool = True,
    tolerance: int = 0,
) -> list[Violation]:
    """Check a scheduled solution against every rule of the problem.

    Parameters
    ----------
    problem:
        Vehicles (start, end, shift end, capacity, riders on board, route duration limit),
        requests and the integer travel-time matrix.
    solution:
        Routes with their schedule. The ``start_s`` of every ``ScheduledStop`` and each
        route's ``end_arrival_s`` are taken as given; departures are recomputed as start plus
        the request's service time, loads are recomputed from the requests. ``arrival_s``,
        ``departure_s`` and ``load_after`` of the stops are not trusted. Requests in
        ``solution.unserved`` may be absent from the routes.
    require_all_served:
        When true (the default) a request listed in ``solution.unserved`` is still reported
        as ``not_served``. Riders already on board must always be served.
    tolerance:
        Slack in time units allowed on every time comparison (windows, ride times, travel
        times, route duration, shift end); e.g. 10 for schedules published to 0.01 minute at
        scale 1000. Capacities are checked exactly.

    Returns
    -------
    list[Violation]
        Empty when the solution is feasible; otherwise one entry per broken rule instance,
        in route order.
    """
    out: list[Violation] = []
    tol = tolerance
    vehicles = {v.id: v for v in problem.vehicles}
    requests = problem.requests

    # who is on board where
    onboard_of: dict[str, str] = {}
    for v in problem.vehicles:
        for rid in v.onboard:
            if rid not in requests:
                out.append(Violation("unknown_request", v.id, rid, "on-board request unknown"))
            elif rid in onboard_of:
                out.append(
                    Violation(
                        "served_twice",
                        v.id,
                        rid,
                        f"on board of both {onboard_of[rid]} and {v.id}",
                    )
                )
            else:
                onboard_of[rid] = v.id

    visits: dict[str, list[str]] = {}  # request id -> vehicle ids of the routes visiting it
    seen_vehicles: set[str] = set()
    for route in solution.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            out.append(
                Violation("unknown_request", route.vehicle_id, None, "route of unknown vehicle")
            )
            continue
        if vehicle.id in seen_vehicles:
            out.append(Violation("unknown_request", vehicle.id, None, "vehicle has two routes"))
            continue
        seen_vehicles.add(vehicle.id)
        out.extend(_check_route(problem, vehicle, route, onboard_of, visits, tol))

    # pinned pickups: the first stops of their vehicle, in order
    routes_of = {r.vehicle_id: r for r in solution.routes}
    for v in problem.vehicles:
        if not v.pinned:
            continue
        own = routes_of.get(v.id)
        lead = [] if own is None else [ss.stop for ss in own.stops[: len(v.pinned)]]
        for pos, rid in enumerate(v.pinned):
            if pos >= len(lead) or lead[pos] != Stop(rid, "pickup"):
                out.append(
                    Violation(
                        "pinned_moved",
                        v.id,
                        rid,
                        f"pickup pinned as stop {pos} of {v.id} is not there",
                    )
                )

    # vehicles without a route still have to deliver their riders
    for v in problem.vehicles:
        if v.id not in seen_vehicles:
            for rid in v.onboard:
                if rid in requests:
                    visits.setdefault(rid, [])

    for rid, on in onboard_of.items():
        if not visits.get(rid):
            out.append(
                Violation("not_served", on, rid, "rider on board but its drop-off is missing")
            )

    for rid in solution.unserved:
        if rid not in requests:
            out.append(Violation("unknown_request", None, rid, "unserved entry unknown"))

    for rid in requests:
        routed = visits.get(rid, [])
        listed = rid in solution.unserved
        if routed and listed:
            out.append(
                Violation("served_twice", routed[0], rid, "routed and also listed as unserved")
            )
        if not routed and rid not in onboard_of:
            if not listed:
                out.append(Violation("not_served", None, rid, "request in no route"))
            elif require_all_served:
                cause = solution.unserved[rid]
                out.append(
                    Violation(
                        "not_served",
                        None,
                        rid,
                        f"listed as unserved ({getattr(cause, 'value', cause)}) "
                        "but all must be served",
                    )
                )
    return out


def _check_route(
    problem: Problem,
    vehicle: Vehicle,
    route: Route,
    onboard_of: Mapping[str, str],
    visits: dict[str, list[str]],
    tol: int,
) -> list[Violation]:
    out: list[Violation] = []
    vid = vehicle.id
    requests = problem.requests

    load = [0] * len(DIMENSIONS)
    for rid in vehicle.onboard:
        if rid in requests and onboard_of.get(rid) == vid:
            for k, value in enumerate(requests[rid].load.as_tuple()):
                load[k] += value
    capacity = vehicle.capacity.as_tuple()
    if any(a > b for a, b in zip(load, capacity)):
        out.append(
            Violation("capacity", vid, None, f"initial load {tuple(load)} > capacity {capacity}")
        )

    # ride origin per request: end of pickup service (start + service) in this route
    picked: dict[str, int] = {}
    for rid in vehicle.onboard:
        r = requests.get(rid)
        if r is not None and onboard_of.get(rid) == vid:
            picked[rid] = r.picked_up_at_s if r.picked_up_at_s is not None else vehicle.start_time_s
    dropped: set[str] = set()
    seen_here: dict[tuple[str, str], int] = {}

    prev_loc = vehicle.start_location
    prev_dep = vehicle.start_time_s
    if route.start_departure_s is not None:
        if route.start_departure_s < vehicle.start_time_s - tol:
            out.append(
                Violation(
                    "travel_time",
                    vid,
                    None,
                    f"departs at {route.start_departure_s}, before its start time "
                    f"{vehicle.start_time_s}",
                )
            )
        prev_dep = max(prev_dep, route.start_departure_s)
    first_start: int | None = None
    first_loc: int | None = None

    for pos, sstop in enumerate(route.stops):
        stop = sstop.stop
        rid = stop.request_id
        req = requests.get(rid)
        if req is None:
            out.append(Violation("unknown_request", vid, rid, f"stop {pos}: unknown request"))
            continue
        if stop.kind not in ("pickup", "dropoff"):
            out.append(Violation("unknown_request", vid, rid, f"stop {pos}: kind {stop.kind!r}"))
            continue
        loc = _location(req, stop)
        if sstop.location != loc:
            out.append(
                Violation(
                    "travel_time",
                    vid,
                    rid,
                    f"stop {pos}: location {sstop.location} is not the {stop.kind} location {loc}",
                )
            )
        start = sstop.start_s
        earliest = prev_dep + problem.travel(prev_loc, loc)
        if start < earliest - tol:
            out.append(
                Violation(
                    "travel_time",
                    vid,
                    rid,
                    f"stop {pos} ({stop.kind}): starts at {start}, cannot be there before {earliest}",
                )
            )
        window = _window(req, stop)
        if start < window.earliest_s - tol or start > window.latest_s + tol:
            out.append(
                Violation(
                    "time_window",
                    vid,
                    rid,
                    f"stop {pos} ({stop.kind}): start {start} outside "
                    f"[{window.earliest_s}, {window.latest_s}]",
                )
            )
        if first_start is None:
            first_start, first_loc = start, loc
        departure = start + _service(req, stop)
        prev_loc, prev_dep = loc, departure

        key = (rid, stop.kind)
        if key in seen_here:
            out.append(
                Violation(
                    "served_twice", vid, rid, f"{stop.kind} at stops {seen_here[key]} and {pos}"
                )
            )
            continue
        seen_here[key] = pos
        carrier = onboard_of.get(rid)
        if carrier is not None and carrier != vid:
            kind = "wrong_vehicle" if stop.kind == "dropoff" else "precedence"
            out.append(
                Violation(
                    kind, vid, rid, f"rider on board of {carrier} visited by {vid} ({stop.kind})"
                )
            )
            continue
        if vid not in visits.setdefault(rid, []):
            visits[rid].append(vid)
            if len(visits[rid]) > 1:
                out.append(Violation("served_twice", vid, rid, f"also visited by {visits[rid][0]}"))

        sign = 1 if stop.kind == "pickup" else -1
        if stop.kind == "pickup":
            if onboard_of.get(rid) is not None:
                out.append(
                    Violation(
                        "precedence", vid, rid, f"stop {pos}: pickup of a rider already on board"
                    )
                )
                sign = 0
            else:
                picked[rid] = departure
        else:
            if rid not in picked:
                out.append(
                    Violation(
                        "precedence",
                        vid,
                        rid,
                        f"stop {pos}: drop-off before any pickup in this route",
                    )
                )
                sign = 0
            else:
                ride = start - picked[rid]
                if ride > req.max_ride_s + tol:
                    out.append(
                        Violation(
                            "ride_time",
                            vid,
                            rid,
                            f"ride {ride} > max {req.max_ride_s}",
                        )
                    )
                dropped.add(rid)
        if sign:
            for k, value in enumerate(req.load.as_tuple()):
                load[k] += sign * value
            if any(a > b or a < 0 for a, b in zip(load, capacity)):
                out.append(
                    Violation(
                        "capacity",
                        vid,
                        rid,
                        f"stop {pos} ({stop.kind}): load {tuple(load)} vs capacity {capacity}",
                    )
                )

    for rid in picked:
        if rid not in dropped and onboard_of.get(rid) is None and (rid, "pickup") in seen_here:
            out.append(Violation("precedence", vid, rid, "picked up but never dropped off"))

    end_arrival = route.end_arrival_s
    earliest_end = prev_dep + problem.travel(prev_loc, vehicle.end_location)
    if end_arrival < earliest_end - tol:
        out.append(
            Violation(
                "travel_time",
                vid,
                None,
                f"end arrival {end_arrival} before possible {earliest_end}",
            )
        )
    if end_arrival > vehicle.shift_end_s + tol:
        out.append(
            Violation(
                "shift_end",
                vid,
                None,
                f"end arrival {end_arrival} > shift end {vehicle.shift_end_s}",
            )
        )
    if vehicle.max_route_duration_s is not None:
        if first_start is None:
            departure_start = vehicle.start_time_s
            if not route.stops:
                departure_start = max(
                    vehicle.start_time_s,
                    end_arrival - problem.travel(vehicle.start_location, vehicle.end_location),
                )
        else:
            assert first_loc is not None
            departure_start = max(
                vehicle.start_time_s,
                first_start - problem.travel(vehicle.start_location, first_loc),
            )
        duration = end_arrival - departure_start
        if duration > vehicle.max_route_duration_s + tol:
            out.append(
                Violation(
                    "route_duration",
                    vid,
                    None,
                    f"duration {duration} (from {departure_start} to {end_arrival}) "
                    f"> max {vehicle.max_route_duration_s}",
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# scheduling a plain stop sequence


def schedule_route(
    problem: Problem, vehicle: Vehicle, stops: Sequence[Stop]
) -> tuple[ScheduledStop, ...] | None:
    """The checker's own schedule for a stop sequence a vehicle follows.

    The rules of a route are difference constraints between start-of-service times ``T``
    (nodes: the departure from the start, the stops, the arrival at the end):
    ``T[j] >= T[i] + w`` for travel plus service between consecutive nodes, ``T[pickup] >=
    T[drop-off] - max_ride - pickup service`` for a ride, ``T[start] >= T[end] - duration`` for
    the route duration, and the windows (the start's ``[start_time_s, shift_end_s]``, each stop's
    pickup or drop-off window with the on-board rider's drop-off no later than
    ``picked_up_at_s + max_ride_s``, the end's ``[start_time_s, shift_end_s]``). This function
    computes the longest paths from the windows' earliest times over the constraint graph
    (Bellman-Ford over an edge list): the least times that satisfy every lower bound. If they
    also keep every latest time, the sequence is feasible and this is its least-time schedule
    (the one ``routing.schedule`` publishes, computed here independently). If not (or the
    graph has a positive cycle), no timing keeps every rule: the stops then start as early as
    travel and the windows' earliest allow (departing at ``start_time_s``), and ``check``
    reports what that breaks.

    Parameters
    ----------
    problem:
        Requests and the travel-time matrix.
    vehicle:
        Start location and time, end location and shift end, riders on board (their ride runs
        from ``picked_up_at_s``), route duration.
    stops:
        The visiting order.

    Returns
    -------
    tuple[ScheduledStop, ...] | None
        One scheduled stop per input stop (times in the problem's unit, ``load_after`` from
        the requests and the riders on board), or ``None`` when a stop names an unknown
        request or kind and so cannot be scheduled. The end-depot arrival is the last
        departure plus the travel time to ``vehicle.end_location``.
    """
    reqs: list[Request] = []
    for stop in stops:
        req = problem.requests.get(stop.request_id)
        if req is None or stop.kind not in ("pickup", "dropoff"):
            return None
        reqs.append(req)
    times = _least_schedule(problem, vehicle, stops, reqs)
    if times is None:
        times = _earliest_schedule(problem, vehicle, stops, reqs)
    return _scheduled(problem, vehicle, stops, reqs, times)


def _nodes(vehicle: Vehicle, stops: Sequence[Stop], reqs: Sequence[Request]):
    """Locations, services and windows of the nodes start, stops..., end."""
    locs = [vehicle.start_location] + [_location(r, s) for r, s in zip(reqs, stops)]
    locs.append(vehicle.end_location)
    service = [0] + [_service(r, s) for r, s in zip(reqs, stops)] + [0]
    early = [vehicle.start_time_s] + [_window(r, s).earliest_s for r, s in zip(reqs, stops)]
    early.append(vehicle.start_time_s)
    late = [vehicle.shift_end_s] + [_window(r, s).latest_s for r, s in zip(reqs, stops)]
    late.append(vehicle.shift_end_s)
    return locs, service, early, late


def _least_schedule(
    problem: Problem, vehicle: Vehicle, stops: Sequence[Stop], reqs: Sequence[Request]
) -> list[int] | None:
    """Least times of start, stops..., end keeping every rule, or None (see schedule_route)."""
    locs, service, early, late = _nodes(vehicle, stops, reqs)
    count = len(locs)
    onboard = set(vehicle.onboard)
    edges: list[tuple[int, int, int]] = []  # (u, v, w): T[v] >= T[u] + w
    for u in range(count - 1):
        edges.append((u, u + 1, service[u] + problem.travel(locs[u], locs[u + 1])))
    where: dict[str, int] = {}
    for node, (req, stop) in enumerate(zip(reqs, stops), start=1):
        if stop.kind == "pickup":
            where[req.id] = node
        elif req.id in where:
            edges.append((node, where[req.id], -(req.max_ride_s + req.pickup_service_s)))
        elif req.id in onboard:
            origin = vehicle.start_time_s if req.picked_up_at_s is None else req.picked_up_at_s
            late[node] = min(late[node], origin + req.max_ride_s)
    if vehicle.max_route_duration_s is not None:
        edges.append((count - 1, 0, -vehicle.max_route_duration_s))
    best = list(early)
    for _ in range(count + 1):
        moved = False
        for u, v, w in edges:
            if best[u] + w > best[v]:
                best[v] = best[u] + w
                moved = True
        if not moved:
            break
    else:
        return None  # a positive cycle: no timing exists
    if any(b > lt for b, lt in zip(best, late)):
        return None
    return best


def _earliest_schedule(
    problem: Problem, vehicle: Vehicle, stops: Sequence[Stop], reqs: Sequence[Request]
) -> list[int]:
    """Start, stops..., end as early as travel and the windows' earliest allow."""
    locs, service, early, _ = _nodes(vehicle, stops, reqs)
    times = [vehicle.start_time_s]
    for j in range(1, len(locs)):
        reach = times[-1] + service[j - 1] + problem.travel(locs[j - 1], locs[j])
        times.append(max(reach, early[j]))
    return times


def _scheduled(
    problem: Problem,
    vehicle: Vehicle,
    stops: Sequence[Stop],
    reqs: Sequence[Request],
    times: Sequence[int],
) -> tuple[ScheduledStop, ...]:
    load = Load()
    for rid in vehicle.onboard:
        req = problem.requests.get(rid)
        if req is not None:
            load = load + req.load
    out: list[ScheduledStop] = []
    prev_loc, prev_dep = vehicle.start_location, times[0]
    for j, (req, stop) in enumerate(zip(reqs, stops), start=1):
        loc = _location(req, stop)
        load = load + req.load if stop.kind == "pickup" else load - req.load
        out.append(
            ScheduledStop(
                stop=stop,
                location=loc,
                arrival_s=prev_dep + problem.travel(prev_loc, loc),
                start_s=times[j],
                departure_s=times[j] + _service(req, stop),
                load_after=load,
            )
        )
        prev_loc, prev_dep = loc, times[j] + _service(req, stop)
    return tuple(out)


def _end_arrival(problem: Problem, vehicle: Vehicle, scheduled: Sequence[ScheduledStop]) -> int:
    if not scheduled:
        return vehicle.start_time_s + problem.travel(vehicle.start_location, vehicle.end_location)
    last = scheduled[-1]
    return last.departure_s + problem.travel(last.location, vehicle.end_location)


def check_routes(
    problem: Problem,
    routes: Mapping[str, Sequence[Stop]],
    *,
    unserved: Mapping[str, object] | None = None,
    require_all_served: bool = True,
    tolerance: int = 0,
) -> tuple[Solution, list[Violation]]:
    """Schedule plain stop sequences with :func:`schedule_route`, then :func:`check` them.

    Parameters
    ----------
    problem:
        The planning problem.
    routes:
        Vehicle id -> stop sequence. Vehicles not named drive no route (their riders on
        board are then reported as not served).
    unserved:
        Request id -> cause (``UnservedCause``) for requests deliberately left out.
    require_all_served, tolerance:
        As for :func:`check`.

    Returns
    -------
    (Solution, list[Violation])
        The scheduled solution (empty objective) and its violations. Stops naming an unknown
        request or kind, and routes of unknown vehicles, are reported as ``unknown_request``
        and left out of the solution; the rest of the route is scheduled and checked.
    """
    vehicles = {v.id: v for v in problem.vehicles}
    built: list[Route] = []
    pre: list[Violation] = []
    for vid, stops in routes.items():
        vehicle = vehicles.get(vid)
        if vehicle is None:
            pre.append(Violation("unknown_request", vid, None, "route of unknown vehicle"))
            continue
        known = []
        for pos, stop in enumerate(stops):
            if stop.request_id in problem.requests and stop.kind in ("pickup", "dropoff"):
                known.append(stop)
            else:
                pre.append(
                    Violation(
                        "unknown_request",
                        vid,
                        stop.request_id,
                        f"stop {pos}: cannot schedule {stop.kind!r} of this request; left out",
                    )
                )
        scheduled = schedule_route(problem, vehicle, known)
        assert scheduled is not None  # every stop left is schedulable
        built.append(Route(vid, scheduled, _end_arrival(problem, vehicle, scheduled)))
    solution = Solution(routes=tuple(built), unserved=dict(unserved or {}))  # type: ignore[arg-type]
    violations = pre + check(
        problem, solution, require_all_served=require_all_served, tolerance=tolerance
    )
    return solution, violations
