"""GTFS-Realtime: vehicle positions (with occupancy) and trip updates for stop-based legs.

Both feeds are FULL_DATASET protobuf messages built from the stored plans and positions.
``RealtimeFeeds`` keeps the last build for at most ``max_age_s`` and drops it as soon as any
domain event is published (a booking, a plan change, a boarding...), so a consumer sees a change
within ``max_age_s`` of a position report and at its next poll after any other change.
What is filled and why: docs/feeds.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.transit import gtfs_realtime_pb2 as rt

from transit.booking import Booking, BookingStatus
from transit.clock import to_epoch
from transit.events import Event
from transit.handlers import Services
from transit.vehicle import Vehicle

VP = rt.VehiclePosition


def run_trip_id(vehicle_id: str, service_date: str) -> str:
    """The id of a vehicle's on-demand run of one service day (a NEW trip: not in the static feed)."""
    return f"run_{vehicle_id}_{service_date}"


def occupancy(on_board: int, seats: int) -> tuple[int, int]:
    """(OccupancyStatus, occupancy_percentage) of a vehicle carrying ``on_board`` of ``seats``."""
    pct = round(100 * on_board / seats) if seats else 0
    if on_board <= 0:
        status = VP.EMPTY
    elif on_board >= seats:
        status = VP.FULL
    elif on_board * 2 < seats:
        status = VP.MANY_SEATS_AVAILABLE
    else:
        status = VP.FEW_SEATS_AVAILABLE
    return status, pct


def _header(msg: rt.FeedMessage, now: datetime, feed_version: str) -> None:
    msg.header.gtfs_realtime_version = "2.0"
    msg.header.incrementality = rt.FeedHeader.FULL_DATASET
    msg.header.timestamp = to_epoch(now)
    if feed_version:
        msg.header.feed_version = feed_version


@dataclass(frozen=True)
class Built:
    vehicle_positions: bytes
    trip_updates: bytes
    built_at: datetime  # service clock


EtaMap = Mapping[str, Mapping[tuple[str, str], datetime]]  # vehicle -> (booking, pickup|dropoff) -> ETA


def build(vehicles: Sequence[Vehicle], bookings: dict[str, Booking], *, now: datetime, route_id: str,
          tz: object, feed_version: str = "", etas: EtaMap | None = None) -> Built:
    """Both feeds for the vehicles on shift at ``now``.

    ``bookings``: the active bookings of their plans (for occupancy); ``etas``: the checker's
    times from each vehicle's latest position, used instead of the planned times when given.
    """
    vp_msg, tu_msg = rt.FeedMessage(), rt.FeedMessage()
    _header(vp_msg, now, feed_version)
    _header(tu_msg, now, feed_version)
    service_date = now.astimezone(tz).strftime("%Y%m%d")  # type: ignore[arg-type]
    on_board: dict[str, int] = {}
    for b in bookings.values():
        if b.status is BookingStatus.ON_BOARD and b.vehicle_id:
            on_board[b.vehicle_id] = on_board.get(b.vehicle_id, 0) + b.party_size
    for v in vehicles:
        if not any(s.covers(now) for s in v.shifts):
            continue
        trip_id = run_trip_id(v.id, service_date)
        e = vp_msg.entity.add()
        e.id = v.id
        pos = e.vehicle
        pos.trip.trip_id = trip_id
        pos.trip.route_id = route_id
        pos.trip.start_date = service_date
        pos.trip.schedule_relationship = rt.TripDescriptor.NEW
        pos.vehicle.id = v.id
        pos.vehicle.label = v.name_ja
        pos.vehicle.wheelchair_accessible = (rt.VehicleDescriptor.WHEELCHAIR_ACCESSIBLE if v.wheelchairs
                                             else rt.VehicleDescriptor.WHEELCHAIR_INACCESSIBLE)
        lat, lon = v.position()
        pos.position.latitude, pos.position.longitude = lat, lon
        pos.timestamp = to_epoch(v.position_at or now)
        status, pct = occupancy(on_board.get(v.id, 0), v.seats)
        pos.occupancy_status, pos.occupancy_percentage = status, pct
        # Stop-based legs only: a door-to-door visit has no stop_id, and GTFS-RT needs one.
        stops: list[tuple[str, datetime]] = []
        times = (etas or {}).get(v.id, {})
        for visit in sorted(v.plan, key=lambda x: x.planned_at):
            at = times.get((visit.booking_id, visit.kind), visit.planned_at)
            if visit.stop_id is None or at < now - timedelta(minutes=5):
                continue
            if stops and stops[-1][0] == visit.stop_id:
                continue  # several riders at one stop: one stop time (the first arrival)
            stops.append((visit.stop_id, at))
        if stops:
            pos.stop_id = stops[0][0]
            pos.current_stop_sequence = 1
            # The driver reported arrival for a rider at that stop: the vehicle is standing there.
            arrived = any(b.status is BookingStatus.ARRIVING and b.vehicle_id == v.id
                          and b.origin.stop_id == stops[0][0] for b in bookings.values())
            pos.current_status = VP.STOPPED_AT if arrived else VP.IN_TRANSIT_TO
            t = tu_msg.entity.add()
            t.id = trip_id
            tu = t.trip_update
            tu.trip.CopyFrom(pos.trip)
            tu.vehicle.CopyFrom(pos.vehicle)
            tu.timestamp = to_epoch(now)
            for seq, (stop_id, at) in enumerate(stops, 1):
                u = tu.stop_time_update.add()
                u.stop_sequence = seq
                u.stop_id = stop_id
                u.arrival.time = to_epoch(at)
                u.departure.time = to_epoch(at)
                u.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SCHEDULED
    return Built(vp_msg.SerializeToString(), tu_msg.SerializeToString(), now)


# Operations.etas: a vehicle's remaining schedule from its latest position.
EtaSource = Callable[[str], Awaitable[tuple[Vehicle | None, Sequence[Any]]]]


class RealtimeFeeds:
    """The two GTFS-RT feeds of one service, rebuilt when stale (see the module docstring)."""

    def __init__(self, svc: Services, *, route_id: str, feed_version: str = "", max_age_s: float = 10.0,
                 etas: EtaSource | None = None) -> None:
        self.svc = svc
        self.etas = etas
        self.route_id = route_id
        self.feed_version = feed_version
        self.max_age_s = max_age_s
        self._built: Built | None = None
        self._built_mono = 0.0
        self._lock = asyncio.Lock()

    async def on_events(self, events: Sequence[Event]) -> None:
        """Bus subscriber: any domain event makes the next request rebuild."""
        if events:
            self._built = None

    async def current(self) -> Built:
        async with self._lock:
            fresh = self._built is not None and time.monotonic() - self._built_mono < self.max_age_s
            if not fresh:
                self._built = await self.rebuild()
                self._built_mono = time.monotonic()
            assert self._built is not None
            return self._built

    async def rebuild(self) -> Built:
        now = self.svc.clock.now()
        async with self.svc.uow(readonly=True) as uow:
            vehicles = await uow.vehicles.list((now - timedelta(minutes=1), now + timedelta(minutes=1)))
            ids = {visit.booking_id for v in vehicles for visit in v.plan}
            bookings = {b.id: b for b in await uow.bookings.active(ids)} if ids else {}
        etas: dict[str, dict[tuple[str, str], datetime]] = {}
        if self.etas is not None:
            for v in vehicles:
                if any(x.stop_id for x in v.plan) and any(s.covers(now) for s in v.shifts):
                    _, rows = await self.etas(v.id)
                    etas[v.id] = {(e.booking_id, e.kind): e.eta for e in rows}
        return build(vehicles, bookings, now=now, route_id=self.route_id, tz=self.svc.rules.tz,
                     feed_version=self.feed_version, etas=etas)
