"""Injected clocks: the service, the simulator and the tests all ask a Clock for the time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock the tests and the simulator move by hand, or run faster than real time."""

    def __init__(self, start: datetime, speed: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self.speed = speed

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    async def sleep(self, seconds: float) -> None:
        if self.speed > 0:
            await asyncio.sleep(seconds / self.speed)
        else:
            await asyncio.sleep(0)
        self.advance(seconds)


class AcceleratedClock:
    """Real time run ``speed`` times faster from ``start``: the demo and the what-if simulator."""

    def __init__(self, start: datetime, speed: float) -> None:
        import time

        if speed <= 0:
            raise ValueError("speed must be positive")
        self._t0 = time.monotonic()
        self._start = start.astimezone(UTC)
        self.speed = speed

    def now(self) -> datetime:
        import time

        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


def to_epoch(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return int(dt.timestamp())


def from_epoch(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def local(dt: datetime) -> datetime:
    return dt.astimezone(TOKYO)


class SimulatedClock:
    """A discrete-event clock: time jumps to the next wake-up once every participant waits on it.

    The what-if simulator (``api/simulate.py``) runs a whole service day on it in minutes of wall
    time: each participant (the demand, the dispatcher's timer, every simulated vehicle) is an
    asyncio task registered with ``join()``; ``sleep``/``sleep_until`` park the calling task.
    ``run()`` moves time forward only when every participant is parked and the ``settled``
    check holds (e.g. no plan update still on its way to a tablet), so nothing the service does
    takes simulated time: a booking, a driver event or a re-plan happens at one instant.
    Asyncio's own timers (heartbeats, timeouts) stay on real time.
    """

    def __init__(self, start: datetime) -> None:
        import heapq
        import itertools

        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._heap: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._heapq = heapq
        self._participants: set[asyncio.Task[object]] = set()
        self._parked: dict[asyncio.Task[object], asyncio.Future[None]] = {}
        self.steps = 0  # how many times time moved

    def now(self) -> datetime:
        return self._now

    def join(self, task: asyncio.Task[object] | None = None) -> None:
        """Register ``task`` (default: the current one): time waits for it to park."""
        t = task or asyncio.current_task()
        assert t is not None
        self._participants.add(t)

    def leave(self, task: asyncio.Task[object] | None = None) -> None:
        self._participants.discard(task or asyncio.current_task())  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime, interrupt: asyncio.Future[object] | None = None) -> bool:
        """Park until the clock reaches ``when``; True if ``interrupt`` completed first."""
        if when <= self._now:
            await asyncio.sleep(0)
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._heapq.heappush(self._heap, (when, next(self._seq), fut))
        task = asyncio.current_task()
        assert task is not None
        self._parked[task] = fut
        try:
            if interrupt is None:
                await fut
                return False
            waiting: set[asyncio.Future[Any]] = {fut, interrupt}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return fut not in done
        finally:
            self._parked.pop(task, None)
            if not fut.done():
                fut.cancel()  # left in the heap; skipped when reached

    def quiet(self) -> bool:
        """Every live participant is parked on this clock."""
        self._participants = {t for t in self._participants if not t.done()}
        return all(t in self._parked for t in self._participants)

    def next_wakeup(self) -> datetime | None:
        while self._heap and self._heap[0][2].done():
            self._heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def run(self, until: datetime, settled: Callable[[], bool] = lambda: True,
                  after_step: Callable[[], Awaitable[None]] | None = None) -> None:
        """Move time from wake-up to wake-up until ``until`` (or until nobody waits any more)."""
        import time as _time

        while True:
            # Let everything that is ready run, then wait (real time) until all is quiet.
            idle_since = _time.monotonic()
            while True:
                for _ in range(4):
                    await asyncio.sleep(0)
                if self.quiet() and settled():
                    break
                await asyncio.sleep(0.0005 if _time.monotonic() - idle_since < 0.05 else 0.005)
            if after_step is not None:
                await after_step()
                if not (self.quiet() and settled()):
                    continue
            nxt = self.next_wakeup()
            if nxt is None or nxt > until:
                if until > self._now:
                    self._now = until
                return
            self._now = max(self._now, nxt)
            self.steps += 1
            while self._heap and self._heap[0][0] <= self._now:
                _, _, fut = self._heapq.heappop(self._heap)
                if not fut.done():
                    fut.set_result(None)
