"""One dispatcher leads: a leader whose database session died stops saying it leads."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.conftest import create_pg_database, drop_pg_database
from transit.db import make_engine
from transit.dispatcher import LeaderLock


@pytest.mark.postgres
async def test_a_leader_whose_session_was_terminated_no_longer_leads() -> None:
    url = await create_pg_database()
    engines = [make_engine(url) for _ in range(3)]
    try:
        first, second = LeaderLock(engines[0]), LeaderLock(engines[1])
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.acquire()  # still held: says so
        pid = (await first._conn.execute(text("SELECT pg_backend_pid()"))).scalar()  # type: ignore[union-attr]
        await first._conn.commit()  # type: ignore[union-attr]
        async with engines[2].connect() as admin:
            # pg_terminate_backend(pid, timeout) waits (here at most 10 s) until that backend has exited
            assert (await admin.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid})).scalar()
            # pg_stat_activity is a snapshot per transaction: each look is its own transaction
            for _ in range(100):
                gone = (await admin.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                            {"p": pid})).scalar() == 0
                await admin.commit()
                if gone:
                    break
                await asyncio.sleep(0.1)
            assert gone
        assert await second.acquire()  # the lock went with the session: a second process takes it
        assert not await first.acquire()  # and the first knows it does not lead any more
        await second.release()
        assert await first.acquire()  # once free, the first can lead again
        await first.release()
    finally:
        for e in engines:
            await e.dispose()
        await drop_pg_database(url)
