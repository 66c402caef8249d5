"""Benchmark the optimiser on public DARP / PDPTW instances against best-known values.

Usage::

    python bench/darp.py SET [--time-limit S] [--out DIR] [--instances a2-16,a3-24] [--peer/--no-peer]

SET is one of a, b, pr, lilim100, lilim200 (``--iterations N`` makes a run reproducible). Each instance is solved with the time budget on one
core, checked by ``routing.check`` (the independent checker), its cost recomputed from the
routes in double-precision Euclidean distance, and written to DIR/<instance>.json. The last
line printed is one JSON object with the summary (and the VROOM peer's figures with --peer).

Li & Lim: the objective is the distance at the best-known vehicle count, so the fleet is cut
to that count (``vehicles_if_any`` in best_known.csv); vehicles used are reported.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

# one core: keep numpy/BLAS single-threaded; OR-Tools routing search is single-threaded
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataclasses import replace

from routing.benchmarks import BenchmarkInstance, read_cordeau, read_lilim, route_cost
from routing.check import check
from routing.model import Problem, Solution
from routing.optimise import optimise, warm_up

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
#: checker tolerance in integer time units (minutes x 1000): the schedule is built on the same
#: integer matrix the checker uses, so 0 is expected; 1 unit = 0.001 min is allowed for safety.
TOLERANCE = 1


def _key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def instance_files(set_name: str) -> list[Path]:
    darp, pdptw = BENCH / "darp", BENCH / "pdptw"
    if set_name in ("a", "b"):
        return sorted(darp.glob(f"{set_name}[0-9]*-*.txt"), key=lambda p: _key(p.stem))
    if set_name == "pr":
        return sorted(darp.glob("R*.txt"), key=lambda p: (p.stem[-1], _key(p.stem)))
    if set_name == "lilim100":
        return sorted(
            (p for p in pdptw.glob("*.txt") if "_" not in p.stem), key=lambda p: _key(p.stem)
        )
    if set_name == "lilim200":
        return sorted((p for p in pdptw.glob("*_2_*.txt")), key=lambda p: _key(p.stem))
    raise SystemExit(f"unknown set {set_name!r}")


def best_known_vehicles(csv_path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            v = (row.get("vehicles_if_any") or "").strip()
            if v:
                try:
                    out[row["instance"].strip()] = int(float(v))
                except ValueError:
                    pass
    return out


def location_routes(inst: BenchmarkInstance, problem: Problem, sol: Solution) -> list[list[int]]:
    vmap = {v.id: v for v in problem.vehicles}
    out = []
    for r in sol.routes:
        if not r.stops:
            continue
        v = vmap[r.vehicle_id]
        out.append([v.start_location, *(s.location for s in r.stops), v.end_location])
    return out


def write_json(path: Path, inst: BenchmarkInstance, problem: Problem, sol: Solution) -> None:
    """{"instance", "routes": [{"stops": [{"node", "start"}]}]} with depots, original units."""
    vmap = {v.id: v for v in problem.vehicles}
    scale = inst.scale
    routes = []
    for r in sol.routes:
        if not r.stops:
            continue
        v = vmap[r.vehicle_id]
        first = r.stops[0]
        depart = first.arrival_s - problem.travel(v.start_location, first.location)
        stops = [{"node": inst.node_ids[v.start_location], "start": depart / scale}]
        stops += [{"node": inst.node_ids[s.location], "start": s.start_s / scale} for s in r.stops]
        stops.append({"node": inst.node_ids[v.end_location], "start": r.end_arrival_s / scale})
        routes.append({"stops": stops})
    path.write_text(json.dumps({"instance": inst.name, "routes": routes}, indent=1))


def float_violation(inst: BenchmarkInstance, problem: Problem, sol: Solution) -> float:
    """Largest breach (original minutes) of travel, window, ride-time and duration rules when the
    written schedule is re-checked with unrounded Euclidean distances. The solver works on
    arcs rounded to 1/scale, so breaches of a few 1/scale per route are expected."""
    scale = inst.scale
    c = inst.coords

    def dist(i: int, j: int) -> float:
        return float(((c[i] - c[j]) ** 2).sum() ** 0.5)

    vmap = {v.id: v for v in problem.vehicles}
    worst = 0.0
    for r in sol.routes:
        if not r.stops:
            continue
        v = vmap[r.vehicle_id]
        first = r.stops[0]
        t_prev = (first.arrival_s - problem.travel(v.start_location, first.location)) / scale
        depart = t_prev
        loc_prev, svc_prev = v.start_location, 0.0
        pick_end: dict[str, float] = {}
        for st in r.stops:
            req = problem.requests[st.stop.request_id]
            t = st.start_s / scale
            worst = max(worst, t_prev + svc_prev + dist(loc_prev, st.location) - t)
            win = req.pickup_window if st.stop.kind == "pickup" else req.dropoff_window
            worst = max(worst, win.earliest_s / scale - t, t - win.latest_s / scale)
            svc = (
                req.pickup_service_s if st.stop.kind == "pickup" else req.dropoff_service_s
            ) / scale
            if st.stop.kind == "pickup":
                pick_end[req.id] = t + svc
            elif req.id in pick_end:
                worst = max(worst, t - pick_end[req.id] - req.max_ride_s / scale)
            t_prev, loc_prev, svc_prev = t, st.location, svc
        end = t_prev + svc_prev + dist(loc_prev, v.end_location)
        worst = max(worst, end - v.shift_end_s / scale)
        if v.max_route_duration_s is not None:
            worst = max(worst, end - depart - v.max_route_duration_s / scale)
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", choices=["a", "b", "pr", "lilim100", "lilim200"])
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per instance")
    ap.add_argument("--out", type=Path, default=None, help="folder for <instance>.json plans")
    ap.add_argument("--instances", default=None, help="comma-separated names (e.g. a2-16,a3-24)")
    ap.add_argument(
        "--peer", action=argparse.BooleanOptionalAction, default=False, help="also run VROOM"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--plain", action="store_true", help="plain OR-Tools model (no LNS), for comparison"
    )
    ap.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="stop the ruin-and-recreate phase after N iterations (same seed, same plan)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    # compile the search once (or load numba's cache) so no instance's budget pays for it
    print(f"search compiled/loaded in {warm_up():.1f} s", flush=True)

    files = instance_files(args.set)
    lilim = args.set.startswith("lilim")
    reader = read_lilim if lilim else read_cordeau
    bks_vehicles = best_known_vehicles(BENCH / "best_known.csv") if lilim else {}
    wanted = set(args.instances.split(",")) if args.instances else None
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    header = f"{'instance':<10} {'cost':>10} {'best':>10} {'gap%':>7} {'time':>6} {'feas':>5}"
    if lilim:
        header += f" {'veh':>4} {'bkveh':>5}"
    if args.peer:
        header += f" | {'vroom':>10} {'gap%':>7} {'time':>6} {'ok':>3}"
    print(header, flush=True)
    for path in files:
        inst = reader(path, best_known_csv=BENCH / "best_known.csv")
        if wanted and inst.name not in wanted and path.stem not in wanted:
            continue
        problem = inst.problem
        if lilim and inst.name in bks_vehicles:
            problem = replace(problem, vehicles=problem.vehicles[: bks_vehicles[inst.name]])
        t0 = time.perf_counter()
        sol = optimise(
            problem,
            time_limit_s=args.time_limit,
            seed=args.seed,
            lns=not args.plain,
            max_iterations=args.iterations,
        )
        elapsed = time.perf_counter() - t0
        viol = check(problem, sol, require_all_served=True, tolerance=TOLERANCE)
        cost = route_cost(inst, location_routes(inst, problem, sol))
        bk = inst.best_known
        gap = (cost / bk - 1.0) * 100.0 if bk else None
        row = {
            "instance": inst.name,
            "cost": cost,
            "best_known": bk,
            "gap_pct": gap,
            "time_s": elapsed,
            "feasible": not viol,
            "violations": len(viol),
            "unserved": len(sol.unserved),
            "vehicles": sum(1 for r in sol.routes if r.stops),
            "bk_vehicles": bks_vehicles.get(inst.name),
            "float_violation_min": float_violation(inst, problem, sol),
        }
        line = (
            f"{inst.name:<10} {cost:>10.2f} {bk if bk else float('nan'):>10.2f} "
            f"{gap if gap is not None else float('nan'):>7.2f} {elapsed:>6.2f} {not viol!s:>5}"
        )
        if lilim:
            line += f" {row['vehicles']:>4} {row['bk_vehicles'] or 0:>5}"
        if args.out:
            write_json(args.out / f"{inst.name}.json", inst, problem, sol)
        if args.peer:
            from bench._vroom_peer import solve_vroom

            psol, ptime = solve_vroom(problem, time_limit_s=args.time_limit)
            pviol = check(problem, psol, require_all_served=True, tolerance=TOLERANCE)
            pcost = route_cost(inst, location_routes(inst, problem, psol))
            row.update(
                peer_cost=pcost,
                peer_time_s=ptime,
                peer_feasible=not pviol,
                peer_gap_pct=(pcost / bk - 1.0) * 100.0 if bk else None,
                peer_violation_kinds=sorted({v.kind for v in pviol}),
            )
            line += f" | {pcost:>10.2f} {row['peer_gap_pct'] or 0:>7.2f} {ptime:>6.2f} {'y' if not pviol else 'n':>3}"
        if viol:
            line += "  " + "; ".join(f"{v.kind}:{v.detail}" for v in viol[:2])
        rows.append(row)
        print(line, flush=True)

    gaps = [r["gap_pct"] for r in rows if r["gap_pct"] is not None and r["feasible"]]
    summary = {
        "set": args.set,
        "time_limit_s": args.time_limit,
        "instances": len(rows),
        "feasible": sum(r["feasible"] for r in rows),
        "mean_gap_pct": round(sum(gaps) / len(gaps), 3) if gaps else None,
        "max_gap_pct": round(max(gaps), 3) if gaps else None,
        "mean_time_s": round(sum(r["time_s"] for r in rows) / len(rows), 3) if rows else None,
        "checker_tolerance_units": TOLERANCE,
        "max_float_violation_min": round(
            max((r["float_violation_min"] for r in rows), default=0.0), 6
        ),
    }
    if lilim:
        summary["at_bk_vehicles"] = sum(
            1 for r in rows if r["feasible"] and r["vehicles"] <= (r["bk_vehicles"] or 10**9)
        )
    if args.peer and rows:
        pg = [r["peer_gap_pct"] for r in rows if r["peer_gap_pct"] is not None]
        summary.update(
            peer="vroom",
            peer_feasible=sum(r["peer_feasible"] for r in rows),
            peer_rejected_by_checker=sum(not r["peer_feasible"] for r in rows),
            peer_mean_gap_pct=round(sum(pg) / len(pg), 3) if pg else None,
            peer_mean_time_s=round(sum(r["peer_time_s"] for r in rows) / len(rows), 3),
            cost_ratio_ours_to_peer=round(
                sum(r["cost"] for r in rows) / sum(r["peer_cost"] for r in rows), 4
            ),
            time_ratio_ours_to_peer=round(
                sum(r["time_s"] for r in rows) / max(1e-9, sum(r["peer_time_s"] for r in rows)), 3
            ),
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
