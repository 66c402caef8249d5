"""Commands: imperative, plain data. Every entry point (HTTP, websocket, timers, simulator) sends these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TimeMode = Literal["now", "leave_at", "arrive_by"]


@dataclass(frozen=True)
class PlaceRef:
    stop_id: str | None = None
    lat: float | None = None
    lon: float | None = None


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
    kind: str = "ride"
    on_behalf_of: str | None = None  # a family member's account (the actor must be linked to it)


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
