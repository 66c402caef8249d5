"""Live operations: driver events applied exactly once, plans trimmed as work is done, live ETAs.

Every tablet event goes through ``report()``: one unit of work that looks up the client event id
in ``device_events`` (a resent event gets the stored answer, ``duplicate``), applies the change
through the aggregates (the booking state machine, the vehicle plan) and stores the answer in the
same transaction. A rejected event is not stored, so resending it later is judged again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from routing.traveltime import haversine_m
from transit import deliveries, errors
from transit.booking import Booking, BookingStatus
from transit.clock import from_epoch, to_epoch
from transit.device_log import DeviceEventRepository
from transit.events import DeliveryChanged, Event, PromiseAtRisk
from transit.handlers import Services, replan_vehicle, vehicle_etas
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
    lat: float | None = None  # where the tablet was when the driver pressed 到着 (optional)
    lon: float | None = None


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


class ArrivalTooEarly(errors.DomainError):
    """An arrival long before the pickup window, reported away from the stop."""

    kind = "conflict"


class ArrivalOutOfOrder(errors.DomainError):
    """An arrival timed before the booking existed or before the vehicle's last acknowledged event."""

    kind = "conflict"


class EventInFuture(errors.DomainError):
    kind = "invalid"


class WrongEventForBooking(errors.DomainError):
    """A parcel event on a ride, or a boarding event on a parcel delivery."""

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


@dataclass
class Operations:
    """Driver-event use cases, bound to the service collaborators."""

    svc: Services
    handover_secret: str = "dev-handover-secret"

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
            vehicle = await uow.vehicles.get(cmd.vehicle_id, for_update=True)
            if vehicle is None:
                raise errors.NotFound("その車両は見つかりません。", "That vehicle does not exist.")
            try:
                at = self._event_time(cmd, now)
                result, payload = await self._apply(uow, vehicle, cmd, at, after)
            except (WrongHandoverCode, deliveries.HandoverLockedError) as e:
                # A wrong code counts (and the fifth locks the delivery): that is committed, the
                # event itself is not stored, so the driver may type the code again.
                await uow.commit()
                return EventResult("rejected", e.code, e.message_ja, e.message_en)
            except errors.DomainError as e:
                # leaving without commit rolls the attempt back; a rejection is not stored
                return EventResult("rejected", e.code, e.message_ja, e.message_en)
            if not any(isinstance(e, EtasUpdated) for e in after):
                after.append(eta_event(vehicle))  # every event refreshes the tablet's and riders' ETAs
            payload = {**payload, "at": at.isoformat()}
            await log_.add(cmd.client_event_id, cmd.vehicle_id, type_, payload, now, result.as_dict())
            await uow.commit()
        if after:
            await svc.uow.publish(after)
        return result

    # ---------------------------------------------------------------- the events

    def _event_time(self, cmd: DriverEvent, now: datetime) -> datetime:
        """The event's own time, on the server's clock: never in the future beyond the tolerance."""
        if cmd.at is None:
            return now
        tol = self.svc.rules.event_future_tolerance_s
        if cmd.at > now + timedelta(seconds=tol):
            raise EventInFuture(
                f"イベントの時刻が未来です(許容{tol}秒)。端末の時計を確認してください。",
                f"The event time is in the future (tolerance {tol} s). Please check the tablet's clock.",
                tolerance_s=tol,
            )
        return min(cmd.at, now)

    async def _check_arrival(self, uow: UnitOfWork, vehicle: Vehicle, b: Booking, cmd: ReportArrival,
                             at: datetime) -> None:
        """Arrival rules: not before the booking or the vehicle's last event; not long before the window
        unless the reported position is near the pickup."""
        if b.created_at is not None and at < b.created_at:
            raise ArrivalOutOfOrder(
                "到着時刻が予約の作成より前です。", "The arrival time is before the booking was made.",
                booking_id=b.id)
        last = await self.last_event_at(uow, vehicle.id)
        if last is not None and at < last:
            raise ArrivalOutOfOrder(
                "到着時刻がこの車両の前回のイベントより前です。",
                "The arrival time is before this vehicle's last recorded event.", booking_id=b.id)
        rules = self.svc.rules
        early = int((b.pickup_earliest - at).total_seconds())
        if early > rules.arrival_early_s:
            lat, lon = (cmd.lat, cmd.lon) if cmd.lat is not None and cmd.lon is not None else vehicle.position()
            dist = geodesic_m(lat, lon, b.origin.lat, b.origin.lon)
            if dist > rules.arrival_near_m:
                mins = rules.arrival_early_s // 60
                raise ArrivalTooEarly(
                    f"乗車時間帯の{mins}分以上前で、乗車場所から{rules.arrival_near_m}m以上離れています。"
                    "まだ「到着」にできません。",
                    f"More than {mins} min before the pick-up window and over {rules.arrival_near_m} m from "
                    "the stop: arrival cannot be recorded yet.",
                    booking_id=b.id, window_start=b.pickup_earliest.isoformat(), distance_m=round(dist),
                )

    @staticmethod
    def _check_kind(b: Booking, cmd: DriverEvent) -> None:
        parcel_event = isinstance(cmd, (ReportParcelPickedUp, ReportParcelHandedOver))
        ride_event = isinstance(cmd, (ReportBoarded, ReportNoShow, ReportDropOff))
        if parcel_event and b.kind == "ride":
            raise WrongEventForBooking(
                "この予約は乗車の予約です。荷物の操作はできません。",
                "This booking is a ride: parcel events do not apply.", booking_kind=b.kind)
        if ride_event and b.kind != "ride":
            raise WrongEventForBooking(
                "この予約は荷物の配達です。乗車・降車ではなく荷物の操作をしてください。",
                "This booking is a parcel delivery: use the parcel events, not boarding.", booking_kind=b.kind)

    async def _booking(self, uow: UnitOfWork, vehicle: Vehicle, booking_id: str) -> Booking:
        b = await uow.bookings.get(booking_id)
        if b is None or b.vehicle_id != vehicle.id:
            raise NotOnThisVehicle()
        return b

    async def _apply(self, uow: UnitOfWork, vehicle: Vehicle, cmd: DriverEvent, at: datetime,
                     after: list[Event]) -> tuple[EventResult, dict[str, Any]]:
        now = self.svc.clock.now()
        if isinstance(cmd, ReportPosition):
            payload = {"lat": cmd.lat, "lon": cmd.lon, "heading": cmd.heading, "speed_kmh": cmd.speed_kmh}
            if vehicle.position_at is not None and at < vehicle.position_at:
                # an older fix replayed after a newer one: kept in the log, not applied
                return EventResult("applied", None, "記録しました(古い位置)。", "Recorded (older fix)."), payload
            vehicle.lat, vehicle.lon, vehicle.position_at = cmd.lat, cmd.lon, at
            await vehicle_etas(uow, self.svc, vehicle, now)
            if any(isinstance(e, PromiseAtRisk) for e in vehicle.events):
                after.append(ReplanRequested(vehicle.id, "delay"))
            await uow.vehicles.save(vehicle)
            after.append(VehicleMoved(vehicle.id, cmd.lat, cmd.lon, to_epoch(at)))
            after.append(eta_event(vehicle))
            return APPLIED, payload

        if isinstance(cmd, ReportArrival):
            ids = list(cmd.booking_ids)
            if not ids:
                ids = self._next_at_stop(vehicle, cmd.stop_id)
            if not ids:
                raise errors.InvalidInput(
                    "この停留所での予定が見つかりません。", "No planned visit at this stop.")
            if cmd.lat is not None and cmd.lon is not None and (vehicle.position_at is None or at >= vehicle.position_at):
                vehicle.lat, vehicle.lon, vehicle.position_at = cmd.lat, cmd.lon, at  # it is at the stop
            arriving = []
            for bid in ids:
                b = await self._booking(uow, vehicle, bid)
                if b.status is BookingStatus.CONFIRMED and any(
                    v.booking_id == bid and v.kind == "pickup" for v in vehicle.plan
                ):
                    await self._check_arrival(uow, vehicle, b, cmd, at)
                    arriving.append(b)
            for b in arriving:
                b.vehicle_arriving()
                await uow.bookings.save(b, now=now)
            if arriving:  # pinned from now on: the plan version rises with them first
                await replan_vehicle(uow, self.svc, vehicle, "arrived", tuple(b.id for b in arriving))
            return APPLIED, {"stop_id": cmd.stop_id, "booking_ids": ids}

        if isinstance(cmd, (ReportBoarded, ReportParcelPickedUp)):
            b = await self._booking(uow, vehicle, cmd.booking_id)
            self._check_kind(b, cmd)
            b.board(at)
            if b.kind == "delivery":
                row = await uow.deliveries.get(b.id)
                if row is not None:  # the store and the resident are told it left the store
                    b.events.append(DeliveryChanged(b.id, row["store_id"], "picked_up", vehicle.id))
            await uow.bookings.save(b, now=now)
            await replan_vehicle(uow, self.svc, vehicle, "boarded", (b.id,))
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
            self._check_kind(b, cmd)
            arrived = await self.arrival_time(uow, vehicle.id, b.id)
            if arrived is None:
                raise NotArrived()
            wait = self.svc.rules.no_show_wait_s
            # on the server's clock, from the later of the arrival and the window start
            waited = int((now - max(arrived, b.pickup_earliest)).total_seconds())
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
            await replan_vehicle(uow, self.svc, vehicle, "no_show", (b.id,))
            after.append(ReplanRequested(vehicle.id, "no_show", b.id))
            return APPLIED, {"booking_id": b.id, "waited_s": waited}

        if isinstance(cmd, (ReportDropOff, ReportParcelHandedOver)):
            b = await self._booking(uow, vehicle, cmd.booking_id)
            self._check_kind(b, cmd)
            if b.kind == "delivery":
                # The recipient's code, counted: five wrong ones lock the delivery (see deliveries.py).
                outcome, row = await deliveries.check_handover(
                    uow, self.svc, vehicle, b, getattr(cmd, "code", ""), self.handover_secret, now)
                if outcome == "wrong":
                    left = deliveries.MAX_HANDOVER_FAILURES - row["handover_failures"]
                    if left <= 0:
                        raise deliveries.HandoverLockedError()
                    raise WrongHandoverCode(
                        f"受け渡しコードが違います。お客様にもう一度ご確認ください(あと{left}回)。",
                        f"The handover code does not match. Please ask the recipient again ({left} tries left).",
                        attempts_left=left,
                    )
                b.complete(at)
                b.events.append(DeliveryChanged(b.id, row["store_id"], "delivered", vehicle.id))
            elif isinstance(cmd, ReportParcelHandedOver):
                raise errors.InvalidInput("この予約は配達ではありません。", "This booking is not a delivery.")
            else:
                b.complete(at)
            await uow.bookings.save(b, now=now)
            await replan_vehicle(uow, self.svc, vehicle, "dropped_off", (b.id,))
            return APPLIED, {"booking_id": b.id}

        if isinstance(cmd, ReportBreak):
            await vehicle_etas(uow, self.svc, vehicle, now)
            await uow.vehicles.save(vehicle)
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

    async def last_event_at(self, uow: UnitOfWork, vehicle_id: str) -> datetime | None:
        """When the vehicle's latest acknowledged event (other than a GPS fix) happened."""
        since = self.svc.clock.now() - timedelta(days=1)
        rows = await DeviceEventRepository(uow.connection).for_vehicle(vehicle_id, ACKED_TYPES, since)
        times = [datetime.fromisoformat(r["payload"]["at"]) for r in rows if (r["payload"] or {}).get("at")]
        return max(times) if times else None

    # ---------------------------------------------------------------- ETAs

    async def etas(self, vehicle_id: str) -> tuple[Vehicle | None, list[Eta]]:
        """The vehicle's stored ETAs (recomputed by every position, event and plan change)."""
        async with self.svc.uow(readonly=True) as uow:
            v = await uow.vehicles.get(vehicle_id)
        if v is None:
            return None, []
        return v, stored_etas(v)

    async def refresh_etas(self, vehicle_id: str) -> EtasUpdated | None:
        """Recompute a vehicle's ETAs now (e.g. on a timer while it stands still) and publish them."""
        async with self.svc.uow() as uow:
            v = await uow.vehicles.get(vehicle_id, for_update=True)
            if v is None:
                return None
            await vehicle_etas(uow, self.svc, v, self.svc.clock.now())
            await uow.vehicles.save(v)
            await uow.commit()
        ev = eta_event(v)
        await self.svc.uow.publish([ev])
        return ev


ACKED_TYPES = ("arrived", "boarded", "no_show", "dropped_off", "parcel_picked_up", "parcel_handed_over",
               "break_start", "break_end")


def stored_etas(v: Vehicle) -> list[Eta]:
    planned = {(x.booking_id, x.kind): x.planned_at for x in v.plan}
    out = []
    for r in (v.etas or {}).get("etas", []):
        eta = from_epoch(r["eta_s"])
        out.append(Eta(r["booking_id"], r["kind"], eta, planned.get((r["booking_id"], r["kind"]), eta),
                       from_epoch(r["latest_s"]), r["late_s"]))
    return out


def eta_event(v: Vehicle) -> EtasUpdated:
    """The vehicle's stored ETAs as the derived (not logged) event the hub pushes."""
    computed = (v.etas or {}).get("computed_s", 0)
    return EtasUpdated(
        v.id, v.plan_version, computed,
        tuple((e.booking_id, e.kind, to_epoch(e.eta), to_epoch(e.planned_at), to_epoch(e.promised_latest),
               e.late_s) for e in stored_etas(v)),
    )


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(haversine_m(lat1, lon1, lat2, lon2))
