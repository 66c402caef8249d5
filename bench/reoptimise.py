"""Re-optimising open requests against insertion alone, on Okuma's stops.

    python bench/reoptimise.py [--requests 200] [--vehicles 10] [--budget 4] [--seeds 3]

Requests arrive one by one and are booked by the insertion search, each getting its promise
(pickup window, latest drop-off) exactly as the service does; then the optimiser re-plans all of
them inside their promises (warm start from the insertion plan). The independent checker judges
the result. Reported: wall time of the re-plan (target <= 5 s), vehicle (driving) time before and
after, the saving in %, and how many requests insertion could serve at all.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from routing import insertion as ins  # noqa: E402
from routing import model as rm  # noqa: E402
from routing.check import check  # noqa: E402
from routing.optimise import optimise  # noqa: E402
from routing.traveltime import StraightLineTravelTimes  # noqa: E402
from transit.reference_data import load_okuma  # noqa: E402


def build(n_requests: int, n_vehicles: int, seed: int) -> tuple[rm.Problem, int]:
    ref = load_okuma()
    rules = ref.rules
    stops = list(ref.stops)
    lat = np.array([s.lat for s in stops])
    lon = np.array([s.lon for s in stops])
    tt = StraightLineTravelTimes(rules.circuity, rules.speed_kmh, min_s=30).matrix(lat, lon)
    depot = next(i for i, s in enumerate(stops) if s.stop_id == "okuma_town_hall")
    t0 = 0
    horizon = 4 * 3600
    vehicles = tuple(
        rm.Vehicle(f"v{k}", depot, t0, depot, t0 + horizon + 2 * 3600, rm.Load(10, 1, 6))
        for k in range(n_vehicles)
    )
    problem = rm.Problem(vehicles, {}, tt)
    rng = random.Random(seed)
    served = 0
    for i in range(n_requests):
        o, d = rng.sample(range(len(stops)), 2)
        t = t0 + int(horizon * i / n_requests) + rng.randrange(0, 1800)
        direct = int(tt[o, d])
        max_ride = rules.max_ride_s(direct)
        party = rng.choice([1, 1, 1, 1, 2, 2, 3])
        svc = rules.dwell_s(boardings=party)
        req = rm.Request(f"r{i}", o, d, rm.Load(party, 0, 0), rm.TimeWindow(t, t + rules.max_wait_s),
                         rm.TimeWindow(t, t + rules.max_wait_s + svc + max_ride), max_ride, svc, svc)
        res = ins.find_insertions(problem, req, max_options=1)
        if not res.options:
            continue
        best = res.options[0]
        promised = ins.promised_request(req, ins.make_promise(best, req, pickup_window_s=rules.pickup_window_s))
        reqs = dict(problem.requests)
        reqs[promised.id] = promised
        problem = rm.Problem(
            tuple(replace(v, route=best.route) if v.id == best.vehicle_id else v for v in problem.vehicles),
            reqs, tt)
        served += 1
    return problem, served


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--vehicles", type=int, default=10)
    ap.add_argument("--budget", type=float, default=4.0)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for seed in range(args.seeds):
        problem, served = build(args.requests, args.vehicles, seed)
        before = rm.plan_travel_s(problem, {v.id: v.route for v in problem.vehicles})
        t = time.perf_counter()
        sol = optimise(problem, time_limit_s=args.budget, seed=seed)
        wall = time.perf_counter() - t
        after = rm.plan_travel_s(problem, {r.vehicle_id: [s.stop for s in r.stops] for r in sol.routes})
        violations = check(problem, sol)
        ok = not violations and not sol.unserved
        rows.append(dict(seed=seed, offered=args.requests, served=served, wall_s=round(wall, 2),
                         before_s=before, after_s=after if ok else before, valid=ok,
                         saving_pct=round(100 * (before - after) / before, 1) if ok and before else 0.0))
        r = rows[-1]
        print(f"seed {seed}: insertion served {served}/{args.requests}; re-plan {r['wall_s']} s; "
              f"vehicle time {before} s -> {after} s ({r['saving_pct']} %); checker "
              f"{'ok' if ok else f'{len(violations)} violations, {len(sol.unserved)} unserved'}")
    print(json.dumps({
        "requests": args.requests, "vehicles": args.vehicles, "budget_s": args.budget,
        "served_by_insertion": [r["served"] for r in rows],
        "reoptimise_wall_s": max(r["wall_s"] for r in rows),
        "mean_saving_pct": round(statistics.mean(r["saving_pct"] for r in rows), 1),
        "all_valid": all(r["valid"] for r in rows),
    }))


if __name__ == "__main__":
    main()
