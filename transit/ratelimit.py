"""Rate limits by name and key (an account, a kiosk, a client address, a phone number, a parcel):
a moving window over the ``limits`` library, kept per process.

``await limiter.hit("offers:rider", account_id)`` counts one attempt and raises ``RateLimited``
(with ``retry_after_s``) once the window is full. ``check`` only tests, ``hit`` then counts: use
``check`` before a costly step and ``hit`` after a failed one (bad tokens, wrong codes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from transit import errors

DEFAULT_LIMITS = {
    "offers:rider": "20/minute",  # offers asked by one rider account
    "offers:kiosk": "30/minute",  # offers asked at one kiosk
    "auth:failures": "30/minute",  # requests with a wrong token, per client address
    "signin:phone": "5/10minutes",  # sign-in codes asked or tried, per phone number
    "handover:attempts": "5/10minutes",  # wrong handover codes, per parcel
}


class RateLimiter:
    def __init__(self, limits: Mapping[str, str] | None = None) -> None:
        self.items: dict[str, RateLimitItem] = {
            name: parse(spec) for name, spec in {**DEFAULT_LIMITS, **(limits or {})}.items()
        }
        self._storage = MemoryStorage()
        self._window = MovingWindowRateLimiter(self._storage)

    def _item(self, name: str) -> RateLimitItem:
        try:
            return self.items[name]
        except KeyError:
            raise ValueError(f"no rate limit named {name!r}") from None

    async def _refuse(self, item: RateLimitItem, key: str) -> None:
        stats = await self._window.get_window_stats(item, key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise errors.RateLimited(retry_after_s=retry)

    async def check(self, name: str, key: str) -> None:
        """Raise RateLimited if ``key`` has no attempt left under ``name``; counts nothing."""
        item = self._item(name)
        if not await self._window.test(item, key):
            await self._refuse(item, key)

    async def hit(self, name: str, key: str) -> None:
        """Count one attempt; raise RateLimited if the window was already full."""
        item = self._item(name)
        if not await self._window.hit(item, key):
            await self._refuse(item, key)

    async def reset(self) -> None:
        await self._storage.reset()
