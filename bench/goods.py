"""Groceries on the passenger minibuses: the Okuma weekday with and without ~30 deliveries.

    python bench/goods.py [--seed S] [--deliveries 30] [--budget 5]

The same passenger demand (data/scenarios/weekday.json, times jittered by the seed) is booked
twice in one run, in booking-time order: once alone, once with the deliveries mixed in. Every
request goes through the insertion search and gets its promise as in the service
(``insertion.make_promise`` for a ride; a delivery's promise is its window, its pickup at the
store no earlier than ready and its ride limited to ``chilled_max_out_of_store_s`` when chilled,
by ``transit.stores.delivery_timing``). Every 10 bookings the optimiser re-plans everything inside
the promises and, as the dispatcher does, the new plan is kept only if the independent checker
accepts it and every promised request is still served. A delivery that does not fit its window
moves to the next hour (a parcel may take a later run; a promised passenger is never moved).

The final plans are scheduled and judged by ``routing.check``. Reported per run: passengers
served, mean wait (planned pickup minus requested time) and mean ride time; for the deliveries,
share inside the window first chosen, chilled-limit breaches; passenger promises broken (checker
violations or promised passengers dropped). This is a plan-ahead day (nobody is late, vehicles
follow their plans), not the live simulator: the day simulator (``okuma simulate``) had not
landed when this was written; this bench drives the same routing core as transit does.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time as _time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from routing import insertion as ins
from routing import model as rm
from routing.check import check, check_routes
from routing.optimise import optimise
from routing.traveltime import StraightLineTravelTimes
from transit.clock import to_epoch
from transit.errors import DomainError
from transit.reference_data import load_okuma
from transit.stores import delivery_timing, load_stores

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 1500  # optimiser iterations per re-plan (the time budget is only a safety net)
DAY = datetime(2026, 11, 26)  # a Thursday
HOMES = ("ogawara_disaster_public_housing", "ogawara_public_housing_north", "ogawara_public_housing_west",
         "ogawara_public_housing_south", "ogawara_regen_rental_housing", "ogawara_kosodate_housing",
         "ono_minami_regen_housing", "hara_regen_housing", "okuma_momi_no_ki_en")


@dataclass
class Ask:
    """One request of the day: when it is booked, and what it asks for."""

    id: str
    booked_s: int
    kind: str  # ride | delivery
    origin: str
    destination: str
    time_s: int  # a ride: requested pickup; a delivery: window start
    party: int = 0
    wheelchair: bool = False
    parcels: int = 0
    temperature: str = "ambient"


def demand(seed: int, n_deliveries: int, tz) -> tuple[list[Ask], list[Ask]]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    trips = json.loads((ROOT / "data/scenarios/weekday.json").read_text(encoding="utf-8"))["trips"]
    rides = []
    for t in trips:
        if t["kind"] != "ride":
            continue
        h, m = map(int, t["time"].split(":"))
        when = to_epoch(datetime(DAY.year, DAY.month, DAY.day, h, m, tzinfo=tz)) + rng.randint(-300, 300)
        lead = rng.choice([1800, 3600, 7200, 14 * 3600])  # booked half an hour to the evening before
        rides.append(Ask(t["id"], when - lead, "ride", t["origin"], t["destination"], when,
                         party=t["party"], wheelchair=t["wheelchair"]))
    goods = []
    for k in range(n_deliveries):
        start = to_epoch(datetime(DAY.year, DAY.month, DAY.day, 9, 0, tzinfo=tz)) + rng.randrange(0, 9 * 3600, 900)
        goods.append(Ask(f"dl{k:02d}", start - rng.choice([3600, 5400, 7200]), "delivery",
                         rng.choice(["okumart", "kuma_sun_terrace"]), rng.choice(HOMES), start,
                         parcels=rng.choice([1, 1, 1, 2]), temperature=rng.choice(["chilled", "chilled", "frozen",
                                                                                   "ambient"])))
    return rides, goods


def fleet(ref, index, tz) -> tuple[rm.Vehicle, ...]:  # type: ignore[no-untyped-def]
    out = []
    for v in ref.fleet:
        for s in v.shifts:  # the day's shift, breaks left out (a plan-ahead day)
            if not s.applies_on(DAY.date()):
                continue
            start = to_epoch(datetime.combine(DAY.date(), s.start_local, tz))
            end = to_epoch(datetime.combine(DAY.date(), s.end_local, tz))
            depot = index[v.depot_stop_id]
            out.append(rm.Vehicle(v.id, depot, start, depot, end, rm.Load(v.seats, v.wheelchairs, v.parcels)))
            break
    return tuple(out)


def run(seed: int, asks: list[Ask], budget_s: float) -> dict:
    ref = load_okuma()
    rules, tz = ref.rules, ref.rules.tz
    stores = load_stores(stop_ids=[s.stop_id for s in ref.stops])
    stops = list(ref.stops)
    index = {s.stop_id: i for i, s in enumerate(stops)}
    tt = StraightLineTravelTimes(rules.circuity, rules.speed_kmh, min_s=30).matrix(
        np.array([s.lat for s in stops]), np.array([s.lon for s in stops]))
    problem = rm.Problem(fleet(ref, index, tz), {}, tt)
    wanted: dict[str, Ask] = {}
    chosen_window: dict[str, tuple[int, int]] = {}
    refused: list[str] = []
    booked = 0
    for a in sorted(asks, key=lambda x: x.booked_s):
        o, d = index[a.origin], index[a.destination]
        direct = int(tt[o, d])
        if a.kind == "ride":
            max_ride = rules.max_ride_s(direct)
            svc = rules.dwell_s(boardings=a.party, wheelchairs=int(a.wheelchair))
            req = rm.Request(a.id, o, d, rm.Load(a.party, int(a.wheelchair), 0),
                             rm.TimeWindow(a.time_s, a.time_s + rules.max_wait_s),
                             rm.TimeWindow(a.time_s, a.time_s + rules.max_wait_s + svc + max_ride), max_ride, svc, svc)
            res = ins.find_insertions(problem, req, max_options=1)
            if not res.options:
                refused.append(a.id)
                continue
            best = res.options[0]
            promised = ins.promised_request(req, ins.make_promise(best, req, pickup_window_s=rules.pickup_window_s))
        else:
            store = next(s for s in stores.values() if s.stop_id == a.origin)
            svc = rules.dwell_s(boardings=0, parcels=a.parcels)
            chosen_window[a.id] = (a.time_s, a.time_s + 3600)
            best = promised = None
            for later in range(4):  # the chosen hour, else the next ones: the parcel takes a later run
                ws = datetime.fromtimestamp(a.time_s + later * 3600, tz)
                try:
                    timing = delivery_timing(store, tz=tz, now=datetime.fromtimestamp(a.booked_s, tz),
                                             window_start=ws, window_end=ws + timedelta(hours=1),
                                             temperature=a.temperature, direct_s=direct, service_s=svc,
                                             chilled_max_s=rules.chilled_max_out_of_store_s)
                except DomainError:
                    continue
                req = rm.Request(a.id, o, d, rm.Load(0, 0, a.parcels),
                                 rm.TimeWindow(timing.pickup_earliest_s, timing.pickup_latest_s),
                                 rm.TimeWindow(timing.window_start_s, timing.window_end_s),
                                 timing.max_ride_s, svc, svc)
                res = ins.find_insertions(problem, req, max_options=1)
                if res.options:
                    best, promised = res.options[0], req
                    break
            if best is None or promised is None:
                refused.append(a.id)
                continue
        reqs = dict(problem.requests)
        reqs[a.id] = promised
        problem = rm.Problem(tuple(replace(v, route=best.route) if v.id == best.vehicle_id else v
                                   for v in problem.vehicles), reqs, tt)
        wanted[a.id] = a
        booked += 1
        if booked % 10 == 0:
            problem = reoptimise(problem, budget_s, seed)
    problem = reoptimise(problem, budget_s, seed)
    return measure(problem, wanted, chosen_window, refused, rules)


def reoptimise(problem: rm.Problem, budget_s: float, seed: int) -> rm.Problem:
    """As the dispatcher: keep the optimiser's plan only if the checker accepts it (as the tablet
    will follow it: timed by the checker's scheduler), every promised request is still served and
    the vehicles drive less. Iteration-bounded, so a seed gives the same day on every run."""
    if budget_s <= 0:
        return problem
    sol = optimise(problem, time_limit_s=budget_s, seed=seed, max_iterations=ITERATIONS)
    if sol.unserved or check(problem, sol):
        return problem
    byid = {v.id: v for v in problem.vehicles}
    before = sum(rm.route_travel_s(problem, v, v.route) for v in problem.vehicles)
    routes = {r.vehicle_id: tuple(s.stop for s in r.stops) for r in sol.routes}
    after = sum(rm.route_travel_s(problem, byid[k], r) for k, r in routes.items())
    if after >= before or check_routes(problem, routes)[1]:
        return problem
    return replace(problem, vehicles=tuple(replace(v, route=routes.get(v.id, ())) for v in problem.vehicles))


def measure(problem: rm.Problem, wanted: dict[str, Ask], chosen: dict[str, tuple[int, int]], refused: list[str],
            rules) -> dict:  # type: ignore[no-untyped-def]
    # The plans as they stand, scheduled and judged by the independent checker.
    sol, violations = check_routes(problem, {v.id: v.route for v in problem.vehicles})
    starts = {(s.stop.request_id, s.stop.kind): s.start_s for r in sol.routes for s in r.stops}
    bad = {x.request_id for x in violations}
    waits, rides, on_time, breaches, served_goods = [], [], 0, 0, 0
    for rid, a in wanted.items():
        r = problem.requests[rid]
        p, d = starts.get((rid, "pickup")), starts.get((rid, "dropoff"))
        if p is None or d is None:
            continue
        ride = d - (p + r.pickup_service_s)
        if a.kind == "ride":
            waits.append(p - a.time_s)
            rides.append(ride)
        else:
            served_goods += 1
            ws, we = chosen[rid]
            on_time += ws <= d <= we
            breaches += a.temperature != "ambient" and ride > rules.chilled_max_out_of_store_s
    passengers = [k for k, a in wanted.items() if a.kind == "ride"]
    broken = sum(1 for k in passengers if k in bad or (k, "dropoff") not in starts)
    n_goods = sum(1 for a in wanted.values() if a.kind == "delivery") + sum(1 for k in refused if k.startswith("dl"))
    return dict(
        passengers_served=len(passengers), passengers_refused=sum(1 for k in refused if not k.startswith("dl")),
        mean_wait_s=round(statistics.mean(waits), 1) if waits else 0.0,
        mean_ride_s=round(statistics.mean(rides), 1) if rides else 0.0,
        deliveries=n_goods, deliveries_served=served_goods,
        deliveries_on_time_pct=round(100 * on_time / n_goods, 1) if n_goods else 100.0,
        chilled_limit_breaches=breaches, passenger_promises_broken=broken, checker_violations=len(violations),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deliveries", type=int, default=30)
    ap.add_argument("--budget", type=float, default=5.0,
                    help="optimiser seconds per re-plan at most (0: insertion only, no re-plans)")
    args = ap.parse_args()
    tz = load_okuma().rules.tz
    rides, goods = demand(args.seed, args.deliveries, tz)
    t = _time.perf_counter()
    base = run(args.seed, rides, args.budget)
    mixed = run(args.seed, rides + goods, args.budget)
    wall = _time.perf_counter() - t
    for name, r in (("passengers only", base), (f"with {args.deliveries} deliveries", mixed)):
        print(f"{name:>22}: {r['passengers_served']} passengers served ({r['passengers_refused']} refused), "
              f"mean wait {r['mean_wait_s']} s, mean ride {r['mean_ride_s']} s; deliveries "
              f"{r['deliveries_served']}/{r['deliveries']}, on time {r['deliveries_on_time_pct']} %, "
              f"chilled breaches {r['chilled_limit_breaches']}, promises broken {r['passenger_promises_broken']}, "
              f"checker violations {r['checker_violations']}")
    print(f"both runs: {wall:.1f} s (seed {args.seed})")

    def change(key: str) -> float:
        return round(100 * (mixed[key] - base[key]) / base[key], 2) if base[key] else 0.0

    print(json.dumps({
        "wait_change_pct": change("mean_wait_s"),
        "ride_time_change_pct": change("mean_ride_s"),
        "deliveries_on_time_pct": mixed["deliveries_on_time_pct"],
        "chilled_limit_breaches": mixed["chilled_limit_breaches"],
        "passenger_promises_broken": base["passenger_promises_broken"] + mixed["passenger_promises_broken"],
    }))


if __name__ == "__main__":
    main()
