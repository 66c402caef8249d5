"""Request and response bodies (BookingCreate / BookingPublic style families)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from transit.booking import Booking
from transit.clock import local
from transit.deliveries import STATUS_TEXT, DeliveryView


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


class DeliveryIn(Strict):
    """What a delivery carries: from which store, which order, inside which window."""

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
    kind: Literal["ride", "delivery"] = Field("ride", description="ride: people; delivery: groceries")
    origin: PlaceIn | None = Field(None, description="a ride's pickup; a delivery starts at its store")
    destination: PlaceIn
    time_mode: Literal["now", "leave_at", "arrive_by"] = "now"
    time: AwareDatetime | None = Field(None, description="ISO 8601 with offset, e.g. 2026-11-27T09:30:00+09:00")
    party_size: int = Field(1, ge=1, le=50)
    wheelchairs: int = Field(0, ge=0, le=10)
    parcels: int = Field(0, ge=0, le=50)
    passenger_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32, pattern=r"^[0-9+\-() ]*$")
    rider_card: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9\-]*$")
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
    kind: str = "ride"
    delivery_window_start: datetime | None = Field(None, description="a delivery: its window (the promise)")
    delivery_window_end: datetime | None = None
    store_id: str | None = None


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
    delivery: DeliveryPublic | None = Field(None, description="a delivery's order (with the code for the recipient)")

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
    handover_code: str | None = Field(None, description="recipient only: show it to the driver")

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
