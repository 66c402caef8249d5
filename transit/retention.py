"""Personal data is kept only as long as the service rules say (personal_data_retention_days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, update

from transit import tables as t
from transit.booking import ACTIVE
from transit.handlers import Services


@dataclass(frozen=True)
class PurgeResult:
    bookings_anonymised: int
    offers_deleted: int
    offers_anonymised: int
    device_events_deleted: int


async def purge_personal_data(svc: Services) -> PurgeResult:
    """Blank names, phone and card numbers, addresses, driver notes and cancel reasons (free text) of
    finished bookings older than the retention period, and the copy their confirmed offers keep; drop
    expired offers and old tablet events (positions). Trip facts stay for statistics."""
    now = svc.clock.now()
    cutoff = now - timedelta(days=svc.rules.personal_data_retention_days)
    async with svc.uow() as uow:
        conn = uow.connection
        res = await conn.execute(
            update(t.bookings)
            .where(and_(t.bookings.c.pickup_latest < cutoff,
                        t.bookings.c.status.not_in([s.value for s in ACTIVE]),
                        or_(t.bookings.c.passenger_name != "", t.bookings.c.contact_phone.is_not(None),
                            t.bookings.c.rider_card.is_not(None), t.bookings.c.origin_address.is_not(None),
                            t.bookings.c.destination_address.is_not(None),
                            t.bookings.c.driver_note.is_not(None))))
            .values(passenger_name="", contact_phone=None, rider_card=None, origin_address=None,
                    destination_address=None, driver_note=None, cancel_reason=None)
        )
        anonymised = res.rowcount or 0
        # A delivery's shopping list and order number go with the name.
        finished = (
            t.bookings.select().with_only_columns(t.bookings.c.id)
            .where(and_(t.bookings.c.pickup_latest < cutoff, t.bookings.c.status.not_in([s.value for s in ACTIVE])))
        )
        await conn.execute(
            update(t.deliveries).where(t.deliveries.c.booking_id.in_(finished))
            .values(shopping_list=None, order_number=None)
        )
        offers = await uow.offers.purge_expired(now - timedelta(hours=1))
        offers_anonymised = await uow.offers.forget_personal_data_of_anonymised_bookings()
        res = await conn.execute(t.device_events.delete().where(t.device_events.c.received_at < cutoff))
        events = res.rowcount or 0
        await uow.commit()
    return PurgeResult(anonymised, offers, offers_anonymised, events)
