"""Offer latency: in-process insertion search on an Okuma-like setup.

For each fleet size (10, 50, 200 minibuses) it builds current plans of 8 planned visits (4 requests)
per vehicle by inserting random requests with ``routing.insertion`` itself, then times
``find_insertions`` for many new requests with ``time.perf_counter``. Points are drawn around the
two hubs of Okuma (about 4 km apart); travel times come from ``StraightLineTravelTimes``.

Prints a table, then as the last line one JSON object::

    {"vehicles": [10, 50, 200], "p50_ms": [...], "p95_ms": [...]}

Run: ``.venv/bin/python bench/quote.py [--quotes 500] [--seed 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.insertion import (
    PreparedPlans,
    find_insertions,
    make_promise,
    max_ride_time_s,
    promised_request,
    request_windows,
)
from routing.model import Load, Problem, Request, Vehicle
from routing.traveltime import StraightLineTravelTimes

HUBS = ((37.380, 140.960), (37.409, 140.984))  # Ono station area, Okuma town office area
SPREAD_DEG = 0.012  # ~1.3 km standard deviation around each hub
N_POINTS = 400
SHIFT_S = 10 * 3600
MAX_WAIT_S = 20 * 60
PROMISE_WINDOW_S = 10 * 60
SERVICE_S = 30
CAPACITY = Load(seats=10, wheelchairs=1, parcels=4)


def points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    hub = rng.integers(0, 2, size=n)
    centre = np.array(HUBS)[hub]
    lat = centre[:, 0] + rng.normal(0, SPREAD_DEG, size=n)
    lon = centre[:, 1] + rng.normal(0, SPREAD_DEG * 1.25, size=n)
    return lat, lon


def random_request(
    rng: random.Random, rid: str, travel: np.ndarray, now_s: int, ahead_s: int
) -> Request:
    n = travel.shape[0]
    while True:
        p, d = rng.randrange(n), rng.randrange(n)
        if p != d and travel[p, d] >= 120:
            break
    direct = int(travel[p, d])
    max_ride = max_ride_time_s(direct, alpha=1.5, beta_s=600, abs_s=1200)
    t = now_s + rng.randrange(0, ahead_s)
    r = rng.random()
    q = Load(
        seats=rng.choice((1, 1, 1, 2, 3)),
        wheelchairs=1 if r < 0.05 else 0,
        parcels=1 if r > 0.9 else 0,
    )
    direction = "arrive_by" if rng.random() < 0.3 else "leave_at"
    if direction == "arrive_by":
        t += direct + MAX_WAIT_S
    pw, dw = request_windows(
        direction,
        t,
        direct_s=direct,
        max_ride_s=max_ride,
        max_wait_s=MAX_WAIT_S,
        pickup_service_s=SERVICE_S,
    )
    return Request(rid, p, d, q, pw, dw, max_ride, SERVICE_S, SERVICE_S)


def build_fleet(n_vehicles: int, seed: int) -> Problem:
    """A fleet whose every vehicle has 4 promised requests (8 planned visits)."""
    nrng = np.random.default_rng(seed)
    rng = random.Random(seed)
    lat, lon = points(nrng, N_POINTS)
    travel = StraightLineTravelTimes(circuity=1.35, speed_kmh=30.0, min_s=30).matrix(lat, lon)
    depots = list(range(4))
    vehicles = {
        f"bus{k:03d}": Vehicle(
            id=f"bus{k:03d}",
            start_location=depots[k % len(depots)],
            start_time_s=0,
            end_location=depots[k % len(depots)],
            shift_end_s=SHIFT_S,
            capacity=CAPACITY,
        )
        for k in range(n_vehicles)
    }
    requests: dict[str, Request] = {}
    counter = 0
    # fill each vehicle separately so that every one ends with exactly 4 requests; requests are
    # spread over the next 2 hours, as a busy morning would look
    for vid in list(vehicles):
        tries = 0
        while len(vehicles[vid].route) < 8:
            tries += 1
            if tries > 2000:
                raise RuntimeError(f"could not fill {vid}")
            counter += 1
            req = random_request(rng, f"r{counter}", travel, 0, 2 * 3600)
            solo = Problem((vehicles[vid],), requests, travel)
            res = find_insertions(solo, req, max_options=1)
            if not res.options:
                continue
            best = res.options[0]
            promise = make_promise(best, req, pickup_window_s=PROMISE_WINDOW_S)
            requests[req.id] = promised_request(req, promise)
            vehicles[vid] = replace(vehicles[vid], route=best.route)
    return Problem(tuple(vehicles.values()), requests, travel)


def time_quotes(
    problem: Problem, n_quotes: int, seed: int, *, warm: bool
) -> tuple[list[float], list[float], int]:
    """Time ``find_insertions`` for ``n_quotes`` new requests.

    cold: every quote starts from the plain ``Problem`` (per-vehicle slack rebuilt each time, as
    when the caller builds a fresh snapshot per quote). warm: one ``PreparedPlans`` is reused, as
    a dispatcher holding the current plan version between commits would.
    """
    rng = random.Random(seed + 1000)
    new = [random_request(rng, f"q{k}", problem.travel_s, 0, 2 * 3600) for k in range(n_quotes)]
    prepared = PreparedPlans(problem) if warm else None
    for r in new[:20]:  # warm-up (imports, caches of the interpreter)
        find_insertions(problem, r, prepared=prepared)
    times: list[float] = []
    cpu: list[float] = []
    served = 0
    for r in new:
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = find_insertions(problem, r, prepared=prepared)
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
        served += bool(res.options)
    return times, cpu, served


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fleets", type=int, nargs="*", default=[10, 50, 200])
    args = ap.parse_args()
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs (wall-clock figures suffer when busy)")
    print(
        f"{'vehicles':>8} {'visits':>7} {'mode':>5} {'quotes':>7} {'served':>7} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p95':>8}"
    )
    for nv in args.fleets:
        problem = build_fleet(nv, args.seed)
        visits = sum(len(v.route) for v in problem.vehicles)
        for warm in (False, True):
            times, cpu, served = time_quotes(problem, args.quotes, args.seed, warm=warm)
            row = (nv, pct(times, 50), pct(times, 95), max(times))
            if not warm:
                rows.append(row)
            print(
                f"{nv:>8} {visits:>7} {'warm' if warm else 'cold':>5} {len(times):>7} {served:>7} "
                f"{row[1]:>8.3f} {row[2]:>8.3f} {row[3]:>8.3f} {pct(cpu, 50):>8.3f} "
                f"{pct(cpu, 95):>8.3f}"
            )
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}; JSON below = cold figures; "
        f"mean cold p50 {statistics.fmean(r[1] for r in rows):.3f} ms"
    )
    print(
        json.dumps(
            {
                "vehicles": [r[0] for r in rows],
                "p50_ms": [round(r[1], 3) for r in rows],
                "p95_ms": [round(r[2], 3) for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
