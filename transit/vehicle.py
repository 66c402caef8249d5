"""The vehicle aggregate and its plan: ordered visits with planned times and a version number."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from transit.events import Event, PlanChanged


@dataclass(frozen=True)
class Visit:
    """One planned stop of a vehicle: pick up or drop off one booking."""

    booking_id: str
    kind: str  # pickup | dropoff
    lat: float
    lon: float
    stop_id: str | None
    planned_at: datetime  # start of service (the scheduler's; may be after the arrival: a wait)
    arrival_at: datetime | None = None
    departure_at: datetime | None = None

    @property
    def wait_s(self) -> int:
        """How long the schedule holds the vehicle here before service starts."""
        if self.arrival_at is None:
            return 0
        return max(0, int((self.planned_at - self.arrival_at).total_seconds()))


@dataclass(frozen=True)
class Shift:
    id: str
    vehicle_id: str
    starts_at: datetime
    ends_at: datetime

    def covers(self, when: datetime) -> bool:
        return self.starts_at <= when <= self.ends_at


@dataclass
class Vehicle:
    id: str
    name_ja: str
    name_en: str
    seats: int
    wheelchairs: int
    parcels: int
    depot_stop_id: str
    depot_lat: float
    depot_lon: float
    plan: list[Visit] = field(default_factory=list)
    plan_version: int = 0
    lat: float | None = None
    lon: float | None = None
    position_at: datetime | None = None
    shifts: list[Shift] = field(default_factory=list)
    # what the stored plan was timed from: {"lat", "lon", "at_s", "shift_end_s", "visits": [visit ids]}
    plan_origin: dict[str, Any] | None = None
    etas: dict[str, Any] | None = None  # the latest ETAs (see transit.handlers.update_etas)
    events: list[Event] = field(default_factory=list, repr=False)

    def replace_plan(self, visits: list[Visit], reason: str, booking_ids: tuple[str, ...] = ()) -> None:
        self.plan = list(visits)
        self.plan_version += 1
        self.events.append(PlanChanged(self.id, self.plan_version, reason, booking_ids))

    def position(self) -> tuple[float, float]:
        if self.lat is not None and self.lon is not None:
            return self.lat, self.lon
        return self.depot_lat, self.depot_lon
