"""Starting the server; with --demo, demo accounts with well-known tokens and a simulated fleet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import uvicorn

from api.limits import MAX_HEADER_BYTES, MAX_WS_MESSAGE_BYTES
from transit.accounts import create_account, hash_token
from transit.bootstrap import bootstrap
from transit.clock import AcceleratedClock, Clock, SystemClock
from transit.db import check_database
from transit.settings import Settings

log = logging.getLogger("okuma.server")
# The websocket library refuses an oversized frame before reading it (the app checks again).
PROTOCOL_LIMITS: dict[str, Any] = {"ws_max_size": MAX_WS_MESSAGE_BYTES,
                                   "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
EXIT_DATABASE = 3  # `okuma serve` exits with this when the database is unreachable, missing or unmigrated

DEMO_ACCOUNTS = [
    # (role, name, token, stop, vehicle)
    ("rider", "大熊 花子 (demo rider)", "demo-rider", None, None),
    ("kiosk", "役場前キオスク (demo kiosk)", "demo-kiosk", "okuma_town_hall", None),
    ("operator", "町役場 交通窓口 (demo operator)", "demo-operator", None, None),
    ("driver", "ミニバス1号 運転士 (demo driver)", "demo-driver", None, "minibus_1"),
    ("store", "おおくまーと (demo store)", "demo-store", "okumart", None),
    ("admin", "管理者 (demo admin)", "demo-admin", None, None),
]


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def demo_start(now: datetime, rules) -> datetime:  # type: ignore[no-untyped-def]
    """Where the demo's clock starts: now if inside service hours, else 08:00 of the next service day.

    So a newcomer at any hour (Europe, America, 3 a.m. in Okuma) sees the minibuses move.
    """
    tz = rules.tz
    local = now.astimezone(tz)
    for k in range(8):
        day = local.date() + timedelta(days=k)
        if DAY_NAMES[day.weekday()] not in rules.service_days:
            continue
        start = datetime.combine(day, rules.service_start_local, tzinfo=tz)
        end = datetime.combine(day, rules.service_end_local, tzinfo=tz)
        if start <= local < end - timedelta(hours=1):
            return now
        at = max(start, datetime.combine(day, dtime(8, 0), tzinfo=tz))
        if at > local and at < end:
            return at.astimezone(UTC)
    return now


def demo_driver_token(vehicle_id: str) -> str:
    return f"demo-driver-{vehicle_id}"


async def ensure_demo_accounts(settings: Settings) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Demo accounts (development only); returns (role, token) pairs and a driver token per vehicle."""
    if settings.environment != "development":
        raise SystemExit("demo accounts have well-known tokens: refused outside development")
    rt = bootstrap(settings)
    drivers: dict[str, str] = {}
    try:
        async with rt.services.uow() as uow:
            vehicle_ids = [v.id for v in await uow.vehicles.list()]
            wanted = list(DEMO_ACCOUNTS) + [
                ("driver", f"{vid} 運転士 (demo driver)", demo_driver_token(vid), None, vid) for vid in vehicle_ids
            ]
            for role, name, token, stop, vehicle in wanted:
                if vehicle is not None and vehicle not in vehicle_ids:
                    vehicle = vehicle_ids[0] if vehicle_ids else None
                if role == "driver" and vehicle is None:
                    continue
                if await uow.accounts.by_token_hash(hash_token(token)) is None:
                    await create_account(uow, role=role, name=name, stop_id=stop, vehicle_id=vehicle, token=token)
                if role == "driver" and token.startswith("demo-driver-"):
                    drivers[vehicle] = token  # type: ignore[index]
            await uow.commit()
    finally:
        await rt.close()
    return [(role, token) for role, _, token, _, _ in DEMO_ACCOUNTS], drivers


async def _fleet_when_started(server: uvicorn.Server, base_url: str, drivers: dict[str, str],
                              speed: float) -> None:
    """Start the vehicle simulator as its own process once the server listens; stop it with us."""
    while not server.started:
        await asyncio.sleep(0.1)
    cmd = [sys.executable, "-m", "driver_app", "--url", base_url, "--speed", str(speed)]
    cmd += [x for vid, tok in sorted(drivers.items()) for x in ("--token", f"{vid}={tok}")]
    proc = await asyncio.create_subprocess_exec(*cmd)
    log.info("simulated fleet: %d vehicles (pid %d)", len(drivers), proc.pid)
    try:
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _demand_when_started(server: uvicorn.Server, app) -> None:  # type: ignore[no-untyped-def]
    """The demo's riders: the okuma-weekday scenario booking in the background (api/simulate.py)."""
    from api.simulate import demo_demand

    while not server.started:
        await asyncio.sleep(0.1)
    try:
        await demo_demand(app.state.services)
    except asyncio.CancelledError:
        raise
    except Exception:  # the demo goes on without background bookings
        log.exception("demo demand stopped")


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, demo: bool = False,
    simulator: bool = True, workers: int = 1, real_clock: bool = False, demand: bool = True,
) -> int:
    host = host or settings.host
    port = port or settings.port
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise SystemExit("several processes need PostgreSQL (SQLite has one writer): set DATABASE_URL")
    problem = asyncio.run(check_database(settings.database_url))
    if problem is not None:  # one clear line, no traceback
        print(f"okuma: {problem}", file=sys.stderr)
        return EXIT_DATABASE
    drivers: dict[str, str] = {}
    if demo:
        creds, drivers = asyncio.run(ensure_demo_accounts(settings))
        settings = settings.model_copy(update={"demo": True, "simulate_fleet": simulator})
        print("\n大熊町オンデマンド交通 / Okuma on-demand transit (demo)")
        print(f"  http://127.0.0.1:{port}/            予約 / rider app")
        print(f"  http://127.0.0.1:{port}/kiosk       キオスク / kiosk")
        print(f"  http://127.0.0.1:{port}/operator    窓口 / operator console")
        print(f"  http://127.0.0.1:{port}/driver/     運転士 / driver tablet")
        print(f"  http://127.0.0.1:{port}/docs        API (OpenAPI)")
        print("  demo tokens / デモ用トークン:")
        for role, token in creds:
            print(f"    {role:9s} {token}")
        if drivers:
            print(f"    drivers   {', '.join(sorted(drivers.values()))}")
        if simulator:
            print("  simulated fleet on / 車両シミュレーター起動")
        print()
    if workers > 1:
        # Each process builds its app from the environment; Redis (REDIS_URL) carries live messages
        # between them and one dispatcher wins the advisory lock.
        if not settings.redis_url:
            print("warning: without REDIS_URL, tablets only hear about changes made in their own process")
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning",
                    **PROTOCOL_LIMITS)
        return 0
    start = datetime.now(UTC)
    if settings.demo and not real_clock:
        from transit.reference_data import load_okuma

        start = demo_start(start, load_okuma(settings.data_dir).rules)
        print(f"  demo clock from {start.astimezone(UTC).isoformat()} (--real-clock: the real time)")
    clock: Clock = (
        AcceleratedClock(start, settings.clock_speed)
        if settings.clock_speed != 1.0 or (settings.demo and not real_clock) else SystemClock()
    )
    from api.app import create_app

    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", **PROTOCOL_LIMITS))

    async def main() -> None:
        background: list[asyncio.Task[None]] = []
        if settings.demo and settings.simulate_fleet and drivers:
            background.append(asyncio.create_task(
                _fleet_when_started(server, f"http://127.0.0.1:{port}", drivers, settings.clock_speed)))
        if settings.demo and demand:
            background.append(asyncio.create_task(_demand_when_started(server, app)))
        try:
            await server.serve()
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    asyncio.run(main())
    return 0
