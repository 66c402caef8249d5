"""The unit of work: the only place that commits. Events are published after the commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from transit.booking import Booking
from transit.clock import Clock
from transit.events import Event
from transit.repositories import (
    AccountRepository,
    AuditLogRepository,
    BookingRepository,
    DeliveryRepository,
    EventLogRepository,
    NoticeRepository,
    OfferRepository,
    PlanCache,
    RiderRepository,
    ShiftCache,
    StopCache,
    StopRepository,
    TompWebhookRepository,
    VehicleRepository,
)
from transit.vehicle import Vehicle

Publisher = Callable[[Sequence[Event]], Awaitable[None]]


async def _no_publish(events: Sequence[Event]) -> None:
    return None


class UnitOfWork:
    """``async with uow:`` opens a transaction; leaving it without ``await uow.commit()`` rolls back.

    On SQLite (one writer at a time) a writing unit of work holds a process-wide lock for its
    whole transaction, so two confirms never interleave; on PostgreSQL vehicle rows are locked
    with ``SELECT ... FOR UPDATE`` instead.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        publish: Publisher = _no_publish,
        sqlite_lock: asyncio.Lock | None = None,
        readonly: bool = False,
        stop_cache: StopCache | None = None,
        plan_cache: PlanCache | None = None,
        shift_cache: ShiftCache | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self._publish = publish
        self._sqlite_lock = sqlite_lock
        self.readonly = readonly
        self._stop_cache = stop_cache
        self._plan_cache = plan_cache
        self._shift_cache = shift_cache
        self.dialect = engine.dialect.name
        self._conn: AsyncConnection | None = None
        self._holding_lock = False
        self._committed = False
        self.published: list[Event] = []
        self.events: list[Event] = []  # events of no aggregate (an account's token), see ``record``

    async def __aenter__(self) -> UnitOfWork:
        if self._sqlite_lock is not None and not self.readonly:
            await self._sqlite_lock.acquire()
            self._holding_lock = True
        try:
            self._conn = await self.engine.connect()
            await self._conn.begin()
        except BaseException:
            self._release()
            raise
        conn = self._conn
        self.stops = StopRepository(conn, self._stop_cache)
        self.vehicles = VehicleRepository(conn, self.dialect, self.stops, self._plan_cache, self._shift_cache)
        self.bookings = BookingRepository(conn)
        self.offers = OfferRepository(conn)
        self.deliveries = DeliveryRepository(conn)
        self.accounts = AccountRepository(conn)
        self.event_log = EventLogRepository(conn)
        self.audit = AuditLogRepository(conn)
        self.riders = RiderRepository(conn)
        self.notices = NoticeRepository(conn)
        self.tomp_webhooks = TompWebhookRepository(conn)
        self._committed = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._conn is not None:
                if not self._committed:
                    await self._conn.rollback()
                await self._conn.close()
        finally:
            self._conn = None
            self._release()

    def _release(self) -> None:
        if self._holding_lock and self._sqlite_lock is not None:
            self._sqlite_lock.release()
            self._holding_lock = False

    @property
    def connection(self) -> AsyncConnection:
        assert self._conn is not None, "use inside `async with uow:`"
        return self._conn

    def record(self, event: Event) -> None:
        """An event that belongs to no booking or vehicle; logged and published with the commit."""
        self.events.append(event)

    def collect_events(self) -> list[Event]:
        events: list[Event] = list(self.events)
        self.events.clear()
        # Every instance handed out, not only the latest per id: a use case may read a booking,
        # record an event on it, and a later step (a re-plan) read the same row again.
        aggregates: list[Booking | Vehicle] = [*self.bookings.tracked, *self.vehicles.tracked]
        for agg in aggregates:
            events.extend(agg.events)
            agg.events.clear()
        return events

    async def commit(self) -> None:
        assert self._conn is not None
        events = self.collect_events()
        now = self.clock.now()
        if events:  # one statement for all of them
            await self.event_log.append_many(now, [e.as_dict() for e in events])
        await self._conn.commit()
        self._committed = True
        self._release()
        if self.vehicles.saved and self._plan_cache is not None:
            self._plan_cache.drop(self.vehicles.saved)  # a reader may have cached the old row meanwhile
        if self.vehicles.shifts_changed and self._shift_cache is not None:
            self._shift_cache.forget()  # a reader may have filled it again before this commit
        self.published.extend(events)
        if events:
            await self._publish(events)


class UnitOfWorkFactory:
    """Makes units of work bound to one engine, clock and publisher (the composition root's)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, publish: Publisher = _no_publish) -> None:
        self.engine = engine
        self.clock = clock
        self.publish = publish
        self._sqlite_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        # shared by this process's units of work (what does not change per request)
        self.stop_cache = StopCache()
        self.plan_cache = PlanCache()
        self.shift_cache = ShiftCache()

    def __call__(self, *, readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, self.clock, self.publish, self._sqlite_lock, readonly, self.stop_cache,
                          self.plan_cache, self.shift_cache)
