"""The composition root: picks the concrete database, clock, bus and travel-time provider."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from routing.traveltime import StraightLineTravelTimes
from transit.bus import InProcessBus, make_bus
from transit.clock import Clock, SystemClock
from transit.db import make_engine
from transit.handlers import Services
from transit.notify import LineChannel, Notifier
from transit.operations import Operations
from transit.reference_data import ReferenceData, load_okuma
from transit.settings import Settings
from transit.uow import UnitOfWorkFactory


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    bus: InProcessBus
    reference: ReferenceData
    services: Services
    operations: Operations | None = None
    notifier: Notifier | None = None

    async def start(self) -> None:
        """Start background parts (the Redis subscription); call inside a running loop."""
        await self.bus.start()

    async def close(self) -> None:
        if self.notifier is not None:
            await self.notifier.close()
        await self.bus.close()
        await self.engine.dispose()


def bootstrap(settings: Settings, *, clock: Clock | None = None, reference: ReferenceData | None = None) -> Runtime:
    clock = clock or SystemClock()
    ref = reference or load_okuma(settings.data_dir)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings.redis_url, settings.bus_channel)
    uow = UnitOfWorkFactory(engine, clock, bus.publish)
    travel = StraightLineTravelTimes(circuity=ref.rules.circuity, speed_kmh=ref.rules.speed_kmh, min_s=30)
    services = Services(rules=ref.rules, area=ref.area, travel=travel, clock=clock, uow=uow)
    operations = Operations(services, handover_secret=settings.handover_secret)
    line = None
    if settings.line_channel_access_token and settings.line_channel_secret:
        line = LineChannel(settings.line_channel_access_token, base_url=settings.line_api_base)
    notifier = Notifier(uow, clock, line=line, show_codes=settings.environment == "development")
    return Runtime(settings, engine, bus, ref, services, operations, notifier)
