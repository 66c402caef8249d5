"""A bounded soak: riders booking, every tablet connected and the dispatcher re-planning, against
PostgreSQL + Redis with two server processes, on loopback only.

    python bench/soak.py [--minutes 10] [--clients 4] [--vehicles 6]

Clients loop: an offer (leave at a time in the coming days' service hours), then its confirm, then
a pause of --think-s. One tablet per vehicle stays connected (hello, pings, reconnect on a drop)
and records every booking id it is told about (deltas' ``added``, snapshots' visits). Reported:
HTTP errors (5xx, transport errors), p95 latency, the servers' memory growth from the end of the
warm-up to the end, and lost messages: confirmed bookings that no tablet heard of within 15 s of
the end (the dispatcher may move a booking between vehicles, so any tablet counts).
Last line: {"minutes": .., "requests": .., "bookings": .., "errors": .., "p95_ms": ..,
"memory_start_mb": .., "memory_end_mb": .., "memory_growth_pct": .., "lost_messages": ..,
"tablet_reconnects": ..}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server, data_dir_with_fleet, fresh_postgres, rss_bytes  # noqa: E402
from booking_http import pct, random_ride  # noqa: E402

TOKYO = ZoneInfo("Asia/Tokyo")


class Tablets:
    def __init__(self, base_ws: str, vehicles: list[str]) -> None:
        self.base_ws, self.vehicles = base_ws, vehicles
        self.heard: set[str] = set()
        self.reconnects = 0
        self.stopped = False

    async def run(self, vid: str) -> None:
        first = True
        while not self.stopped:
            try:
                async with websockets.connect(f"{self.base_ws}/ws/driver", open_timeout=10) as ws:
                    if not first:
                        self.reconnects += 1
                    first = False
                    await ws.send(json.dumps({"type": "hello", "token": f"demo-driver-{vid}"}))
                    pinger = asyncio.create_task(self._ping(ws))
                    try:
                        async for raw in ws:
                            self._note(json.loads(raw))
                            if self.stopped:
                                break
                    finally:
                        pinger.cancel()
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(1)

    async def _ping(self, ws: websockets.ClientConnection) -> None:
        while True:
            await asyncio.sleep(5)
            await ws.send(json.dumps({"type": "ping", "t": time.time()}))

    def _note(self, m: dict) -> None:
        if m.get("type") == "delta":
            self.heard.update(m.get("added") or [])
            self.heard.update(v.get("booking_id") for v in m.get("visits") or [])
        elif m.get("type") == "snapshot":
            self.heard.update(v.get("booking_id") for v in m.get("visits") or [])


async def soak(url: str, server_pid: int, minutes: float, clients: int, vehicles: list[str],
               think_s: float, warmup_s: float) -> dict[str, float]:
    tablets = Tablets(url.replace("http://", "ws://"), vehicles)
    tablet_tasks = [asyncio.create_task(tablets.run(v)) for v in vehicles]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    booked: list[str] = []
    stop_at = time.perf_counter() + minutes * 60
    rss: dict[str, int] = {}
    rng = random.Random(7)
    tomorrow = datetime.now(TOKYO).date() + timedelta(days=1)

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": "Bearer demo-operator"}) as c:
            n = 0
            while time.perf_counter() < stop_at:
                try:
                    t = time.perf_counter()
                    r = await c.post("/api/v1/offers", json=random_ride(rng, tomorrow, 3, f"soak {i}"))
                    latencies.append((time.perf_counter() - t) * 1000)
                    if r.status_code >= 500:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    if r.status_code == 201:
                        t = time.perf_counter()
                        r = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                         headers={"Idempotency-Key": f"soak-{i}-{n}"})
                        latencies.append((time.perf_counter() - t) * 1000)
                        if r.status_code >= 500:
                            errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                        elif r.status_code == 201:
                            booked.append(r.json()["id"])
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                n += 1
                await asyncio.sleep(think_s)

    async def memory() -> None:
        await asyncio.sleep(warmup_s)
        rss["start"] = rss_bytes(server_pid)

    mem = asyncio.create_task(memory())
    await asyncio.gather(*(client(i) for i in range(clients)))
    await mem
    rss["end"] = rss_bytes(server_pid)
    for _ in range(150):  # up to 15 s for the last deltas
        if set(booked) <= tablets.heard:
            break
        await asyncio.sleep(0.1)
    tablets.stopped = True
    for task in tablet_tasks:
        task.cancel()
    for task in tablet_tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return {
        "requests": len(latencies),
        "bookings": len(booked),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p95_ms": round(pct(latencies, 95), 1),
        "memory_start_mb": round(rss["start"] / 2**20, 1),
        "memory_end_mb": round(rss["end"] / 2**20, 1),
        "memory_growth_pct": round(100 * (rss["end"] - rss["start"]) / max(1, rss["start"]), 1),
        "lost_messages": len(set(booked) - tablets.heard),
        "tablet_reconnects": tablets.reconnects,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--vehicles", type=int, default=6)
    ap.add_argument("--think-s", type=float, default=0.5)
    ap.add_argument("--warmup-s", type=float, default=30, help="memory is measured from here on")
    ap.add_argument("--pg-admin-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    ap.add_argument("--reoptimise-interval-s", type=float, default=30)
    ap.add_argument("--start-timeout-s", type=float, default=90,
                    help="how long the two server processes may take to answer /healthz")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="trace the servers' allocations (slower) and print what grew most from the end of the "
                         "warm-up to the end, per process")
    args = ap.parse_args()
    data = data_dir_with_fleet(args.vehicles)
    vehicles = [f"bus_{i:03d}" for i in range(args.vehicles)]
    env = {"REDIS_URL": args.redis_url, "OKUMA_BUS_CHANNEL": f"okuma:soak:{os.getpid()}",
           "OKUMA_DISPATCHER": "true", "OKUMA_REOPTIMISE_INTERVAL_S": str(args.reoptimise_interval_s),
           "OKUMA_REOPTIMISE_BUDGET_S": "1"}
    heap_dir = None
    if args.tracemalloc:
        heap_dir = Path(tempfile.mkdtemp(prefix="okuma-soak-heap-"))
        env |= {"OKUMA_TRACEMALLOC_DIR": str(heap_dir),
                "OKUMA_TRACEMALLOC_EVERY_S": str(max(5.0, min(args.warmup_s, args.minutes * 30)))}
    with Server(fresh_postgres(args.pg_admin_url), data, env, workers=2, start_timeout_s=args.start_timeout_s) as srv:
        assert srv.proc is not None
        res = asyncio.run(soak(srv.url, srv.proc.pid, args.minutes, args.clients, vehicles,
                               args.think_s, min(args.warmup_s, args.minutes * 30)))
    print(f"soak {args.minutes:g} min, 2 server processes, {args.vehicles} tablets: "
          f"{res['requests']} requests, {res['bookings']} bookings, errors {res['error_kinds'] or 0}, "
          f"p95 {res['p95_ms']} ms, memory {res['memory_start_mb']} -> {res['memory_end_mb']} MB "
          f"({res['memory_growth_pct']} %), lost messages {res['lost_messages']}, "
          f"tablet reconnects {res['tablet_reconnects']}")
    if heap_dir is not None:
        grown(heap_dir)
    print(json.dumps({"minutes": args.minutes, **{k: v for k, v in res.items() if k != "error_kinds"}}))


def grown(heap_dir: Path, top: int = 12) -> None:
    """Per server process: the source lines whose live allocations grew most between the snapshot
    at the end of the warm-up (the first) and the last one."""
    import tracemalloc

    by_pid: dict[str, list[Path]] = {}
    for f in sorted(heap_dir.glob("*.snap")):
        by_pid.setdefault(f.name.split("-")[0], []).append(f)
    for pid, snaps in sorted(by_pid.items()):
        if len(snaps) < 2:
            continue
        first, last = tracemalloc.Snapshot.load(str(snaps[0])), tracemalloc.Snapshot.load(str(snaps[-1]))
        diff = last.compare_to(first, "lineno")
        total = sum(d.size_diff for d in diff)
        print(f"process {pid}: traced memory {sum(s.size for s in first.statistics('filename')) / 2**20:.1f} -> "
              f"{sum(s.size for s in last.statistics('filename')) / 2**20:.1f} MiB ({total / 2**20:+.1f} MiB) "
              f"over {len(snaps) - 1} snapshots; grew most:")
        for d in diff[:top]:
            frame = d.traceback[0]
            print(f"  {d.size_diff / 2**10:+9.1f} KiB {d.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}")


if __name__ == "__main__":
    main()
