"""The composition root: picks the concrete database, clock, bus and travel-time provider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from routing.traveltime import StraightLineTravelTimes
from transit.bus import InProcessBus, RedisBus, event_from_dict, make_bus
from transit.clock import Clock, SystemClock
from transit.db import make_engine
from transit.handlers import Services
from transit.notify import LineChannel, Notifier, TwilioSms
from transit.operations import Operations
from transit.ratelimit import RateLimiter
from transit.reference_data import DEFAULT_DATA_DIR, ReferenceData, load_okuma
from transit.settings import Settings
from transit.stores import Store, load_stores
from transit.uow import UnitOfWorkFactory


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    bus: InProcessBus
    reference: ReferenceData
    services: Services
    operations: Operations | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    notifier: Notifier | None = None

    async def start(self) -> None:
        """Start background parts (the Redis subscription); call inside a running loop."""
        await self.bus.start()

    async def close(self) -> None:
        if self.notifier is not None:
            await self.notifier.close()
        await self.bus.close()
        await self.limiter.close()
        await self.engine.dispose()


def _event_log_reader(uow: UnitOfWorkFactory):  # type: ignore[no-untyped-def]
    async def read(since):  # type: ignore[no-untyped-def]
        async with uow(readonly=True) as u:
            rows = await u.event_log.since(since)
        return [e for e in (event_from_dict(r) for r in rows) if e is not None]

    return read


def _stores(settings: Settings, ref: ReferenceData, *, given: bool) -> Mapping[str, Store]:
    """The data folder's stores, checked against the reference's stops. A reference the caller
    made that has none of those stops (a synthetic town, e.g. the simulator's ``city``) has no
    stores; one that has some of them must have all."""
    path = Path(settings.data_dir or DEFAULT_DATA_DIR) / "stores.json"
    if not path.exists():
        return {}
    stop_ids = {s.stop_id for s in ref.stops}
    if given and not {s.stop_id for s in load_stores(path).values()} & stop_ids:
        return {}
    return load_stores(path, sorted(stop_ids))


def bootstrap(settings: Settings, *, clock: Clock | None = None, reference: ReferenceData | None = None) -> Runtime:
    clock = clock or SystemClock()
    ref = reference or load_okuma(settings.data_dir)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings.redis_url, settings.bus_channel)
    uow = UnitOfWorkFactory(engine, clock, bus.publish)
    if isinstance(bus, RedisBus):
        bus.attach_log(_event_log_reader(uow), clock.now)
    travel = StraightLineTravelTimes(circuity=ref.rules.circuity, speed_kmh=ref.rules.speed_kmh, min_s=30)
    stores = _stores(settings, ref, given=reference is not None)
    services = Services(rules=ref.rules, area=ref.area, travel=travel, clock=clock, uow=uow, stores=stores)
    operations = Operations(services, handover_secret=settings.handover_secret)
    line = None
    if settings.line_channel_access_token and settings.line_channel_secret:
        line = LineChannel(settings.line_channel_access_token, base_url=settings.line_api_base)
    sms = None
    if settings.twilio_account_sid and settings.twilio_auth_token and (
            settings.twilio_from or settings.twilio_messaging_service_sid):
        sms = TwilioSms(settings.twilio_account_sid, settings.twilio_auth_token, sender=settings.twilio_from,
                        messaging_service_sid=settings.twilio_messaging_service_sid,
                        base_url=settings.twilio_api_base)
    notifier = Notifier(uow, clock, line=line, sms=sms, show_codes=settings.environment == "development")
    # with Redis, every server process of the deployment shares the counts
    limiter = RateLimiter(settings.rate_limits, redis_url=settings.redis_url, key_prefix=f"{settings.bus_channel}:limits")
    return Runtime(settings, engine, bus, ref, services, operations, limiter, notifier)
