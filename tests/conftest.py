"""Shared fixtures: real SQLite and PostgreSQL databases, an injected clock, a served app."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest

from transit.clock import FakeClock

REQUIRE = os.environ.get("OKUMA_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get(
    "OKUMA_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OKUMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKYO = ZoneInfo("Asia/Tokyo")
# A Thursday morning in Okuma: every vehicle of the default fleet has a shift that day.
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO)


def unavailable(what: str, why: object) -> None:
    """Skip locally; in CI (OKUMA_REQUIRE_SERVICES=1) a test that would skip fails instead."""
    msg = f"{what} unavailable: {why}"
    if REQUIRE:
        pytest.fail(msg + " (required in CI)")
    pytest.skip(msg)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_pg_database() -> str:
    import asyncpg

    name = f"okuma_t_{secrets.token_hex(6)}"
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=5)
    except Exception as exc:  # noqa: BLE001
        unavailable("PostgreSQL", exc)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/okuma.db"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@dataclass
class Served:
    """An app with its runtime started, an HTTP client on it and demo tokens by role."""

    app: object
    client: httpx.AsyncClient
    tokens: dict[str, str]
    clock: FakeClock
    runtime: object

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def start_served(database_url: str, clock: FakeClock, reference=None,  # type: ignore[no-untyped-def]
                       settings_update: dict | None = None) -> tuple[Served, object]:
    from api.app import create_app
    from transit.accounts import create_account
    from transit.db import migrate
    from transit.loading import load_reference
    from transit.settings import Settings

    # Tests book far faster than people do: rate limits are tested on their own (test_limits.py).
    update = {"rate_limits": {"offers:rider": "10000/minute", "offers:kiosk": "10000/minute",
                              "auth:failures": "10000/minute"}, **(settings_update or {})}
    settings = Settings(database_url=database_url, dispatcher=False, **update)
    app = create_app(settings, clock=clock, reference=reference)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    rt = app.state.runtime
    await migrate(rt.engine)
    tokens: dict[str, str] = {}
    async with rt.services.uow() as uow:
        await load_reference(uow, rt.reference, today=clock.now().astimezone(TOKYO).date(), days=3)
        first_vehicle = rt.reference.fleet[0].id
        kiosk_stop = next(s.stop_id for s in rt.reference.stops if s.kiosk)
        for role, extra in [
            ("rider", {}), ("rider2", {}), ("kiosk", {"stop_id": kiosk_stop}), ("operator", {}),
            ("driver", {"vehicle_id": first_vehicle}), ("store", {"stop_id": "okumart"}),
            ("store2", {"stop_id": "kuma_sun_terrace"}), ("admin", {}), ("maas", {}),
        ]:
            _, tok = await create_account(uow, role=role.rstrip("2"), name=f"test {role}", **extra)
            tokens[role] = tok
        await uow.commit()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return Served(app, client, tokens, clock, rt), ctx


@pytest.fixture
async def served(database_url: str, clock: FakeClock) -> AsyncIterator[Served]:
    s, ctx = await start_served(database_url, clock)
    try:
        yield s
    finally:
        await s.client.aclose()
        await ctx.__aexit__(None, None, None)


async def book(served: Served, key: str, origin: str = "okuma_town_hall", dest: str = "ono_station_west_plaza",
               **kw: object) -> dict:
    """A rider books a ride through the API (offer, then confirm with ``key`` as Idempotency-Key)."""
    h = served.auth("rider")
    r = await served.client.post("/api/v1/offers", headers=h,
                                 json={"origin": {"stop_id": origin}, "destination": {"stop_id": dest}, **kw})
    assert r.status_code == 201, r.text
    r = await served.client.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                 headers={**h, "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
