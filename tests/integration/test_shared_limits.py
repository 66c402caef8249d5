"""Rate limits counted across server processes when Redis is configured (the ``limits`` library's
Redis storage), per process otherwise; a Redis outage falls back to counting per process."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import REDIS_URL
from tests.integration.test_multiprocess import _redis_ok
from transit import errors
from transit.ratelimit import RateLimiter

LIMITS = {"offers:rider": "3/minute"}


async def test_two_processes_share_one_count_on_redis() -> None:
    await _redis_ok(REDIS_URL)
    prefix = f"okuma:test:{secrets.token_hex(4)}"
    a = RateLimiter(LIMITS, redis_url=REDIS_URL, key_prefix=prefix)
    b = RateLimiter(LIMITS, redis_url=REDIS_URL, key_prefix=prefix)
    try:
        assert a.shared and b.shared
        await a.hit("offers:rider", "acc_1")
        await b.hit("offers:rider", "acc_1")
        await a.hit("offers:rider", "acc_1")
        with pytest.raises(errors.RateLimited) as refused:
            await b.hit("offers:rider", "acc_1")  # the fourth in the minute, counted by the other process
        assert 1 <= refused.value.extra["retry_after_s"] <= 60
        await b.hit("offers:rider", "acc_2")  # another account has its own count
        with pytest.raises(errors.RateLimited):
            await a.check("offers:rider", "acc_1")
    finally:
        await a.reset()
        await a.close()
        await b.close()


async def test_without_redis_each_process_counts_its_own() -> None:
    a, b = RateLimiter(LIMITS), RateLimiter(LIMITS)
    assert not a.shared
    for _ in range(3):
        await a.hit("offers:rider", "acc_1")
    with pytest.raises(errors.RateLimited):
        await a.hit("offers:rider", "acc_1")
    await b.hit("offers:rider", "acc_1")  # per process: the other one has not counted


async def test_a_redis_outage_falls_back_to_counting_per_process(caplog: pytest.LogCaptureFixture) -> None:
    dead = RateLimiter(LIMITS, redis_url="redis://127.0.0.1:1/0", key_prefix="okuma:test:dead")
    try:
        for _ in range(3):
            await dead.hit("offers:rider", "acc_1")  # no exception reaches the caller
        with pytest.raises(errors.RateLimited):
            await dead.hit("offers:rider", "acc_1")  # still limited, by this process's count
        assert sum("rate limits" in r.getMessage() for r in caplog.records) == 1  # said once
    finally:
        await dead.close()


async def test_servers_with_redis_share_the_offer_limit(database_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    """Two apps (as two server processes) on one database and one Redis: a rider's fourth offer in
    the minute is refused by the second although the first took the three."""
    from tests.conftest import start_served

    await _redis_ok(REDIS_URL)
    upd = {"redis_url": REDIS_URL, "bus_channel": f"okuma:test:{secrets.token_hex(4)}",
           "rate_limits": {"offers:rider": "3/minute"}}
    a, ctx_a = await start_served(database_url, clock, settings_update=upd)
    try:
        ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"}}
        for _ in range(3):
            assert (await a.client.post("/api/v1/offers", json=ride, headers=a.auth("rider"))).status_code == 201
        assert a.runtime.limiter.shared  # type: ignore[attr-defined]
        from transit.ratelimit import RateLimiter

        other = RateLimiter(upd["rate_limits"], redis_url=REDIS_URL, key_prefix=f"{upd['bus_channel']}:limits")
        me = (await a.client.get("/api/v1/me", headers=a.auth("rider"))).json()["account_id"]
        try:
            with pytest.raises(errors.RateLimited):
                await other.hit("offers:rider", me)
        finally:
            await other.reset()
            await other.close()
    finally:
        await a.client.aclose()
        await ctx_a.__aexit__(None, None, None)
