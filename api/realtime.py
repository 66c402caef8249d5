"""The realtime hub: live connections of tablets, rider pages and operator consoles.

Every connection has its own bounded send queue drained by its own task, so a slow tablet never
holds up the others (one whose queue overflows is closed; on reconnect it gets a snapshot).
The hub subscribes to the bus: a committed plan change (from this process, or from another one
through Redis) is loaded from the database and pushed as a delta to the vehicle's tablets.
Sequence numbers are the vehicle's plan version, stored with the plan, so they never go
backwards, also across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import WebSocket
from pydantic import BaseModel

from driver_app import protocol as p
from transit.booking import Booking
from transit.bootstrap import Runtime
from transit.clock import from_epoch, local, to_epoch
from transit.deliveries import STATUS_TEXT, delivery_status, handover_code
from transit.events import (
    BookingCancelled,
    BookingStatusChanged,
    DeliveryChanged,
    Event,
    HandoverLocked,
    PlanChanged,
    PromiseAtRisk,
    PromiseBroken,
    PromiseCleared,
    RideBooked,
)
from transit.operations import (
    DriverBreakChanged,
    EtasUpdated,
    Operations,
    ReplanRequested,
    VehicleMoved,
    eta_event,
)
from transit.uow import UnitOfWork
from transit.vehicle import Vehicle

log = logging.getLogger("okuma.realtime")


# ------------------------------------------------------------------------------ connections


class Outbox:
    """One connection's send queue and the task that drains it."""

    def __init__(self, ws: WebSocket, maxsize: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.closed = False
        self.task = asyncio.create_task(self._run())

    def send(self, msg: BaseModel | str) -> bool:
        if self.closed:
            return False
        text = msg if isinstance(msg, str) else msg.model_dump_json()
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            # Too slow to keep up: drop the link; it resumes with a fresh snapshot.
            log.warning("send queue full; closing a slow connection")
            self.closed = True
            self._abort_task = asyncio.create_task(self._abort())
            return False

    async def _abort(self) -> None:
        self.task.cancel()
        with contextlib.suppress(Exception):  # the link may already be gone
            await self.ws.close(code=1013)

    async def _run(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                if text is None:
                    return
                await self.ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the peer went away; the receive loop notices too
            self.closed = True

    async def close(self) -> None:
        """Flush what is queued (briefly), then stop."""
        if not self.closed:
            self.closed = True
            try:
                self.queue.put_nowait(None)
                await asyncio.wait_for(asyncio.shield(self.task), timeout=2)
            except (TimeoutError, asyncio.QueueFull, Exception):  # noqa: BLE001
                pass
        self.task.cancel()


@dataclass(eq=False)
class TabletConn:
    vehicle_id: str
    out: Outbox
    seq: int = -1  # the last seq sent; -1 until the snapshot is queued
    visits: dict[str, tuple[int, str]] = field(default_factory=dict)  # visit_id -> (index, planned_at)


@dataclass(eq=False)
class RiderConn:
    booking_id: str
    out: Outbox
    vehicle_id: str | None = None
    last: p.BookingLive | None = None


@dataclass(eq=False)
class OperatorConn:
    out: Outbox


# ------------------------------------------------------------------------------ views


WAIT_SHOWN_S = 60  # the tablet shows "wait here until" when the schedule holds the vehicle longer


def _t(dt: datetime | None) -> datetime | None:
    return local(dt) if dt is not None else None


class Views:
    """Builds protocol messages from the database (read-only units of work)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.svc = runtime.services
        self.ops: Operations = runtime.operations  # type: ignore[assignment]
        self.stops = {s.stop_id: s for s in runtime.reference.stops}

    def now(self) -> datetime:
        return local(self.svc.clock.now())

    async def plan(self, uow: UnitOfWork, v: Vehicle, etas: dict[tuple[str, str], datetime] | None = None) -> list[p.VisitOut]:
        ids = {x.booking_id for x in v.plan}
        bookings = {b.id: b for b in await uow.bookings.active(ids)} if ids else {}
        arrivals = await self.ops.arrivals(uow, v.id) if ids else {}
        out = []
        for x in v.plan:
            b = bookings.get(x.booking_id)
            if b is None:
                continue
            stop = self.stops.get(x.stop_id or "")
            pickup = x.kind == "pickup"
            place = b.origin if pickup else b.destination
            door = x.stop_id is None
            out.append(
                p.VisitOut(
                    visit_id=f"{b.id}:{x.kind}",
                    booking_id=b.id,
                    kind=x.kind,  # type: ignore[arg-type]
                    booking_kind="grocery" if b.kind == "delivery" else "ride",
                    status=b.status.value,
                    stop_id=x.stop_id,
                    stop_name_ja=stop.name_ja if stop else "",
                    stop_name_en=stop.name_en if stop else "",
                    lat=x.lat,
                    lon=x.lon,
                    planned_at=local(x.planned_at),
                    arrival_at=_t(x.arrival_at),
                    departure_at=_t(x.departure_at),
                    wait_until=local(x.planned_at) if x.wait_s > WAIT_SHOWN_S else None,
                    eta=_t((etas or {}).get((b.id, x.kind))),
                    window_start=local(b.pickup_earliest) if pickup else None,
                    window_end=local(b.pickup_latest if pickup else b.dropoff_latest),
                    passenger_name=b.passenger_name,
                    booking_number=b.number,
                    # Door-to-door only: what the driver needs to find the rider, nothing more.
                    address=place.address if door else None,
                    note=b.driver_note if door else None,
                    contact_phone=b.contact_phone if door and pickup else None,
                    party_size=b.party_size,
                    wheelchairs=b.wheelchairs,
                    parcels=b.parcels,
                    handover_code_required=b.kind == "delivery" and not pickup,
                    arrived_at=_t(arrivals.get(b.id)) if pickup else None,
                )
            )
        return out

    async def vehicle_plan(self, vehicle_id: str) -> tuple[Vehicle | None, list[p.VisitOut], bool]:
        async with self.svc.uow(readonly=True) as uow:
            v = await uow.vehicles.get(vehicle_id)
            if v is None:
                return None, [], False
            return v, await self.plan(uow, v), await self.ops.on_break(uow, v.id)

    async def vehicles(self, connected: set[str]) -> list[p.VehicleLive]:
        async with self.svc.uow(readonly=True) as uow:
            vs = await uow.vehicles.list()
            out = []
            for v in vs:
                lat, lon = v.position()
                out.append(
                    p.VehicleLive(
                        vehicle_id=v.id, name_ja=v.name_ja, name_en=v.name_en, lat=lat, lon=lon,
                        position_at=_t(v.position_at), plan_version=v.plan_version,
                        visits_left=len(v.plan), next_stop_id=v.plan[0].stop_id if v.plan else None,
                        on_break=await self.ops.on_break(uow, v.id), connected=v.id in connected,
                    )
                )
            return out

    async def booking(self, booking_id: str, etas: dict[tuple[str, str], datetime] | None = None,
                      ) -> tuple[Booking | None, p.BookingLive | None]:
        async with self.svc.uow(readonly=True) as uow:
            b = await uow.bookings.get(booking_id)
            if b is None:
                return None, None
            v = await uow.vehicles.get(b.vehicle_id) if b.vehicle_id else None
            row = await uow.deliveries.get(b.id) if b.kind == "delivery" else None
        # the flag as stored with the vehicle's ETAs (so it survives a restart and clears once)
        stored = v is not None and b.active and b.id in (v.etas or {}).get("at_risk", [])
        live = self.booking_live(b, v, etas or {}, stored)
        if row is not None:
            status = delivery_status(b, row)
            ja, en = live_texts(b.status.value, stored, status)
            live = live.model_copy(update={"delivery_status": status, "message_ja": ja, "message_en": en})
        return b, live

    def booking_live(self, b: Booking, v: Vehicle | None, etas: dict[tuple[str, str], datetime],
                     at_risk: bool) -> p.BookingLive:
        ja, en = live_texts(b.status.value, at_risk)
        lat, lon = (v.lat, v.lon) if v is not None else (None, None)
        return p.BookingLive(
            booking_id=b.id, number=b.number, status=b.status.value, vehicle_id=b.vehicle_id,
            vehicle_name_ja=v.name_ja if v else "", vehicle_name_en=v.name_en if v else "",
            pickup_window_start=local(b.pickup_earliest), pickup_window_end=local(b.pickup_latest),
            latest_dropoff=local(b.dropoff_latest), planned_pickup=_t(b.planned_pickup),
            planned_dropoff=_t(b.planned_dropoff),
            eta_pickup=_t(etas.get((b.id, "pickup"))), eta_dropoff=_t(etas.get((b.id, "dropoff"))),
            vehicle_lat=lat, vehicle_lon=lon, at_risk=at_risk,
            # only recipients watch this channel (drivers are refused): the code is theirs to show
            handover_code=handover_code(b.id, self.ops.handover_secret) if b.kind == "delivery" else None,
            message_ja=ja, message_en=en, updated_at=self.now(),
        )


_RIDE_TEXT = {
    "confirmed": ("予約が確定しています。", "Your ride is confirmed."),
    "arriving": ("車両が乗車場所に到着しました。", "The minibus is at your pick-up."),
    "on_board": ("ご乗車中です。", "You are on board."),
    "completed": ("ご利用ありがとうございました。", "Thank you for riding."),
    "cancelled": ("この予約は取り消されました。", "This booking was cancelled."),
    "no_show": ("乗車が確認できませんでした。", "You were not at the pick-up (no-show)."),
}


def live_texts(status: str, at_risk: bool, delivery: str | None = None) -> tuple[str, str]:
    """The rider channel's message: a delivery's status; else the delay notice while at risk, else the ride's status."""
    if delivery is not None:
        return STATUS_TEXT[delivery]
    if at_risk:
        return ("遅れが見込まれます。到着予定をご確認ください。", "A delay is expected. Please see the new estimate.")
    return _RIDE_TEXT.get(status, ("", ""))


def eta_message(ev: EtasUpdated) -> p.EtaUpdate:
    return p.EtaUpdate(
        vehicle_id=ev.vehicle_id, plan_version=ev.plan_version, computed_at=local(from_epoch(ev.computed_s)),
        etas=[
            p.VisitEta(booking_id=b, kind=k, eta=local(from_epoch(eta)), planned_at=local(from_epoch(pl)),  # type: ignore[arg-type]
                       promised_latest=local(from_epoch(latest)), late_s=late, at_risk=late > 0)
            for b, k, eta, pl, latest, late in ev.etas
        ],
    )


def _minutes(eta: datetime, computed_s: int) -> int:
    return max(0, round((to_epoch(eta) - computed_s) / 60))


def _eta_map(ev: EtasUpdated | None) -> dict[tuple[str, str], datetime]:
    if ev is None:
        return {}
    return {(b, k): from_epoch(eta) for b, k, eta, _pl, _l, _late in ev.etas}


# ------------------------------------------------------------------------------ the hub


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.views = Views(runtime)
        self.queue_size = runtime.settings.ws_queue_size
        self.tablets: dict[str, set[TabletConn]] = {}
        self.riders: dict[str, set[RiderConn]] = {}
        self.operators: set[OperatorConn] = set()
        self.latest_version: dict[str, int] = {}
        self.last_etas: dict[str, EtasUpdated] = {}
        self._pushing: set[str] = set()
        self._dirty: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reasons: dict[str, str] = {}  # vehicle -> reason of the latest plan change

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.rt.bus.subscribe(self.on_events)
        await self.rt.start()
        self._spawn(self._eta_timer())

    ETA_REFRESH_S = 30.0  # wall seconds between checks
    ETA_MAX_AGE_S = 60  # service-clock seconds: older ETAs of a watched vehicle are recomputed

    async def _eta_timer(self) -> None:
        """Time passes even when no position comes: recompute the ETAs of watched vehicles now and then."""
        while True:
            await asyncio.sleep(self.ETA_REFRESH_S)
            watched = set(self.tablets) | {r.vehicle_id for rs in self.riders.values() for r in rs if r.vehicle_id}
            now = to_epoch(self.views.svc.clock.now())
            for vid in sorted(watched):
                ev = self.last_etas.get(vid)
                if ev is not None and now - ev.computed_s < self.ETA_MAX_AGE_S:
                    continue
                try:
                    await self.views.ops.refresh_etas(vid)
                except Exception:  # a failed refresh costs one refresh, not the hub
                    log.exception("ETA refresh failed for %s", vid)

    async def stop(self) -> None:
        unsub = getattr(self.rt.bus, "unsubscribe", None)
        if unsub is not None:
            unsub(self.on_events)
        for t in list(self._tasks):
            t.cancel()
        for conns in [*self.tablets.values(), *self.riders.values()]:
            for c in list(conns):
                await c.out.close()
        for o in list(self.operators):
            await o.out.close()

    def outbox(self, ws: WebSocket) -> Outbox:
        return Outbox(ws, self.queue_size)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("hub task failed", exc_info=t.exception())

    # ------------------------------------------------------------ tablets

    async def add_tablet(self, conn: TabletConn, *, resumed_from: int | None) -> None:
        """Register, then queue hello and the snapshot; deltas follow from then on."""
        self.tablets.setdefault(conn.vehicle_id, set()).add(conn)
        v = self.views
        vehicle, _, _ = await v.vehicle_plan(conn.vehicle_id)
        conn.out.send(p.ServerHello(
            vehicle_id=conn.vehicle_id,
            vehicle_name_ja=vehicle.name_ja if vehicle else "", vehicle_name_en=vehicle.name_en if vehicle else "",
            server_time=v.now(), no_show_wait_s=v.svc.rules.no_show_wait_s,
            arrival_early_s=v.svc.rules.arrival_early_s, arrival_near_m=v.svc.rules.arrival_near_m,
            event_future_tolerance_s=v.svc.rules.event_future_tolerance_s, resumed_from_seq=resumed_from,
        ))
        await self.send_snapshot(conn)

    async def send_snapshot(self, conn: TabletConn) -> None:
        vehicle, visits, on_break = await self.views.vehicle_plan(conn.vehicle_id)
        if vehicle is None:
            return
        etas = _eta_map(self.last_etas.get(conn.vehicle_id))
        if etas:
            visits = [x.model_copy(update={"eta": _t(etas.get((x.booking_id, x.kind)))}) for x in visits]
        conn.seq = vehicle.plan_version
        conn.visits = {x.visit_id: (i, x.planned_at.isoformat()) for i, x in enumerate(visits)}
        conn.out.send(p.Snapshot(seq=vehicle.plan_version, plan_version=vehicle.plan_version,
                                 vehicle_id=vehicle.id, visits=visits, on_break=on_break,
                                 generated_at=self.views.now()))
        ev = self.last_etas.get(conn.vehicle_id)
        if ev is not None:
            conn.out.send(eta_message(ev))
        # a change committed while the snapshot was read goes out as a delta now
        if self.latest_version.get(conn.vehicle_id, -1) > conn.seq:
            self.push_vehicle(conn.vehicle_id, time.time())

    def remove_tablet(self, conn: TabletConn) -> None:
        conns = self.tablets.get(conn.vehicle_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.tablets[conn.vehicle_id]

    def push_vehicle(self, vehicle_id: str, committed_ts: float) -> None:
        if vehicle_id not in self.tablets and vehicle_id not in {c.vehicle_id for cs in self.riders.values() for c in cs}:
            return
        first = vehicle_id not in self._dirty
        self._dirty.setdefault(vehicle_id, committed_ts)
        if first and vehicle_id not in self._pushing:
            self._spawn(self._push_loop(vehicle_id))

    async def _push_loop(self, vehicle_id: str) -> None:
        self._pushing.add(vehicle_id)
        try:
            while vehicle_id in self._dirty:
                committed_ts = self._dirty.pop(vehicle_id)
                await self._push_once(vehicle_id, committed_ts)
        finally:
            self._pushing.discard(vehicle_id)

    async def _push_once(self, vehicle_id: str, committed_ts: float) -> None:
        conns = [c for c in self.tablets.get(vehicle_id, ()) if c.seq >= 0]
        async with self.views.svc.uow(readonly=True) as uow:
            vehicle = await uow.vehicles.get(vehicle_id)
            if vehicle is None:
                return
            visits = await self.views.plan(uow, vehicle, _eta_map(self.last_etas.get(vehicle_id)))
        reason = self._reasons.pop(vehicle_id, "update")
        for c in conns:
            if vehicle.plan_version <= c.seq:
                continue
            new = {x.visit_id: (i, x.planned_at.isoformat()) for i, x in enumerate(visits)}
            old_b = {k.rsplit(":", 1)[0] for k in c.visits}
            new_b = {k.rsplit(":", 1)[0] for k in new}
            moved = sorted({k.rsplit(":", 1)[0] for k, val in new.items()
                            if k in c.visits and c.visits[k] != val} - (new_b - old_b))
            c.out.send(p.Delta(
                seq=vehicle.plan_version, plan_version=vehicle.plan_version, vehicle_id=vehicle_id,
                reason=reason, visits=visits, added=sorted(new_b - old_b), removed=sorted(old_b - new_b),
                moved=moved, generated_at=self.views.now(), committed_ts=committed_ts,
            ))
            c.seq = vehicle.plan_version
            c.visits = new
        # Riders and ETAs after the tablets, in their own task: the deltas must not wait for them.
        self._spawn(self._after_plan_change(vehicle_id))

    async def _after_plan_change(self, vehicle_id: str) -> None:
        for bid, rconns in list(self.riders.items()):
            if any(r.vehicle_id == vehicle_id for r in rconns):
                await self.refresh_rider(bid)
        if self.tablets.get(vehicle_id) or any(r.vehicle_id == vehicle_id for rs in self.riders.values() for r in rs):
            await asyncio.sleep(0)  # let the queued deltas go out first
            await self._refresh_etas(vehicle_id)

    async def _refresh_etas(self, vehicle_id: str) -> None:
        """Push the ETAs the plan writer stored with the new plan (computed there, once)."""
        async with self.views.svc.uow(readonly=True) as uow:
            vehicle = await uow.vehicles.get(vehicle_id)
        if vehicle is not None:
            self._on_etas(eta_event(vehicle))

    # ------------------------------------------------------------ riders and operators

    def add_rider(self, conn: RiderConn) -> None:
        self.riders.setdefault(conn.booking_id, set()).add(conn)

    def remove_rider(self, conn: RiderConn) -> None:
        conns = self.riders.get(conn.booking_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.riders[conn.booking_id]

    async def refresh_rider(self, booking_id: str) -> None:
        conns = self.riders.get(booking_id)
        if not conns:
            return
        b, live = await self.views.booking(booking_id)
        if b is None or live is None:
            return
        last = self.last_etas.get(b.vehicle_id or "")
        etas = _eta_map(last)
        pickup = etas.get((b.id, "pickup"))
        live = live.model_copy(update={
            "eta_pickup": _t(pickup), "eta_dropoff": _t(etas.get((b.id, "dropoff"))),
            "minutes_away": _minutes(pickup, last.computed_s) if pickup and last else None})
        for c in list(conns):
            c.vehicle_id = b.vehicle_id
            c.last = live
            c.out.send(live)

    def _on_etas(self, ev: EtasUpdated) -> None:
        self.last_etas[ev.vehicle_id] = ev
        msg = eta_message(ev)
        for c in self.tablets.get(ev.vehicle_id, ()):
            if c.seq >= 0:
                c.out.send(msg)
        for e in msg.etas:
            for r in self.riders.get(e.booking_id, ()):
                if r.last is None:
                    continue
                update: dict[str, Any] = {"updated_at": self.views.now()}
                if e.kind == "pickup":
                    update.update(eta_pickup=e.eta, minutes_away=_minutes(e.eta, ev.computed_s))
                else:
                    update["eta_dropoff"] = e.eta
                r.last = r.last.model_copy(update=update)
                r.out.send(r.last)

    def _rider_position(self, e: VehicleMoved) -> None:
        """Riders following a booking on this vehicle see it move (their own booking's vehicle only)."""
        for conns in self.riders.values():
            for r in conns:
                if r.vehicle_id == e.vehicle_id and r.last is not None:
                    r.last = r.last.model_copy(update={"vehicle_lat": e.lat, "vehicle_lon": e.lon,
                                                       "updated_at": self.views.now()})
                    r.out.send(r.last)

    def add_operator(self, conn: OperatorConn) -> None:
        self.operators.add(conn)

    def remove_operator(self, conn: OperatorConn) -> None:
        self.operators.discard(conn)

    def _to_operators(self, msg: BaseModel) -> None:
        for o in list(self.operators):
            o.out.send(msg)

    # ------------------------------------------------------------ the bus

    async def on_events(self, events: Sequence[Event]) -> None:
        """Called after every commit (locally, or from Redis); never blocks the committer."""
        ts = time.time()
        riders_to_refresh: set[str] = set()
        for e in events:
            if isinstance(e, PlanChanged):
                if e.version > self.latest_version.get(e.vehicle_id, -1):
                    self.latest_version[e.vehicle_id] = e.version
                self._reasons[e.vehicle_id] = e.reason
                self.push_vehicle(e.vehicle_id, ts)
                self._to_operators(p.PlanChangedOut(vehicle_id=e.vehicle_id, plan_version=e.version,
                                                    reason=e.reason, booking_ids=list(e.booking_ids)))
            elif isinstance(e, (BookingStatusChanged, BookingCancelled, RideBooked)):
                riders_to_refresh.add(e.booking_id)
                status = (
                    e.status
                    if isinstance(e, BookingStatusChanged)
                    else "cancelled" if isinstance(e, BookingCancelled) else "confirmed"
                )
                self._to_operators(
                    p.BookingChangedOut(booking_id=e.booking_id, vehicle_id=e.vehicle_id, status=status)
                )
                if isinstance(e, BookingCancelled) and e.vehicle_id:
                    self._to_operators(p.ReplanNeeded(vehicle_id=e.vehicle_id, reason="cancellation",
                                                      booking_id=e.booking_id))
            elif isinstance(e, DeliveryChanged):
                riders_to_refresh.add(e.booking_id)
            elif isinstance(e, HandoverLocked):
                self._to_operators(p.HandoverLockedOut(booking_id=e.booking_id, vehicle_id=e.vehicle_id,
                                                       store_id=e.store_id, failures=e.failures))
            elif isinstance(e, EtasUpdated):
                self._on_etas(e)
            elif isinstance(e, PromiseAtRisk):
                msg = p.PromiseAtRiskOut(
                    booking_id=e.booking_id, vehicle_id=e.vehicle_id,
                    expected=local(from_epoch(e.expected_s)), promised_latest=local(from_epoch(e.promised_latest_s)),
                    late_s=max(0, e.expected_s - e.promised_latest_s),
                    message_ja="お約束の時刻に遅れる見込みです。新しい到着予定をお知らせします。",
                    message_en="We expect to be late for the promised time. Here is the new estimate.",
                )
                self._flag(e.booking_id, e.vehicle_id, msg)
                riders_to_refresh.add(e.booking_id)
            elif isinstance(e, PromiseCleared):
                self._flag(e.booking_id, e.vehicle_id,
                           p.PromiseClearedOut(booking_id=e.booking_id, vehicle_id=e.vehicle_id, reason=e.reason))
                riders_to_refresh.add(e.booking_id)
            elif isinstance(e, PromiseBroken):
                self._flag(e.booking_id, e.vehicle_id, p.PromiseBrokenOut(
                    booking_id=e.booking_id, vehicle_id=e.vehicle_id, kind=e.kind,  # type: ignore[arg-type]
                    promised_latest=local(from_epoch(e.promised_latest_s)),
                    expected=local(from_epoch(e.earliest_feasible_s)),
                    message_ja="遅れのため、お約束の時刻に間に合いません。最も早い到着予定をお知らせします。",
                    message_en="Because of a delay we cannot keep the promised time. Here is the earliest we can make.",
                ), tablet=False)
                riders_to_refresh.add(e.booking_id)
            elif isinstance(e, ReplanRequested):
                self._to_operators(p.ReplanNeeded(vehicle_id=e.vehicle_id, reason=e.reason, booking_id=e.booking_id))
            elif isinstance(e, (VehicleMoved, DriverBreakChanged)):
                if isinstance(e, VehicleMoved):
                    self._rider_position(e)
                if self.operators:
                    self._spawn(self._operator_vehicle(e.vehicle_id))
        for bid in riders_to_refresh:
            if bid in self.riders:
                self._spawn(self.refresh_rider(bid))

    def _flag(self, booking_id: str, vehicle_id: str, msg: BaseModel, *, tablet: bool = True) -> None:
        """A promise flag (or its clearing) to the rider, the operators and (at risk / cleared) the tablet."""
        flag = {p.PromiseAtRiskOut: True, p.PromiseClearedOut: False}.get(type(msg))
        for r in self.riders.get(booking_id, ()):
            r.out.send(msg)
            if flag is not None and r.last is not None:
                # what the rider is sent next (a position, an ETA) carries the flag as it now stands
                ja, en = live_texts(r.last.status, flag, r.last.delivery_status)
                r.last = r.last.model_copy(update={"at_risk": flag, "message_ja": ja, "message_en": en})
        self._to_operators(msg)
        if tablet:
            for c in self.tablets.get(vehicle_id, ()):
                if c.seq >= 0:
                    c.out.send(msg)

    async def _operator_vehicle(self, vehicle_id: str) -> None:
        for v in await self.views.vehicles(set(self.tablets)):
            if v.vehicle_id == vehicle_id:
                self._to_operators(v)
