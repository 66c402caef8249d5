"""Personal data is kept only as long as the service rules say (personal_data_retention_days).

The use case only: every query is a repository's (transit/repositories.py, transit/device_log.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from transit.device_log import DeviceEventRepository
from transit.handlers import Services


@dataclass(frozen=True)
class PurgeResult:
    bookings_anonymised: int
    offers_deleted: int
    offers_anonymised: int
    device_events_deleted: int
    webhook_events_deleted: int = 0
    homes_forgotten: int = 0


async def purge_personal_data(svc: Services) -> PurgeResult:
    """Blank names, phone and card numbers, addresses, driver notes and cancel reasons (free text) of
    finished bookings older than the retention period, and the copy their confirmed offers keep; drop
    expired offers, old tablet events (positions) and old delivered TOMP webhook events, and the
    homes of riders idle for the retention period (or disabled). Trip facts
    stay for statistics."""
    now = svc.clock.now()
    cutoff = now - timedelta(days=svc.rules.personal_data_retention_days)
    async with svc.uow() as uow:
        anonymised = await uow.bookings.anonymise_finished(cutoff)
        # A delivery's shopping list and order number go with the name.
        await uow.deliveries.forget_personal_data_of(uow.bookings.finished_ids_before(cutoff))
        offers = await uow.offers.purge_expired(now - timedelta(hours=1))
        offers_anonymised = await uow.offers.forget_personal_data_of_anonymised_bookings()
        events = await DeviceEventRepository(uow.connection).purge_before(cutoff)
        webhook_events = await uow.tomp_webhooks.purge_events(cutoff)
        # A door-to-door rider's home goes when they stop using the service (or are disabled).
        homes = await uow.riders.forget_idle_homes(cutoff)
        await uow.commit()
    return PurgeResult(anonymised, offers, offers_anonymised, events, webhook_events, homes)
