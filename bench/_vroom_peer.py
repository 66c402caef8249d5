"""Peer solver for the benchmarks: VROOM through pyvroom, on the same Problem.

A helper module, not a bench script: bench/darp.py prints its figures in its own json line.

VROOM has shipments (pickup + delivery, same vehicle, precedence), time windows and capacity,
but no maximum ride time and no maximum route duration apart from the vehicle time window, so
its plans can break the DARP ride-time rule; the bench reports how many the checker rejects.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import vroom

from routing.model import Load, Problem, Route, ScheduledStop, Solution, Stop, UnservedCause


def solve_vroom(
    problem: Problem, *, time_limit_s: float, threads: int = 1, exploration: int = 5
) -> tuple[Solution, float]:
    """Solve ``problem`` with VROOM; returns (Solution in our model, seconds)."""
    t0 = time.perf_counter()
    inp = vroom.Input()
    mat = np.asarray(problem.travel_s, dtype=np.uint32)
    inp.set_durations_matrix(profile="car", matrix_input=mat)
    inp.set_costs_matrix(profile="car", matrix_input=mat)
    for k, v in enumerate(problem.vehicles):
        inp.add_vehicle(
            vroom.Vehicle(
                k,
                start=int(v.start_location),
                end=int(v.end_location),
                capacity=vroom.Amount(list(v.capacity.as_tuple())),
                time_window=vroom.TimeWindow(int(v.start_time_s), int(v.shift_end_s)),
            )
        )
    ids = sorted(problem.requests)
    for i, rid in enumerate(ids):
        r = problem.requests[rid]
        inp.add_shipment(
            pickup=vroom.ShipmentStep(
                2 * i,
                location=int(r.pickup),
                default_service=int(r.pickup_service_s),
                time_windows=[
                    vroom.TimeWindow(r.pickup_window.earliest_s, r.pickup_window.latest_s)
                ],
            ),
            delivery=vroom.ShipmentStep(
                2 * i + 1,
                location=int(r.dropoff),
                default_service=int(r.dropoff_service_s),
                time_windows=[
                    vroom.TimeWindow(r.dropoff_window.earliest_s, r.dropoff_window.latest_s)
                ],
            ),
            amount=vroom.Amount(list(r.load.as_tuple())),
        )
    sol = inp.solve(
        exploration_level=exploration, nb_threads=threads, timeout=timedelta(seconds=time_limit_s)
    )
    df = sol.routes
    routes = []
    served = set()
    for k, v in enumerate(problem.vehicles):
        rows = df[df["vehicle_id"] == k]
        if rows.empty:
            continue
        stops = []
        load = Load()
        end_arrival = int(v.shift_end_s)
        for _, row in rows.iterrows():
            typ = str(row["type"])
            if typ == "end":
                end_arrival = int(row["arrival"])
                continue
            if typ not in ("pickup", "delivery"):
                continue
            jid = int(row["id"])
            rid = ids[jid // 2]
            r = problem.requests[rid]
            kind = "pickup" if jid % 2 == 0 else "dropoff"
            load = load + r.load if kind == "pickup" else load - r.load
            start = int(row["arrival"]) + int(row["waiting_time"])
            svc = r.pickup_service_s if kind == "pickup" else r.dropoff_service_s
            loc = r.pickup if kind == "pickup" else r.dropoff
            stops.append(
                ScheduledStop(Stop(rid, kind), loc, int(row["arrival"]), start, start + svc, load)
            )
            served.add(rid)
        routes.append(Route(v.id, tuple(stops), end_arrival))
    unserved = {rid: UnservedCause.NO_FEASIBLE_INSERTION for rid in ids if rid not in served}
    return Solution(tuple(routes), unserved), time.perf_counter() - t0
