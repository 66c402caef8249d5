"""Domain events: past tense, plain data. Published only after a successful commit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    def as_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RideBooked(Event):
    booking_id: str
    vehicle_id: str


@dataclass(frozen=True)
class BookingCancelled(Event):
    booking_id: str
    vehicle_id: str | None
    reason: str


@dataclass(frozen=True)
class BookingStatusChanged(Event):
    booking_id: str
    vehicle_id: str | None
    status: str


@dataclass(frozen=True)
class PlanChanged(Event):
    vehicle_id: str
    version: int
    reason: str
    booking_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PromiseAtRisk(Event):
    booking_id: str
    vehicle_id: str
    expected_s: int
    promised_latest_s: int


@dataclass(frozen=True)
class PromiseCleared(Event):
    """A promise flagged at risk is no longer at risk (the ETA is back inside it, or the booking ended)."""

    booking_id: str
    vehicle_id: str
    reason: str  # on_time | ended | moved


@dataclass(frozen=True)
class PromiseBroken(Event):
    """Reality broke a promise: the plan keeps the earliest feasible time instead (never silently)."""

    booking_id: str
    vehicle_id: str
    kind: str  # pickup | dropoff
    promised_latest_s: int
    earliest_feasible_s: int


@dataclass(frozen=True)
class DeliveryChanged(Event):
    """A delivery moved on in its life (ordered, ready, picked_up, delivered, returning, returned,
    cancelled, locked): the resident and the store are told."""

    booking_id: str
    store_id: str
    status: str
    vehicle_id: str | None = None


@dataclass(frozen=True)
class HandoverLocked(Event):
    """Too many wrong handover codes: the delivery is locked and the operator alerted."""

    booking_id: str
    vehicle_id: str | None
    store_id: str
    failures: int


@dataclass(frozen=True)
class TokenRevoked(Event):
    """An account's token stopped working (revoked, or replaced by a rotation): every server
    process drops it from its token cache."""

    account_id: str
    reason: str  # revoked | rotated
