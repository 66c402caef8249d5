"""A revoked (or rotated) token stops working at once on every running server, not after the
per-process token cache expires: through the event bus with Redis, by a once-a-second look at the
event log without it. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time

from tests.conftest import REDIS_URL, Served, start_served
from tests.integration.test_multiprocess import _redis_ok
from transit.accounts import revoke, rotate_token
from transit.bootstrap import bootstrap
from transit.settings import Settings


async def _status_within(served: Served, headers: dict[str, str], want: int, seconds: float) -> float:
    """Seconds until /me answers ``want`` (polled); fails after ``seconds``."""
    t0 = time.monotonic()
    while True:
        r = await served.client.get("/api/v1/me", headers=headers)
        if r.status_code == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < seconds, f"/me still {r.status_code} after {seconds} s"
        await asyncio.sleep(0.05)


async def _from_another_process(settings: Settings, action: str, account_id: str) -> None:
    """What `okuma accounts revoke|rotate` does: its own runtime on the same database (and Redis)."""
    rt = bootstrap(settings)
    try:
        async with rt.services.uow() as uow:
            if action == "revoke":
                await revoke(uow, account_id)
            else:
                await rotate_token(uow, account_id)
            await uow.commit()
    finally:
        await rt.close()


async def test_revocation_elsewhere_bites_within_a_second(served: Served) -> None:
    h = served.auth("kiosk")
    me = (await served.client.get("/api/v1/me", headers=h)).json()  # now in the token cache
    settings: Settings = served.runtime.settings  # type: ignore[attr-defined]
    await _from_another_process(settings, "revoke", me["account_id"])
    # no clock advance, no cache clearing: the cache alone would answer 200 for 30 s more
    assert await _status_within(served, h, 401, 3.0) <= 3.0
    other = served.auth("rider")
    assert (await served.client.get("/api/v1/me", headers=other)).status_code == 200  # others unaffected


async def test_rotation_elsewhere_ends_the_old_token(served: Served) -> None:
    h = served.auth("rider")
    me = (await served.client.get("/api/v1/me", headers=h)).json()
    await _from_another_process(served.runtime.settings, "rotate", me["account_id"])  # type: ignore[attr-defined]
    await _status_within(served, h, 401, 3.0)


async def test_with_redis_revocation_is_pushed_to_every_server(database_url: str, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With Redis the other servers hear of it on the bus: well before the event-log look."""
    import api.deps

    await _redis_ok(REDIS_URL)
    monkeypatch.setattr(api.deps, "REVOCATION_POLL_S", 60.0)  # so only the bus can explain a quick 401
    upd = {"redis_url": REDIS_URL, "bus_channel": f"okuma:test:{secrets.token_hex(4)}"}
    s, ctx = await start_served(database_url, clock, settings_update=upd)
    try:
        h = s.auth("operator")
        me = (await s.client.get("/api/v1/me", headers=h)).json()
        await _from_another_process(s.runtime.settings, "revoke", me["account_id"])  # type: ignore[attr-defined]
        assert await _status_within(s, h, 401, 2.0) < 2.0
    finally:
        await s.client.aclose()
        await ctx.__aexit__(None, None, None)
