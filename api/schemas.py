"""Request and response bodies (BookingCreate / BookingPublic style families)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
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

from transit.booking import Booking
from transit.clock import local

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


Text = Annotated[str, AfterValidator(_printable)]


def _json_integer(value: object) -> object:
    """A JSON integer (2, or 2.0 as JSON Schema allows); true and "2" are not numbers of people."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer")
    return value


Count = Annotated[int, BeforeValidator(_json_integer)]
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

    @model_validator(mode="after")
    def _one_kind(self) -> PlaceIn:
        if self.stop_id is None and (self.lat is None or self.lon is None):
            raise ValueError("give stop_id, or lat and lon")
        return self


class OfferCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_text("passenger_name"))

    origin: PlaceIn
    destination: PlaceIn
    time_mode: Literal["now", "leave_at", "arrive_by"] = "now"
    time: AwareDatetime | None = Field(None, description="ISO 8601 with offset, e.g. 2026-11-27T09:30:00+09:00")
    party_size: Count = Field(1, ge=1, le=50)
    wheelchairs: Count = Field(0, ge=0, le=10)
    parcels: Count = Field(0, ge=0, le=50)
    passenger_name: Text | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32, pattern=r"^[0-9+\-() ]*$")
    rider_card: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9\-]*$")


class PlaceOut(BaseModel):
    stop_id: str | None
    lat: float
    lon: float


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


class ConfirmIn(Strict):
    offer_id: str = Field(..., min_length=1, max_length=64, pattern=ID_PATTERN)


class BookingPublic(BaseModel):
    id: str
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

    @classmethod
    def of(cls, b: Booking) -> BookingPublic:
        def lt(d: datetime | None) -> datetime | None:
            return local(d) if d else None

        return cls(
            id=b.id,
            status=b.status.value,
            kind=b.kind,
            channel=b.channel,
            passenger_name=b.passenger_name,
            party_size=b.party_size,
            wheelchairs=b.wheelchairs,
            parcels=b.parcels,
            origin=PlaceOut(stop_id=b.origin.stop_id, lat=b.origin.lat, lon=b.origin.lon),
            destination=PlaceOut(stop_id=b.destination.stop_id, lat=b.destination.lat, lon=b.destination.lon),
            pickup_window_start=local(b.pickup_earliest),
            pickup_window_end=local(b.pickup_latest),
            latest_dropoff=local(b.dropoff_latest),
            planned_pickup=lt(b.planned_pickup),
            planned_dropoff=lt(b.planned_dropoff),
            vehicle_id=b.vehicle_id,
            created_at=lt(b.created_at),
            cancel_reason=b.cancel_reason,
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


class TokenPublic(BaseModel):
    token: str = Field(..., description="新しいトークン(一度だけ表示) / the new token, shown once")
    expires_at: datetime | None
