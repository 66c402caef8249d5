"""TOMP-API (1.6 shapes) for MaaS apps: plan, book, commit or cancel, follow the leg. Role ``maas``.

The routes are thin: TOMP body -> our command -> the same handlers as the app (transit/feeds/tomp.py).
Field by field: docs/feeds.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import ServicesDep, require
from api.routers.bookings import ERRORS as BOOKING_ERRORS
from api.schemas import PathId
from transit import errors, handlers
from transit.booking import Place as BookingPlace
from transit.clock import local
from transit.commands import Actor, PlaceRef, RequestRide, TimeMode
from transit.feeds import tomp
from transit.feeds import tomp_webhooks as webhooks
from transit.handlers import Offer

TAG = "TOMP (MaaS) / MaaS連携"
router = APIRouter(prefix="/tomp", tags=[TAG])
Maas = Annotated[Actor, require("maas")]
ASSET_TYPE = {"id": "okuma_minibus", "assetClass": "SHUTTLE", "assetSubClass": "demand-responsive minibus"}
ERRORS: dict[int | str, dict[str, Any]] = {
    **{k: dict(v) for k, v in BOOKING_ERRORS.items()}, 403: {"description": "役割 maas が必要 / the maas role is required"},
}


def _maas_id(maas_id: Annotated[str | None, Header(alias="maas-id", max_length=200,
                                                  description="the calling MaaS provider's id")] = None) -> str:
    if not maas_id:
        raise errors.InvalidInput("maas-id ヘッダーが必要です。", "The maas-id header is required.")
    return maas_id


# TOMP's maas-id header (the calling MaaS provider); required, checked with a bilingual message.
MaasId = Annotated[str, Depends(_maas_id)]


class Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Coordinates(Camel):
    lng: float = Field(..., ge=-180, le=180)
    lat: float = Field(..., ge=-90, le=90)


class StopReference(Camel):
    referenceType: Literal["GTFS_STOP_ID"] = "GTFS_STOP_ID"
    stopReference: str = Field(..., max_length=64, description="stop_id of our GTFS feed")
    agencyId: str | None = None


class Place(Camel):
    name: str | None = None
    stopReference: list[StopReference] = Field(default_factory=list)
    coordinates: Coordinates | None = None


class Customer(Camel):
    firstName: str | None = Field(None, max_length=100, description="shown to the driver as the name")


class PlanningRequest(Camel):
    from_: Place = Field(..., alias="from")
    to: Place
    startTime: AwareDatetime | None = Field(None, description="leave at (ISO 8601 with offset)")
    endTime: AwareDatetime | None = Field(None, description="arrive by, when startTime is not given")
    nrOfTravelers: int = Field(1, ge=1, le=50)
    customer: Customer | None = None
    extraInfo: dict[str, Any] | None = Field(
        None, description='bilateral extension: {"wheelchairs": n, "parcels": n}')


class FarePart(Camel):
    amount: float
    currencyCode: str = "JPY"
    type: Literal["FIXED"] = "FIXED"


class Fare(Camel):
    estimated: bool = False
    description: str
    parts: list[FarePart]


class AssetType(Camel):
    id: str
    assetClass: str
    assetSubClass: str | None = None


class Leg(Camel):
    id: str
    from_: Place = Field(..., alias="from", serialization_alias="from")
    to: Place
    departureTime: datetime
    arrivalTime: datetime
    state: str
    assetType: AssetType
    pricing: Fare


class ExtraData(Camel):
    pickupWindowStart: datetime
    pickupWindowEnd: datetime
    latestArrival: datetime
    maxWaitTime: int = Field(..., description="minutes from the requested time to the end of the pickup window")


class TompBookingOut(Camel):
    id: str
    state: str
    from_: Place = Field(..., alias="from", serialization_alias="from")
    to: Place
    departureTime: datetime
    arrivalTime: datetime
    legs: list[Leg]
    pricing: Fare
    mainAssetType: AssetType
    extraData: ExtraData
    validUntil: datetime | None = Field(None, description="PENDING only: commit before this time")


class Planning(Camel):
    validUntil: datetime
    options: list[TompBookingOut]


class BookingRequest(Camel):
    id: str = Field(..., min_length=1, max_length=64, description="the option id from /planning/offers")
    callbackUrl: str | None = Field(None, max_length=500,
                                    description="ignored: events go to the account's webhook (PUT /tomp/webhook)")
    customer: Customer | None = None


class BookingOperation(Camel):
    operation: Literal["COMMIT", "CANCEL", "DENY", "EXTEND_EXPIRY_TIME"]
    origin: Literal["TO", "MP", "END_USER", "OTHER"] | None = None


class LegEvent(Camel):
    time: AwareDatetime | None = None
    event: Literal["PREPARE", "ASSIGN_ASSET", "SET_IN_USE", "PAUSE", "OPEN_TRUNK", "START_FINISHING",
                   "FINISH", "TIME_EXTEND", "TIME_POSTPONE", "CANCEL"]


class LegOut(Camel):
    id: str
    state: str
    departureTime: datetime
    arrivalTime: datetime


class LegProgress(Camel):
    time: datetime
    coordinates: Coordinates | None = None
    pickupEta: datetime | None = None
    arrivalEta: datetime | None = None
    delaySeconds: int = 0


class NotificationOut(Camel):
    type: str = Field(..., description="TOMP 1.6 notification.type: ETA | USER_NO_SHOW | VEHICLE_NOT_AVAILABLE")
    legId: str
    comment: str = Field(..., description="TOMP 1.6 notification.comment: the message in Accept-Language")
    minutes: int | None = Field(None, description="ETA before boarding: minutes until the pickup")
    notificationType: str = Field(..., description="the same as type (kept for earlier clients)")
    time: datetime
    message: str
    messageJa: str
    messageEn: str
    eta: datetime | None = None


# ------------------------------------------------------------------------------ mapping


def _ref(place: Place, which: str) -> PlaceRef:
    if place.stopReference:
        return PlaceRef(stop_id=place.stopReference[0].stopReference)
    if place.coordinates is not None:
        return PlaceRef(lat=place.coordinates.lat, lon=place.coordinates.lng)
    raise errors.InvalidInput(
        "停留所(stopReference)か座標を指定してください。", f"Give {which}.stopReference or coordinates.",
        field=which)


def _command(body: PlanningRequest) -> RequestRide:
    extra = body.extraInfo or {}
    mode: TimeMode
    when: datetime | None
    if body.startTime is not None:
        mode, when = "leave_at", body.startTime
    elif body.endTime is not None:
        mode, when = "arrive_by", body.endTime
    else:
        mode, when = "now", None

    def count(key: str) -> int:
        v = extra.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 50:
            raise errors.InvalidInput(f"extraInfo.{key} は0〜50の整数です。", f"extraInfo.{key} must be an integer 0-50.")
        return v

    return RequestRide(
        origin=_ref(body.from_, "from"), destination=_ref(body.to, "to"), time_mode=mode, time=when,
        party_size=body.nrOfTravelers, wheelchairs=count("wheelchairs"), parcels=count("parcels"),
        passenger_name=body.customer.firstName if body.customer else None,
    )


def _place(stop_id: str | None, lat: float, lon: float) -> Place:
    refs = [StopReference(stopReference=stop_id)] if stop_id else []
    return Place(stopReference=refs, coordinates=Coordinates(lng=lon, lat=lat))


def _fare(fare_yen: int) -> Fare:
    return Fare(description="運賃 / fare", parts=[FarePart(amount=fare_yen)])


def _out(tomp_id: str, state: str, leg_state: str, *, origin: Any, destination: Any, pickup: datetime,
         dropoff: datetime, window: tuple[datetime, datetime], latest: datetime, requested: datetime,
         valid_until: datetime | None, svc: Any) -> TompBookingOut:
    fare = _fare(svc.rules.fare_yen)
    frm = _place(origin.stop_id, origin.lat, origin.lon)
    to = _place(destination.stop_id, destination.lat, destination.lon)
    asset = AssetType(**ASSET_TYPE)
    leg = Leg(id=tomp_id, **{"from": frm}, to=to, departureTime=local(pickup), arrivalTime=local(dropoff),
              state=leg_state, assetType=asset, pricing=fare)
    return TompBookingOut(
        id=tomp_id, state=state, **{"from": frm}, to=to, departureTime=local(pickup), arrivalTime=local(dropoff),
        legs=[leg], pricing=fare, mainAssetType=asset,
        extraData=ExtraData(pickupWindowStart=local(window[0]), pickupWindowEnd=local(window[1]),
                            latestArrival=local(latest),
                            maxWaitTime=max(0, round((window[1] - requested).total_seconds() / 60))),
        validUntil=local(valid_until) if valid_until else None,
    )


def _offer_out(o: Offer, svc: Any) -> TompBookingOut:
    return _out(o.id, "PENDING", "NOT_STARTED", origin=o.origin, destination=o.destination,
                pickup=o.planned_pickup, dropoff=o.planned_dropoff,
                window=(o.pickup_earliest, o.pickup_latest), latest=o.dropoff_latest,
                requested=o.pickup_earliest, valid_until=o.expires_at, svc=svc)


def _booking_out(tb: tomp.TompBooking, svc: Any) -> TompBookingOut:
    o, b = tb.offer, tb.booking
    r = o["request"]
    origin, destination = BookingPlace(*r["origin"]), BookingPlace(*r["destination"])
    pickup = (b.planned_pickup if b and b.planned_pickup else o["planned_pickup"])
    dropoff = (b.planned_dropoff if b and b.planned_dropoff else o["planned_dropoff"])
    return _out(tb.id, tb.state, tb.leg_state, origin=origin, destination=destination, pickup=pickup,
                dropoff=dropoff, window=(o["pickup_earliest"], o["pickup_latest"]), latest=o["dropoff_latest"],
                requested=o["pickup_earliest"], valid_until=o["expires_at"] if tb.state == "PENDING" else None,
                svc=svc)


def _etas(request: Request) -> Any:
    ops = request.app.state.runtime.operations
    if ops is None:  # pragma: no cover - the runtime always has operations
        raise errors.NotFound()
    return ops.etas


# ------------------------------------------------------------------------------ routes


@router.post("/planning/inquiries", response_model=Planning, response_model_by_alias=True,
             status_code=status.HTTP_201_CREATED, operation_id="tomp_planning_inquiries", responses=ERRORS)
async def inquiries(body: PlanningRequest, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> Planning:
    """Is a ride possible, and when? Options without ids (the held offer is not handed out)."""
    o = await handlers.request_offer(_command(body), actor, svc)
    out = _offer_out(o, svc)
    out.id, out.legs[0].id, out.state, out.validUntil = "", "", "NEW", None
    return Planning(validUntil=local(o.expires_at), options=[out])


@router.post("/planning/offers", response_model=Planning, response_model_by_alias=True,
             status_code=status.HTTP_201_CREATED, operation_id="tomp_planning_offers", responses=ERRORS)
async def offers(body: PlanningRequest, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> Planning:
    """A bookable offer with an id: the same offer and promise the app gets."""
    o = await handlers.request_offer(_command(body), actor, svc)
    return Planning(validUntil=local(o.expires_at), options=[_offer_out(o, svc)])


@router.post("/bookings", response_model=TompBookingOut, response_model_by_alias=True,
             status_code=status.HTTP_201_CREATED, operation_id="tomp_create_booking", responses=ERRORS)
async def create_booking(body: BookingRequest, actor: Maas, svc: ServicesDep, maas_id: MaasId,
                         response: Response) -> TompBookingOut:
    """Book an offer: PENDING until COMMIT (POST /bookings/{id}/events) or its expiry."""
    tb = await tomp.create_pending(body.id, actor, svc)
    response.headers["Expires"] = tb.offer["expires_at"].strftime("%a, %d %b %Y %H:%M:%S GMT")
    return _booking_out(tb, svc)


@router.get("/bookings/{booking_id}", response_model=TompBookingOut, response_model_by_alias=True,
            operation_id="tomp_read_booking", responses=ERRORS)
async def read_booking(booking_id: PathId, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> TompBookingOut:
    return _booking_out(await tomp.get(booking_id, actor, svc), svc)


@router.post("/bookings/{booking_id}/events", response_model=TompBookingOut, response_model_by_alias=True,
             operation_id="tomp_booking_event", responses=ERRORS)
async def booking_event(booking_id: PathId, body: BookingOperation, actor: Maas, svc: ServicesDep,
                        maas_id: MaasId) -> TompBookingOut:
    """COMMIT confirms (same promise, same locks as the app); CANCEL cancels or releases."""
    if body.operation == "COMMIT":
        tb = await tomp.commit(booking_id, actor, svc)
    elif body.operation == "CANCEL":
        tb = await tomp.cancel(booking_id, actor, svc)
    else:
        raise errors.InvalidInput(
            f"{body.operation} には対応していません(COMMIT と CANCEL のみ)。",
            f"{body.operation} is not supported (COMMIT and CANCEL only).")
    return _booking_out(tb, svc)


@router.get("/bookings/{booking_id}/notifications", response_model=list[NotificationOut],
            response_model_by_alias=True, operation_id="tomp_booking_notifications", responses=ERRORS)
async def booking_notifications(booking_id: PathId, request: Request, actor: Maas, svc: ServicesDep,
                                maas_id: MaasId,
                                accept_language: Annotated[str | None, Header(alias="Accept-Language")] = None,
                                ) -> list[NotificationOut]:
    """What to tell the rider now: ETA (pickup, then arrival), USER_NO_SHOW, VEHICLE_NOT_AVAILABLE."""
    english = (accept_language or "ja").lower().startswith("en")
    out = []
    for n in await tomp.notifications(booking_id, actor, svc, _etas(request)):
        message = n.message_en if english else n.message_ja
        out.append(NotificationOut(type=n.type, legId=booking_id, comment=message, minutes=n.minutes,
                                   notificationType=n.type, time=local(n.time), message=message,
                                   messageJa=n.message_ja, messageEn=n.message_en,
                                   eta=local(n.eta) if n.eta else None))
    return out


@router.get("/legs/{leg_id}", response_model=LegOut, operation_id="tomp_read_leg", responses=ERRORS)
async def read_leg(leg_id: PathId, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> LegOut:
    b = _booking_out(await tomp.get(leg_id, actor, svc), svc)
    return LegOut(id=leg_id, state=b.legs[0].state, departureTime=b.departureTime, arrivalTime=b.arrivalTime)


@router.post("/legs/{leg_id}/events", response_model=LegOut, operation_id="tomp_leg_event", responses=ERRORS)
async def leg_event(leg_id: PathId, body: LegEvent, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> LegOut:
    """CANCEL cancels the ride. The driver reports boarding and arrival, so other events are refused."""
    if body.event != "CANCEL":
        raise errors.InvalidInput(
            f"{body.event} は運転士が記録します。MaaS からは CANCEL のみ送れます。",
            f"{body.event} is recorded by the driver; a MaaS app may send CANCEL only.")
    await tomp.cancel(leg_id, actor, svc)
    return await read_leg(leg_id, actor, svc, maas_id)


@router.get("/legs/{leg_id}/progress", response_model=LegProgress, operation_id="tomp_leg_progress",
            responses=ERRORS)
async def leg_progress(leg_id: PathId, request: Request, actor: Maas, svc: ServicesDep, maas_id: MaasId) -> LegProgress:
    """The vehicle's last position and the ETAs at the pickup and the destination."""
    p = await tomp.progress(leg_id, actor, svc, _etas(request))
    coords = (Coordinates(lng=p.vehicle_lon, lat=p.vehicle_lat)
              if p.vehicle_lat is not None and p.vehicle_lon is not None else None)
    return LegProgress(time=local(p.position_at or svc.clock.now()), coordinates=coords,
                       pickupEta=local(p.pickup_eta) if p.pickup_eta else None,
                       arrivalEta=local(p.dropoff_eta) if p.dropoff_eta else None, delaySeconds=p.late_s)


class WebhookIn(Camel):
    callbackUrl: str = Field(..., min_length=8, max_length=500,
                             description="TOMP callbackUrl: the base URL of your TOMP endpoints "
                                         "(we POST to {callbackUrl}/legs/{id}/events, /bookings/{id}/events, "
                                         "/bookings/{id}/notifications)")
    secret: str = Field(..., min_length=16, max_length=200, pattern=r"^[\x21-\x7e]+$",
                        description="shared secret: each body is signed with HMAC-SHA256, header X-Okuma-Signature")


class WebhookOut(Camel):
    callbackUrl: str
    maasId: str = Field(..., description="sent back as the addressed-to header")
    language: str = Field(..., description="ja | en (from Accept-Language): the language of comment texts")
    createdAt: datetime
    updatedAt: datetime


def _webhook_out(row: dict[str, Any]) -> WebhookOut:
    return WebhookOut(callbackUrl=row["callback_url"], maasId=row["maas_id"], language=row["language"],
                      createdAt=local(row["created_at"]), updatedAt=local(row["updated_at"]))


@router.put("/webhook", response_model=WebhookOut, operation_id="tomp_put_webhook", responses=ERRORS)
async def put_webhook(body: WebhookIn, request: Request, actor: Maas, svc: ServicesDep, maas_id: MaasId,
                      accept_language: Annotated[str | None, Header(alias="Accept-Language")] = None,
                      ) -> WebhookOut:
    """Register (or replace) where this MaaS account is told of its bookings' events (extension:
    TOMP 1.6 has a per-booking callbackUrl; here it is one per account). See docs/feeds.md."""
    dev = request.app.state.runtime.settings.environment == "development"
    url = webhooks.check_callback_url(body.callbackUrl, development=dev)
    lang = "en" if (accept_language or "ja").lower().startswith("en") else "ja"
    row = await webhooks.register(svc.uow, svc.clock.now(), actor.account_id, callback_url=url, secret=body.secret,
                                  maas_id=maas_id, language=lang)
    return _webhook_out(row)


@router.get("/webhook", response_model=WebhookOut, operation_id="tomp_get_webhook", responses=ERRORS)
async def get_webhook(actor: Maas, svc: ServicesDep, maas_id: MaasId) -> WebhookOut:
    """The registered webhook (never the secret); 404 when none."""
    row = await webhooks.registration(svc.uow, actor.account_id)
    if row is None:
        raise errors.NotFound("Webhook は登録されていません。", "No webhook is registered.")
    return _webhook_out(row)


@router.delete("/webhook", status_code=status.HTTP_204_NO_CONTENT, operation_id="tomp_delete_webhook",
               responses=ERRORS)
async def delete_webhook(actor: Maas, svc: ServicesDep, maas_id: MaasId) -> Response:
    """Stop the webhook; events not yet delivered are dropped (refused)."""
    if not await webhooks.unregister(svc.uow, actor.account_id):
        raise errors.NotFound("Webhook は登録されていません。", "No webhook is registered.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class Station(Camel):
    stationId: str = Field(..., description="= stop_id of our GTFS feed")
    name: str
    coordinates: Coordinates
    regionId: str = Field(..., description="zone: ogawara | ono | other")
    isVirtualStation: bool = True
    extraInfo: dict[str, Any] = Field(default_factory=dict)


@router.get("/operator/stations", response_model=list[Station], operation_id="tomp_operator_stations",
            responses=ERRORS)
async def stations(request: Request, actor: Maas, maas_id: MaasId,
                   accept_language: Annotated[str | None, Header(alias="Accept-Language")] = None,
                   ) -> list[Station]:
    """The stops a ride can start or end at (the same ids as stops.txt), named in Accept-Language."""
    english = (accept_language or "ja").lower().startswith("en")
    return [Station(stationId=s.stop_id, name=s.name_en if english else s.name_ja,
                    coordinates=Coordinates(lng=s.lon, lat=s.lat), regionId=s.zone,
                    extraInfo={"nameJa": s.name_ja, "nameKana": s.name_kana, "nameEn": s.name_en,
                               "kiosk": s.kiosk, "wheelchairAccessible": s.wheelchair})
            for s in request.app.state.runtime.reference.stops]
