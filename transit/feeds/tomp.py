"""The TOMP booking life for MaaS apps, on the same handlers as every other channel.

TOMP 1.6 (and the 2.0 "offer, purchase, confirm or roll back" steps) maps onto ours:

- inquiry / offer  -> ``handlers.request_offer`` (the offer id is the TOMP booking and leg id);
- POST /bookings   -> the held offer, shown as PENDING until it expires (``offer_ttl_s``);
- COMMIT           -> ``handlers.confirm_offer`` (Idempotency-Key ``tomp:<id>``: a resent commit
                      returns the same booking);
- CANCEL           -> ``handlers.cancel_booking`` once committed, else the offer is released.

So a MaaS rider gets the same promise (pickup window, latest drop-off) as an app, kiosk or desk
rider, under the same locks. States, leg states and notifications: docs/feeds.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transit import errors, handlers
from transit.booking import Booking, BookingStatus
from transit.commands import Actor, CancelBooking, ConfirmOffer
from transit.handlers import Services

BOOKING_STATE = {  # our booking status -> TOMP bookingState
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.ARRIVING: "CONFIRMED",
    BookingStatus.ON_BOARD: "STARTED",
    BookingStatus.COMPLETED: "FINISHED",
    BookingStatus.CANCELLED: "CANCELLED",
    BookingStatus.NO_SHOW: "CANCELLED",
}
LEG_STATE = {  # our booking status -> TOMP legState
    BookingStatus.CONFIRMED: "NOT_STARTED",
    BookingStatus.ARRIVING: "PREPARING",
    BookingStatus.ON_BOARD: "IN_USE",
    BookingStatus.COMPLETED: "FINISHED",
    BookingStatus.CANCELLED: "CANCELLED",
    BookingStatus.NO_SHOW: "CANCELLED",
}


def idempotency_key(tomp_id: str) -> str:
    return f"tomp:{tomp_id}"


@dataclass(frozen=True)
class TompBooking:
    """One TOMP booking: the held offer and, once committed, our booking."""

    id: str  # the offer id
    state: str  # TOMP bookingState
    offer: dict[str, Any]
    booking: Booking | None

    @property
    def leg_state(self) -> str:
        if self.booking is None:
            return "CANCELLED" if self.state in ("RELEASED", "EXPIRED") else "NOT_STARTED"
        return LEG_STATE[self.booking.status]


def _not_found() -> errors.NotFound:
    return errors.NotFound("その予約は見つかりません。", "That booking does not exist.")


def _state(offer: dict[str, Any], booking: Booking | None, svc: Services, now: datetime) -> str:
    if booking is not None:
        return BOOKING_STATE[booking.status]
    if offer["expires_at"] > now:
        return "PENDING"
    # A released offer was let go before its time to live ran out.
    held_s = (offer["expires_at"] - offer["created_at"]).total_seconds()
    return "RELEASED" if held_s < svc.rules.offer_ttl_s else "EXPIRED"


async def get(tomp_id: str, actor: Actor, svc: Services) -> TompBooking:
    """The booking as the MaaS app sees it (only its own)."""
    async with svc.uow(readonly=True) as uow:
        offer = await uow.offers.get(tomp_id)
        if offer is None or offer["account_id"] != actor.account_id:
            raise _not_found()
        booking = await uow.bookings.get(offer["booking_id"]) if offer["booking_id"] else None
    return TompBooking(tomp_id, _state(offer, booking, svc, svc.clock.now()), offer, booking)


async def create_pending(tomp_id: str, actor: Actor, svc: Services) -> TompBooking:
    """POST /bookings: the offer becomes a PENDING booking (nothing is promised until COMMIT)."""
    tb = await get(tomp_id, actor, svc)
    if tb.state == "EXPIRED":
        raise errors.OfferExpired()
    if tb.state == "RELEASED":
        raise errors.OfferNoLongerAvailable("この提案は取り消されています。", "This offer was released.")
    return tb


async def commit(tomp_id: str, actor: Actor, svc: Services) -> TompBooking:
    """COMMIT: confirm the offer on the locked plans, exactly as the app does (same promise)."""
    tb = await get(tomp_id, actor, svc)
    if tb.booking is None and tb.state == "RELEASED":
        raise errors.OfferNoLongerAvailable("この提案は取り消されています。", "This offer was released.")
    if tb.booking is not None and tb.booking.status is BookingStatus.CANCELLED:
        raise errors.InvalidTransition("取り消した予約は確定できません。", "A cancelled booking cannot be committed.")
    await handlers.confirm_offer(ConfirmOffer(tomp_id, idempotency_key(tomp_id)), actor, svc)
    return await get(tomp_id, actor, svc)


async def cancel(tomp_id: str, actor: Actor, svc: Services, reason: str = "maas") -> TompBooking:
    """CANCEL: a committed booking is cancelled by the one cancel handler; a pending one released."""
    tb = await get(tomp_id, actor, svc)
    if tb.booking is not None:
        await handlers.cancel_booking(CancelBooking(tb.booking.id, reason), actor, svc)
    elif tb.state == "PENDING":
        async with svc.uow() as uow:
            await uow.offers.release(tomp_id, svc.clock.now())
            await uow.commit()
    return await get(tomp_id, actor, svc)


@dataclass(frozen=True)
class Progress:
    """Where the vehicle is and when it should be at the pickup / drop-off (from its latest position)."""

    vehicle_lat: float | None
    vehicle_lon: float | None
    position_at: datetime | None
    pickup_eta: datetime | None
    dropoff_eta: datetime | None
    late_s: int


async def progress(tomp_id: str, actor: Actor, svc: Services, etas: Any) -> Progress:
    """GET /legs/{id}/progress; ``etas``: Operations.etas (the checker's schedule for a vehicle)."""
    tb = await get(tomp_id, actor, svc)
    b = tb.booking
    if b is None or b.vehicle_id is None or b.status not in (BookingStatus.CONFIRMED, BookingStatus.ARRIVING,
                                                               BookingStatus.ON_BOARD):
        return Progress(None, None, None, None, None, 0)
    vehicle, rows = await etas(b.vehicle_id)
    mine = {e.kind: e for e in rows if e.booking_id == b.id}
    lat, lon = vehicle.position() if vehicle is not None else (None, None)
    pick, drop = mine.get("pickup"), mine.get("dropoff")
    late = max([e.late_s for e in mine.values()] or [0])
    return Progress(lat, lon, vehicle.position_at if vehicle else None,
                    pick.eta if pick else None, drop.eta if drop else None, late)


@dataclass(frozen=True)
class Notification:
    type: str  # TOMP notificationType: ETA | USER_NO_SHOW | VEHICLE_NOT_AVAILABLE
    time: datetime
    message_ja: str
    message_en: str
    eta: datetime | None = None
    minutes: int | None = None  # ETA before boarding: minutes until the pickup (TOMP 1.6 ``minutes``)


async def notifications(tomp_id: str, actor: Actor, svc: Services, etas: Any) -> list[Notification]:
    """What the MaaS app should tell its rider now: the pickup ETA, a no-show, a cancellation by us."""
    tb = await get(tomp_id, actor, svc)
    b = tb.booking
    now = svc.clock.now()
    if b is None:
        return []
    if b.status is BookingStatus.NO_SHOW:
        return [Notification("USER_NO_SHOW", now,
                             "乗車場所でお会いできなかったため、予約は終了しました。",
                             "The rider was not at the pickup; the booking has ended.")]
    if b.status is BookingStatus.CANCELLED and b.cancel_reason not in ("maas", "rider"):
        return [Notification("VEHICLE_NOT_AVAILABLE", now,
                             "運行側の都合で予約が取り消されました。", "The operator cancelled this booking.")]
    p = await progress(tomp_id, actor, svc, etas)
    if b.status in (BookingStatus.CONFIRMED, BookingStatus.ARRIVING) and p.pickup_eta is not None:
        t = p.pickup_eta.astimezone(svc.rules.tz).strftime("%H:%M")
        late = "(遅れています)" if p.late_s else ""
        return [Notification("ETA", now, f"お迎えは{t}ごろの予定です{late}。",
                             f"Pickup expected around {t}{' (running late)' if p.late_s else ''}.",
                             p.pickup_eta, max(0, round((p.pickup_eta - now).total_seconds() / 60)))]
    if b.status is BookingStatus.ON_BOARD and p.dropoff_eta is not None:
        t = p.dropoff_eta.astimezone(svc.rules.tz).strftime("%H:%M")
        return [Notification("ETA", now, f"{t}ごろに到着の予定です。", f"Arrival expected around {t}.",
                             p.dropoff_eta)]
    return []
