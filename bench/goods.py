"""Groceries on the passenger minibuses: the Okuma weekday simulated with and without its deliveries.

    python bench/goods.py [--seed S] [--scenario okuma-weekday] [--reopt-budget B]

The day is simulated twice in one run, one after the other, through the same production path as
``okuma simulate`` (``api.simulate.DaySimulation``: the real app on a fresh database, people
booking through the REST API, the stores marking orders ready through the store endpoints, the
dispatcher re-planning, one websocket tablet per vehicle; see docs/simulate.md): once with the
scenario's ``kind: delivery`` flows left out (``SimConfig(deliveries=False)``), once with them.
The passenger demand is the same in both (the deliveries are drawn from their own generator).

Passenger figures are compared on the rides served in both runs (matched by the scenario's trip
id): mean wait (the vehicle at the pickup minus the asked time; arrive-by rides have none) and
mean ride time (picked up to dropped off). Delivery figures are those of the run with them
(``summary["deliveries"]``, docs/simulate.md). Passenger promises broken: the ``promises_broken``
of the run with the deliveries (the run without them is printed too).

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.simulate import DaySimulation, SimConfig, SimResult, delivery_table


def simulate(cfg: SimConfig) -> tuple[SimResult, dict[str, str]]:
    """One day; returns its result and booking id -> scenario trip id."""
    day = DaySimulation(cfg)
    res = asyncio.run(day.run())
    return res, {bid: t.id for bid, t in day.booked.items() if t.kind == "ride"}


def passenger_times(res: SimResult, trip_of: dict[str, str]) -> dict[str, tuple[float | None, float]]:
    """Trip id -> (wait s or None, ride s) of every ride served."""
    out: dict[str, tuple[float | None, float]] = {}
    for r in res.rides:
        if not r.served or r.picked_up_at is None or r.completed_at is None or r.booking_id not in trip_of:
            continue
        p = r.pickup_at
        wait = (p - r.requested_at).total_seconds() if r.requested_at is not None and p is not None else None
        out[trip_of[r.booking_id]] = (wait, (r.completed_at - r.picked_up_at).total_seconds())
    return out


def means(times: dict[str, tuple[float | None, float]], keys: set[str]) -> tuple[float, float]:
    waits = [max(0.0, times[k][0] or 0.0) for k in keys if times[k][0] is not None]
    rides = [times[k][1] for k in keys]
    return (statistics.mean(waits) if waits else 0.0), (statistics.mean(rides) if rides else 0.0)


def change_pct(before: float, after: float) -> float:
    return round(100 * (after - before) / before, 2) if before else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenario", default="okuma-weekday")
    ap.add_argument("--reopt-budget", type=float, default=None,
                    help="solver seconds per re-plan (default: the scenario's, else 0.5)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    base_cfg = SimConfig(args.scenario, seed=args.seed, progress=False, reopt_budget_s=args.reopt_budget,
                         deliveries=False)
    t0 = time.perf_counter()
    runs: dict[str, tuple[SimResult, dict[str, str]]] = {}
    for name, deliveries in (("without", False), ("with", True)):
        runs[name] = simulate(SimConfig(**{**base_cfg.__dict__, "deliveries": deliveries}))
    wall = time.perf_counter() - t0
    (alone, trips_a), (mixed, trips_m) = runs["without"], runs["with"]
    ta, tm = passenger_times(alone, trips_a), passenger_times(mixed, trips_m)
    both = set(ta) & set(tm)
    wait_a, ride_a = means(ta, both)
    wait_m, ride_m = means(tm, both)
    d: dict[str, Any] = mixed.summary["deliveries"]
    for label, res, w, r in (("passengers only", alone, wait_a, ride_a), ("with the deliveries", mixed, wait_m, ride_m)):
        s = res.summary
        print(f"{label:>20}: {s['requests']} rides asked, served {s['served_pct']} %, on time {s['on_time_pct']} %,"
              f" mean wait {w / 60:.2f} min, mean ride {r / 60:.2f} min (on the {len(both)} rides served in both),"
              f" vkm {s['vkm']}, promises broken {s['promises_broken']}, invariant violations"
              f" {s['invariant_violations']}, plans rejected {s['plans_rejected']};"
              f" refused by cause {dict(sorted(res.kpis.refused_by_cause.items()))}")
    print(delivery_table(d))
    print(f"both days: {wall:.0f} s (scenario {args.scenario}, seed {args.seed})")
    print(json.dumps({
        "wait_change_pct": change_pct(wait_a, wait_m),
        "ride_time_change_pct": change_pct(ride_a, ride_m),
        "deliveries_on_time_pct": d["on_time_pct"],
        "chilled_limit_breaches": d["chilled_limit_breaches"],
        "passenger_promises_broken": mixed.summary["promises_broken"],
    }))


if __name__ == "__main__":
    main()
