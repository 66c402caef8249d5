"""Live operations: driver events applied exactly once, plans trimmed as work is done, live ETAs.

Every tablet event goes through ``report()``: one unit of work that looks up the client event id
in ``device_events`` (a resent event gets the stored answer, ``duplicate``), applies the change
through the aggregates (the booking state machine, the vehicle plan) and stores the answer in the
same transaction. A rejected event is not stored, so resending it later is judged again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from routing.check import schedule_route
from transit import errors
from transit.booking import Booking, BookingStatus
from transit.clock import from_epoch, to_epoch
from transit.device_log import DeviceEventRepository
from transit.events import Event, PromiseAtRisk
from transit.handlers import Services
from transit.planning import build_snapshot
from transit.uow import UnitOfWork
from transit.vehicle import Vehicle

log = logging.getLogger("okuma.operations")

# ------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class DriverEvent:
    """A tablet event: who (the driver's vehicle), its client event id and when it happened."""

    vehicle_id: str
    client_event_id: str
    at: datetime | None


@dataclass(frozen=True)
class ReportPosition(DriverEvent):
    lat: float = 0.0
    lon: float = 0.0
    heading: float | None = None
    speed_kmh: float | None = None


@dataclass(frozen=True)
class ReportArrival(DriverEvent):
    stop_id: str | None = None
    booking_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportBoarded(DriverEvent):
    booking_id: str = ""
    count: int = 1


@dataclass(frozen=True)
class ReportNoShow(DriverEvent):
    booking_id: str = ""


@dataclass(frozen=True)
class ReportDropOff(DriverEvent):
    booking_id: str = ""


@dataclass(frozen=True)
class ReportParcelPickedUp(DriverEvent):
    booking_id: str = ""
    code: str | None = None


@dataclass(frozen=True)
class ReportParcelHandedOver(DriverEvent):
    booking_id: str = ""
    code: str = ""


@dataclass(frozen=True)
class ReportBreak(DriverEvent):
    started: bool = True


EVENT_NAMES: dict[type, str] = {
    ReportPosition: "position",
    ReportArrival: "arrived",
    ReportBoarded: "boarded",
    ReportNoShow: "no_show",
    ReportDropOff: "dropped_off",
    ReportParcelPickedUp: "parcel_picked_up",
    ReportParcelHandedOver: "parcel_handed_over",
}

# ------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class VehicleMoved(Event):
    vehicle_id: str
    lat: float
    lon: float
    at_s: int


@dataclass(frozen=True)
class EtasUpdated(Event):
    """Derived, not logged: (booking_id, kind, eta_s, planned_s, latest_s, late_s) per visit."""

    vehicle_id: str
    plan_version: int
    computed_s: int
    etas: tuple[tuple[str, str, int, int, int, int], ...] = ()


@dataclass(frozen=True)
class ReplanRequested(Event):
    """A stub trigger: the dispatcher re-optimises after a no-show, a cancellation or a delay."""

    vehicle_id: str
    reason: str
    booking_id: str | None = None


@dataclass(frozen=True)
class DriverBreakChanged(Event):
    vehicle_id: str
    on_break: bool


# ------------------------------------------------------------------------------ errors


class NoShowTooEarly(errors.DomainError):
    kind = "conflict"


class NotArrived(errors.DomainError):
    kind = "conflict"
    message_ja = "まだ乗車場所への到着が記録されていません。先に「到着」を押してください。"
    message_en = "Arrival at the pick-up has not been recorded yet. Press 'arrived' first."


class WrongHandoverCode(errors.DomainError):
    kind = "conflict"
    message_ja = "受け渡しコードが違います。お客様にもう一度ご確認ください。"
    message_en = "The handover code does not match. Please ask the recipient again."


class NotOnThisVehicle(errors.DomainError):
    kind = "not_found"
    message_ja = "この予約はこの車両の担当ではありません。"
    message_en = "This booking is not assigned to this vehicle."


class EventIdReused(errors.DomainError):
    kind = "conflict"
    message_ja = "このイベントIDは別の車両で使われています。"
    message_en = "This client event id was already used by another vehicle."


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class EventResult:
    result: Literal["applied", "duplicate", "rejected"]
    code: str | None = None
    message_ja: str = ""
    message_en: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result, "code": self.code, "message_ja": self.message_ja,
                "message_en": self.message_en}


APPLIED = EventResult("applied", None, "記録しました。", "Recorded.")


@dataclass(frozen=True)
class Eta:
    booking_id: str
    kind: str
    eta: datetime
    planned_at: datetime
    promised_latest: datetime
    late_s: int

    @property
    def at_risk(self) -> bool:
        return self.late_s > 0


# ------------------------------------------------------------------------------ the service


def handover_code(booking_id: str, secret: str) -> str:
    """The 4-digit code a grocery recipient gives the driver (derived, so nothing extra is stored)."""
    digest = hmac.new(secret.encode(), booking_id.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 10000:04d}"


@dataclass
class Operations:
    """Driver-event use cases, bound to the service collaborators."""

    svc: Services
    handover_secret: str = "dev-handover-secret"
    eta_horizon_s: int = 12 * 3600
    # bookings already flagged at risk per vehicle, so a GPS stream does not repeat the flag
    _flagged: dict[str, set[str]] = field(default_factory=dict)

    # ---------------------------------------------------------------- entry point

    async def report(self, cmd: DriverEvent) -> EventResult:
        """Apply one tablet event exactly once; answer applied, duplicate or rejected."""
        if isinstance(cmd, ReportBreak):
            type_ = "break_start" if cmd.started else "break_end"
        else:
            type_ = EVENT_NAMES[type(cmd)]
        try:
            return await self._report(cmd, type_)
        except IntegrityError:
            # The same client event id committed concurrently (another connection or process).
            async with self.svc.uow(readonly=True) as uow:
                prior = await DeviceEventRepository(uow.connection).get(cmd.client_event_id)
            if prior is None:
                raise
            return self._duplicate(prior, cmd.vehicle_id)

    def _duplicate(self, prior: dict[str, Any], vehicle_id: str) -> EventResult:
        if prior["vehicle_id"] != vehicle_id:
            e = EventIdReused()
            return EventResult("rejected", e.code, e.message_ja, e.message_en)
        r = prior["result"] or {}
        return EventResult("duplicate", r.get("code"), r.get("message_ja", ""), r.get("message_en", ""))

    async def _report(self, cmd: DriverEvent, type_: str) -> EventResult:
        svc = self.svc
        after: list[Event] = []
        async with svc.uow() as uow:
            log_ = DeviceEventRepository(uow.connection)
            prior = await log_.get(cmd.client_event_id)
            if prior is not None:
                return self._duplicate(prior, cmd.vehicle_id)
            now = svc.clock.now()
            at = min(cmd.at, now) if cmd.at is not None else now
            vehicle = await uow.vehicles.get(cmd.vehicle_id, for_update=True)
            if vehicle is None:
                raise errors.NotFound("その車両は見つかりません。", "That vehicle does not exist.")
            try:
                result, payload = await self._apply(uow, vehicle, cmd, at, after)
            except errors.DomainError as e:
                # leaving without commit rolls the attempt back; a rejection is not stored
                return EventResult("rejected", e.code, e.message_ja, e.message_en)
            payload = {**payload, "at": at.isoformat()}
            await log_.add(cmd.client_event_id, cmd.vehicle_id, type_, payload, now, result.as_dict())
            await uow.commit()
        if after:
            await svc.uow.publish(after)
        return result

    # ---------------------------------------------------------------- the events

    async def _booking(self, uow: UnitOfWork, vehicle: Vehicle, booking_id: str) -> Booking:
        b = await uow.bookings.get(booking_id)
        if b is None or b.vehicle_id != vehicle.id:
            raise NotOnThisVehicle()
        return b

    def _drop_visits(self, vehicle: Vehicle, booking_id: str, kinds: tuple[str, ...], reason: str) -> None:
        kept = [v for v in vehicle.plan if not (v.booking_id == booking_id and v.kind in kinds)]
        if len(kept) != len(vehicle.plan):
            vehicle.replace_plan(kept, reason, (booking_id,))

    async def _apply(self, uow: UnitOfWork, vehicle: Vehicle, cmd: DriverEvent, at: datetime,
                     after: list[Event]) -> tuple[EventResult, dict[str, Any]]:
        now = self.svc.clock.now()
        if isinstance(cmd, ReportPosition):
            payload = {"lat": cmd.lat, "lon": cmd.lon, "heading": cmd.heading, "speed_kmh": cmd.speed_kmh}
            if vehicle.position_at is not None and at < vehicle.position_at:
                # an older fix replayed after a newer one: kept in the log, not applied
                return EventResult("applied", None, "記録しました(古い位置)。", "Recorded (older fix)."), payload
            vehicle.lat, vehicle.lon, vehicle.position_at = cmd.lat, cmd.lon, at
            etas = await self._etas(uow, vehicle, at)
            vehicle.events.extend(self._risk_events(vehicle.id, etas))
            await uow.vehicles.save(vehicle)
            after.append(VehicleMoved(vehicle.id, cmd.lat, cmd.lon, to_epoch(at)))
            after.append(self._eta_event(vehicle, etas, at))
            return APPLIED, payload

        if isinstance(cmd, ReportArrival):
            ids = list(cmd.booking_ids)
            if not ids:
                ids = self._next_at_stop(vehicle, cmd.stop_id)
            if not ids:
                raise errors.InvalidInput(
                    "この停留所での予定が見つかりません。", "No planned visit at this stop.")
            for bid in ids:
                b = await self._booking(uow, vehicle, bid)
                if b.status is BookingStatus.CONFIRMED and any(
                    v.booking_id == bid and v.kind == "pickup" for v in vehicle.plan
                ):
                    b.vehicle_arriving()
                    await uow.bookings.save(b, now=now)
            return APPLIED, {"stop_id": cmd.stop_id, "booking_ids": ids}

        if isinstance(cmd, (ReportBoarded, ReportParcelPickedUp)):
            b = await self._booking(uow, vehicle, cmd.booking_id)
            b.board(at)
            await uow.bookings.save(b, now=now)
            self._drop_visits(vehicle, b.id, ("pickup",), "boarded")
            await uow.vehicles.save(vehicle)
            count = cmd.count if isinstance(cmd, ReportBoarded) else b.parcels
            msg = EventResult("applied", None, "乗車を記録しました。", "Boarding recorded.")
            if isinstance(cmd, ReportBoarded) and cmd.count != b.party_size:
                msg = EventResult(
                    "applied", None,
                    f"乗車を記録しました(予約{b.party_size}名、乗車{cmd.count}名)。",
                    f"Boarding recorded ({cmd.count} boarded of {b.party_size} booked).",
                )
            return msg, {"booking_id": b.id, "count": count}

        if isinstance(cmd, ReportNoShow):
            b = await self._booking(uow, vehicle, cmd.booking_id)
            arrived = await self.arrival_time(uow, vehicle.id, b.id)
            if arrived is None:
                raise NotArrived()
            wait = self.svc.rules.no_show_wait_s
            waited = int((at - arrived).total_seconds())
            if waited < wait:
                left = wait - waited
                raise NoShowTooEarly(
                    f"到着から{wait // 60}分待つまで「乗車なし」にできません。あと{(left + 59) // 60}分お待ちください。",
                    f"A no-show can be recorded only {wait // 60} min after arrival. "
                    f"Please wait {(left + 59) // 60} more min.",
                    wait_left_s=left,
                )
            b.no_show()
            await uow.bookings.save(b, now=now)
            self._drop_visits(vehicle, b.id, ("pickup", "dropoff"), "no_show")
            await uow.vehicles.save(vehicle)
            after.append(ReplanRequested(vehicle.id, "no_show", b.id))
            return APPLIED, {"booking_id": b.id, "waited_s": waited}

        if isinstance(cmd, (ReportDropOff, ReportParcelHandedOver)):
            b = await self._booking(uow, vehicle, cmd.booking_id)
            if isinstance(cmd, ReportParcelHandedOver) or b.kind == "grocery":
                code = getattr(cmd, "code", "")
                if not hmac.compare_digest(code or "", handover_code(b.id, self.handover_secret)):
                    raise WrongHandoverCode()
            b.complete(at)
            await uow.bookings.save(b, now=now)
            self._drop_visits(vehicle, b.id, ("pickup", "dropoff"), "dropped_off")
            await uow.vehicles.save(vehicle)
            return APPLIED, {"booking_id": b.id}

        if isinstance(cmd, ReportBreak):
            after.append(DriverBreakChanged(vehicle.id, cmd.started))
            if not cmd.started:
                # back from a break: the plan may be late now
                after.append(ReplanRequested(vehicle.id, "break_end"))
            return APPLIED, {}

        raise errors.InvalidInput("不明なイベントです。", "Unknown event.")

    @staticmethod
    def _next_at_stop(vehicle: Vehicle, stop_id: str | None) -> list[str]:
        """The first run of consecutive plan visits at ``stop_id``."""
        ids: list[str] = []
        for v in vehicle.plan:
            if v.stop_id == stop_id and stop_id is not None:
                ids.append(v.booking_id)
            elif ids:
                break
        return list(dict.fromkeys(ids))

    # ---------------------------------------------------------------- reads

    async def arrival_time(self, uow: UnitOfWork, vehicle_id: str, booking_id: str) -> datetime | None:
        since = self.svc.clock.now() - timedelta(days=1)
        rows = await DeviceEventRepository(uow.connection).for_vehicle(vehicle_id, ("arrived",), since)
        for r in rows:
            if booking_id in (r["payload"] or {}).get("booking_ids", []):
                return datetime.fromisoformat(r["payload"]["at"])
        return None

    async def arrivals(self, uow: UnitOfWork, vehicle_id: str) -> dict[str, datetime]:
        since = self.svc.clock.now() - timedelta(days=1)
        out: dict[str, datetime] = {}
        for r in await DeviceEventRepository(uow.connection).for_vehicle(vehicle_id, ("arrived",), since):
            for bid in (r["payload"] or {}).get("booking_ids", []):
                out.setdefault(bid, datetime.fromisoformat(r["payload"]["at"]))
        return out

    async def on_break(self, uow: UnitOfWork, vehicle_id: str) -> bool:
        since = self.svc.clock.now() - timedelta(hours=12)
        rows = await DeviceEventRepository(uow.connection).for_vehicle(
            vehicle_id, ("break_start", "break_end"), since)
        return bool(rows) and rows[-1]["type"] == "break_start"

    # ---------------------------------------------------------------- ETAs

    async def _etas(self, uow: UnitOfWork, vehicle: Vehicle, now: datetime) -> list[Eta]:
        """The remaining schedule from the vehicle's position, by the independent plan checker."""
        if not vehicle.plan:
            return []
        ids = {v.booking_id for v in vehicle.plan}
        bookings = {b.id: b for b in await uow.bookings.active(ids)}
        # The shift segment the vehicle is in now: a 12-hour window would pick the longest segment
        # of the day (often the afternoon one) and drop the morning's visits, leaving no ETAs.
        snap = build_snapshot([vehicle], bookings, now=now,
                                 window=(now, now + timedelta(seconds=1)),
                                 travel=self.svc.travel)
        if not snap.problem.vehicles:
            return []
        rv = snap.problem.vehicles[0]
        sched = schedule_route(snap.problem, rv, rv.route)
        if sched is None:
            return []
        planned = {(v.booking_id, v.kind): v.planned_at for v in vehicle.plan}
        out = []
        for s in sched:
            b = bookings[s.stop.request_id]
            latest = b.pickup_latest if s.stop.kind == "pickup" else b.dropoff_latest
            out.append(Eta(b.id, s.stop.kind, from_epoch(s.start_s),
                           planned.get((b.id, s.stop.kind), from_epoch(s.start_s)), latest,
                           max(0, s.start_s - to_epoch(latest))))
        return out

    async def etas(self, vehicle_id: str) -> tuple[Vehicle | None, list[Eta]]:
        async with self.svc.uow(readonly=True) as uow:
            v = await uow.vehicles.get(vehicle_id)
            if v is None:
                return None, []
            return v, await self._etas(uow, v, self.svc.clock.now())

    def _risk_events(self, vehicle_id: str, etas: list[Eta]) -> list[Event]:
        """PromiseAtRisk for each booking newly late (once, not on every GPS fix), plus a re-plan trigger."""
        flagged = self._flagged.setdefault(vehicle_id, set())
        now_risky = {e.booking_id for e in etas if e.at_risk}
        out: list[Event] = []
        for e in etas:
            if e.at_risk and e.booking_id not in flagged:
                out.append(PromiseAtRisk(e.booking_id, vehicle_id, to_epoch(e.eta), to_epoch(e.promised_latest)))
                flagged.add(e.booking_id)
        flagged.intersection_update(now_risky)
        if out:
            out.append(ReplanRequested(vehicle_id, "delay"))
        return out

    def _eta_event(self, vehicle: Vehicle, etas: list[Eta], at: datetime) -> EtasUpdated:
        return EtasUpdated(
            vehicle.id, vehicle.plan_version, to_epoch(at),
            tuple((e.booking_id, e.kind, to_epoch(e.eta), to_epoch(e.planned_at),
                   to_epoch(e.promised_latest), e.late_s) for e in etas),
        )

    async def refresh_etas(self, vehicle_id: str) -> EtasUpdated | None:
        """Recompute and publish a vehicle's ETAs (after a plan change), flagging new risks."""
        v, etas = await self.etas(vehicle_id)
        if v is None:
            return None
        ev = self._eta_event(v, etas, self.svc.clock.now())
        risks = [e for e in self._risk_events(v.id, etas) if not isinstance(e, ReplanRequested)]
        await self.svc.uow.publish([ev, *risks])
        return ev
