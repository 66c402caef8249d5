"""Use cases: async handlers that take a unit of work. Every entry point calls these."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from routing import insertion as ins
from routing import model as rm
from routing.traveltime import TravelTimeProvider
from transit import errors, numbers
from transit.booking import Booking, BookingStatus, Place
from transit.clock import Clock, from_epoch, to_epoch
from transit.commands import Actor, CancelBooking, ConfirmOffer, FindBookings, RequestRide
from transit.events import RideBooked
from transit.planning import (
    Snapshot,
    build_snapshot,
    relevant_booking_ids,
    service_times,
    visits_for,
)
from transit.reference_data import ServiceArea, ServiceRules
from transit.uow import UnitOfWork, UnitOfWorkFactory
from transit.vehicle import Vehicle, Visit

NEW = "__new__"
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # days the booking search accepts
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(9)}"


@dataclass
class Services:
    """The concrete collaborators the handlers need (picked by the composition root)."""

    rules: ServiceRules
    area: ServiceArea
    travel: TravelTimeProvider
    clock: Clock
    uow: UnitOfWorkFactory
    new_id: Callable[[str], str] = field(default=new_id)


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
        extra=[(p.lat, p.lon, p.stop_id) for p in extra],
    )
    return snap


def _alternatives(snap: Snapshot, req: rm.Request) -> list[int]:
    try:
        return list(ins.nearest_feasible_times(snap.problem, req))
    except Exception:  # noqa: BLE001 - alternatives are a courtesy; never fail the answer for them
        return []


# ----------------------------------------------------------------------------------- offers


async def request_offer(cmd: RequestRide, actor: Actor, svc: Services) -> Offer:
    """Find the best insertion for a ride and hold it as an offer for a short time."""
    if actor.role not in ("rider", "kiosk", "operator", "admin"):
        raise errors.Forbidden()
    _check_party(svc, cmd)
    now = svc.clock.now()
    async with svc.uow(readonly=True) as uow:
        origin = await _place(uow, svc, cmd.origin, actor, "origin")
        destination = await _place(uow, svc, cmd.destination, actor, "destination")
        if actor.role == "kiosk" and origin.stop_id != actor.stop_id:
            raise errors.Forbidden(
                "この端末からは、この停留所からの乗車のみ予約できます。",
                "This kiosk books rides from its own stop only.",
            )
        if (origin.lat, origin.lon) == (destination.lat, destination.lon):
            raise errors.SameOriginDestination()
        holder = await _card_holder(uow, cmd.rider_card, actor)
        if cmd.time_mode == "now" or cmd.time is None:
            if cmd.time_mode != "now":
                raise errors.InvalidInput("時刻を指定してください。", "Please give a time.", field="time")
            when = now + timedelta(seconds=svc.rules.min_lead_s)
        else:
            when = cmd.time
        _check_time(svc, when, now)
        horizon = (when - timedelta(hours=2), when + timedelta(hours=2))
        vehicles = await uow.vehicles.list(horizon)
        service_s, drop_s = service_times(svc.rules, cmd.party_size, cmd.wheelchairs, cmd.parcels)
        snap = await load_snapshot(uow, svc, vehicles, horizon, [origin, destination])
        o = snap.locations.index(origin.lat, origin.lon, origin.stop_id)
        d = snap.locations.index(destination.lat, destination.lon, destination.stop_id)
        direct = snap.problem.travel(o, d)
        max_ride = svc.rules.max_ride_s(direct)
        pw, dw = _windows(svc, cmd.time_mode, when, direct, max_ride, service_s)
        if cmd.time_mode == "arrive_by" and to_epoch(from_epoch(pw.latest_s)) < to_epoch(now):
            raise errors.TimeInPast(
                "その到着時刻には間に合いません。", "That arrival time can no longer be reached."
            )
        req = rm.Request(NEW, o, d, rm.Load(cmd.party_size, cmd.wheelchairs, cmd.parcels), pw, dw,
                         max_ride, service_s, drop_s)
        result = await asyncio.to_thread(ins.find_insertions, snap.problem, req, max_options=3)
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
            raise errors.NoRideAvailable(cause=cause, alternatives=[a.isoformat() for a in alts])
        best = result.options[0]
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
            party_size=cmd.party_size,
            wheelchairs=cmd.wheelchairs,
            parcels=cmd.parcels,
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
                    party_size=cmd.party_size,
                    wheelchairs=cmd.wheelchairs,
                    parcels=cmd.parcels,
                    # A registered rider's card: the booking is theirs, under the name they registered.
                    passenger_name=holder["name"] if holder else cmd.passenger_name,
                    rider_account_id=holder["id"] if holder else None,
                    contact_phone=cmd.contact_phone,
                    rider_card=holder["rider_card"] if holder else cmd.rider_card,
                    driver_note=(cmd.driver_note or "").strip() or None,
                    kind=cmd.kind,
                    max_ride_s=max_ride,
                    pickup_service_s=service_s,
                    dropoff_service_s=drop_s,
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


def _merge_plan(vehicle: Vehicle, new_visits: list[Visit], keep_out: set[str]) -> list[Visit]:
    """The vehicle's new plan: the re-planned part plus visits of other shifts, in time order."""
    planned_ids = {v.booking_id for v in new_visits}
    others = [v for v in vehicle.plan if v.booking_id not in planned_ids and v.booking_id not in keep_out]
    return sorted(new_visits + others, key=lambda v: v.planned_at)


async def apply_route(uow: UnitOfWork, svc: Services, snap: Snapshot, vehicle_id: str,
                       route: tuple[rm.Stop, ...], requests: dict[str, rm.Request],
                       reason: str, booking_ids: tuple[str, ...],
                       drop: AbstractSet[str] = frozenset(),
                       save_bookings: bool = True) -> dict[str, tuple[int, int]]:
    vehicle = snap.vehicles[vehicle_id]
    visits, times = visits_for(snap, vehicle_id, route, requests)
    merged = _merge_plan(vehicle, visits, set(drop))
    vehicle.replace_plan(merged, reason, booking_ids)
    await uow.vehicles.save(vehicle)
    now = svc.clock.now()
    for bid, (p, d) in times.items():
        b = snap.bookings.get(bid)
        if b is None:
            continue
        changed = False
        if p and b.status is not BookingStatus.ON_BOARD and b.planned_pickup != from_epoch(p):
            b.planned_pickup = from_epoch(p)
            changed = True
        if d and b.planned_dropoff != from_epoch(d):
            b.planned_dropoff = from_epoch(d)
            changed = True
        if changed and (save_bookings or bid not in booking_ids):
            await uow.bookings.save_assignment(b, now=now)
    return times


async def confirm_offer(cmd: ConfirmOffer, actor: Actor, svc: Services) -> Booking:
    """Turn an offer into a booking: insertion repeated on the locked current plans."""
    try:
        return await _confirm(cmd, actor, svc)
    except IntegrityError:
        # Another request with the same Idempotency-Key (or the same offer) won the race.
        async with svc.uow(readonly=True) as uow:
            found = await uow.bookings.by_idempotency_key(actor.account_id, cmd.idempotency_key)
            if found is None:
                raise errors.OfferNoLongerAvailable() from None
            booking, offer_id = found
            if offer_id != cmd.offer_id:
                raise errors.IdempotencyConflict() from None
            return booking


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
        snap.locations.index(origin.lat, origin.lon, origin.stop_id),
        snap.locations.index(destination.lat, destination.lon, destination.stop_id),
        rm.Load(r["party_size"], r["wheelchairs"], r["parcels"]),
        rm.TimeWindow(to_epoch(offer["pickup_earliest"]), to_epoch(offer["pickup_latest"])),
        rm.TimeWindow(to_epoch(offer["pickup_earliest"]), to_epoch(offer["dropoff_latest"])),
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
            account_id=actor.account_id if actor.role == "rider" else r.get("rider_account_id"),
            booked_by_id=actor.account_id,
            channel={"rider": "app", "kiosk": "kiosk"}.get(actor.role, "phone"),
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
        )
        snap.bookings[bid] = booking
        requests = dict(snap.problem.requests)
        requests[bid] = req
        times = await apply_route(uow, svc, snap, best.vehicle_id, best.route, requests, "booking", (bid,),
                                   save_bookings=False)
        if bid in times:
            booking.planned_pickup, booking.planned_dropoff = (from_epoch(times[bid][0]), from_epoch(times[bid][1]))
        await uow.bookings.add(booking, offer_id=cmd.offer_id, idempotency_key=cmd.idempotency_key, now=now)
        booking.events.append(RideBooked(bid, best.vehicle_id))
        await uow.offers.mark_confirmed(cmd.offer_id, bid)
        await uow.commit()
    return booking


# ----------------------------------------------------------------------------------- bookings


def _may_see(actor: Actor, b: Booking) -> bool:
    if actor.role in ("operator", "admin"):
        return True
    if actor.role == "rider":
        return b.account_id == actor.account_id
    if actor.role == "kiosk":  # booked here, or leaving from this kiosk's stop (looked up by number)
        return b.booked_by_id == actor.account_id or (
            actor.stop_id is not None and b.origin.stop_id == actor.stop_id)
    if actor.role == "driver":
        return actor.vehicle_id is not None and b.vehicle_id == actor.vehicle_id
    return False


async def get_booking(booking_id: str, actor: Actor, svc: Services) -> Booking:
    async with svc.uow(readonly=True) as uow:
        b = await uow.bookings.get(booking_id)
    if b is None or not _may_see(actor, b):
        raise errors.NotFound("その予約は見つかりません。", "That booking does not exist.")
    return b


async def booking_by_number(text: str, actor: Actor, svc: Services) -> Booking:
    """A booking by its number (any case, O for 0, I/L for 1), if this actor may see it."""
    number = numbers.normalise(text)
    if number is None:
        raise errors.InvalidInput(
            "予約番号は6文字の英数字です(例: 7K3M9Q)。", "A booking number has 6 letters and digits (e.g. 7K3M9Q).",
            field="number",
        )
    async with svc.uow(readonly=True) as uow:
        b = await uow.bookings.by_number(number)
    if b is None or not _may_see(actor, b):
        raise errors.NotFound("その予約番号の予約は見つかりません。", "No booking has that number.")
    return b


async def find_bookings(query: FindBookings, actor: Actor, svc: Services) -> tuple[list[Booking], int]:
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
    async with svc.uow(readonly=True) as uow:
        return await uow.bookings.search(start=start, end=end, text=(query.text or "").strip() or None,
                                         status=query.status, vehicle_id=query.vehicle_id,
                                         limit=query.limit, offset=query.offset)


async def list_bookings(actor: Actor, svc: Services, query: FindBookings | None = None) -> tuple[list[Booking], int]:
    """A rider's own bookings; for operators, a page of the search (and how many match in all)."""
    if actor.role == "rider":
        async with svc.uow(readonly=True) as uow:
            mine = await uow.bookings.for_account(actor.account_id)
        return mine, len(mine)
    return await find_bookings(query or FindBookings(), actor, svc)


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
            if v is not None:
                v.replace_plan([x for x in v.plan if x.booking_id != b.id], "cancellation", (b.id,))
                await uow.vehicles.save(v)
            await uow.commit()
            return b
    raise errors.OfferNoLongerAvailable(
        "予約の変更が重なりました。もう一度お試しください。", "The booking changed meanwhile. Please try again."
    )
