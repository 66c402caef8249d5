from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from api.deps import (
    CurrentActor,
    IdempotencyKey,
    ServicesDep,
    forget_token,
    handover_secret,
    limit_offers,
    require,
)
from api.schemas import (
    BookingPublic,
    CancelIn,
    ConfirmIn,
    Day,
    DeliveryPublic,
    MePublic,
    OfferCreate,
    OfferPublic,
    PathId,
    PlaceOut,
    TokenPublic,
)
from transit import deliveries, handlers
from transit.accounts import rotate_token
from transit.booking import Booking
from transit.clock import local
from transit.commands import Actor, CancelBooking, ConfirmOffer, FindBookings, PlaceRef, RequestRide
from transit.handlers import Services

router = APIRouter(prefix="/api/v1", tags=["bookings"])
PAGE_MAX = 500
Booker = Annotated[Actor, require("rider", "kiosk", "operator", "admin")]

ERRORS = {
    400: {"description": "不正な入力 / bad input (message_ja, message_en)"},
    401: {"description": "認証が必要 / authentication required"},
    403: {"description": "権限なし / wrong role"},
    404: {"description": "見つからない / not found"},
    409: {"description": "乗車不可・競合 / no ride possible or conflict (with alternatives)"},
    410: {"description": "提案の期限切れ / offer expired"},
    429: {"description": "操作が多すぎる / too many requests (Retry-After: seconds)"},
}


@router.get("/me", response_model=MePublic, operation_id="read_me")
async def me(actor: CurrentActor) -> MePublic:
    return MePublic(account_id=actor.account_id, role=actor.role, name=actor.name,
                    stop_id=actor.stop_id, vehicle_id=actor.vehicle_id)


@router.post("/me/token", response_model=TokenPublic, operation_id="rotate_token", responses=ERRORS)
async def rotate_my_token(request: Request, actor: CurrentActor, svc: ServicesDep) -> TokenPublic:
    """A new token for this account (shown once); the one used for this call stops working at once."""
    async with svc.uow() as uow:
        token, expires = await rotate_token(uow, actor.account_id, request.app.state.runtime.settings.token_ttl_days)
        await uow.commit()
    forget_token(request)
    return TokenPublic(token=token, expires_at=local(expires) if expires else None)


@router.post("/offers", response_model=OfferPublic, status_code=status.HTTP_201_CREATED,
             operation_id="create_offer", responses=ERRORS)
async def create_offer(request: Request, body: OfferCreate, actor: Booker, svc: ServicesDep) -> OfferPublic:
    """Ask for a ride: a firm offer (pickup window, latest arrival) held for a short time."""
    await limit_offers(request, actor)
    dl = body.delivery
    cmd = RequestRide(
        origin=PlaceRef(**body.origin.model_dump()) if body.origin else PlaceRef(),
        destination=PlaceRef(**body.destination.model_dump()),
        time_mode=body.time_mode,
        time=body.time,
        party_size=body.party_size,
        wheelchairs=body.wheelchairs,
        parcels=dl.parcels if dl else body.parcels,
        passenger_name=body.passenger_name,
        contact_phone=body.contact_phone,
        rider_card=body.rider_card,
        driver_note=body.driver_note,
        kind=body.kind,
        **(dict(store_id=dl.store_id, order_number=dl.order_number, shopping_list=dl.shopping_list,
                window_start=dl.window_start, window_end=dl.window_end, temperature=dl.temperature)
           if dl else {}),
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
        origin=PlaceOut.of(o.origin),
        destination=PlaceOut.of(o.destination),
        party_size=o.party_size,
        wheelchairs=o.wheelchairs,
        parcels=o.parcels,
        fare_yen=svc.rules.fare_yen,
        passenger_name=o.passenger_name,
        kind=o.kind,
        delivery_window_start=local(o.dropoff_earliest) if o.dropoff_earliest else None,
        delivery_window_end=local(o.dropoff_latest) if o.kind == "delivery" else None,
        store_id=o.store_id,
    )


@router.post("/bookings", response_model=BookingPublic, status_code=status.HTTP_201_CREATED,
             operation_id="confirm_offer", responses=ERRORS)
async def confirm(body: ConfirmIn, actor: Booker, svc: ServicesDep, request: Request,
                  key: IdempotencyKey) -> BookingPublic:
    """Confirm an offer. Send an Idempotency-Key: repeating the call returns the same booking."""
    b = await handlers.confirm_offer(ConfirmOffer(body.offer_id, key), actor, svc)
    return await _public(b, actor, svc, request)


def _shows_delivery(b: Booking, actor: Actor) -> bool:
    """A delivery comes with its order, never to a driver (the code is what the driver must be told
    by the recipient) nor to a kiosk looking up a booking it did not make."""
    hidden = actor.role == "kiosk" and b.booked_by_id != actor.account_id
    return b.kind == "delivery" and not hidden and actor.role != "driver"


async def _public(b: Booking, actor: Actor, svc: Services, request: Request,
                  rows: dict[str, dict[str, Any]] | None = None) -> BookingPublic:
    """A booking as answered to this actor.

    A kiosk shows a booking it did not make (looked up by number) without the rider's name or the
    delivery part; a delivery comes with its order (and the code, for the recipient's side).
    ``rows``: the store orders already read with the booking (a page reads them in one query)."""
    hidden = actor.role == "kiosk" and b.booked_by_id != actor.account_id
    out = BookingPublic.of(b, name_hidden=hidden)
    if _shows_delivery(b, actor):
        row = rows.get(b.id) if rows is not None else None
        if row is not None and handlers.is_recipient_side(actor, b):
            v = deliveries.view(b, row, actor, svc, handover_secret(request))
        else:
            v = await deliveries.get_delivery(b.id, actor, svc, handover_secret(request))
        out.delivery = DeliveryPublic.of(v)
    return out


@router.get("/bookings", response_model=list[BookingPublic], operation_id="list_bookings", responses=ERRORS)
async def list_bookings(
    actor: CurrentActor, svc: ServicesDep, response: Response, request: Request,
    day: Annotated[Day | None, Query(description="operators: a service day (Asia/Tokyo), YYYY-MM-DD")] = None,
    q: Annotated[str | None, Query(max_length=100, description="operators: booking number, part of a name, or phone")] = None,
    status: Annotated[str | None, Query(max_length=16, description="operators: one booking status")] = None,
    vehicle_id: Annotated[str | None, Query(max_length=64, description="operators: one vehicle")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="bookings to skip")] = 0,
) -> list[BookingPublic]:
    """My bookings (riders, latest first); a page of the search, in pickup order, for operators.

    ``X-Total-Count`` says how many match in all; when more follow, ``Link: <...>; rel="next"`` and
    ``X-Next-Offset`` say where the next page starts (the list never stops silently). Without ``day``,
    operators get yesterday to a week ahead."""
    query = FindBookings(day=day, text=q, status=status, vehicle_id=vehicle_id, limit=limit, offset=offset)
    rows: dict[str, dict[str, Any]] = {}
    found, total = await handlers.list_bookings(actor, svc, query, audit="list_bookings", deliveries=rows)
    response.headers["X-Total-Count"] = str(total)
    if offset + len(found) < total:
        response.headers["X-Next-Offset"] = str(offset + limit)
        response.headers["Link"] = f'</api/v1/bookings?limit={limit}&offset={offset + limit}>; rel="next"'
    return [await _public(b, actor, svc, request, rows) for b in found]


@router.get("/bookings/by-number/{number}", response_model=BookingPublic, operation_id="read_booking_by_number",
            responses=ERRORS)
async def read_booking_by_number(
    number: Annotated[str, Path(max_length=20)], actor: CurrentActor, svc: ServicesDep, request: Request,
) -> BookingPublic:
    """A booking by its number (any case; O reads as 0, I and L as 1). Kiosks: bookings made there or
    leaving from their stop."""
    rows: dict[str, dict[str, Any]] = {}
    b = await handlers.booking_by_number(number, actor, svc, audit="read_booking_by_number", deliveries=rows)
    return await _public(b, actor, svc, request, rows)


@router.get("/bookings/{booking_id}", response_model=BookingPublic, operation_id="read_booking", responses=ERRORS)
async def read_booking(booking_id: PathId, actor: CurrentActor, svc: ServicesDep, request: Request) -> BookingPublic:
    rows: dict[str, dict[str, Any]] = {}
    b = await handlers.get_booking(booking_id, actor, svc, audit="read_booking", deliveries=rows)
    return await _public(b, actor, svc, request, rows)


@router.post("/bookings/{booking_id}/cancel", response_model=BookingPublic, operation_id="cancel_booking",
             responses=ERRORS)
async def cancel(booking_id: PathId, actor: Booker, svc: ServicesDep, request: Request,
                 body: CancelIn | None = None) -> BookingPublic:
    """Cancel (body optional: {"reason": "..."}); cancelling twice answers the same booking."""
    reason = body.reason if body else actor.role
    return await _public(await handlers.cancel_booking(CancelBooking(booking_id, reason), actor, svc), actor, svc, request)
