"""Service KPIs from ride outcomes: one set of definitions for the simulator's report and the console.

Every figure is defined in docs/simulate.md; the functions here are the definitions. Inputs are
plain records (``RideOutcome``), built from the database by ``outcomes_from_db`` (the operator
console) or by the what-if simulator, which also knows what each person asked for.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from transit.booking import Booking, BookingStatus

# CO2 factors (see docs/simulate.md for the sources).
CAR_KG_PER_PERSON_KM = 0.130  # 自家用乗用車, MLIT 運輸部門の二酸化炭素排出量 (g-CO2 per person-km)
DIESEL_KG_PER_L = 2.58  # 軽油, 環境省 算定・報告・公表制度 排出係数
MINIBUS_KM_PER_L = 9.0  # a diesel 10-seat commuter van (assumption, stated in the docs)
MINIBUS_KG_PER_KM = DIESEL_KG_PER_L / MINIBUS_KM_PER_L


@dataclass(frozen=True)
class RideOutcome:
    """What happened to one booking (times aware; ``None`` when it did not happen)."""

    booking_id: str
    status: str  # the booking status at the end (completed, cancelled, no_show, confirmed, ...)
    party: int
    pickup_earliest: datetime
    pickup_latest: datetime
    dropoff_latest: datetime
    direct_s: int  # the direct drive, origin to destination
    direct_m: float = 0.0
    requested_at: datetime | None = None  # the asked departure (None: arrive-by, no wait defined)
    arrived_at: datetime | None = None  # the vehicle's arrival at the pickup
    picked_up_at: datetime | None = None
    completed_at: datetime | None = None
    vehicle_id: str | None = None
    train: dict[str, Any] | None = None  # {"connection": "catch"|"from", "time": aware datetime}

    @property
    def served(self) -> bool:
        return self.status == BookingStatus.COMPLETED.value and self.completed_at is not None

    @property
    def pickup_at(self) -> datetime | None:
        return self.arrived_at or self.picked_up_at

    @property
    def on_time(self) -> bool:
        """Served with the vehicle at the pickup by the window's end and the drop-off by the latest."""
        p = self.pickup_at
        return (self.served and p is not None and p <= self.pickup_latest + timedelta(seconds=1)
                and self.completed_at is not None and self.completed_at <= self.dropoff_latest + timedelta(seconds=1))

    @property
    def wait_s(self) -> float | None:
        if not self.served or self.requested_at is None or self.pickup_at is None:
            return None
        return max(0.0, (self.pickup_at - self.requested_at).total_seconds())

    @property
    def ride_ratio(self) -> float | None:
        if not self.served or self.picked_up_at is None or self.completed_at is None or self.direct_s <= 0:
            return None
        return (self.completed_at - self.picked_up_at).total_seconds() / self.direct_s

    @property
    def train_made(self) -> bool:
        """A train connection kept: at the station 3+ min before a train to catch, or on time from one."""
        if self.train is None or not self.served:
            return False
        if self.train["connection"] == "catch":
            assert self.completed_at is not None
            return self.completed_at <= self.train["time"] - timedelta(minutes=3)
        return self.on_time


@dataclass
class Kpis:
    requests: int = 0
    served: int = 0
    refused: int = 0
    refused_by_cause: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    no_shows: int = 0
    served_pct: float = 0.0
    mean_wait_min: float = 0.0
    p95_wait_min: float = 0.0
    on_time_pct: float = 0.0
    ride_ratio_mean: float = 0.0
    promises_broken: int = 0
    passengers: int = 0
    train_connections: int = 0
    train_connections_made: int = 0
    train_connections_made_pct: float = 0.0
    pax_per_vehicle_hour_peak: float = 0.0
    peak_hour: str = ""
    waits_min: list[float] = field(default_factory=list, repr=False)
    ride_ratios: list[float] = field(default_factory=list, repr=False)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between ranks; 0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _pct(a: int, b: int) -> float:
    return round(100.0 * a / b, 1) if b else 0.0


def summarise(rides: Iterable[RideOutcome], refusals: Iterable[str] = (),
              shifts: Sequence[tuple[datetime, datetime]] = (), tz: Any = None,
              refused_train_connections: int = 0) -> Kpis:
    """The KPIs of a set of ride outcomes plus refused requests (by cause) and the fleet's shifts.

    ``requests`` = ``served`` + ``refused``: a booking the rider cancelled or did not show up
    for is counted apart (``cancelled``, ``no_shows``); a booking still open is not counted.
    """
    rides = list(rides)
    causes = Counter(refusals)
    k = Kpis(refused_by_cause=dict(causes))
    served = [r for r in rides if r.served]
    k.cancelled = sum(r.status == BookingStatus.CANCELLED.value for r in rides)
    k.no_shows = sum(r.status == BookingStatus.NO_SHOW.value for r in rides)
    k.served = len(served)
    k.refused = sum(causes.values())
    k.requests = k.served + k.refused
    k.served_pct = _pct(k.served, k.requests)
    k.waits_min = [w / 60 for w in (r.wait_s for r in served) if w is not None]
    k.mean_wait_min = round(sum(k.waits_min) / len(k.waits_min), 2) if k.waits_min else 0.0
    k.p95_wait_min = round(percentile(k.waits_min, 95), 2)
    on_time = sum(r.on_time for r in served)
    k.on_time_pct = _pct(on_time, len(served))
    k.promises_broken = len(served) - on_time
    k.ride_ratios = [x for x in (r.ride_ratio for r in served) if x is not None]
    k.ride_ratio_mean = round(sum(k.ride_ratios) / len(k.ride_ratios), 3) if k.ride_ratios else 0.0
    k.passengers = sum(r.party for r in served)
    trains = [r for r in rides if r.train is not None and r.status not in ("cancelled", "no_show")]
    k.train_connections = len(trains) + refused_train_connections
    k.train_connections_made = sum(r.train_made for r in trains)
    k.train_connections_made_pct = _pct(k.train_connections_made, k.train_connections)
    hours = passengers_per_vehicle_hour(served, shifts, tz)
    if hours:
        busiest = max(hours, key=lambda h: (hours[h][0], -h.timestamp()))
        pax, vh = hours[busiest]
        k.pax_per_vehicle_hour_peak = round(pax / vh, 2) if vh else 0.0
        k.peak_hour = busiest.astimezone(tz).strftime("%H:%M") if tz else busiest.isoformat()
    return k


def passengers_per_vehicle_hour(served: Sequence[RideOutcome], shifts: Sequence[tuple[datetime, datetime]],
                                tz: Any = None) -> dict[datetime, tuple[int, float]]:
    """Per clock hour: (passengers boarded, vehicle-hours on shift in that hour)."""
    out: dict[datetime, tuple[int, float]] = {}
    for r in served:
        if r.picked_up_at is None:
            continue
        t = r.picked_up_at.astimezone(tz) if tz else r.picked_up_at
        h = t.replace(minute=0, second=0, microsecond=0)
        pax, _ = out.get(h, (0, 0.0))
        out[h] = (pax + r.party, 0.0)
    for h in list(out):
        end = h + timedelta(hours=1)
        vh = sum(max(0.0, (min(b, end) - max(a, h)).total_seconds()) for a, b in shifts) / 3600
        out[h] = (out[h][0], vh)
    return out


def occupancy(served: Sequence[RideOutcome], start: datetime, end: datetime,
              step_s: int = 300) -> list[tuple[datetime, int]]:
    """People on board (all vehicles) every ``step_s`` from ``start`` to ``end``."""
    out = []
    t = start
    while t <= end:
        out.append((t, sum(r.party for r in served if r.picked_up_at and r.completed_at
                           and r.picked_up_at <= t < r.completed_at)))
        t += timedelta(seconds=step_s)
    return out


def co2_kg(vkm: float, served: Sequence[RideOutcome], circuity: float) -> tuple[float, float]:
    """(minibus CO2, the same trips by private car) in kg; a car drives each ride directly."""
    car = sum(r.party * r.direct_m * circuity / 1000 for r in served) * CAR_KG_PER_PERSON_KM
    return round(vkm * MINIBUS_KG_PER_KM, 1), round(car, 1)


def outcome_of(b: Booking, direct_s: int, direct_m: float, arrived_at: datetime | None,
               requested_at: datetime | None = None, train: dict[str, Any] | None = None) -> RideOutcome:
    return RideOutcome(
        booking_id=b.id, status=b.status.value, party=b.party_size, pickup_earliest=b.pickup_earliest,
        pickup_latest=b.pickup_latest, dropoff_latest=b.dropoff_latest, direct_s=direct_s, direct_m=direct_m,
        requested_at=requested_at, arrived_at=arrived_at, picked_up_at=b.picked_up_at,
        completed_at=b.completed_at, vehicle_id=b.vehicle_id, train=train,
    )


def no_pooling_vkm(served: Sequence[RideOutcome], coords: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                   starts: Sequence[tuple[float, float, datetime]], speed_kmh: float, circuity: float,
                   dist_m: Any) -> float:
    """Vehicle-km of the same served rides with no pooling: one booking on board at a time.

    Rides are taken in pickup order; each goes to the vehicle (from ``starts``: lat, lon, shift
    start) that reaches its pickup first, drives empty there, then straight to the drop-off,
    and waits there for its next ride. Distances are ``dist_m`` x ``circuity`` as in the run.
    """
    speed = speed_kmh / 3.6
    fleet = [[t0, (lat, lon)] for lat, lon, t0 in starts]
    metres = 0.0
    for r in sorted(served, key=lambda r: r.picked_up_at or r.pickup_earliest):
        o, d = coords[r.booking_id]

        def reach(f: list[Any], o: tuple[float, float] = o) -> datetime:
            return f[0] + timedelta(seconds=dist_m(f[1], o) * circuity / speed)

        f = min(fleet, key=reach)
        empty = dist_m(f[1], o) * circuity
        loaded = dist_m(o, d) * circuity
        start = max(reach(f), r.pickup_earliest)
        f[0] = start + timedelta(seconds=loaded / speed)
        f[1] = d
        metres += empty + loaded
    return metres / 1000


async def today(svc: Any, operations: Any) -> dict[str, Any]:
    """Today's KPIs (service time zone) from the database, for the operator console.

    The console knows no refusals (they are answers, not stored) and not what each rider asked
    for, so ``requests`` counts bookings, and waits run from the pickup window's start.
    """
    from transit.planning import Locations

    now = svc.clock.now()
    tz = svc.rules.tz
    day0 = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tzinfo=tz)
    day1 = day0 + timedelta(days=1)
    async with svc.uow(readonly=True) as uow:
        bookings, _ = await uow.bookings.search(start=day0, end=day1, limit=100_000)
        vehicles = await uow.vehicles.list((day0, day1))
        arrivals: dict[str, datetime] = {}
        for v in vehicles:
            arrivals.update(await operations.arrivals(uow, v.id))
    rides = []
    for b in bookings:
        locs = Locations()
        o = locs.index(b.origin.lat, b.origin.lon)
        d = locs.index(b.destination.lat, b.destination.lon)
        direct_s = int(locs.matrix(svc.travel)[o][d])
        rides.append(outcome_of(b, direct_s, 0.0, arrivals.get(b.id), requested_at=b.pickup_earliest))
    shifts = [(s.starts_at, s.ends_at) for v in vehicles for s in v.shifts if s.ends_at > day0 and s.starts_at < day1]
    k = summarise([r for r in rides if r.status in ("completed", "cancelled", "no_show")], (), shifts, tz)
    on_board = sum(r.party for r in rides if r.status == BookingStatus.ON_BOARD.value)
    return {
        "date": day0.date().isoformat(), "computed_at": now.astimezone(tz).isoformat(),
        "booked": sum(r.status != BookingStatus.CANCELLED.value for r in rides), "completed": k.served,
        "cancelled": k.cancelled, "no_shows": k.no_shows, "on_board_now": on_board,
        "mean_wait_min": k.mean_wait_min, "p95_wait_min": k.p95_wait_min, "on_time_pct": k.on_time_pct,
        "ride_ratio_mean": k.ride_ratio_mean, "promises_broken": k.promises_broken,
        "passengers": k.passengers, "pax_per_vehicle_hour_peak": k.pax_per_vehicle_hour_peak,
        "peak_hour": k.peak_hour,
    }
