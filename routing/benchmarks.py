"""Readers for the public DARP and PDPTW benchmark instances in ``/work/shared/benchmarks``.

Three file formats are read into the shared planning model (``routing.model``):

* Cordeau's "branch-and-cut" DARP files ``a*``/``b*`` (header ``m n T Q L``, 2n+2 node lines
  with an explicit end depot 2n+1);
* Cordeau & Laporte's tabu-search DARP files ``R*a``/``R*b`` (= pr01...pr20; header
  ``m 2n T Q L``, 2n+1 node lines, no end-depot line);
* Li & Lim's PDPTW files (tab-separated, CRLF; ``K Q S`` then ``id x y demand e l s p d``).

Conventions (the same for every instance):

* One location index per node, in file order; ``coords[i]`` and ``node_ids[i]`` describe
  location ``i``. Every instance has a separate end-depot location: for the a/b files it is
  node 2n+1; for the R files and Li & Lim an extra location equal to the start depot is
  appended at the end (its ``node_ids`` entry is 0).
* Time unit: original minutes x ``scale`` (``SCALE`` = 1000). Travel times are
  ``rint(euclidean distance x scale)`` as int64, speed 1. Windows, service times, maximum
  ride and maximum route duration are scaled the same way (and rounded to integers).
* Request ids are ``str(pickup node id)``. Vehicles are ``v0 ... v{m-1}``, all identical,
  starting at the start depot at its earliest time and ending at the end depot by the depot's
  latest time.
* Li & Lim has no ride-time limit; ``max_ride_s`` is set to the horizon (depot latest time).

Objective values are compared in double precision with :func:`route_cost`, never from the
scaled integer travel times.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routing.model import Load, Problem, Request, TimeWindow, Vehicle

__all__ = [
    "SCALE",
    "BenchmarkInstance",
    "load_best_known",
    "read_cordeau",
    "read_cordeau_solution",
    "read_cordeau_solution_schedule",
    "read_lilim",
    "route_cost",
]

#: Time units per original minute (and per distance unit, at speed 1).
SCALE = 1000


@dataclass(frozen=True)
class BenchmarkInstance:
    """One benchmark instance read into the planning model.

    Attributes
    ----------
    name:
        Instance name as used in ``best_known.csv`` (``a2-16``, ``pr01`` for ``R1a.txt``,
        ``lc101``, ``lc1_2_1``).
    kind:
        ``"darp"`` or ``"pdptw"``.
    problem:
        The planning problem, in original minutes x ``scale``.
    scale:
        Integer time units per original minute (1000).
    coords:
        Float array of shape (nloc, 2): coordinates of every location index.
    node_ids:
        Original node id of every location index (the appended end depot maps to 0).
    max_vehicles:
        Number of vehicles available (``m`` for DARP, ``K`` for Li & Lim).
    best_known:
        Best-known objective (total distance, double precision) or ``None`` when unknown.
    """

    name: str
    kind: str
    problem: Problem
    scale: int
    coords: np.ndarray
    node_ids: list[int]
    max_vehicles: int
    best_known: float | None = None


# --------------------------------------------------------------------------------------------
# helpers


def _scaled(minutes: float, scale: int) -> int:
    """Original minutes -> integer time units, rounded to the nearest integer."""
    return round(minutes * scale)


def _travel_matrix(coords: np.ndarray, scale: int) -> np.ndarray:
    """Integer travel times rint(euclid x scale) between all location pairs (int64)."""
    diff = coords[:, None, :] - coords[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=2))
    return np.rint(dist * scale).astype(np.int64)


def _find_upwards(start: Path, filename: str, levels: int = 3) -> Path | None:
    """First ``filename`` found in ``start`` or one of its ``levels`` parents."""
    here = start
    for _ in range(levels + 1):
        candidate = here / filename
        if candidate.is_file():
            return candidate
        if here.parent == here:
            break
        here = here.parent
    return None


def _best_known_for(path: Path, name: str, best_known_csv: str | Path | None) -> float | None:
    csv_path = Path(best_known_csv) if best_known_csv is not None else None
    if csv_path is None:
        csv_path = _find_upwards(path.parent, "best_known.csv")
    if csv_path is None or not csv_path.is_file():
        return None
    return load_best_known(csv_path).get(name)


def _pr_name(path: Path) -> str:
    """Literature name (pr01...) of an R*.txt file via ``pr_name_map.csv`` next to it."""
    map_path = path.parent / "pr_name_map.csv"
    if map_path.is_file():
        with map_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("file", "").strip() == path.name:
                    return row["literature_name"].strip()
    return path.stem


# --------------------------------------------------------------------------------------------
# Cordeau DARP


def read_cordeau(
    path: str | Path,
    *,
    scale: int = SCALE,
    best_known_csv: str | Path | None = None,
) -> BenchmarkInstance:
    """Read a Cordeau DARP instance (a/b branch-and-cut format or R*/pr tabu-search format).

    Parameters
    ----------
    path:
        The instance file. Both variants are recognised from the header and line count:
        a/b files have ``m n T Q L`` and 2n+2 node lines (end depot 2n+1); R files have
        ``m 2n T Q L`` and 2n+1 node lines (no end depot, an end-depot location equal to
        node 0 is appended). A missing trailing newline is fine.
    scale:
        Integer time units per minute (default 1000).
    best_known_csv:
        ``best_known.csv`` to take ``best_known`` from; by default the first one found in the
        file's folder or up to three parents.

    Returns
    -------
    BenchmarkInstance
        kind ``"darp"``, ``max_vehicles = m``, m vehicles with ``Load(seats=Q)``,
        ``max_route_duration_s = T x scale``, ``shift_end_s`` = the end depot's latest time,
        requests ``str(i)`` for pickup i with ``max_ride_s = L x scale``.
    """
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    header = lines[0]
    m, second, t_max, q_cap = (int(float(v)) for v in header[:4])
    l_ride = float(header[4])
    rows = lines[1:]
    if len(rows) == 2 * second + 2:  # a/b: second field is n, explicit end depot
        n = second
        explicit_end = True
        name = path.stem
    elif len(rows) == second + 1 and second % 2 == 0:  # R/pr: second field is 2n
        n = second // 2
        explicit_end = False
        name = _pr_name(path)
    else:
        raise ValueError(f"{path}: {len(rows)} node lines do not fit header {header}")

    nodes = []
    for expected_id, row in enumerate(rows):
        if len(row) < 7:
            raise ValueError(f"{path}: short node line {row}")
        node_id = int(row[0])
        if node_id != expected_id:
            raise ValueError(f"{path}: node id {node_id} where {expected_id} was expected")
        x, y, d = float(row[1]), float(row[2]), float(row[3])
        q = int(float(row[4]))
        early, late = float(row[5]), float(row[6])
        nodes.append((node_id, x, y, d, q, early, late))
    if not explicit_end:
        depot = nodes[0]
        nodes.append((0, depot[1], depot[2], 0.0, 0, depot[5], depot[6]))

    end_loc = 2 * n + 1
    coords = np.array([[nd[1], nd[2]] for nd in nodes], dtype=float)
    node_ids = [nd[0] for nd in nodes]
    travel = _travel_matrix(coords, scale)

    requests: dict[str, Request] = {}
    max_ride_s = _scaled(l_ride, scale)
    for i in range(1, n + 1):
        p, dnode = nodes[i], nodes[n + i]
        if p[4] <= 0 or dnode[4] != -p[4]:
            raise ValueError(f"{path}: request {i} has loads {p[4]} / {dnode[4]}")
        requests[str(i)] = Request(
            id=str(i),
            pickup=i,
            dropoff=n + i,
            load=Load(seats=p[4]),
            pickup_window=TimeWindow(_scaled(p[5], scale), _scaled(p[6], scale)),
            dropoff_window=TimeWindow(_scaled(dnode[5], scale), _scaled(dnode[6], scale)),
            max_ride_s=max_ride_s,
            pickup_service_s=_scaled(p[3], scale),
            dropoff_service_s=_scaled(dnode[3], scale),
        )

    start, end = nodes[0], nodes[end_loc]
    vehicles = tuple(
        Vehicle(
            id=f"v{k}",
            start_location=0,
            start_time_s=_scaled(start[5], scale),
            end_location=end_loc,
            shift_end_s=_scaled(end[6], scale),
            capacity=Load(seats=q_cap),
            max_route_duration_s=_scaled(t_max, scale),
        )
        for k in range(m)
    )
    problem = Problem(vehicles=vehicles, requests=requests, travel_s=travel)
    return BenchmarkInstance(
        name=name,
        kind="darp",
        problem=problem,
        scale=scale,
        coords=coords,
        node_ids=node_ids,
        max_vehicles=m,
        best_known=_best_known_for(path, name, best_known_csv),
    )


# --------------------------------------------------------------------------------------------
# Li & Lim PDPTW


def read_lilim(
    path: str | Path,
    *,
    scale: int = SCALE,
    best_known_csv: str | Path | None = None,
) -> BenchmarkInstance:
    """Read a Li & Lim PDPTW instance (tab-separated, CRLF line endings).

    Parameters
    ----------
    path:
        The instance file: ``K Q S`` then ``id x y demand e l s p d`` per task, depot first.
    scale:
        Integer time units per original time unit (default 1000).
    best_known_csv:
        As for :func:`read_cordeau`.

    Returns
    -------
    BenchmarkInstance
        kind ``"pdptw"``, ``max_vehicles = K``, K vehicles with ``Load(seats=Q)`` and no route
        duration limit, ``shift_end_s`` = depot latest time; requests ``str(pickup id)`` with
        ``Load(seats=demand)`` and ``max_ride_s`` = the horizon (no ride limit). An end-depot
        location equal to the depot is appended as the last location index.
    """
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    k_max, q_cap = int(float(lines[0][0])), int(float(lines[0][1]))
    nodes = []
    for expected_id, row in enumerate(lines[1:]):
        if len(row) < 9:
            raise ValueError(f"{path}: short task line {row}")
        node_id = int(row[0])
        if node_id != expected_id:
            raise ValueError(f"{path}: task id {node_id} where {expected_id} was expected")
        x, y = float(row[1]), float(row[2])
        demand = int(float(row[3]))
        early, late, s = float(row[4]), float(row[5]), float(row[6])
        p, d = int(row[7]), int(row[8])
        nodes.append((node_id, x, y, demand, early, late, s, p, d))
    depot = nodes[0]
    nodes.append((0, depot[1], depot[2], 0, depot[4], depot[5], 0.0, 0, 0))
    end_loc = len(nodes) - 1

    coords = np.array([[nd[1], nd[2]] for nd in nodes], dtype=float)
    node_ids = [nd[0] for nd in nodes]
    travel = _travel_matrix(coords, scale)
    horizon_s = _scaled(depot[5], scale)

    requests: dict[str, Request] = {}
    for nd in nodes[1:end_loc]:
        node_id, _, _, demand, early, late, s, p, d = nd
        if demand <= 0:
            continue
        delivery = nodes[d]
        if p != 0 or delivery[7] != node_id or delivery[3] != -demand:
            raise ValueError(f"{path}: pickup {node_id} and delivery {d} do not match")
        requests[str(node_id)] = Request(
            id=str(node_id),
            pickup=node_id,
            dropoff=d,
            load=Load(seats=demand),
            pickup_window=TimeWindow(_scaled(early, scale), _scaled(late, scale)),
            dropoff_window=TimeWindow(_scaled(delivery[4], scale), _scaled(delivery[5], scale)),
            max_ride_s=horizon_s,
            pickup_service_s=_scaled(s, scale),
            dropoff_service_s=_scaled(delivery[6], scale),
        )
    n_deliveries = sum(1 for nd in nodes[1:end_loc] if nd[3] < 0)
    if n_deliveries != len(requests):
        raise ValueError(f"{path}: {len(requests)} pickups but {n_deliveries} deliveries")

    vehicles = tuple(
        Vehicle(
            id=f"v{k}",
            start_location=0,
            start_time_s=_scaled(depot[4], scale),
            end_location=end_loc,
            shift_end_s=horizon_s,
            capacity=Load(seats=q_cap),
        )
        for k in range(k_max)
    )
    problem = Problem(vehicles=vehicles, requests=requests, travel_s=travel)
    return BenchmarkInstance(
        name=path.stem,
        kind="pdptw",
        problem=problem,
        scale=scale,
        coords=coords,
        node_ids=node_ids,
        max_vehicles=k_max,
        best_known=_best_known_for(path, path.stem, best_known_csv),
    )


# --------------------------------------------------------------------------------------------
# best-known values, costs, published solutions


def load_best_known(csv_path: str | Path) -> dict[str, float]:
    """Best-known objective per instance name from ``best_known.csv``.

    Parameters
    ----------
    csv_path:
        The CSV with columns ``set, instance, best_known_cost, ...``.

    Returns
    -------
    dict[str, float]
        Instance name exactly as in the CSV (``a2-16``, ``pr01``, ``lc101``, ``lc1_2_1``) ->
        total distance. For Li & Lim it is the distance at the best-known vehicle count.
        Rows without a numeric cost are skipped.
    """
    return dict(_load_best_known_cached(str(Path(csv_path).resolve())))


@functools.lru_cache(maxsize=8)
def _load_best_known_cached(csv_path: str) -> tuple[tuple[str, float], ...]:
    out: dict[str, float] = {}
    with Path(csv_path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            name = (row.get("instance") or "").strip()
            try:
                out[name] = float(row["best_known_cost"])
            except (KeyError, TypeError, ValueError):
                continue
    return tuple(out.items())


def route_cost(instance: BenchmarkInstance, routes: Sequence[Sequence[int]]) -> float:
    """Total Euclidean length of ``routes`` in double precision (original distance units).

    Parameters
    ----------
    instance:
        The instance whose ``coords`` give the positions.
    routes:
        Location-index sequences, each including its start and end depot.

    Returns
    -------
    float
        Sum over all consecutive pairs of the unrounded Euclidean distance.
    """
    total = 0.0
    for route in routes:
        for a, b in itertools.pairwise(route):
            (xa, ya), (xb, yb) = instance.coords[a], instance.coords[b]
            total += math.hypot(float(xa) - float(xb), float(ya) - float(yb))
    return total


_ROUTE_HEAD = re.compile(r"^\s*\d+\s+D:")
_STOP_LINE = re.compile(r"^\s*(\d+)\s*\((.*)\)\s*$")


def read_cordeau_solution_schedule(
    path: str | Path, instance: BenchmarkInstance
) -> list[list[tuple[int, float]]]:
    """Routes of a Cordeau ``.res`` solution file with their published times.

    Parameters
    ----------
    path:
        The solution file (e.g. ``darp/solutions/res1.txt``).
    instance:
        The instance it solves, to map the closing depot to the end-depot location.

    Returns
    -------
    list of routes, each a list of ``(location index, minutes)``: for the first entry (start
    depot) the published departure time ``b``, for every other entry the published start of
    service ``a`` (2 decimals, original minutes, not scaled). Node ids equal location
    indices except the closing depot 0, which maps to the end-depot location.
    """
    end_loc = instance.problem.vehicles[0].end_location if instance.problem.vehicles else None
    routes: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] | None = None
    for line in Path(path).read_text().splitlines():
        if _ROUTE_HEAD.match(line):
            current = []
            routes.append(current)
            continue
        if line.strip().lower().startswith("total"):
            current = None
            continue
        match = _STOP_LINE.match(line)
        if match is None or current is None:
            continue
        node = int(match.group(1))
        fields = {
            key.strip(): float(value)
            for key, value in re.findall(r"([a-z]+)\s*:\s*(-?[0-9.]+)", match.group(2))
        }
        time = fields["b"] if not current else fields["a"]
        loc = node
        if current and node == 0 and end_loc is not None:
            loc = end_loc
        current.append((loc, time))
    return routes


def read_cordeau_solution(path: str | Path, instance: BenchmarkInstance) -> list[list[int]]:
    """Routes of a Cordeau ``.res`` solution file as location-index sequences.

    Parameters
    ----------
    path:
        The solution file (e.g. ``darp/solutions/res1.txt``).
    instance:
        The instance it solves.

    Returns
    -------
    list of routes, each the location indices from start depot to end depot (ready for
    :func:`route_cost`). Use :func:`read_cordeau_solution_schedule` for the published times.
    """
    return [[loc for loc, _ in route] for route in read_cordeau_solution_schedule(path, instance)]
