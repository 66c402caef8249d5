"""Deliveries of groceries on the minibuses: the store's side, the handover rules, returns.

A delivery is a booking of kind ``delivery`` (offer, confirm, cancel and live status as a ride)
plus one ``deliveries`` row: the store, the order, its temperature, when it was ready and how the
handover went. Its life: ordered → ready → picked_up → delivered, or → returning → returned.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from transit import errors
from transit.booking import Booking, BookingStatus
from transit.commands import Actor
from transit.events import DeliveryChanged, HandoverLocked
from transit.handlers import Services, is_recipient_side, replan_vehicle
from transit.stores import TEMPERATURES, Store, store_at_stop
from transit.uow import UnitOfWork
from transit.vehicle import Vehicle, Visit

MAX_HANDOVER_FAILURES = 5  # then the delivery is locked and the operator alerted

STATUS_TEXT = {
    "ordered": ("お店で準備を待っています。", "Waiting for the store to prepare it."),
    "ready": ("お店で準備ができました。ミニバスが受け取りに向かいます。", "Ready at the store; the minibus will collect it."),
    "picked_up": ("ミニバスがお届け中です。", "On the minibus, on its way to you."),
    "delivered": ("お届けしました。", "Delivered."),
    "returning": ("お渡しできなかったため、お店(または指定の場所)へ戻します。",
                  "Could not be handed over; going back to the store (or the place chosen)."),
    "returned": ("お店(または指定の場所)に戻しました。", "Returned to the store (or the place chosen)."),
    "locked": ("受け渡しコードの誤りが続いたため、受け渡しを止めました。役場からご連絡します。",
               "Too many wrong handover codes: the handover is stopped. The town office will call you."),
    "cancelled": ("この注文の配達は取り消されました。", "This delivery was cancelled."),
}


class HandoverLockedError(errors.DomainError):
    kind = "conflict"
    message_ja = "受け渡しコードの誤りが続いたため、この荷物の受け渡しは止められています。役場に連絡してください。"
    message_en = "Too many wrong handover codes: this delivery is locked. Please call the town office."


class ReturnNeedsReceiver(errors.DomainError):
    kind = "conflict"
    message_ja = "この荷物は戻し先へ戻します。受け取りはお店(または窓口)の方が記録します。"
    message_en = "This delivery goes back; the store (or the desk) records that it received it."


class NotReady(errors.DomainError):
    kind = "conflict"


def handover_code(booking_id: str, secret: str) -> str:
    """The 4-digit code the recipient gives the driver (derived, so nothing extra is stored)."""
    digest = hmac.new(secret.encode(), booking_id.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 10000:04d}"


def codes_match(given: str | None, booking_id: str, secret: str) -> bool:
    return hmac.compare_digest((given or "").strip(), handover_code(booking_id, secret))


def delivery_status(b: Booking, row: dict[str, Any]) -> str:
    """The delivery's place in its life, from its booking and its store order."""
    if b.status is BookingStatus.CANCELLED:
        return "cancelled"
    if b.status is BookingStatus.COMPLETED:
        return "returned" if row.get("returned_at") else "delivered"
    if b.status is BookingStatus.ON_BOARD:
        if row.get("return_stop_id"):
            return "returning"
        return "locked" if row.get("locked_at") else "picked_up"
    return "ready" if row.get("ready_at") else "ordered"


@dataclass(frozen=True)
class DeliveryView:
    booking: Booking
    row: dict[str, Any]
    store: Store | None
    status: str
    handover_code: str | None  # the recipient's side; the desk only on its audited read-out

    @property
    def attempts_left(self) -> int:
        return max(0, MAX_HANDOVER_FAILURES - int(self.row.get("handover_failures") or 0))


def _actor_store(actor: Actor, svc: Services) -> Store:
    if actor.role != "store":
        raise errors.Forbidden()
    store = store_at_stop(svc.stores, actor.stop_id)
    if store is None:
        raise errors.Forbidden("このアカウントはお店に登録されていません。", "This account is not bound to a store.")
    return store


DESK_ROLES = ("operator", "admin")


def _recipient_side(actor: Actor, b: Booking) -> bool:
    """``is_recipient_side`` for a delivery: a kiosk only for what it booked (a delivery leaves from
    its store's stop, and a kiosk standing there is not the one it is brought to)."""
    if actor.role == "kiosk":
        return b.booked_by_id == actor.account_id
    return is_recipient_side(actor, b)


def view(b: Booking, row: dict[str, Any], actor: Actor, svc: Services, secret: str, *,
         read_out: bool = False) -> DeliveryView:
    """The delivery as shown to ``actor``. The handover code goes to the recipient's side only, and
    to the desk (operator, admin) only when it asks to read it out (``read_out``; audited by
    ``get_delivery``): every booking answer and list the desk gets comes without it."""
    shown = _recipient_side(actor, b) and (read_out or actor.role not in DESK_ROLES)
    code = handover_code(b.id, secret) if shown else None
    return DeliveryView(b, row, svc.stores.get(row["store_id"]), delivery_status(b, row), code)


async def get_delivery(booking_id: str, actor: Actor, svc: Services, secret: str, *,
                       read_out: bool = False) -> DeliveryView:
    """A delivery for its recipient (with the handover code), the operator, or its store (without).

    ``read_out`` (``GET /api/v1/deliveries/{id}``, the console's 「コードを読み上げる」): the desk
    gets the code too, and that read goes to the audit log (action ``read_handover_code``).
    Drivers never get it: the code is what proves the recipient was there.
    """
    async with svc.uow(readonly=True) as uow:
        b = await uow.bookings.get(booking_id)
        row = await uow.deliveries.get(booking_id) if b is not None else None
    if b is None or row is None:
        raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
    if actor.role == "store":
        if _actor_store(actor, svc).id != row["store_id"]:
            raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
    elif not _recipient_side(actor, b):
        raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
    if read_out and actor.role in DESK_ROLES:
        async with svc.uow() as uow:
            await uow.audit.record(svc.clock.now(), actor.account_id, actor.role, "read_handover_code", [b.id])
            await uow.commit()
    return view(b, row, actor, svc, secret, read_out=read_out)


async def store_orders(actor: Actor, svc: Services, secret: str) -> tuple[Store, list[DeliveryView]]:
    """The store's orders of today (local), the next pickup first."""
    store = _actor_store(actor, svc)
    tz = svc.rules.tz
    start = datetime.combine(svc.clock.now().astimezone(tz).date(), time(0), tz)
    async with svc.uow(readonly=True) as uow:
        rows = await uow.deliveries.for_store(store.id, start - timedelta(days=1))
    return store, [view(b, row, actor, svc, secret) for row, b in rows]


async def mark_ready(booking_id: str, parcels: int, temperature: str, actor: Actor, svc: Services,
                     secret: str) -> DeliveryView:
    """The store has packed the order: its parcel count and temperature; the minibus may collect it."""
    store = _actor_store(actor, svc)
    if temperature not in TEMPERATURES:
        raise errors.InvalidInput("温度帯は ambient / chilled / frozen のいずれかです。",
                                  "temperature must be ambient, chilled or frozen.", field="temperature")
    async with svc.uow() as uow:
        b = await uow.bookings.get(booking_id)
        row = await uow.deliveries.get(booking_id) if b is not None else None
        if b is None or row is None or row["store_id"] != store.id:
            raise errors.NotFound("その注文は見つかりません。", "That order does not exist.")
        if b.vehicle_id:  # the plan's lock first, then the booking again (as the driver events do)
            await uow.vehicles.get(b.vehicle_id, for_update=True)
            b = await uow.bookings.get(booking_id)
            assert b is not None
        if b.status not in (BookingStatus.CONFIRMED, BookingStatus.ARRIVING):
            raise NotReady("この注文はもう準備済み・受け渡し済みか、取り消されています。",
                           "This order is already handed over, finished or cancelled.")
        if not 1 <= parcels <= b.parcels:
            raise errors.InvalidInput(
                f"荷物の数は1〜{b.parcels}個です(予約した数まで)。増える場合は役場に連絡してください。",
                f"Parcel units are 1 to {b.parcels} (as booked). For more, please call the town office.",
                field="parcels",
            )
        now = svc.clock.now()
        if temperature != "ambient" and row["temperature"] == "ambient":
            # Goods turned out chilled: the limit out of the store becomes the ride limit from now on.
            b.max_ride_s = min(b.max_ride_s, svc.rules.chilled_max_out_of_store_s)
        b.parcels = parcels
        await uow.bookings.save(b, now=now)
        await uow.deliveries.update(booking_id, now, ready_at=now, parcels_ready=parcels, temperature=temperature)
        b.events.append(DeliveryChanged(b.id, store.id, "ready", b.vehicle_id))
        await uow.commit()
        row = {**row, "ready_at": now, "parcels_ready": parcels, "temperature": temperature}
    return view(b, row, actor, svc, secret)


# ------------------------------------------------------------------------------ handover and returns


async def redirect(uow: UnitOfWork, svc: Services, vehicle: Vehicle, b: Booking, lat: float, lon: float,
                   stop_id: str | None, until: datetime, reason: str) -> None:
    """Send an on-board delivery to another place (back to the store, or a pickup point).

    The way back goes after the vehicle's other visits (passengers first; a re-plan may move it
    earlier inside every promise) and the plan is re-timed by the one writer at once."""
    b.destination = type(b.destination)(lat, lon, stop_id)
    b.dropoff_earliest = None
    b.dropoff_latest = max(b.dropoff_latest, until)
    if b.picked_up_at is not None:
        b.max_ride_s = max(b.max_ride_s, int((until - b.picked_up_at).total_seconds()))
    back = [Visit(v.booking_id, v.kind, lat, lon, stop_id, v.planned_at)
            for v in vehicle.plan if v.booking_id == b.id and v.kind == "dropoff"]
    vehicle.plan = [v for v in vehicle.plan if not (v.booking_id == b.id and v.kind == "dropoff")] + back
    await uow.bookings.save(b, now=svc.clock.now())
    await replan_vehicle(uow, svc, vehicle, reason, (b.id,))


def _service_end(svc: Services) -> datetime:
    tz = svc.rules.tz
    return datetime.combine(svc.clock.now().astimezone(tz).date(), svc.rules.service_end_local, tz)


async def check_handover(uow: UnitOfWork, svc: Services, vehicle: Vehicle, b: Booking, code: str | None,
                         secret: str, now: datetime) -> tuple[str, dict[str, Any]]:
    """Judge a handover at the drop-off inside the driver event's transaction (the plan is locked).

    Returns ``("delivered", row)``, or ``("wrong", row)`` with the failure counted; after
    ``MAX_HANDOVER_FAILURES`` wrong codes the delivery is locked, sent back to its store and the
    operator is alerted. A locked delivery refuses every code, the right one too.
    """
    row = await uow.deliveries.get(b.id)
    if row is None:
        # a delivery booking always has its row; without it there is nothing to check the code for
        raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
    if row["locked_at"]:
        raise HandoverLockedError()
    if row["return_stop_id"]:
        # going back: the store (or the desk at the pickup point) records that it took it, not the driver
        raise ReturnNeedsReceiver()
    if not (code or "").strip():  # not a guess: the code was not typed (not counted)
        raise errors.InvalidInput("受け渡しコード(4けた)を入力してください。",
                                  "Please type the recipient's 4-digit handover code.", field="code")
    if codes_match(code, b.id, secret):
        return "delivered", row
    failures = await uow.deliveries.count_failure(b.id, now)
    row = {**row, "handover_failures": failures}
    if failures >= MAX_HANDOVER_FAILURES:
        store = svc.stores.get(row["store_id"])
        values: dict[str, Any] = {"locked_at": now}
        if store is not None:
            stop = await uow.stops.get(store.stop_id)
            if stop is not None:
                values["return_stop_id"] = store.stop_id
                await redirect(uow, svc, vehicle, b, stop["lat"], stop["lon"], stop["id"], _service_end(svc),
                               "handover_locked")
        await uow.deliveries.update(b.id, now, **values)
        row = {**row, **values}
        b.events.append(HandoverLocked(b.id, vehicle.id, row["store_id"], failures))
        b.events.append(DeliveryChanged(b.id, row["store_id"], "returning", vehicle.id))
    return "wrong", row


async def choose_return(booking_id: str, stop_id: str | None, actor: Actor, svc: Services,
                        secret: str) -> DeliveryView:
    """A delivery that could not be handed over goes back to its store, or to a pickup point the
    resident (or the desk for them) chooses. Only while it is on the minibus."""
    async with svc.uow() as uow:
        b = await uow.bookings.get(booking_id)
        row = await uow.deliveries.get(booking_id) if b is not None else None
        if b is None or row is None or not _recipient_side(actor, b):
            raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
        if not b.vehicle_id:
            raise NotReady("この荷物はまだミニバスに載っていません。", "This delivery is not on a minibus.")
        vehicle = await uow.vehicles.get(b.vehicle_id, for_update=True)
        b = await uow.bookings.get(booking_id)
        assert b is not None and vehicle is not None
        if b.status is not BookingStatus.ON_BOARD:
            raise NotReady("ミニバスに載っている荷物だけ、戻し先を選べます。",
                           "A return place can be chosen only while the delivery is on the minibus.")
        store = svc.stores.get(row["store_id"])
        target = stop_id or (store.stop_id if store else None)
        stop = await uow.stops.get(target) if target else None
        if stop is None:
            raise errors.UnknownStop(field="stop_id")
        now = svc.clock.now()
        await redirect(uow, svc, vehicle, b, stop["lat"], stop["lon"], stop["id"], _service_end(svc),
                       "delivery_return")
        await uow.deliveries.update(booking_id, now, return_stop_id=stop["id"])
        b.events.append(DeliveryChanged(b.id, row["store_id"], "returning", b.vehicle_id))
        await uow.commit()
        row = {**row, "return_stop_id": stop["id"]}
    return view(b, row, actor, svc, secret)


async def confirm_returned(booking_id: str, actor: Actor, svc: Services, secret: str) -> DeliveryView:
    """The store (a return to the store) or the town desk (any return) received the parcel back."""
    async with svc.uow() as uow:
        b = await uow.bookings.get(booking_id)
        row = await uow.deliveries.get(booking_id) if b is not None else None
        if b is None or row is None:
            raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
        if actor.role == "store":
            store = _actor_store(actor, svc)
            if row["store_id"] != store.id:
                raise errors.NotFound("その配達は見つかりません。", "That delivery does not exist.")
            if row["return_stop_id"] and row["return_stop_id"] != store.stop_id:
                raise errors.Forbidden("この荷物はお店以外の場所へ戻ります。", "This delivery goes back elsewhere.")
        elif actor.role not in ("operator", "admin"):
            raise errors.Forbidden()
        if not row["return_stop_id"] or b.status is not BookingStatus.ON_BOARD or not b.vehicle_id:
            raise NotReady("戻す途中の荷物ではありません。", "This delivery is not on its way back.")
        vehicle = await uow.vehicles.get(b.vehicle_id, for_update=True)
        b = await uow.bookings.get(booking_id)
        assert b is not None and vehicle is not None
        now = svc.clock.now()
        b.complete(now)
        await uow.bookings.save(b, now=now)
        if any(v.booking_id == b.id for v in vehicle.plan):  # it leaves the plan, re-timed by the one writer
            await replan_vehicle(uow, svc, vehicle, "delivery_returned", (b.id,))
        await uow.deliveries.update(booking_id, now, returned_at=now)
        b.events.append(DeliveryChanged(b.id, row["store_id"], "returned", vehicle.id))
        await uow.commit()
        row = {**row, "returned_at": now}
    return view(b, row, actor, svc, secret)
