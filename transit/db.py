"""Engines and migrations. Engines are made by the composition root, never at import time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/okuma.db"


def normalise_url(url: str) -> str:
    """Accept the usual spellings and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine whose errors never show the statement's parameters (names, phones, card numbers and
    idempotency keys would otherwise reach the error log)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process being killed (kill -9); only a power cut
            # or an OS crash may lose the last commits. Saves an fsync per commit (SQLite is the
            # one-process embedded mode; production runs PostgreSQL).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               hide_parameters=True)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic, from the first table)."""
    cfg = alembic_config()

    def _upgrade(sync_conn) -> None:  # type: ignore[no-untyped-def]
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def database_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot serve (one bilingual line), or None when it is reachable and migrated."""
    from sqlalchemy import text

    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        kind = type(getattr(exc, "orig", None) or exc).__name__ + " " + str(exc)
        if "alembic_version" in kind and ("no such table" in kind or "UndefinedTable" in kind
                                          or "does not exist" in kind):
            return "データベースが初期化されていません(okuma migrate を実行) / database not migrated: run `okuma migrate`"
        if "InvalidCatalogName" in kind or ("database" in kind and "does not exist" in kind):
            return "データベースがありません / database does not exist: create it, then run `okuma migrate`"
        return f"データベースに接続できません / database unreachable ({type(exc).__name__})"
    if set(rows) != head_revisions():
        return "データベースのスキーマが古いです(okuma migrate を実行) / database schema not up to date: run `okuma migrate`"
    return None


async def check_database(url: str, timeout_s: float = 10.0) -> str | None:
    import asyncio

    engine = make_engine(url)
    try:
        return await asyncio.wait_for(database_problem(engine), timeout_s)
    except TimeoutError:
        return f"データベースが応答しません / database did not answer within {timeout_s:g} s"
    finally:
        await engine.dispose()
