"""The message bus: events published after commit reach every subscriber.

``InProcessBus`` delivers within one process. ``RedisBus`` delivers locally at once and also
publishes to a Redis pub/sub channel, so subscribers in every other server process get the event
too (each process ignores its own messages coming back).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from transit.events import Event

log = logging.getLogger("okuma.bus")
Handler = Callable[[Sequence[Event]], Awaitable[None]]
CHANNEL = "okuma:events"


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: Handler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    async def publish(self, events: Sequence[Event]) -> None:
        await self._deliver(events)

    async def _deliver(self, events: Sequence[Event]) -> None:
        for h in list(self._handlers):
            try:
                await h(events)
            except Exception:  # a failing subscriber must not undo a committed booking
                log.exception("event handler failed")

    async def start(self) -> None:
        return None

    async def ping(self, timeout_s: float) -> bool:
        return True

    async def close(self) -> None:
        return None


# ------------------------------------------------------------------ events as JSON


def _event_types() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    todo = list(Event.__subclasses__())
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def event_to_dict(e: Event) -> dict[str, Any]:
    return e.as_dict()


def event_from_dict(d: dict[str, Any]) -> Event | None:
    """Rebuild an event from ``as_dict()`` output; None for a type this process does not know."""
    cls = _event_types().get(d.get("type", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _tuples(v) for k, v in d.items() if k in names})


class RedisBus(InProcessBus):
    """In-process delivery plus Redis pub/sub between server processes."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self.origin = secrets.token_hex(8)
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.url)
        return self._redis

    async def publish(self, events: Sequence[Event]) -> None:
        await self._deliver(events)
        try:
            payload = json.dumps(
                {"origin": self.origin, "events": [event_to_dict(e) for e in events]},
                ensure_ascii=False, default=str,
            )
            await self._client().publish(self.channel, payload)
        except Exception:  # the commit stands; other processes catch up on reconnect (snapshot)
            log.exception("publishing to Redis failed")

    async def ping(self, timeout_s: float) -> bool:
        try:
            return bool(await asyncio.wait_for(self._client().ping(), timeout_s))
        except Exception:  # noqa: BLE001 - unreachable, whatever the reason
            return False

    async def start(self) -> None:
        """Subscribe to the channel; returns once the subscription is active."""
        if self._listener is not None:
            return
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="redis-bus")
        try:
            await asyncio.wait_for(ready.wait(), timeout=5)
        except TimeoutError:
            log.error("Redis subscription not ready after 5 s; retrying in the background")

    async def _listen(self, ready: asyncio.Event) -> None:
        delay = 0.5
        while True:
            pubsub = None
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                ready.set()
                delay = 0.5
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    await self._on_message(msg["data"])
            except asyncio.CancelledError:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # best effort: we are shutting down
                        await pubsub.aclose()
                raise
            except Exception:  # keep listening through Redis restarts
                log.exception("Redis listener failed; reconnecting")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _on_message(self, data: bytes | str) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            log.warning("ignoring a malformed bus message")
            return
        if body.get("origin") == self.origin:
            return
        events = [e for e in (event_from_dict(d) for d in body.get("events", [])) if e is not None]
        if events:
            await self._deliver(events)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._redis is not None:
            with contextlib.suppress(Exception):  # best effort: we are closing
                await self._redis.aclose()
            self._redis = None


def make_bus(redis_url: str | None, channel: str = CHANNEL) -> InProcessBus:
    return RedisBus(redis_url, channel) if redis_url else InProcessBus()
