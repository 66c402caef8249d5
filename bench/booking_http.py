"""Offers and confirms over HTTP, 20 concurrent clients, against a server on SQLite and PostgreSQL.

    python bench/booking_http.py [--database-url URL] [--clients 20] [--seconds 15]

Without --database-url it runs both SQLite and PostgreSQL (postgresql://postgres@127.0.0.1/postgres
is used to create a scratch database). Each client loops: ask for an offer (leave at a time in the
coming days' service hours), confirm it with an Idempotency-Key. Latency is per HTTP call.
Server CPU per request is the user + system time of the server's processes (from /proc) during the
load, divided by the requests answered.
Last line: {"sqlite": {"rps": .., "p95_ms": .., "cpu_ms_per_request": ..}, "postgresql": {...}, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server, cpu_seconds, data_dir_with_fleet, fresh_postgres

TOKYO = ZoneInfo("Asia/Tokyo")
STOPS = ["okuma_town_hall", "okumart", "okuma_clinic_welfare_centre", "ogawara_disaster_public_housing",
         "ono_station_west_plaza", "ono_station_east_plaza", "kuma_sun_terrace", "manabiya_yumenomori"]


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def random_ride(rng: random.Random, first_day: date, days: int, name: str) -> dict[str, object]:
    """An offer request between two stops, leaving at a time in the service hours of the coming days."""
    o, d = rng.sample(STOPS, 2)
    day = first_day + timedelta(days=rng.randrange(days))
    when = datetime(day.year, day.month, day.day, 7, 30, tzinfo=TOKYO) + timedelta(minutes=rng.randrange(0, 11 * 60))
    return {"origin": {"stop_id": o}, "destination": {"stop_id": d}, "time_mode": "leave_at",
            "time": when.isoformat(), "passenger_name": name}


async def run_load(url: str, clients: int, seconds: float, seed: int = 1,
                   server_pid: int | None = None) -> dict[str, float]:
    rng = random.Random(seed)
    lat_offer: list[float] = []
    lat_confirm: list[float] = []
    outcomes: dict[int, int] = {}
    tomorrow = datetime.now(TOKYO).date() + timedelta(days=1)
    stop_at = time.perf_counter() + seconds

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": "Bearer demo-operator"}) as c:
            n = 0
            while time.perf_counter() < stop_at:
                body = random_ride(rng, tomorrow, 5, f"bench {i}")
                t = time.perf_counter()
                r = await c.post("/api/v1/offers", json=body)
                lat_offer.append((time.perf_counter() - t) * 1000)
                outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
                if r.status_code != 201:
                    continue
                t = time.perf_counter()
                r = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                 headers={"Idempotency-Key": f"bench-{i}-{n}"})
                lat_confirm.append((time.perf_counter() - t) * 1000)
                outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
                n += 1

    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - cpu0 if server_pid else float("nan")
    every = lat_offer + lat_confirm
    if outcomes.get(500):
        raise SystemExit(f"server answered 500 {outcomes[500]} times")
    return {
        "requests": len(every),
        "rps": round(len(every) / elapsed, 1),
        "p50_ms": round(pct(every, 50), 1),
        "p95_ms": round(pct(every, 95), 1),
        "offer_p95_ms": round(pct(lat_offer, 95), 1),
        "confirm_p95_ms": round(pct(lat_confirm, 95), 1),
        "cpu_ms_per_request": round(cpu * 1000 / max(1, len(every)), 2),
        "status_counts": {str(k): v for k, v in sorted(outcomes.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", help="run only this database (sqlite+aiosqlite:///… or postgresql://…)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--vehicles", type=int, default=20)
    ap.add_argument("--pg-admin-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--pg-workers", type=int, default=2,
                    help="also run PostgreSQL with this many server processes (0: skip)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    args = ap.parse_args()
    data = data_dir_with_fleet(args.vehicles)
    targets: dict[str, str] = {}
    if args.database_url:
        targets["postgresql" if args.database_url.startswith("postgres") else "sqlite"] = args.database_url
    else:
        targets["sqlite"] = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
        targets["postgresql"] = fresh_postgres(args.pg_admin_url)
    out: dict[str, dict[str, float]] = {}
    runs: list[tuple[str, str, int]] = [(name, url, 1) for name, url in targets.items()]
    if "postgresql" in targets and args.pg_workers > 1 and not args.database_url:
        runs.append((f"postgresql_{args.pg_workers}_workers", fresh_postgres(args.pg_admin_url), args.pg_workers))
    for name, url, workers in runs:
        env = {"REDIS_URL": args.redis_url, "OKUMA_BUS_CHANNEL": f"okuma:bench:{os.getpid()}"} \
            if workers > 1 else None
        with Server(url, data, env, workers=workers) as srv:
            assert srv.proc is not None
            res = asyncio.run(run_load(srv.url, args.clients, args.seconds, server_pid=srv.proc.pid))
        out[name] = res
        print(f"{name:10s} requests={res['requests']:5d} rps={res['rps']:7.1f} p50={res['p50_ms']:6.1f} ms "
              f"p95={res['p95_ms']:6.1f} ms (offer p95 {res['offer_p95_ms']}, confirm p95 {res['confirm_p95_ms']}) "
              f"server cpu {res['cpu_ms_per_request']} ms/request statuses={res['status_counts']}")
    print(json.dumps({k: {"rps": v["rps"], "p95_ms": v["p95_ms"], "cpu_ms_per_request": v["cpu_ms_per_request"],
                          "offer_p95_ms": v["offer_p95_ms"], "confirm_p95_ms": v["confirm_p95_ms"]}
                      for k, v in out.items()}))


if __name__ == "__main__":
    main()
