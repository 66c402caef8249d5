from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from api.deps import CurrentActor, IdempotencyKey, ServicesDep, require
from api.schemas import (
    BookingPublic,
    CancelIn,
    ConfirmIn,
    MePublic,
    OfferCreate,
    OfferPublic,
    PlaceOut,
)
from transit import handlers
from transit.clock import local
from transit.commands import Actor, CancelBooking, ConfirmOffer, PlaceRef, RequestRide

router = APIRouter(prefix="/api/v1", tags=["bookings"])
Booker = Annotated[Actor, require("rider", "kiosk", "operator", "admin")]

ERRORS = {
    400: {"description": "不正な入力 / bad input (message_ja, message_en)"},
    401: {"description": "認証が必要 / authentication required"},
    403: {"description": "権限なし / wrong role"},
    404: {"description": "見つからない / not found"},
    409: {"description": "乗車不可・競合 / no ride possible or conflict (with alternatives)"},
    410: {"description": "提案の期限切れ / offer expired"},
}


@router.get("/me", response_model=MePublic, operation_id="read_me")
async def me(actor: CurrentActor) -> MePublic:
    return MePublic(account_id=actor.account_id, role=actor.role, name=actor.name,
                    stop_id=actor.stop_id, vehicle_id=actor.vehicle_id)


@router.post("/offers", response_model=OfferPublic, status_code=status.HTTP_201_CREATED,
             operation_id="create_offer", responses=ERRORS)
async def create_offer(body: OfferCreate, actor: Booker, svc: ServicesDep) -> OfferPublic:
    """Ask for a ride: a firm offer (pickup window, latest arrival) held for a short time."""
    cmd = RequestRide(
        origin=PlaceRef(**body.origin.model_dump()),
        destination=PlaceRef(**body.destination.model_dump()),
        time_mode=body.time_mode,
        time=body.time,
        party_size=body.party_size,
        wheelchairs=body.wheelchairs,
        parcels=body.parcels,
        passenger_name=body.passenger_name,
        contact_phone=body.contact_phone,
        rider_card=body.rider_card,
        on_behalf_of=body.for_account_id,
    )
    o = await handlers.request_offer(cmd, actor, svc)
    return OfferPublic(
        offer_id=o.id,
        pickup_window_start=local(o.pickup_earliest),
        pickup_window_end=local(o.pickup_latest),
        latest_dropoff=local(o.dropoff_latest),
        planned_pickup=local(o.planned_pickup),
        planned_dropoff=local(o.planned_dropoff),
        expires_at=local(o.expires_at),
        origin=PlaceOut(stop_id=o.origin.stop_id, lat=o.origin.lat, lon=o.origin.lon),
        destination=PlaceOut(stop_id=o.destination.stop_id, lat=o.destination.lat, lon=o.destination.lon),
        party_size=o.party_size,
        wheelchairs=o.wheelchairs,
        parcels=o.parcels,
        fare_yen=svc.rules.fare_yen,
    )


@router.post("/bookings", response_model=BookingPublic, status_code=status.HTTP_201_CREATED,
             operation_id="confirm_offer", responses=ERRORS)
async def confirm(body: ConfirmIn, actor: Booker, svc: ServicesDep, key: IdempotencyKey = None) -> BookingPublic:
    """Confirm an offer. Send an Idempotency-Key: repeating the call returns the same booking."""
    b = await handlers.confirm_offer(ConfirmOffer(body.offer_id, key or ""), actor, svc)
    return BookingPublic.of(b)


@router.get("/bookings", response_model=list[BookingPublic], operation_id="list_bookings", responses=ERRORS)
async def list_bookings(actor: CurrentActor, svc: ServicesDep) -> list[BookingPublic]:
    """My bookings (riders); bookings of the coming days (operators)."""
    return [BookingPublic.of(b) for b in await handlers.list_bookings(actor, svc)]


@router.get("/bookings/{booking_id}", response_model=BookingPublic, operation_id="read_booking", responses=ERRORS)
async def read_booking(booking_id: str, actor: CurrentActor, svc: ServicesDep) -> BookingPublic:
    return BookingPublic.of(await handlers.get_booking(booking_id, actor, svc))


@router.post("/bookings/{booking_id}/cancel", response_model=BookingPublic, operation_id="cancel_booking",
             responses=ERRORS)
async def cancel(booking_id: str, actor: Booker, svc: ServicesDep, body: CancelIn | None = None) -> BookingPublic:
    reason = body.reason if body else actor.role
    return BookingPublic.of(await handlers.cancel_booking(CancelBooking(booking_id, reason), actor, svc))
