"""Request and response bodies (BookingCreate / BookingPublic style families)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from transit.booking import Booking, Place
from transit.clock import local
from transit.deliveries import STATUS_TEXT, DeliveryView

# Bidirectional overrides and isolates reorder what a tablet or console shows (U+202A-U+202E,
# U+2066-U+2069, U+200E/F, U+061C).
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _printable(value: str) -> str:
    """No control characters (NUL, ESC, BEL, newlines...), no bidi overrides: what people typed as a
    name or a reason is shown as is on tablets and consoles, and NUL cannot be stored by PostgreSQL."""
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI for c in value):
        raise ValueError("control characters are not allowed")
    return value


# The same rule, as the JSON Schema pattern the OpenAPI document shows for text fields.
TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069\\u200e\\u200f\\u061c]*$"


def _document_text(*names: str):  # type: ignore[no-untyped-def]
    def extra(schema: dict, _model: object) -> None:
        for name in names:
            prop = schema["properties"][name]
            target = next((s for s in prop.get("anyOf", []) if s.get("type") == "string"), prop)
            target["pattern"] = TEXT_PATTERN

    return extra


def _place_schema(schema: dict, _model: object) -> None:
    # a stop, or a point: the validator below, said in the schema
    schema["anyOf"] = [
        {"required": ["stop_id"], "properties": {"stop_id": {"type": "string"}}},
        {"required": ["lat", "lon"], "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
    ]


# Printable text: validated by _printable, and the same rule shown in the OpenAPI document as the
# pattern of every such field (clients generated from the document then send only what is taken).
Text = Annotated[str, AfterValidator(_printable), Field(json_schema_extra={"pattern": TEXT_PATTERN})]


def _json_integer(value: object) -> object:
    """A JSON integer (2, or 2.0 as JSON Schema allows); true and "2" are not numbers of people."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer")
    return value


Count = Annotated[int, BeforeValidator(_json_integer)]
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_day(value: object) -> object:
    """A calendar day as JSON Schema's format date says it (YYYY-MM-DD); not 0 or 1700000000, which
    pydantic would read as a Unix time."""
    if isinstance(value, date) or (isinstance(value, str) and _DAY.match(value)):
        return value
    raise ValueError("must be a day YYYY-MM-DD")


Day = Annotated[date, BeforeValidator(_iso_day)]
ID_PATTERN = r"^[A-Za-z0-9_\-:.]+$"
_ID = re.compile(ID_PATTERN)
# An id in a path: letters, digits and _-:. only (ids are made by the server), at most 64 characters.
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


def is_id(value: str) -> bool:
    return len(value) <= 64 and _ID.match(value) is not None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlaceIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_place_schema)

    stop_id: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN,
                                description="停留所ID / stop id")
    lat: float | None = Field(None, ge=-90, le=90, strict=True)
    lon: float | None = Field(None, ge=-180, le=180, strict=True)
    address: Text | None = Field(None, max_length=200,
                                 description="door-to-door (lat/lon): the address as told, shown to the driver")

    @model_validator(mode="after")
    def _one_kind(self) -> PlaceIn:
        if self.stop_id is None and (self.lat is None or self.lon is None):
            raise ValueError("give stop_id, or lat and lon")
        return self


def _delivery_schema(schema: dict, _model: object) -> None:
    # an order number, or a shopping list with something on it: the validator below, said in the schema
    schema["anyOf"] = [
        {"required": ["order_number"], "properties": {"order_number": {"type": "string", "minLength": 1}}},
        {"required": ["shopping_list"], "properties": {"shopping_list": {"type": "string", "pattern": "\\S"}}},
    ]


def _offer_schema(schema: dict, model: object) -> None:
    _document_text("passenger_name")(schema, model)
    # a ride has an origin and no delivery; a delivery has its delivery: the validator below, said in the schema
    schema["anyOf"] = [
        {"required": ["origin"], "properties": {"kind": {"const": "ride"}, "origin": {"type": "object"},
                                                "delivery": {"type": "null"}}},
        {"required": ["kind", "delivery"], "properties": {"kind": {"const": "delivery"},
                                                          "delivery": {"type": "object"}}},
    ]


class DeliveryIn(Strict):
    """What a delivery carries: from which store, which order, inside which window."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_delivery_schema)

    store_id: str = Field(..., max_length=64, description="okumart | kuma_sun_terrace (GET /api/v1/stores)")
    order_number: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9\-]*$",
                                     description="the store's order number, if ordered at the store")
    shopping_list: str | None = Field(None, max_length=500, description="a short shopping list sent to the store")
    window_start: AwareDatetime = Field(..., description="deliver no earlier than this (ISO 8601 with offset)")
    window_end: AwareDatetime = Field(..., description="deliver no later than this; 30 min to 4 h after the start")
    parcels: int = Field(1, ge=1, le=6, description="parcel units (one shopping bag = 1)")
    temperature: Literal["ambient", "chilled", "frozen"] = Field(
        "chilled", description="chilled or frozen goods are at most chilled_max_out_of_store_s on board")

    @model_validator(mode="after")
    def _order(self) -> DeliveryIn:
        if not self.order_number and not (self.shopping_list or "").strip():
            raise ValueError("give order_number or shopping_list")
        return self


class OfferCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_offer_schema)

    kind: Literal["ride", "delivery"] = Field("ride", description="ride: people; delivery: groceries")
    origin: PlaceIn | None = Field(None, description="a ride's pickup; a delivery starts at its store")
    destination: PlaceIn
    time_mode: Literal["now", "leave_at", "arrive_by"] = "now"
    time: AwareDatetime | None = Field(None, description="ISO 8601 with offset, e.g. 2026-11-27T09:30:00+09:00")
    party_size: Count = Field(1, ge=1, le=50)
    wheelchairs: Count = Field(0, ge=0, le=10)
    parcels: Count = Field(0, ge=0, le=50)
    passenger_name: Text | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32, pattern=r"^[0-9+\-() ]*$")
    rider_card: str | None = Field(
        None, max_length=32, pattern=r"^[A-Za-z0-9\-]*$",
        description="kiosk/operator: a registered rider's card number; the booking becomes theirs, under their name")
    driver_note: Text | None = Field(None, max_length=200, description="a note for the driver (e.g. where to wait)")
    for_account_id: str | None = Field(
        None, max_length=64, description="book for a linked family member (their account_id from GET /api/v1/family)")
    delivery: DeliveryIn | None = Field(None, description="required when kind is delivery")

    @model_validator(mode="after")
    def _kind(self) -> OfferCreate:
        if self.kind == "ride" and self.origin is None:
            raise ValueError("a ride needs an origin")
        if self.kind == "delivery" and self.delivery is None:
            raise ValueError("a delivery needs delivery (store_id, window_start, window_end, ...)")
        if self.kind == "ride" and self.delivery is not None:
            raise ValueError("delivery is only for kind delivery")
        return self


class PlaceOut(BaseModel):
    stop_id: str | None
    lat: float
    lon: float
    address: str | None = None

    @classmethod
    def of(cls, p: Place) -> PlaceOut:
        return cls(stop_id=p.stop_id, lat=p.lat, lon=p.lon, address=p.address)


class OfferPublic(BaseModel):
    offer_id: str
    pickup_window_start: datetime
    pickup_window_end: datetime
    latest_dropoff: datetime
    planned_pickup: datetime
    planned_dropoff: datetime
    expires_at: datetime
    origin: PlaceOut
    destination: PlaceOut
    party_size: int
    wheelchairs: int
    parcels: int
    fare_yen: int
    passenger_name: str | None = Field(None, description="the name the booking will carry (a card holder's name)")
    kind: str = "ride"
    delivery_window_start: datetime | None = Field(None, description="a delivery: its window (the promise)")
    delivery_window_end: datetime | None = None
    store_id: str | None = None


class ConfirmIn(Strict):
    offer_id: str = Field(..., min_length=1, max_length=64, pattern=ID_PATTERN)


class BookingPublic(BaseModel):
    id: str
    number: str = Field(..., description="予約番号: 6 characters of Crockford base32 (no I, L, O, U), unique")
    status: str
    kind: str
    channel: str
    passenger_name: str
    party_size: int
    wheelchairs: int
    parcels: int
    origin: PlaceOut
    destination: PlaceOut
    pickup_window_start: datetime
    pickup_window_end: datetime
    latest_dropoff: datetime
    planned_pickup: datetime | None
    planned_dropoff: datetime | None
    vehicle_id: str | None
    created_at: datetime | None
    cancel_reason: str | None
    driver_note: str | None = None
    delivery: DeliveryPublic | None = Field(None, description="a delivery's order (with the code for the recipient)")
    account_id: str | None = Field(None, description="the rider the booking is for")
    booked_by_id: str | None = Field(None, description="the account that made it (a guardian, for family)")

    @classmethod
    def of(cls, b: Booking, *, name_hidden: bool = False) -> BookingPublic:
        def lt(d: datetime | None) -> datetime | None:
            return local(d) if d else None

        return cls(
            id=b.id,
            number=b.number,
            status=b.status.value,
            kind=b.kind,
            channel=b.channel,
            passenger_name="" if name_hidden else b.passenger_name,
            party_size=b.party_size,
            wheelchairs=b.wheelchairs,
            parcels=b.parcels,
            origin=PlaceOut.of(b.origin),
            destination=PlaceOut.of(b.destination),
            pickup_window_start=local(b.pickup_earliest),
            pickup_window_end=local(b.pickup_latest),
            latest_dropoff=local(b.dropoff_latest),
            planned_pickup=lt(b.planned_pickup),
            planned_dropoff=lt(b.planned_dropoff),
            vehicle_id=b.vehicle_id,
            created_at=lt(b.created_at),
            cancel_reason=b.cancel_reason,
            driver_note=b.driver_note,
            account_id=b.account_id,
            booked_by_id=b.booked_by_id,
        )


class CancelIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_text("reason"))

    reason: Text = Field("rider", max_length=200)


class StopPublic(BaseModel):
    id: str
    name_ja: str
    name_kana: str
    name_en: str
    lat: float
    lon: float
    kiosk: bool
    wheelchair: bool
    zone: str


class MePublic(BaseModel):
    account_id: str
    role: str
    name: str
    stop_id: str | None
    vehicle_id: str | None


class ServicePublic(BaseModel):
    """What the pages show from the service rules."""

    timezone: str
    service_start: str = Field(..., description="HH:MM, local time")
    service_end: str
    fare_yen: int
    office_phone: str | None = Field(None, description="the town office's number; null = not set yet")


class ApproachingPublic(BaseModel):
    """A minibus due at a stop: its name and when its plan has it there."""

    vehicle_id: str
    name_ja: str
    name_en: str
    planned_at: datetime
class StorePublic(BaseModel):
    id: str
    name_ja: str
    name_kana: str
    name_en: str
    stop_id: str
    opens_local: str
    closes_local: str
    preparation_s: int


class DeliveryPublic(BaseModel):
    """A delivery's store order and life. ``handover_code`` only for the recipient's side."""

    booking_id: str
    status: Literal["ordered", "ready", "picked_up", "delivered", "returning", "returned", "locked", "cancelled"]
    message_ja: str
    message_en: str
    store_id: str
    store_name_ja: str
    store_name_en: str
    order_number: str | None
    shopping_list: str | None
    recipient_name: str
    destination: PlaceOut
    window_start: datetime | None
    window_end: datetime
    ready_from: datetime = Field(..., description="the earliest pickup at the store")
    ready_at: datetime | None
    parcels: int
    temperature: str
    vehicle_id: str | None
    planned_pickup: datetime | None = Field(None, description="when the minibus comes to the store")
    planned_dropoff: datetime | None
    return_stop_id: str | None
    handover_attempts_left: int
    handover_code: str | None = Field(None, description="the recipient only (the booking's rider or kiosk): show it to the driver; null for operators except in the desk's read-out GET /api/v1/deliveries/{id}")

    @classmethod
    def of(cls, v: DeliveryView) -> DeliveryPublic:
        b, row, st = v.booking, v.row, v.store
        ja, en = STATUS_TEXT[v.status]

        def lt(d: datetime | None) -> datetime | None:
            return local(d) if d else None

        return cls(
            booking_id=b.id, status=v.status, message_ja=ja, message_en=en,  # type: ignore[arg-type]
            store_id=row["store_id"], store_name_ja=st.name_ja if st else "", store_name_en=st.name_en if st else "",
            order_number=row["order_number"], shopping_list=row["shopping_list"],
            recipient_name=b.passenger_name,
            destination=PlaceOut(stop_id=b.destination.stop_id, lat=b.destination.lat, lon=b.destination.lon),
            window_start=lt(b.dropoff_earliest), window_end=local(b.dropoff_latest),
            ready_from=local(b.pickup_earliest), ready_at=lt(row["ready_at"]), parcels=b.parcels,
            temperature=row["temperature"], vehicle_id=b.vehicle_id, planned_pickup=lt(b.planned_pickup),
            planned_dropoff=lt(b.planned_dropoff), return_stop_id=row["return_stop_id"],
            handover_attempts_left=v.attempts_left, handover_code=v.handover_code,
        )


class ReadyIn(Strict):
    parcels: int = Field(..., ge=1, le=6, description="parcel units packed (at most as booked)")
    temperature: Literal["ambient", "chilled", "frozen"]


class ReturnIn(Strict):
    stop_id: str | None = Field(None, max_length=64, description="a pickup point; none = back to the store")


class StoreOrders(BaseModel):
    store: StorePublic
    orders: list[DeliveryPublic]


BookingPublic.model_rebuild()
class TokenPublic(BaseModel):
    token: str = Field(..., description="新しいトークン(一度だけ表示) / the new token, shown once")
    expires_at: datetime | None
