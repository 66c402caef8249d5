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
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from transit.events import Event

log = logging.getLogger("okuma.bus")
Handler = Callable[[Sequence[Event]], Awaitable[None]]
Replay = Callable[[datetime], Awaitable[Sequence[Event]]]
CHANNEL = "okuma:events"
REPLAY_MARGIN_S = 5  # events committed this long before the outage was noticed are replayed too


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[tuple[Handler, tuple[type[Event], ...]]] = []

    def subscribe(self, handler: Handler, *types: type[Event]) -> None:
        """Register a handler for events of these types (subclasses included), or for every event
        when no type is given. It gets the matching events of each published batch, in order, and
        is not called for a batch with none."""
        self._handlers.append((handler, types))

    def unsubscribe(self, handler: Handler) -> None:
        self._handlers = [(h, t) for h, t in self._handlers if h != handler]

    async def publish(self, events: Sequence[Event]) -> None:
        await self._deliver(events)

    async def _deliver(self, events: Sequence[Event]) -> None:
        for h, types in list(self._handlers):
            batch = [e for e in events if isinstance(e, types)] if types else events
            if not batch:
                continue
            try:
                await h(batch)
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
    """In-process delivery plus Redis pub/sub between server processes.

    Pub/sub keeps nothing for a process that is not listening, so a Redis outage is bridged by
    the event log (every committed event is in it): when Redis answers again, this process
    replays the events logged since the outage began, and asks every other process to do the
    same (a ``replay_since`` message), so a process that did not notice the outage catches up
    too. Subscribers get such events twice at worst (tablets skip plan versions they have). The
    outage is logged once when noticed and once when it ends.
    """

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self.origin = secrets.token_hex(8)
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._replay: Replay | None = None
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.down_since: datetime | None = None
        self._down_at = 0.0
        self._recovering = False
        self.outages = 0

    def attach_log(self, replay: Replay, now: Callable[[], datetime]) -> None:
        """Where missed events are read back from (the event log) and the clock it is stamped with."""
        self._replay, self._now = replay, now

    def _went_down(self, what: str, exc: BaseException) -> None:
        if self.down_since is not None:
            return
        self.down_since = self._now()
        self._down_at = time.monotonic()
        self.outages += 1
        log.error("Redis unreachable (%s failed: %s); live messages between server processes are "
                  "bridged by the event log until it returns", what, type(exc).__name__)

    async def _came_back(self) -> None:
        # The outage ends (down_since cleared) only once the event log is replayed and the end logged:
        # until then the bus is not caught up. One recovery at a time (publish and the listener both call).
        if self.down_since is None or self._recovering:
            return
        self._recovering = True
        try:
            since = self.down_since
            replayed = await self._replay_since(since)
            with contextlib.suppress(Exception):  # the others also replay when they notice themselves
                await self._client().publish(self.channel, json.dumps(
                    {"origin": self.origin, "replay_since": since.isoformat()}))
            log.warning("Redis reachable again after %.1f s; caught up %d events from the event log",
                        time.monotonic() - self._down_at, replayed)
            self.down_since = None
        finally:
            self._recovering = False

    async def _replay_since(self, since: datetime) -> int:
        if self._replay is None:
            return 0
        try:
            events = list(await self._replay(since - timedelta(seconds=REPLAY_MARGIN_S)))
        except Exception:
            log.exception("replaying the event log after a Redis outage failed")
            return 0
        if events:
            await self._deliver(events)
        return len(events)

    async def ping(self, timeout_s: float) -> bool:
        try:
            return bool(await asyncio.wait_for(self._client().ping(), timeout_s))
        except Exception:  # noqa: BLE001 - unreachable, whatever the reason
            return False

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
        except Exception as exc:  # noqa: BLE001 - the commit stands; the others replay the event log
            self._went_down("publish", exc)
            return
        await self._came_back()

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
                await self._came_back()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    await self._on_message(msg["data"])
            except asyncio.CancelledError:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # best effort: we are shutting down
                        await pubsub.aclose()
                raise
            except Exception as exc:  # noqa: BLE001 - keep listening through Redis restarts
                self._went_down("subscription", exc)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
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
        if "replay_since" in body:  # another process saw an outage end: catch up what it may have sent
            with contextlib.suppress(ValueError, TypeError):
                await self._replay_since(datetime.fromisoformat(body["replay_since"]))
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
