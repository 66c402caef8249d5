"""Commands: imperative, plain data. Every entry point (HTTP, websocket, timers, simulator) sends these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

TimeMode = Literal["now", "leave_at", "arrive_by"]


@dataclass(frozen=True)
class PlaceRef:
    stop_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None


@dataclass(frozen=True)
class RequestRide:
    origin: PlaceRef
    destination: PlaceRef
    time_mode: TimeMode = "now"
    time: datetime | None = None
    party_size: int = 1
    wheelchairs: int = 0
    parcels: int = 0
    passenger_name: str | None = None
    contact_phone: str | None = None
    rider_card: str | None = None
    kind: str = "ride"  # ride | delivery
    # a delivery: from this store, the order number or a short shopping list, inside this window
    store_id: str | None = None
    order_number: str | None = None
    shopping_list: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    temperature: str = "chilled"  # ambient | chilled | frozen (chilled unless the resident knows)
    driver_note: str | None = None
    on_behalf_of: str | None = None  # a family member's account (the actor must be linked to it)


@dataclass(frozen=True)
class FindBookings:
    """The operators' booking search: every filter optional, a page of the results."""

    day: date | None = None  # a service day (Asia/Tokyo); None = yesterday to a week ahead
    text: str | None = None  # a booking number, part of a name, or a phone number
    status: str | None = None
    vehicle_id: str | None = None
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class ConfirmOffer:
    offer_id: str
    idempotency_key: str


@dataclass(frozen=True)
class CancelBooking:
    booking_id: str
    reason: str = "rider"


@dataclass(frozen=True)
class Actor:
    """Who is acting: the authenticated account and what it is bound to."""

    account_id: str
    role: str  # rider | kiosk | operator | driver | store | admin
    name: str = ""
    stop_id: str | None = None
    vehicle_id: str | None = None
    door_to_door: bool = False
