"""Use cases: async handlers that take a unit of work. Every entry point calls these."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from routing import check as rcheck
from routing import insertion as ins
from routing import model as rm
from routing.schedule import Schedule, evaluate
from routing.traveltime import TravelTimeProvider
from transit import errors, numbers
from transit.booking import ACTIVE, Booking, BookingStatus, Place
from transit.clock import Clock, from_epoch, to_epoch
from transit.commands import Actor, CancelBooking, ConfirmOffer, FindBookings, PlaceRef, RequestRide
from transit.events import DeliveryChanged, PromiseAtRisk, PromiseBroken, PromiseCleared, RideBooked
from transit.planning import (
    Snapshot,
    buffered_latest,
    build_snapshot,
    relax_to_schedule,
    relevant_booking_ids,
    service_times,
    time_route,
    visits_for,
)
from transit.reference_data import ServiceArea, ServiceRules
from transit.stores import Store, delivery_timing, load_stores
from transit.uow import UnitOfWork, UnitOfWorkFactory
from transit.vehicle import Vehicle, Visit

log = logging.getLogger("okuma.plans")
NEW = "__new__"
MAX_DELIVERY_PARCELS = 6  # parcel units in one delivery (a minibus carries 6)
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # days the booking search accepts
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(9)}"


@dataclass
class PlanStats:
    """What the one plan writer did (the simulator and the console read these counters)."""

    stored: int = 0
    rejected: int = 0
    promises_broken: int = 0
    last_rejection: tuple[str, ...] = ()


@dataclass
class Services:
    """The concrete collaborators the handlers need (picked by the composition root)."""

    rules: ServiceRules
    area: ServiceArea
    travel: TravelTimeProvider
    clock: Clock
    uow: UnitOfWorkFactory
    new_id: Callable[[str], str] = field(default=new_id)
    plan_stats: PlanStats = field(default_factory=PlanStats)
    stores: Mapping[str, Store] = field(default_factory=load_stores)


@dataclass(frozen=True)
class Offer:
    id: str
    vehicle_id: str
    origin: Place
    destination: Place
    pickup_earliest: datetime
    pickup_latest: datetime
    dropoff_latest: datetime
    planned_pickup: datetime
    planned_dropoff: datetime
    expires_at: datetime
    party_size: int
    wheelchairs: int
    parcels: int
    passenger_name: str | None = None  # the registered rider's name when a card was given
    kind: str = "ride"
    store_id: str | None = None
    dropoff_earliest: datetime | None = None  # a delivery: its window is [dropoff_earliest, dropoff_latest]
    temperature: str | None = None


# ----------------------------------------------------------------------------------- helpers


async def _place(uow: UnitOfWork, svc: Services, ref: Any, actor: Actor, which: str) -> Place:
    if ref.stop_id:
        stop = await uow.stops.get(ref.stop_id)
        if stop is None:
            raise errors.UnknownStop(stop_id=ref.stop_id, field=which)
        return Place(stop["lat"], stop["lon"], stop["id"])
    if ref.lat is None or ref.lon is None:
        raise errors.InvalidInput(
            f"{'乗る' if which == 'origin' else '降りる'}場所を停留所から選んでください。",
            f"Please choose the {which} stop.", field=which,
        )
    if not (actor.door_to_door or actor.role in ("operator", "admin")):
        raise errors.Forbidden(
            "ご自宅前などへの送迎は登録された方のみご利用いただけます。停留所を選んでください。",
            "Door-to-door rides are for registered riders only. Please choose a stop.",
        )
    if not svc.area.contains(ref.lat, ref.lon):
        raise errors.OutsideServiceArea(field=which)
    address = (getattr(ref, "address", None) or "").strip() or None
    return Place(ref.lat, ref.lon, None, address)


async def _card_holder(uow: UnitOfWork, card: str | None, actor: Actor) -> dict[str, Any] | None:
    """The registered rider whose card a kiosk or the desk was shown; None when no card was given.

    A rider booking for themselves keeps their own account (their card number is just noted)."""
    if not card or actor.role not in ("kiosk", "operator", "admin"):
        return None
    row = await uow.accounts.by_rider_card(card.strip().upper())
    if row is None or row["role"] != "rider" or row["disabled"]:
        raise errors.UnknownRiderCard(field="rider_card")
    return row


async def _family_member(uow: UnitOfWork, actor: Actor, member_id: str) -> dict[str, Any]:
    """The member's account, if the actor (a rider) has an active family link to them."""
    link = await uow.riders.link(actor.account_id, member_id) if actor.role == "rider" else None
    member = await uow.accounts.get(member_id)
    if link is None or link["revoked_at"] is not None or member is None or member["disabled"]:
        raise errors.Forbidden("このご家族の代わりに予約する連携がありません。", "You are not linked to book for this person.")
    return member


def _check_time(svc: Services, when: datetime, now: datetime) -> None:
    rules = svc.rules
    if when < now - timedelta(minutes=1):
        raise errors.TimeInPast()
    if when > now + timedelta(seconds=rules.booking_horizon_s):
        raise errors.TooFarAhead(
            f"予約は{rules.booking_horizon_days}日先までです。",
            f"Bookings open {rules.booking_horizon_days} days ahead.",
        )
    local = when.astimezone(rules.tz)
    sod = local.hour * 3600 + local.minute * 60 + local.second
    day = DAY_NAMES[local.weekday()]
    if day not in rules.service_days or not (rules.service_start_s <= sod <= rules.service_end_s):
        start = rules.service_start_local.strftime("%H:%M")
        end = rules.service_end_local.strftime("%H:%M")
        raise errors.OutsideServiceHours(
            f"運行時間は {start}〜{end} です。", f"Service hours are {start} to {end}.",
            service_start=start, service_end=end,
        )


def _check_party(svc: Services, cmd: RequestRide) -> None:
    limit = svc.rules.max_party_size
    if cmd.party_size < 1 or cmd.party_size > limit:
        raise errors.PartyTooLarge(
            f"1回の予約は1〜{limit}人です。", f"One booking carries 1 to {limit} people.",
            max_party_size=limit,
        )
    if cmd.wheelchairs < 0 or cmd.wheelchairs > cmd.party_size:
        raise errors.InvalidInput(
            "車いすの数は人数以下にしてください。", "Wheelchairs cannot exceed the party size."
        )
    if cmd.parcels < 0:
        raise errors.InvalidInput("荷物の数が正しくありません。", "The parcel count is not valid.")


def _windows(svc: Services, mode: str, when: datetime, direct_s: int, max_ride_s: int,
             service_s: int) -> tuple[rm.TimeWindow, rm.TimeWindow]:
    t = to_epoch(when)
    wait = svc.rules.max_wait_s
    if mode == "arrive_by":
        latest_drop = t
        earliest_pick = t - max_ride_s - service_s - wait
        latest_pick = t - direct_s - service_s
        return (
            rm.TimeWindow(earliest_pick, max(earliest_pick, latest_pick)),
            rm.TimeWindow(earliest_pick, latest_drop),
        )
    return (
        rm.TimeWindow(t, t + wait),
        rm.TimeWindow(t, t + wait + service_s + max_ride_s),
    )


async def load_snapshot(uow: UnitOfWork, svc: Services, vehicles: list[Vehicle],
                        window: tuple[datetime, datetime], extra: Sequence[Place] = ()) -> Snapshot:
    """The plans of ``vehicles`` around ``window`` with the bookings on them, as a routing Problem."""
    ids = relevant_booking_ids(vehicles, window)
    bookings = {b.id: b for b in await uow.bookings.active(ids)} if ids else {}
    # Planning is CPU work: off the event loop, so pushes to tablets and other requests go on.
    snap = await asyncio.to_thread(
        build_snapshot, vehicles, bookings, now=svc.clock.now(), window=window, travel=svc.travel,
        extra=[(p.lat, p.lon) for p in extra], buffer_s=svc.rules.promise_buffer_s,
    )
    return snap


def _alternatives(snap: Snapshot, req: rm.Request) -> list[int]:
    try:
        return list(ins.nearest_feasible_times(snap.problem, req))
    except Exception:  # noqa: BLE001 - alternatives are a courtesy; never fail the answer for them
        return []


# ----------------------------------------------------------------------------------- offers


async def request_offer(cmd: RequestRide, actor: Actor, svc: Services) -> Offer:
    """Find the best insertion for a ride or a delivery and hold it as an offer for a short time.

    A ride promises a pickup window and a latest drop-off; a delivery promises its window (the
    resident's choice) and is picked up at the store no earlier than the order can be ready.
    """
    if actor.role not in ("rider", "kiosk", "operator", "admin", "maas"):
        raise errors.Forbidden()
    if cmd.kind not in ("ride", "delivery"):
        raise errors.InvalidInput("kind は ride か delivery です。", "kind must be ride or delivery.", field="kind")
    delivery = cmd.kind == "delivery"
    if delivery:
        _check_delivery(svc, cmd)
    else:
        _check_party(svc, cmd)
    now = svc.clock.now()
    store = svc.stores[cmd.store_id] if delivery and cmd.store_id else None
    async with svc.uow(readonly=True) as uow:
        if store is not None:
            origin = await _place(uow, svc, PlaceRef(stop_id=store.stop_id), actor, "origin")
        else:
            origin = await _place(uow, svc, cmd.origin, actor, "origin")
        destination = await _place(uow, svc, cmd.destination, actor, "destination")
        own_stop = destination.stop_id if delivery else origin.stop_id
        if actor.role == "kiosk" and own_stop != actor.stop_id:
            raise errors.Forbidden(
                "この端末からは、この停留所からの乗車・この停留所へのお届けのみ予約できます。",
                "This kiosk books rides from, and deliveries to, its own stop only.",
            )
        if (origin.lat, origin.lon) == (destination.lat, destination.lon):
            raise errors.SameOriginDestination()
        holder = await _card_holder(uow, cmd.rider_card, actor)
        passenger_name = cmd.passenger_name
        if cmd.on_behalf_of:
            member = await _family_member(uow, actor, cmd.on_behalf_of)
            passenger_name = passenger_name or member["name"]
        if delivery:
            assert cmd.window_start is not None and cmd.window_end is not None
            when = cmd.window_start
            _check_time(svc, cmd.window_start, now)
            _check_time(svc, cmd.window_end, now)
        elif cmd.time_mode == "now" or cmd.time is None:
            if cmd.time_mode != "now":
                raise errors.InvalidInput("時刻を指定してください。", "Please give a time.", field="time")
            when = now + timedelta(seconds=svc.rules.min_lead_s)
        else:
            when = cmd.time
        if not delivery:
            _check_time(svc, when, now)
        horizon = (when - timedelta(hours=2), when + timedelta(hours=2))
        vehicles = await uow.vehicles.list(horizon)
        party, chairs = (0, 0) if delivery else (cmd.party_size, cmd.wheelchairs)
        service_s, drop_s = service_times(svc.rules, party, chairs, cmd.parcels)
        snap = await load_snapshot(uow, svc, vehicles, horizon, [origin, destination])
        o = snap.locations.index(origin.lat, origin.lon)
        d = snap.locations.index(destination.lat, destination.lon)
        direct = snap.problem.travel(o, d)
        if store is not None:
            assert cmd.window_start is not None and cmd.window_end is not None
            timing = delivery_timing(
                store, tz=svc.rules.tz, now=now, window_start=cmd.window_start, window_end=cmd.window_end,
                temperature=cmd.temperature, direct_s=direct, service_s=service_s,
                chilled_max_s=svc.rules.chilled_max_out_of_store_s)
            max_ride = timing.max_ride_s
            pw = rm.TimeWindow(timing.pickup_earliest_s, timing.pickup_latest_s)
            dw = rm.TimeWindow(timing.window_start_s, timing.window_end_s)
        else:
            max_ride = svc.rules.max_ride_s(direct)
            pw, dw = _windows(svc, cmd.time_mode, when, direct, max_ride, service_s)
            if cmd.time_mode == "arrive_by" and to_epoch(from_epoch(pw.latest_s)) < to_epoch(now):
                raise errors.TimeInPast(
                    "その到着時刻には間に合いません。", "That arrival time can no longer be reached."
                )
        req = rm.Request(NEW, o, d, rm.Load(party, chairs, cmd.parcels), pw, dw, max_ride, service_s, drop_s)
        # inserted inside the planning buffer (promise_buffer_s); the promise is made from ``req``
        bpl, bdl = buffered_latest(pw.earliest_s, pw.latest_s, dw.latest_s, svc.rules.promise_buffer_s)
        planned_req = replace(req, pickup_window=rm.TimeWindow(pw.earliest_s, bpl),
                              dropoff_window=rm.TimeWindow(dw.earliest_s, max(dw.earliest_s, bdl)))
        result = await asyncio.to_thread(ins.find_insertions, snap.problem, planned_req, max_options=3)
        if not result.options:
            cause = result.cause.value if result.cause else "no_feasible_insertion"
            alts = ([from_epoch(t) for t in await asyncio.to_thread(_alternatives, snap, req)]
                    if cause != "no_vehicle_fits" else [])
            if cause == "no_vehicle_fits":
                raise errors.NoRideAvailable(
                    "この人数・車いす・荷物を一度に乗せられる車両がありません。",
                    "No vehicle can carry this party, wheelchair or parcel load at once.",
                    cause=cause, alternatives=[],
                )
            if delivery:
                # the same shift moves the window: the alternatives are window starts
                lead = timedelta(seconds=dw.earliest_s - pw.earliest_s)
                raise errors.NoRideAvailable(
                    "そのお届け時間に運べる車両がありません。ほかの時間を選んでください。",
                    "No minibus can bring it in that window. Please choose another time.",
                    cause=cause, alternatives=[(a + lead).isoformat() for a in alts])
            raise errors.NoRideAvailable(cause=cause, alternatives=[a.isoformat() for a in alts])
        best = result.options[0]
        if delivery:
            # A delivery's promise is its window: the pickup may move anywhere after "ready".
            pickup_window, latest_drop = pw, dw.latest_s
        else:
            pickup_window, latest_drop = ins.make_promise(best, req, pickup_window_s=svc.rules.pickup_window_s)
        offer = Offer(
            id=svc.new_id("off"),
            vehicle_id=best.vehicle_id,
            origin=origin,
            destination=destination,
            pickup_earliest=from_epoch(pickup_window.earliest_s),
            pickup_latest=from_epoch(pickup_window.latest_s),
            dropoff_latest=from_epoch(latest_drop),
            planned_pickup=from_epoch(best.pickup_s),
            planned_dropoff=from_epoch(best.dropoff_s),
            expires_at=now + timedelta(seconds=svc.rules.offer_ttl_s),
            party_size=party,
            wheelchairs=chairs,
            parcels=cmd.parcels,
            kind=cmd.kind,
            store_id=store.id if store else None,
            dropoff_earliest=from_epoch(dw.earliest_s) if delivery else None,
            temperature=cmd.temperature if delivery else None,
        )
        vehicle = snap.vehicles[best.vehicle_id]
    # Planning read the plans without holding the writer; storing the offer is a short write.
    async with svc.uow() as uow:
        await uow.offers.add(
            dict(
                id=offer.id,
                account_id=actor.account_id,
                request=dict(
                    origin=[origin.lat, origin.lon, origin.stop_id, origin.address],
                    destination=[destination.lat, destination.lon, destination.stop_id, destination.address],
                    party_size=party,
                    wheelchairs=chairs,
                    parcels=cmd.parcels,
                    # A registered rider's card: the booking is theirs, under the name they registered.
                    passenger_name=holder["name"] if holder else passenger_name,
                    rider_account_id=holder["id"] if holder else None,
                    contact_phone=cmd.contact_phone,
                    rider_card=holder["rider_card"] if holder else cmd.rider_card,
                    driver_note=(cmd.driver_note or "").strip() or None,
                    on_behalf_of=cmd.on_behalf_of,
                    kind=cmd.kind,
                    max_ride_s=max_ride,
                    pickup_service_s=service_s,
                    dropoff_service_s=drop_s,
                    **(dict(store_id=offer.store_id, order_number=cmd.order_number,
                            shopping_list=cmd.shopping_list, temperature=cmd.temperature,
                            dropoff_earliest_s=dw.earliest_s) if delivery else {}),
                ),
                vehicle_id=offer.vehicle_id,
                plan_version=vehicle.plan_version,
                pickup_earliest=offer.pickup_earliest,
                pickup_latest=offer.pickup_latest,
                dropoff_latest=offer.dropoff_latest,
                planned_pickup=offer.planned_pickup,
                planned_dropoff=offer.planned_dropoff,
                created_at=now,
                expires_at=offer.expires_at,
            )
        )
        await uow.commit()
    return replace(offer, passenger_name=holder["name"] if holder else cmd.passenger_name)


def _check_delivery(svc: Services, cmd: RequestRide) -> None:
    if not cmd.store_id or cmd.store_id not in svc.stores:
        raise errors.InvalidInput("お店を選んでください。", "Please choose a store.", field="store_id")
    if not (cmd.order_number or (cmd.shopping_list or "").strip()):
        raise errors.InvalidInput(
            "お店の注文番号か、買い物メモを入れてください。",
            "Please give the store's order number or a short shopping list.", field="order_number",
        )
    if cmd.window_start is None or cmd.window_end is None:
        raise errors.InvalidInput("お届け時間を選んでください。", "Please choose a delivery window.",
                                  field="window_start")
    if cmd.parcels < 1 or cmd.parcels > MAX_DELIVERY_PARCELS:
        raise errors.InvalidInput(
            f"荷物の数は1〜{MAX_DELIVERY_PARCELS}個です。",
            f"A delivery has 1 to {MAX_DELIVERY_PARCELS} parcel units.", field="parcels",
        )


def _merge_plan(vehicle: Vehicle, new_visits: list[Visit], keep_out: set[str]) -> list[Visit]:
    """The vehicle's new plan: the re-planned part plus visits of other shifts, in time order."""
    planned_ids = {v.booking_id for v in new_visits}
    others = [v for v in vehicle.plan if v.booking_id not in planned_ids and v.booking_id not in keep_out]
    return sorted(new_visits + others, key=lambda v: v.planned_at)


class PlanRejected(errors.DomainError):
    kind = "conflict"
    message_ja = "新しい運行計画が検査に通らなかったため、保存しませんでした。"
    message_en = "The new plan failed the independent check and was not stored."

    def __init__(self, violations: Sequence[Any]) -> None:
        super().__init__(violations=[f"{v.kind}: {v.detail}" for v in violations])
        self.violations = list(violations)


def _pinned_violations(snap: Snapshot, vehicle_id: str, route: Sequence[rm.Stop]) -> list[Any]:
    """A plan takes a rider pinned to another vehicle. (A pinned rider that is not among the next
    stops of their own vehicle is the checker's ``pinned_moved``, judged in :func:`_check_timed`.)"""
    out = []
    here = {s.request_id for s in route}
    for other in snap.problem.vehicles:
        if other.id != vehicle_id:
            for rid in set(other.pinned) & here:
                out.append(rcheck.Violation("pinned", vehicle_id, rid, f"pinned to {other.id}"))
    return out


def _check_timed(snap: Snapshot, rv: rm.Vehicle, sched: Schedule,
                 requests: Mapping[str, rm.Request]) -> list[Any]:
    """The independent checker on exactly the schedule that would be stored."""
    ids = {s.request_id for s in sched.stops} | set(rv.onboard)
    sub = rm.Problem((rv,), {i: requests[i] for i in ids}, snap.problem.travel_s)
    return rcheck.check(sub, rm.Solution(routes=(sched.to_route(rv.id),)))


def _record_relaxed(svc: Services, b: Booking, vehicle_id: str, sched: Schedule, now: datetime) -> None:
    """A stored time past the booking's promise: widen the promise on the booking to exactly what
    the stored plan needs and flag it broken (once), telling everyone. Times inside the promise
    (planning's buffer used up by a delay, ``promise_buffer_s``) break nothing and are not recorded.

    The widening follows the stored plan: a later plan that needs less takes the rest back (so a
    re-plan cannot spend a rider's or a chilled parcel's widened limit on others), and one that keeps
    the promise again clears the flag (``PromiseCleared``, reason ``on_time``, once). A late pickup
    that already happened stays recorded: that part of the promise is broken for good."""
    pl, dl = to_epoch(b.pickup_latest), to_epoch(b.dropoff_latest)
    old = b.relaxed or {}
    pick = drop = None
    pick_end = to_epoch(b.picked_up_at) if b.picked_up_at else None
    for stop, start, dep in zip(sched.stops, sched.start_s, sched.departure_s):
        if stop.request_id != b.id:
            continue
        if stop.kind == "pickup":
            pick, pick_end = start, dep
        else:
            drop = start
    ride = drop - pick_end if drop is not None and pick_end is not None else 0
    picked_up = b.status is BookingStatus.ON_BOARD or b.picked_up_at is not None
    relaxed = {"pickup_latest_s": max(pl, old.get("pickup_latest_s", pl)) if picked_up
               else max(pl, pick if pick is not None else pl),
               "dropoff_latest_s": max(dl, drop if drop is not None else old.get("dropoff_latest_s", dl)),
               "max_ride_s": max(b.max_ride_s, ride if drop is not None else old.get("max_ride_s", b.max_ride_s))}
    if relaxed == {"pickup_latest_s": pl, "dropoff_latest_s": dl, "max_ride_s": b.max_ride_s}:
        if b.relaxed is not None:
            b.relaxed = None
        if b.promise_broken_at is not None:
            b.promise_broken_at = None
            b.events.append(PromiseCleared(b.id, vehicle_id, "on_time"))
            log.info("promise kept again: booking %s on %s", b.id, vehicle_id)
        return
    if b.relaxed != relaxed:
        b.relaxed = relaxed
    if b.promise_broken_at is None:
        b.promise_broken_at = now
        svc.plan_stats.promises_broken += 1
        kind: rm.StopKind = ("pickup" if relaxed["pickup_latest_s"] > pl and b.status is not BookingStatus.ON_BOARD
                             else "dropoff")
        latest = dl if kind == "dropoff" else pl
        at = pick if kind == "pickup" else drop
        b.events.append(PromiseBroken(b.id, vehicle_id, kind, latest,
                                      at if at is not None else relaxed[f"{kind}_latest_s"]))
        log.warning("promise broken by reality: booking %s on %s (%s), planned with the earliest "
                    "feasible time instead", b.id, vehicle_id, kind)


async def apply_route(uow: UnitOfWork, svc: Services, snap: Snapshot, vehicle_id: str,
                      route: tuple[rm.Stop, ...], requests: dict[str, rm.Request],
                      reason: str, booking_ids: tuple[str, ...],
                      drop: AbstractSet[str] = frozenset(),
                      save_bookings: bool = True, forced: bool = False) -> dict[str, tuple[int, int]]:
    """The one place a vehicle plan is written: time the route with the one scheduler, let the
    independent checker judge exactly that schedule, and store it only if it passes.

    ``forced`` is for routes reality imposes (a driver event): stops already late are widened to
    their times and flagged broken instead of refused. Raises ``PlanRejected`` otherwise (logged,
    counted in ``svc.plan_stats``); nothing is stored then. Returns per booking (pickup, drop-off)
    start times.
    """
    vehicle = snap.vehicles[vehicle_id]
    rv = next(v for v in snap.problem.vehicles if v.id == vehicle_id)
    requests = {**requests, **{k: v for k, v in snap.relaxed.items() if k in requests}}
    sched = time_route(snap, vehicle_id, route, requests)
    violations = _pinned_violations(snap, vehicle_id, route) + _check_timed(snap, rv, sched, requests)
    if violations and forced and not any(v.kind in ("pinned", "capacity", "precedence", "not_served")
                                         for v in violations):
        requests = {**requests, **relax_to_schedule(sched, requests)}
        if sched.end_excess_s:  # running late at the end of the shift: the overrun is recorded, not hidden
            log.warning("vehicle %s will overrun its shift end by %d s (%s)", vehicle_id, sched.end_excess_s, reason)
            rv = replace(rv, shift_end_s=sched.end_arrival_s)
        violations = _check_timed(snap, rv, sched, requests)
    if violations:
        svc.plan_stats.rejected += 1
        svc.plan_stats.last_rejection = tuple(f"{v.kind}: {v.detail}" for v in violations[:5])
        log.warning("plan for %s not stored (%s): %d violation(s): %s", vehicle_id, reason,
                    len(violations), "; ".join(svc.plan_stats.last_rejection))
        raise PlanRejected(violations)
    visits = visits_for(snap, vehicle_id, sched)
    merged = _merge_plan(vehicle, visits, set(drop))
    off = set(snap.alighting.get(vehicle_id, ())) - set(drop)
    if off and rv.pinned and len(visits) >= len(rv.pinned):
        # riders getting off at the stop of the pinned pickups (untimed, see planning.alighting_ids):
        # listed right after those pickups, at the time the vehicle is there
        at = visits[len(rv.pinned) - 1].planned_at
        merged = sorted((replace(x, planned_at=max(x.planned_at, at), arrival_at=max(x.planned_at, at),
                                 departure_at=max(x.planned_at, at)) if x.booking_id in off else x
                         for x in merged), key=lambda x: (x.planned_at, x.booking_id in off))
    vehicle.replace_plan(merged, reason, booking_ids)
    origin = snap.locations.points[rv.start_location]
    vehicle.plan_origin = {"lat": origin.lat, "lon": origin.lon, "at_s": rv.start_time_s,
                           "shift_end_s": rv.shift_end_s, "shift_overrun_s": sched.end_excess_s,
                           "visits": [f"{x.booking_id}:{x.kind}" for x in visits]}
    now = svc.clock.now()
    times: dict[str, list[int]] = {}
    for stop, start in zip(sched.stops, sched.start_s):
        times.setdefault(stop.request_id, [0, 0])[0 if stop.kind == "pickup" else 1] = start
    for bid, (p, d) in times.items():
        b = snap.bookings.get(bid)
        if b is None:
            continue
        before = (b.planned_pickup, b.planned_dropoff, b.relaxed, b.promise_broken_at)
        if p and b.status is not BookingStatus.ON_BOARD:
            b.planned_pickup = from_epoch(p)
        if d:
            b.planned_dropoff = from_epoch(d)
        _record_relaxed(svc, b, vehicle_id, sched, now)
        if before != (b.planned_pickup, b.planned_dropoff, b.relaxed, b.promise_broken_at) and (
            save_bookings or bid not in booking_ids
        ):
            await uow.bookings.save_assignment(b, now=now)
    update_etas(vehicle, sched, snap.bookings, now)
    await uow.vehicles.save(vehicle)
    svc.plan_stats.stored += 1
    return {k: (v[0], v[1]) for k, v in times.items()}


def _eta_rows(sched: Schedule, bookings: Mapping[str, Booking]) -> list[dict[str, Any]]:
    rows = []
    for stop, start in zip(sched.stops, sched.start_s):
        b = bookings.get(stop.request_id)
        if b is None:
            continue
        latest = to_epoch(b.pickup_latest if stop.kind == "pickup" else b.dropoff_latest)
        rows.append({"booking_id": b.id, "kind": stop.kind, "eta_s": start, "latest_s": latest,
                     "late_s": max(0, start - latest)})
    return rows


def update_etas(vehicle: Vehicle, sched: Schedule | None, bookings: Mapping[str, Booking],
                now: datetime) -> None:
    """Store the vehicle's ETAs (the one schedule from its latest position now) and flag changes once.

    A booking whose ETA passes its promised latest time gets one ``PromiseAtRisk``; when it is back
    inside, or leaves the plan (ended or moved), one ``PromiseCleared``.
    """
    rows = _eta_rows(sched, bookings) if sched is not None else []
    before = set((vehicle.etas or {}).get("at_risk", []))
    risky: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["late_s"] > 0 and r["booking_id"] not in risky:
            risky[r["booking_id"]] = r
    for bid, r in risky.items():
        if bid not in before:
            vehicle.events.append(PromiseAtRisk(bid, vehicle.id, r["eta_s"], r["latest_s"]))
    planned = {r["booking_id"] for r in rows}
    for bid in sorted(before - set(risky)):
        b = bookings.get(bid)
        why = "on_time" if bid in planned else ("ended" if b is None or not b.active else "moved")
        vehicle.events.append(PromiseCleared(bid, vehicle.id, why))
    vehicle.etas = {
        "computed_s": to_epoch(now),
        "plan_version": vehicle.plan_version,
        "position_at_s": to_epoch(vehicle.position_at) if vehicle.position_at else None,
        "at_risk": sorted(risky),
        "etas": rows,
    }


def timing_window(vehicle: Vehicle, now: datetime) -> tuple[datetime, datetime]:
    """The moment a vehicle's plan is timed for: now when on shift, else its next planned visit."""
    if any(sh.covers(now) for sh in vehicle.shifts):
        return (now, now)
    first = min((x.planned_at for x in vehicle.plan if x.planned_at > now), default=now)
    return (first, first)


async def replan_vehicle(uow: UnitOfWork, svc: Services, vehicle: Vehicle, reason: str,
                         booking_ids: tuple[str, ...] = (), *,
                         window: tuple[datetime, datetime] | None = None) -> None:
    """Re-time a locked vehicle's plan as it now stands (after an event, a cancellation), through the
    one writer. Visits of bookings no longer active leave the plan; riders at their pickup come first.
    """
    now = svc.clock.now()
    window = window or timing_window(vehicle, now)
    ids = {v.booking_id for v in vehicle.plan}
    active = {b.id for b in await uow.bookings.active(ids)} if ids else set()
    gone = ids - active
    snap = await load_snapshot(uow, svc, [vehicle], window)
    rv = next((v for v in snap.problem.vehicles if v.id == vehicle.id), None)
    if rv is None:  # no shift in the window: nothing to time; only drop what is finished
        kept = [v for v in vehicle.plan if v.booking_id not in gone]
        if len(kept) != len(vehicle.plan) or reason == "arrived":
            vehicle.replace_plan(kept, reason, booking_ids)
            vehicle.plan_origin = None  # untimed; the next timed write (or the check) sees it
            update_etas(vehicle, None, {}, now)
            await uow.vehicles.save(vehicle)
        return
    await apply_route(uow, svc, snap, vehicle.id, rv.route, dict(snap.problem.requests), reason,
                      booking_ids, drop=gone, forced=True)


async def vehicle_etas(uow: UnitOfWork, svc: Services, vehicle: Vehicle, now: datetime) -> None:
    """Recompute a (locked) vehicle's ETAs from its latest position and the rest of its plan."""
    ids = {v.booking_id for v in vehicle.plan}
    bookings = {b.id: b for b in await uow.bookings.active(ids)} if ids else {}
    sched = None
    if bookings:
        snap = build_snapshot([vehicle], bookings, now=now, window=timing_window(vehicle, now),
                              travel=svc.travel)
        if snap.problem.vehicles:
            rv = snap.problem.vehicles[0]
            sched = evaluate(snap.problem, rv, rv.route)
    update_etas(vehicle, sched, bookings, now)


async def confirm_offer(cmd: ConfirmOffer, actor: Actor, svc: Services) -> Booking:
    """Turn an offer into a booking: insertion repeated on the locked current plans."""
    try:
        return await _confirm(cmd, actor, svc)
    except (IntegrityError, errors.OfferNoLongerAvailable) as exc:
        # Another confirm of this offer won the race (with the same Idempotency-Key or another):
        # its booking is the answer, so a client retrying with a fresh key never books twice.
        async with svc.uow(readonly=True) as uow:
            found = await uow.bookings.by_idempotency_key(actor.account_id, cmd.idempotency_key)
            if found is not None:
                booking, offer_id = found
                if offer_id != cmd.offer_id:
                    raise errors.IdempotencyConflict() from None
                return booking
            offer = await uow.offers.get(cmd.offer_id)
            if offer is not None and offer["account_id"] == actor.account_id and offer["booking_id"]:
                existing = await uow.bookings.get(offer["booking_id"])
                if existing is not None:
                    return existing
        if isinstance(exc, errors.OfferNoLongerAvailable):
            raise
        raise errors.OfferNoLongerAvailable() from None


async def _confirm(cmd: ConfirmOffer, actor: Actor, svc: Services) -> Booking:
    if not cmd.idempotency_key or len(cmd.idempotency_key) > 200:
        raise errors.InvalidInput(
            "Idempotency-Key ヘッダー(1〜200文字)が必要です。",
            "An Idempotency-Key header (1 to 200 characters) is required.",
        )
    # Each attempt locks one vehicle's plan only (its row on PostgreSQL), so confirms for different
    # vehicles run side by side and nobody waits for the whole fleet. The offered vehicle first;
    # if its seat went meanwhile, the other vehicles that could keep the same promise, best first.
    booking = await _confirm_once(cmd, actor, svc, None)
    if booking is not None:
        return booking
    for vehicle_id in await _other_candidates(cmd, actor, svc):
        booking = await _confirm_once(cmd, actor, svc, vehicle_id)
        if booking is not None:
            return booking
    raise errors.OfferNoLongerAvailable()


async def _other_candidates(cmd: ConfirmOffer, actor: Actor, svc: Services) -> list[str]:
    """Vehicles other than the offered one that could take the offer now (read-only, ranked)."""
    async with svc.uow(readonly=True) as uow:
        offer = await uow.offers.get(cmd.offer_id)
        if offer is None or offer["account_id"] != actor.account_id or offer["booking_id"]:
            return []
        window = (offer["pickup_earliest"], offer["dropoff_latest"])
        vehicles = [v for v in await uow.vehicles.list(window) if v.id != offer["vehicle_id"]]
        r = offer["request"]
        snap = await load_snapshot(uow, svc, vehicles, window, [Place(*r["origin"]), Place(*r["destination"])])
    req = _offer_request(snap, offer, "__candidate__")
    result = await asyncio.to_thread(ins.find_insertions, snap.problem, req, max_options=5)
    return [o.vehicle_id for o in result.options]


def _offer_request(snap: Snapshot, offer: dict, rid: str) -> rm.Request:
    """The offer's promise as a routing request on this snapshot's locations."""
    r = offer["request"]
    origin, destination = Place(*r["origin"]), Place(*r["destination"])
    return rm.Request(
        rid,
        snap.locations.index(origin.lat, origin.lon),
        snap.locations.index(destination.lat, destination.lon),
        rm.Load(r["party_size"], r["wheelchairs"], r["parcels"]),
        rm.TimeWindow(to_epoch(offer["pickup_earliest"]), to_epoch(offer["pickup_latest"])),
        rm.TimeWindow(r.get("dropoff_earliest_s", to_epoch(offer["pickup_earliest"])),
                      to_epoch(offer["dropoff_latest"])),
        r["max_ride_s"], r["pickup_service_s"], r["dropoff_service_s"],
    )


async def _confirm_once(cmd: ConfirmOffer, actor: Actor, svc: Services, vehicle_id: str | None) -> Booking | None:
    async with svc.uow() as uow:
        found = await uow.bookings.by_idempotency_key(actor.account_id, cmd.idempotency_key)
        if found is not None:
            booking, offer_id = found
            if offer_id != cmd.offer_id:
                raise errors.IdempotencyConflict()
            return booking
        offer = await uow.offers.get(cmd.offer_id)
        if offer is None or offer["account_id"] != actor.account_id:
            raise errors.NotFound("その提案は見つかりません。", "That offer does not exist.")
        if offer["booking_id"]:
            existing = await uow.bookings.get(offer["booking_id"])
            assert existing is not None
            return existing
        now = svc.clock.now()
        if offer["expires_at"] < now:
            raise errors.OfferExpired()
        r = offer["request"]
        origin = Place(*r["origin"])
        destination = Place(*r["destination"])
        window = (offer["pickup_earliest"], offer["dropoff_latest"])
        one = await uow.vehicles.get(vehicle_id or offer["vehicle_id"], for_update=True, window=window)
        snap = await load_snapshot(uow, svc, [one] if one is not None else [], window, [origin, destination])
        bid = svc.new_id("bkg")
        req = _offer_request(snap, offer, bid)
        result = await asyncio.to_thread(ins.find_insertions, snap.problem, req, max_options=1)
        if not result.options:
            return None
        best = result.options[0]
        booking = Booking(
            id=bid,
            account_id=r.get("on_behalf_of") or (actor.account_id if actor.role == "rider" else r.get("rider_account_id")),
            booked_by_id=actor.account_id,
            channel={"rider": "app", "kiosk": "kiosk", "maas": "maas"}.get(actor.role, "phone"),
            kind=r.get("kind", "ride"),
            # The name as given; a rider's own account name otherwise. Never a kiosk's or a
            # desk worker's name: a blank name shows as the booking number on the tablet.
            passenger_name=(r.get("passenger_name") or (actor.name if actor.role == "rider" else "") or "")[:200],
            party_size=r["party_size"],
            wheelchairs=r["wheelchairs"],
            parcels=r["parcels"],
            origin=origin,
            destination=destination,
            pickup_earliest=offer["pickup_earliest"],
            pickup_latest=offer["pickup_latest"],
            dropoff_latest=offer["dropoff_latest"],
            max_ride_s=r["max_ride_s"],
            pickup_service_s=r["pickup_service_s"],
            dropoff_service_s=r["dropoff_service_s"],
            vehicle_id=best.vehicle_id,
            planned_pickup=from_epoch(best.pickup_s),
            planned_dropoff=from_epoch(best.dropoff_s),
            rider_card=r.get("rider_card"),
            contact_phone=r.get("contact_phone"),
            driver_note=r.get("driver_note"),
            dropoff_earliest=from_epoch(r["dropoff_earliest_s"]) if "dropoff_earliest_s" in r else None,
        )
        snap.bookings[bid] = booking
        requests = dict(snap.problem.requests)
        requests[bid] = req
        try:
            times = await apply_route(uow, svc, snap, best.vehicle_id, best.route, requests, "booking", (bid,),
                                      save_bookings=False)
        except PlanRejected:
            return None  # logged and counted by the writer; the next candidate vehicle is tried
        if bid in times:
            booking.planned_pickup, booking.planned_dropoff = (from_epoch(times[bid][0]), from_epoch(times[bid][1]))
        await uow.bookings.add(booking, offer_id=cmd.offer_id, idempotency_key=cmd.idempotency_key, now=now)
        booking.events.append(RideBooked(bid, best.vehicle_id))
        if booking.kind == "delivery":
            await uow.deliveries.add(dict(
                booking_id=bid, store_id=r["store_id"], order_number=r.get("order_number"),
                shopping_list=r.get("shopping_list"), temperature=r["temperature"], handover_failures=0,
                created_at=now, updated_at=now,
            ))
            booking.events.append(DeliveryChanged(bid, r["store_id"], "ordered", best.vehicle_id))
        await uow.offers.mark_confirmed(cmd.offer_id, bid)
        await uow.commit()
    return booking


# ----------------------------------------------------------------------------------- bookings


def is_recipient_side(actor: Actor, b: Booking) -> bool:
    """The booking's own side: the rider who owns it, the kiosk that booked it, the desk."""
    if actor.role in ("operator", "admin"):
        return True
    if actor.role == "rider":  # their own, and those they booked for a family member
        return actor.account_id in (b.account_id, b.booked_by_id)
    if actor.role == "kiosk":  # booked here, or leaving from this kiosk's stop (looked up by number)
        return b.booked_by_id == actor.account_id or (
            actor.stop_id is not None and b.origin.stop_id == actor.stop_id)
    if actor.role == "maas":
        return b.booked_by_id == actor.account_id
    return False


def _may_see(actor: Actor, b: Booking) -> bool:
    if actor.role == "driver":
        return actor.vehicle_id is not None and b.vehicle_id == actor.vehicle_id and b.status in ACTIVE
    return is_recipient_side(actor, b)


AUDITED_ROLES = ("operator", "admin")  # their reads of riders' personal data are audited (docs/privacy.md)


def _reading(svc: Services, actor: Actor, audit: str | None) -> UnitOfWork:
    """The read's unit of work: writable only when it must record an audit row."""
    return svc.uow(readonly=not (audit and actor.role in AUDITED_ROLES))


async def _finish_read(uow: UnitOfWork, svc: Services, actor: Actor, found: Sequence[Booking],
                       audit: str | None, deliveries: dict[str, dict[str, Any]] | None) -> None:
    """In the read's own unit of work: the store orders of the deliveries found (one query for the
    page, into ``deliveries``) and the audit row of an operator's read (committed with it)."""
    if deliveries is not None:
        ids = [b.id for b in found if b.kind == "delivery"]
        if ids:
            deliveries.update(await uow.deliveries.many(ids))
    if audit and actor.role in AUDITED_ROLES and found:
        await uow.audit.record(svc.clock.now(), actor.account_id, actor.role, audit, [b.id for b in found])
        await uow.commit()


async def get_booking(booking_id: str, actor: Actor, svc: Services, *, audit: str | None = None,
                      deliveries: dict[str, dict[str, Any]] | None = None) -> Booking:
    """A booking this actor may see. ``audit``: the action recorded for an operator's read;
    ``deliveries``: filled with the booking's store order if it is a delivery."""
    async with _reading(svc, actor, audit) as uow:
        b = await uow.bookings.get(booking_id)
        if b is None or not _may_see(actor, b):
            raise errors.NotFound("その予約は見つかりません。", "That booking does not exist.")
        await _finish_read(uow, svc, actor, [b], audit, deliveries)
    return b


async def booking_by_number(text: str, actor: Actor, svc: Services, *, audit: str | None = None,
                            deliveries: dict[str, dict[str, Any]] | None = None) -> Booking:
    """A booking by its number (any case, O for 0, I/L for 1), if this actor may see it."""
    number = numbers.normalise(text)
    if number is None:
        raise errors.InvalidInput(
            "予約番号は6文字の英数字です(例: 7K3M9Q)。", "A booking number has 6 letters and digits (e.g. 7K3M9Q).",
            field="number",
        )
    async with _reading(svc, actor, audit) as uow:
        b = await uow.bookings.by_number(number)
        if b is None or not _may_see(actor, b):
            raise errors.NotFound("その予約番号の予約は見つかりません。", "No booking has that number.")
        await _finish_read(uow, svc, actor, [b], audit, deliveries)
    return b


async def find_bookings(query: FindBookings, actor: Actor, svc: Services, *, audit: str | None = None,
                        deliveries: dict[str, dict[str, Any]] | None = None) -> tuple[list[Booking], int]:
    """Operators: one page of the bookings matching the filters, and how many match in all."""
    if actor.role not in ("operator", "admin"):
        raise errors.Forbidden()
    if query.status and query.status not in {s.value for s in BookingStatus}:
        raise errors.InvalidInput(
            "予約の状態の指定が正しくありません。", f"Unknown status {query.status!r}.", field="status")
    tz = svc.rules.tz
    if query.day is not None and not (FIRST_DAY <= query.day <= LAST_DAY):
        raise errors.InvalidInput(
            f"日にちは {FIRST_DAY} から {LAST_DAY} の間で指定してください。",
            f"The day must be between {FIRST_DAY} and {LAST_DAY}.", field="day")
    if query.day is not None:
        start = datetime.combine(query.day, time.min, tzinfo=tz)
        end = start + timedelta(days=1)
    else:
        now = svc.clock.now()
        start, end = now - timedelta(days=1), now + timedelta(days=8)
    async with _reading(svc, actor, audit) as uow:
        found, total = await uow.bookings.search(start=start, end=end, text=(query.text or "").strip() or None,
                                                 status=query.status, vehicle_id=query.vehicle_id,
                                                 limit=query.limit, offset=query.offset)
        await _finish_read(uow, svc, actor, found, audit, deliveries)
    return found, total


async def list_bookings(actor: Actor, svc: Services, query: FindBookings | None = None, *,
                        audit: str | None = None,
                        deliveries: dict[str, dict[str, Any]] | None = None) -> tuple[list[Booking], int]:
    """A rider's own bookings (latest first); for operators, a page of the search; and how many match in all."""
    query = query or FindBookings()
    if actor.role == "rider":
        async with svc.uow(readonly=True) as uow:
            mine = await uow.bookings.for_account(actor.account_id, limit=query.limit, offset=query.offset)
            total = await uow.bookings.count_for_account(actor.account_id)
            await _finish_read(uow, svc, actor, mine, None, deliveries)
        return mine, total
    return await find_bookings(query, actor, svc, audit=audit, deliveries=deliveries)


async def cancel_booking(cmd: CancelBooking, actor: Actor, svc: Services) -> Booking:
    for _ in range(3):
        async with svc.uow() as uow:
            b = await uow.bookings.get(cmd.booking_id)
            if b is None or not _may_see(actor, b) or actor.role == "driver":
                raise errors.NotFound("その予約は見つかりません。", "That booking does not exist.")
            if b.status is BookingStatus.CANCELLED:
                return b  # cancelling twice is harmless
            v = None
            if b.vehicle_id:
                # Lock the plan first, then read the booking again under that lock (as the driver
                # events do), so a boarding or a re-plan in flight is never overwritten.
                v = await uow.vehicles.get(b.vehicle_id, for_update=True)
                b = await uow.bookings.get(cmd.booking_id)
                assert b is not None
                if b.vehicle_id != (v.id if v else None):
                    continue  # moved to another vehicle meanwhile: start again with that one
                if b.status is BookingStatus.CANCELLED:
                    return b
            b.cancel(cmd.reason)
            await uow.bookings.save(b, now=svc.clock.now())
            if b.kind == "delivery":
                d = await uow.deliveries.get(b.id)
                if d is not None:  # the store stops preparing it
                    b.events.append(DeliveryChanged(b.id, d["store_id"], "cancelled", b.vehicle_id))
            if v is not None:
                at = [x.planned_at for x in v.plan if x.booking_id == b.id]
                now = svc.clock.now()
                when = max(now, min(at)) if at else now
                await replan_vehicle(uow, svc, v, "cancellation", (b.id,), window=(when, when))
            await uow.commit()
            return b
    raise errors.OfferNoLongerAvailable(
        "予約の変更が重なりました。もう一度お試しください。", "The booking changed meanwhile. Please try again."
    )
