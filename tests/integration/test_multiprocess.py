"""Two real server processes on one PostgreSQL database and Redis: a booking on one reaches a tablet on the other."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import websockets

from tests.conftest import REDIS_URL, TOKYO, create_pg_database, drop_pg_database, unavailable

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _redis_ok(url: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(url)
    try:
        await asyncio.wait_for(r.ping(), 3)
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis", exc)
    finally:
        await r.aclose()


async def _prepare(database_url: str) -> tuple[dict[str, str], str]:
    """Schema, Okuma data, a driver per vehicle and a rider; returns (driver tokens, rider token)."""
    from transit.accounts import create_account
    from transit.bootstrap import bootstrap
    from transit.db import migrate
    from transit.loading import load_reference
    from transit.settings import Settings

    rt = bootstrap(Settings(database_url=database_url, dispatcher=False))
    try:
        await migrate(rt.engine)
        async with rt.services.uow() as uow:
            await load_reference(uow, rt.reference, today=datetime.now(TOKYO).date(), days=3)
            drivers = {}
            for v in rt.reference.fleet:
                _, drivers[v.id] = await create_account(uow, role="driver", name=v.id, vehicle_id=v.id)
            _, rider = await create_account(uow, role="rider", name="rider")
            await uow.commit()
        return drivers, rider
    finally:
        await rt.close()


def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--ws", "websockets-sansio"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


# Importing the app (OR-Tools, numba's cached search) takes a few seconds idle; on a 2-core CI machine
# shared with other jobs it took over 15 s, so the wait is a 60 s deadline, not a count of tries.
START_WAIT_S = 60.0


async def _wait_healthy(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WAIT_S
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if (await client.get(url + "/healthz", timeout=1)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"server did not answer /healthz within {START_WAIT_S:.0f} s")


async def test_booking_on_one_process_reaches_a_tablet_on_the_other() -> None:
    """Tablets on process A get the delta of a booking confirmed through process B within a second."""
    await _redis_ok(REDIS_URL)
    db = await create_pg_database()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        drivers, rider = await _prepare(db)
        env = {**os.environ, "DATABASE_URL": db, "REDIS_URL": REDIS_URL, "OKUMA_DISPATCHER": "false",
               "OKUMA_BUS_CHANNEL": f"okuma:test:{secrets.token_hex(4)}", "PYTHONPATH": str(ROOT)}
        ports = [_free_port(), _free_port()]
        procs = [_start(p, env) for p in ports]
        a, b = (f"127.0.0.1:{p}" for p in ports)
        async with httpx.AsyncClient() as http:
            for p, url in zip(procs, (a, b)):
                await _wait_healthy(http, f"http://{url}", p)
            tablets = {vid: await websockets.connect(f"ws://{a}/ws/driver") for vid in drivers}
            for vid, ws in tablets.items():
                await ws.send(json.dumps({"type": "hello", "token": drivers[vid]}))
            try:
                seqs = {}
                for vid, ws in tablets.items():
                    assert json.loads(await ws.recv())["type"] == "hello"
                    snap = json.loads(await ws.recv())
                    assert snap["type"] == "snapshot"
                    seqs[vid] = snap["seq"]
                h = {"Authorization": f"Bearer {rider}"}
                when = (datetime.now(TOKYO) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
                r = await http.post(f"http://{b}/api/v1/offers", headers=h, json={
                    "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
                    "time_mode": "leave_at", "time": when.isoformat()})
                assert r.status_code == 201, r.text
                r = await http.post(f"http://{b}/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                    headers={**h, "Idempotency-Key": "mp-1"})
                assert r.status_code == 201, r.text
                confirmed_at = time.monotonic()
                booking = r.json()
                ws = tablets[booking["vehicle_id"]]
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    if m["type"] == "delta":
                        break
                assert time.monotonic() - confirmed_at < 1.0
                assert booking["id"] in m["added"] and m["seq"] > seqs[booking["vehicle_id"]]
                # and the plan is the same through process B
                r = await http.get(f"http://{b}/api/v1/vehicles/{booking['vehicle_id']}/plan",
                                   headers={"Authorization": f"Bearer {drivers[booking['vehicle_id']]}"})
                assert r.json()["plan_version"] == m["seq"]
            finally:
                for ws in tablets.values():
                    await ws.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        await drop_pg_database(db)
