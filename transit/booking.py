"""The booking aggregate: a promise (pickup window, latest drop-off) and its state machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from transit.errors import InvalidTransition
from transit.events import BookingCancelled, BookingStatusChanged, Event


class BookingStatus(str, Enum):
    CONFIRMED = "confirmed"  # a promise, assigned to a vehicle (may move before pickup)
    ARRIVING = "arriving"  # the vehicle is at or near the pickup
    ON_BOARD = "on_board"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


ACTIVE = frozenset({BookingStatus.CONFIRMED, BookingStatus.ARRIVING, BookingStatus.ON_BOARD})

_ALLOWED: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.CONFIRMED: frozenset(
        {BookingStatus.ARRIVING, BookingStatus.ON_BOARD, BookingStatus.CANCELLED,
         BookingStatus.NO_SHOW}
    ),
    BookingStatus.ARRIVING: frozenset(
        {BookingStatus.ON_BOARD, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.ON_BOARD: frozenset({BookingStatus.COMPLETED}),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
}


@dataclass(frozen=True)
class Place:
    """A pickup or drop-off place: a stop, or a point for riders allowed door-to-door."""

    lat: float
    lon: float
    stop_id: str | None = None
    address: str | None = None  # door-to-door: the address as told (shown to the driver)


@dataclass
class Booking:
    id: str
    account_id: str | None  # the rider who owns it (None for kiosk walk-ups)
    booked_by_id: str  # the account that made it (rider, kiosk, operator)
    channel: str  # app | kiosk | phone
    passenger_name: str
    party_size: int
    wheelchairs: int
    parcels: int
    origin: Place
    destination: Place
    pickup_earliest: datetime
    pickup_latest: datetime
    dropoff_latest: datetime
    max_ride_s: int
    pickup_service_s: int
    dropoff_service_s: int
    status: BookingStatus = BookingStatus.CONFIRMED
    vehicle_id: str | None = None
    planned_pickup: datetime | None = None
    planned_dropoff: datetime | None = None
    picked_up_at: datetime | None = None
    completed_at: datetime | None = None
    rider_card: str | None = None
    contact_phone: str | None = None
    cancel_reason: str | None = None
    kind: str = "ride"  # ride | delivery
    dropoff_earliest: datetime | None = None  # a delivery: the start of its window
    created_at: datetime | None = None
    promise_broken_at: datetime | None = None  # reality broke the promise (flagged, told)
    relaxed: dict[str, int] | None = None  # widened limits: pickup_latest_s, dropoff_latest_s, max_ride_s
    number: str = ""  # transit/numbers.py; given when the booking is first stored
    driver_note: str | None = None  # door-to-door: what the driver needs to find the rider
    events: list[Event] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def _move(self, to: BookingStatus) -> None:
        if to not in _ALLOWED[self.status]:
            raise InvalidTransition(
                f"この予約は「{self.status.value}」のため、「{to.value}」にできません。",
                f"This booking is {self.status.value} and cannot become {to.value}.",
            )
        self.status = to
        self.events.append(BookingStatusChanged(self.id, self.vehicle_id, to.value))

    def cancel(self, reason: str) -> None:
        if self.status not in (BookingStatus.CONFIRMED, BookingStatus.ARRIVING):
            raise InvalidTransition(
                "乗車後・完了後の予約は取り消せません。",
                "A booking cannot be cancelled once the rider is on board or it is finished.",
            )
        self.status = BookingStatus.CANCELLED
        self.cancel_reason = reason
        self.events.append(BookingCancelled(self.id, self.vehicle_id, reason))

    def vehicle_arriving(self) -> None:
        if self.status is BookingStatus.CONFIRMED:
            self._move(BookingStatus.ARRIVING)

    def board(self, when: datetime) -> None:
        self._move(BookingStatus.ON_BOARD)
        self.picked_up_at = when

    def no_show(self) -> None:
        self._move(BookingStatus.NO_SHOW)

    def complete(self, when: datetime) -> None:
        self._move(BookingStatus.COMPLETED)
        self.completed_at = when
