"""Readiness apart from liveness, and a clear one-line refusal to start on a wrong database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.server import EXIT_DATABASE
from tests.conftest import PG_ADMIN_URL, REDIS_URL, Served, create_pg_database, drop_pg_database
from transit.db import check_database, make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


async def test_readyz_ready_on_a_migrated_database(served: Served) -> None:
    r = await served.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_not_ready_when_the_schema_is_gone(served: Served) -> None:
    """Liveness stays ok; readiness says 503, in both languages, with a retry hint."""
    engine = served.runtime.engine  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM alembic_version")
    assert (await served.client.get("/healthz")).status_code == 200
    r = await served.client.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    body = r.json()
    assert body["error"] == "NotReady" and body["message_ja"] and body["message_en"]
    assert "migrate" in body["checks"]["database"]


@pytest.mark.redis
async def test_readyz_reports_an_unreachable_redis(database_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from transit.settings import Settings

    engine = make_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    for redis_url, expected, status in ((REDIS_URL, "ok", 200), ("redis://127.0.0.1:1/0", "unreachable", 503)):
        app = create_app(Settings(database_url=database_url, redis_url=redis_url, dispatcher=False,
                                  bus_channel="okuma:test:readyz"), clock=clock)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                r = await c.get("/readyz")
        assert r.status_code == status and r.json()["checks"]["redis"] == expected


@pytest.mark.postgres
async def test_serve_refuses_a_wrong_database_in_one_line(tmp_path: Path) -> None:
    """Unreachable, missing or unmigrated: exit code 3 and one line on stderr, no traceback."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    unmigrated = await create_pg_database()
    try:
        cases = {
            "postgresql+asyncpg://postgres@127.0.0.1:1/okuma": "unreachable",
            f"{base}/okuma_no_such_database_x": "does not exist",
            unmigrated: "not migrated",
            f"sqlite+aiosqlite:///{tmp_path}/empty.db": "not migrated",
        }
        for url, words in cases.items():
            assert words in (await check_database(url) or "")
        engine = make_engine(unmigrated)
        await migrate(engine)
        await engine.dispose()
        assert await check_database(unmigrated) is None
    finally:
        await drop_pg_database(unmigrated)
    # the command itself, with --demo (which used to print a raw traceback)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/e.db"}
    out = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--demo", "--port", "8105"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == EXIT_DATABASE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "okuma migrate" in lines[0] and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "api.cli", "--database-url", "postgresql://postgres@127.0.0.1:1/x",
                          "serve", "--port", "8105"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == EXIT_DATABASE and "unreachable" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
