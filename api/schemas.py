"""Request and response bodies (BookingCreate / BookingPublic style families)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from transit.booking import Booking
from transit.clock import local


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlaceIn(Strict):
    stop_id: str | None = Field(None, max_length=64, description="停留所ID / stop id")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _one_kind(self) -> PlaceIn:
        if self.stop_id is None and (self.lat is None or self.lon is None):
            raise ValueError("give stop_id, or lat and lon")
        return self


class OfferCreate(Strict):
    origin: PlaceIn
    destination: PlaceIn
    time_mode: Literal["now", "leave_at", "arrive_by"] = "now"
    time: AwareDatetime | None = Field(None, description="ISO 8601 with offset, e.g. 2026-11-27T09:30:00+09:00")
    party_size: int = Field(1, ge=1, le=50)
    wheelchairs: int = Field(0, ge=0, le=10)
    parcels: int = Field(0, ge=0, le=50)
    passenger_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32, pattern=r"^[0-9+\-() ]*$")
    rider_card: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9\-]*$")
    for_account_id: str | None = Field(
        None, max_length=64, description="book for a linked family member (their account_id from GET /api/v1/family)")


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
    offer_id: str = Field(..., min_length=1, max_length=64)


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
    account_id: str | None = Field(None, description="the rider the booking is for")
    booked_by_id: str | None = Field(None, description="the account that made it (a guardian, for family)")

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
            account_id=b.account_id,
            booked_by_id=b.booked_by_id,
        )


class CancelIn(Strict):
    reason: str = Field("rider", max_length=200)


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
