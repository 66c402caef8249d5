"""Tablet fan-out: time from a plan commit to its delta on the tablet, and memory per connection.

For each fleet size N (100, then 500) it prepares a scratch SQLite database with N minibuses and N
driver accounts, starts one server process (uvicorn, loopback only), connects N simulated tablets
from this process (one websocket each), then confirms bookings through the REST API. Every
booking commit raises one vehicle's plan version; the hub stamps the delta with the wall-clock time
it saw the commit (``committed_ts``) and the tablet notes when the delta arrived. Same machine, same
clock. Memory per connection = (server RSS with N tablets - RSS before) / N, from /proc.

    .venv/bin/python bench/ws_fanout.py [--tablets 100 500] [--bookings 150] [--concurrency 6]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKYO = ZoneInfo("Asia/Tokyo")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scratch_data(n: int) -> Path:
    d = Path(tempfile.mkdtemp(prefix="okuma-fanout-"))
    for f in (ROOT / "data" / "okuma").iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    fleet = {"vehicles": [
        {"id": f"bus_{i:03d}", "name_ja": f"ミニバス{i}号", "name_en": f"Minibus {i}", "seats": 10,
         "wheelchairs": 1, "parcels": 6, "depot_stop_id": "okuma_town_hall",
         "shifts": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "07:00",
                     "end": "20:00", "breaks": []}]}
        for i in range(n)
    ]}
    (d / "fleet.json").write_text(json.dumps(fleet, ensure_ascii=False), encoding="utf-8")
    return d


async def prepare(database_url: str, data_dir: Path) -> tuple[dict[str, str], str, list[str]]:
    """Schema, data, one driver per vehicle and a rider. Returns (driver tokens, rider token, stop ids)."""
    from transit.accounts import create_account
    from transit.bootstrap import bootstrap
    from transit.db import migrate
    from transit.loading import load_reference
    from transit.settings import Settings

    rt = bootstrap(Settings(database_url=database_url, data_dir=str(data_dir), dispatcher=False))
    try:
        await migrate(rt.engine)
        async with rt.services.uow() as uow:
            await load_reference(uow, rt.reference, today=datetime.now(TOKYO).date(), days=3)
            drivers = {}
            for v in rt.reference.fleet:
                _, drivers[v.id] = await create_account(uow, role="driver", name=v.id, vehicle_id=v.id)
            _, rider = await create_account(uow, role="rider", name="bench rider")
            await uow.commit()
        return drivers, rider, [s.stop_id for s in rt.reference.stops]
    finally:
        await rt.close()


class Tablets:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.deltas = 0
        self.socks: list[object] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, base: str, token: str) -> None:
        ws = await websockets.connect(f"{base}/ws/driver", open_timeout=30, max_queue=64)
        await ws.send(json.dumps({"type": "hello", "token": token}))
        self.socks.append(ws)
        for _ in range(2):  # hello, snapshot
            await asyncio.wait_for(ws.recv(), 30)
        self.tasks.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: object) -> None:
        try:
            async for raw in ws:  # type: ignore[attr-defined]
                now = time.time()
                m = json.loads(raw)
                if m["type"] == "delta" and m.get("committed_ts"):
                    self.deltas += 1
                    self.latencies_ms.append((now - m["committed_ts"]) * 1000)
                elif m["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong", "t": m.get("t")}))  # type: ignore[attr-defined]
        except websockets.ConnectionClosed:
            return

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*(ws.close() for ws in self.socks), return_exceptions=True)  # type: ignore[attr-defined]


async def book_many(http: httpx.AsyncClient, base: str, rider: str, stops: list[str], n: int,
                    concurrency: int, rng: random.Random) -> int:
    h = {"Authorization": f"Bearer {rider}"}
    day = (datetime.now(TOKYO) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    done = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal done
        o, d = rng.sample(stops, 2)
        when = day + timedelta(minutes=rng.randrange(0, 9 * 60))
        async with sem:
            r = await http.post(f"{base}/api/v1/offers", headers=h, json={
                "origin": {"stop_id": o}, "destination": {"stop_id": d}, "time_mode": "leave_at",
                "time": when.isoformat()})
            if r.status_code != 201:
                return
            r = await http.post(f"{base}/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                headers={**h, "Idempotency-Key": f"fan-{i}"})
            if r.status_code == 201:
                done += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return done


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def run_round(n: int, bookings: int, concurrency: int, seed: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="okuma-fanout-db-"))
    data = scratch_data(n)
    db = f"sqlite+aiosqlite:///{tmp}/okuma.db"
    drivers, rider, stops = await prepare(db, data)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db, "OKUMA_DATA_DIR": str(data), "OKUMA_DISPATCHER": "false",
           "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--ws", "websockets-sansio"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_http, base_ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    tablets = Tablets()
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(300):
                try:
                    if (await http.get(base_http + "/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not start")
            # warm up one booking path so imports and caches do not count as connection memory
            await book_many(http, base_http, rider, stops, 2, 1, random.Random(seed + 1))
            await asyncio.sleep(0.5)
            rss0 = rss_kib(proc.pid)
            sem = asyncio.Semaphore(50)

            async def connect(tok: str) -> None:
                async with sem:
                    await tablets.connect(base_ws, tok)

            t0 = time.perf_counter()
            await asyncio.gather(*(connect(tok) for tok in drivers.values()))
            connect_s = time.perf_counter() - t0
            await asyncio.sleep(1.0)
            rss1 = rss_kib(proc.pid)
            t0 = time.perf_counter()
            ok = await book_many(http, base_http, rider, stops, bookings, concurrency, random.Random(seed))
            book_s = time.perf_counter() - t0
            await asyncio.sleep(1.0)
        lat = tablets.latencies_ms
        return {
            "tablets": n, "connected": len(tablets.socks), "connect_s": connect_s, "bookings": ok,
            "book_s": book_s, "deltas": tablets.deltas, "p50_ms": statistics.median(lat) if lat else float("nan"),
            "p95_ms": pct(lat, 0.95), "max_ms": max(lat) if lat else float("nan"),
            "kib_per_connection": (rss1 - rss0) / max(1, len(tablets.socks)), "rss_mib": rss1 / 1024,
        }
    finally:
        await tablets.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tablets", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--bookings", type=int, default=150, help="booking commits per round")
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if any(n < 1 or n > 2000 for n in args.tablets) or not 1 <= args.bookings <= 5000:
        raise SystemExit("tablets in 1..2000, bookings in 1..5000")
    raise_fd_limit()
    rows = [await run_round(n, args.bookings, args.concurrency, args.seed) for n in args.tablets]
    print(f"cores: {os.cpu_count()}  server: 1 uvicorn process, SQLite; tablets and riders in this process")
    print(f"{'tablets':>8} {'conn':>5} {'conn_s':>7} {'bookings':>8} {'deltas':>6} {'p50_ms':>7} "
          f"{'p95_ms':>7} {'max_ms':>7} {'KiB/conn':>8} {'RSS_MiB':>7}")
    for r in rows:
        print(f"{r['tablets']:>8} {r['connected']:>5} {r['connect_s']:>7.2f} {r['bookings']:>8} {r['deltas']:>6} "
              f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['max_ms']:>7.1f} {r['kib_per_connection']:>8.1f} "
              f"{r['rss_mib']:>7.1f}")
    print(json.dumps({
        "tablets": [r["tablets"] for r in rows],
        "p50_ms": [round(r["p50_ms"], 1) for r in rows],
        "p95_ms": [round(r["p95_ms"], 1) for r in rows],
        "kib_per_connection": round(rows[-1]["kib_per_connection"], 1),
    }))


if __name__ == "__main__":
    asyncio.run(main())
