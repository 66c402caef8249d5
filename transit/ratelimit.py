"""Rate limits by name and key (an account, a kiosk, a client address, a phone number, a parcel):
a moving window over the ``limits`` library.

``await limiter.hit("offers:rider", account_id)`` counts one attempt and raises ``RateLimited``
(with ``retry_after_s``) once the window is full. ``check`` only tests, ``hit`` then counts: use
``check`` before a costly step and ``hit`` after a failed one (bad tokens, wrong codes).

With Redis configured the counts live in Redis (the library's Redis storage, keys under
``key_prefix``), so every server process of the deployment shares them; without it they are kept
per process. If Redis does not answer, this process counts on its own until it does (said once in
the log, and once when Redis is back).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from transit import errors

log = logging.getLogger("okuma.limits")

DEFAULT_LIMITS = {
    "offers:rider": "20/minute",  # offers asked by one rider account
    "offers:kiosk": "30/minute",  # offers asked at one kiosk
    "auth:failures": "30/minute",  # requests with a wrong token, per client address
}
RETRY_REDIS_S = 10.0  # after a Redis failure, counts stay in this process this long before Redis is tried again


def _redis_uri(url: str) -> str:
    """The limits library's scheme for a redis:// or rediss:// URL."""
    return url if url.startswith("async+") else f"async+{url}"


class RateLimiter:
    def __init__(self, limits: Mapping[str, str] | None = None, *, redis_url: str | None = None,
                 key_prefix: str = "okuma:limits") -> None:
        self.items: dict[str, RateLimitItem] = {
            name: parse(spec) for name, spec in {**DEFAULT_LIMITS, **(limits or {})}.items()
        }
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._redis: Storage | None = None
        if redis_url:
            self._redis = RedisStorage(_redis_uri(redis_url), implementation="redispy", key_prefix=key_prefix,
                                       wrap_exceptions=True, socket_timeout=1, socket_connect_timeout=1)
            self._shared = MovingWindowRateLimiter(self._redis)
        self._down_until = 0.0
        self._down = False

    @property
    def shared(self) -> bool:
        """Counts are shared by every process (kept in Redis)."""
        return self._shared is not None

    def _window(self) -> MovingWindowRateLimiter:
        if self._shared is not None and time.monotonic() >= self._down_until:
            return self._shared
        return self._local

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_REDIS_S
        if not self._down:
            self._down = True
            log.error("Redis unreachable (%s): rate limits are counted per process until it returns",
                      type(exc).__name__)

    def _answered(self, window: MovingWindowRateLimiter) -> None:
        if window is self._shared and self._down:
            self._down = False
            log.warning("Redis reachable again: rate limits are shared by every process again")

    def _item(self, name: str) -> RateLimitItem:
        try:
            return self.items[name]
        except KeyError:
            raise ValueError(f"no rate limit named {name!r}") from None

    async def _refuse(self, window: MovingWindowRateLimiter, item: RateLimitItem, key: str) -> None:
        try:
            stats = await window.get_window_stats(item, key)
            reset = stats.reset_time
        except Exception as exc:  # noqa: BLE001 - the refusal stands; only its hint is approximate
            self._failed(exc)
            reset = time.time() + item.get_expiry()
        retry = max(1, math.ceil(reset - time.time()))
        raise errors.RateLimited(retry_after_s=retry)

    async def check(self, name: str, key: str) -> None:
        """Raise RateLimited if ``key`` has no attempt left under ``name``; counts nothing."""
        await self._ask("test", name, key)

    async def hit(self, name: str, key: str) -> None:
        """Count one attempt; raise RateLimited if the window was already full."""
        await self._ask("hit", name, key)

    async def _ask(self, how: str, name: str, key: str) -> None:
        """``how`` (test or hit) on the shared window, or on this process's own while Redis is down."""
        item = self._item(name)
        window = self._window()
        try:
            ok = await getattr(window, how)(item, key)
        except Exception as exc:  # noqa: BLE001 - Redis down: this process's own count decides
            self._failed(exc)
            window = self._local
            ok = await getattr(window, how)(item, key)
        else:
            self._answered(window)
        if not ok:
            await self._refuse(window, item, key)

    async def reset(self) -> None:
        await self._local.storage.reset()
        if self._redis is not None:
            await self._redis.reset()

    async def close(self) -> None:
        """Let the Redis connection go (nothing to do without Redis)."""
        storage = self._redis
        if storage is None:
            return
        client = getattr(storage, "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):  # closing a connection that never opened
                await close()
