"""All queries live here. Rows in, plain domain objects out."""

from __future__ import annotations

import bisect
import builtins
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from transit import numbers
from transit import tables as t
from transit.booking import ACTIVE, Booking, BookingStatus, Place
from transit.vehicle import Shift, Vehicle, Visit


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _like(text: str) -> str:
    """``text`` for a LIKE pattern: its own % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


class StopCache:
    """Every stop, kept per process for ``ttl_s`` (stops change only with ``okuma load-data``): an
    offer looks up its two stops and the vehicles' depots without a query each time."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._stops: dict[str, dict[str, Any]] | None = None
        self._until = 0.0

    async def all(self, conn: AsyncConnection, *, wanted: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        """The stops by id; read again when older than ``ttl_s`` or when a ``wanted`` id is missing
        (a stop added by another process meanwhile)."""
        if (self._stops is None or time.monotonic() > self._until
                or any(w not in self._stops for w in wanted)):
            rows = (await conn.execute(select(t.stops))).mappings()
            self._stops = {r["id"]: dict(r) for r in rows}
            self._until = time.monotonic() + self.ttl_s
        return self._stops

    def forget(self) -> None:
        self._stops = None


class PlanCache:
    """Parsed plans per vehicle, kept per process by plan version (a plan changes only with its
    version: ``Vehicle.replace_plan``), so reading the fleet parses only the plans that changed.

    One entry per vehicle id (a newer version replaces the older), so it is bounded by the fleet.
    Filled only from committed rows (see ``VehicleRepository``); hands out copies of the list.
    """

    def __init__(self) -> None:
        self._plans: dict[str, tuple[int, tuple[Visit, ...]]] = {}

    def get(self, vehicle_id: str, version: int) -> list[Visit] | None:
        hit = self._plans.get(vehicle_id)
        return list(hit[1]) if hit is not None and hit[0] == version else None

    def put(self, vehicle_id: str, version: int, plan: Iterable[Visit]) -> None:
        self._plans[vehicle_id] = (version, tuple(plan))

    def drop(self, vehicle_ids: Iterable[str]) -> None:
        for vid in vehicle_ids:
            self._plans.pop(vid, None)

    def __len__(self) -> int:
        return len(self._plans)

    def forget(self) -> None:
        self._plans.clear()


class ShiftCache:
    """Every shift, kept per process for ``ttl_s`` (shifts change only with ``okuma load-data``,
    which also forgets this process's copy). Per vehicle in start order, so the shifts overlapping
    a window are found by bisection (a vehicle may have a shift a day for months)."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._shifts: dict[str, tuple[builtins.list[Shift], builtins.list[datetime]]] | None = None
        self._until = 0.0

    async def of(self, conn: AsyncConnection, vehicle_ids: Iterable[str],
                 window: tuple[datetime, datetime] | None) -> dict[str, builtins.list[Shift]]:
        """Shifts by vehicle (start order), only those overlapping ``window`` when given."""
        if self._shifts is None or time.monotonic() > self._until:
            rows = (await conn.execute(select(t.shifts).order_by(t.shifts.c.starts_at))).mappings()
            found: dict[str, builtins.list[Shift]] = {}
            for r in rows:
                found.setdefault(r["vehicle_id"], []).append(
                    Shift(r["id"], r["vehicle_id"], _utc(r["starts_at"]), _utc(r["ends_at"]))  # type: ignore[arg-type]
                )
            # the latest end among the shifts up to each one (shifts may overlap): bisect on it
            latest_end: dict[str, builtins.list[datetime]] = {}
            for vid, shifts in found.items():
                run: builtins.list[datetime] = []
                for sh in shifts:
                    run.append(sh.ends_at if not run or sh.ends_at > run[-1] else run[-1])
                latest_end[vid] = run
            self._shifts = {vid: (found[vid], latest_end[vid]) for vid in found}
            self._until = time.monotonic() + self.ttl_s
        out: dict[str, builtins.list[Shift]] = {}
        for vid in vehicle_ids:
            shifts, ends = self._shifts.get(vid, ([], []))
            if window is None:
                out[vid] = list(shifts)
                continue
            # the first shift whose running latest end reaches the window, then on while it starts in time
            i = bisect.bisect_left(ends, window[0])
            picked = []
            for sh in shifts[i:]:
                if sh.starts_at > window[1]:
                    break
                if sh.ends_at >= window[0]:
                    picked.append(sh)
            out[vid] = picked
        return out

    def forget(self) -> None:
        self._shifts = None


class StopRepository:
    def __init__(self, conn: AsyncConnection, cache: StopCache | None = None) -> None:
        self.conn = conn
        self.cache = cache or StopCache(ttl_s=0)

    async def list(self) -> list[dict[str, Any]]:
        rows = (await self.conn.execute(select(t.stops).order_by(t.stops.c.id))).mappings()
        return [dict(r) for r in rows]

    async def get(self, stop_id: str) -> dict[str, Any] | None:
        found = (await self.cache.all(self.conn, wanted=(stop_id,))).get(stop_id)
        return dict(found) if found is not None else None

    async def upsert(self, stop: dict[str, Any]) -> None:
        self.cache.forget()
        existing = (
            await self.conn.execute(select(t.stops.c.id).where(t.stops.c.id == stop["id"]))
        ).first()
        if existing is None:
            await self.conn.execute(insert(t.stops).values(**stop))
        else:
            await self.conn.execute(update(t.stops).where(t.stops.c.id == stop["id"]).values(**stop))


def _visit_to_json(v: Visit) -> dict[str, Any]:
    return {
        "booking_id": v.booking_id,
        "kind": v.kind,
        "lat": v.lat,
        "lon": v.lon,
        "stop_id": v.stop_id,
        "planned_at": _iso(v.planned_at),
        "arrival_at": _iso(v.arrival_at) if v.arrival_at else None,
        "departure_at": _iso(v.departure_at) if v.departure_at else None,
    }


def _visit_from_json(d: dict[str, Any]) -> Visit:
    return Visit(
        booking_id=d["booking_id"],
        kind=d["kind"],
        lat=d["lat"],
        lon=d["lon"],
        stop_id=d.get("stop_id"),
        planned_at=datetime.fromisoformat(d["planned_at"]),
        arrival_at=datetime.fromisoformat(d["arrival_at"]) if d.get("arrival_at") else None,
        departure_at=datetime.fromisoformat(d["departure_at"]) if d.get("departure_at") else None,
    )


def _vehicle_values(v: Vehicle) -> dict[str, Any]:
    return dict(
        name_ja=v.name_ja,
        name_en=v.name_en,
        seats=v.seats,
        wheelchairs=v.wheelchairs,
        parcels=v.parcels,
        depot_stop_id=v.depot_stop_id,
        plan=[_visit_to_json(x) for x in v.plan],
        plan_version=v.plan_version,
        lat=v.lat,
        lon=v.lon,
        position_at=v.position_at,
        plan_origin=v.plan_origin,
        etas=v.etas,
    )


_VEHICLE_COLUMNS = [c for c in t.vehicles.c if c.name != "plan"]


class VehicleRepository:
    """Vehicles with their plans and shifts.

    With caches (the process's ``PlanCache`` and ``ShiftCache``), a read selects every column but
    the plan and parses only the plans whose version this process has not seen; a plan read is
    cached only while this unit of work has written no vehicle (so nothing uncommitted is kept).
    """

    def __init__(self, conn: AsyncConnection, dialect: str, stops: StopRepository | None = None,
                 plans: PlanCache | None = None, shifts: ShiftCache | None = None) -> None:
        self.conn = conn
        self.dialect = dialect
        self.stops = stops or StopRepository(conn)
        self.plans = plans
        self.shift_cache = shifts
        self._wrote = False
        self.shifts_changed = False  # the unit of work forgets the process's shifts again after its commit
        self.saved: set[str] = set()  # vehicles written: their cached plans are dropped again after the commit
        self.seen: dict[str, Vehicle] = {}
        self.tracked: list[Vehicle] = []  # every instance handed out (a reload keeps the older one's events)

    async def _select(self, q: Any) -> builtins.list[Any]:
        """Vehicle rows of ``q`` (a select of ``_VEHICLE_COLUMNS``) with their plans as visits."""
        rows = [dict(r) for r in (await self.conn.execute(q)).mappings()]
        missing: builtins.list[str] = []
        for r in rows:
            plan = self.plans.get(r["id"], r["plan_version"]) if self.plans is not None else None
            if plan is None:
                missing.append(r["id"])
            r["plan"] = plan
        if missing:
            pq = select(t.vehicles.c.id, t.vehicles.c.plan_version, t.vehicles.c.plan).where(
                t.vehicles.c.id.in_(missing))
            fetched = {x["id"]: x for x in (await self.conn.execute(pq)).mappings()}
            for i, r in enumerate(rows):
                if r["plan"] is not None:
                    continue
                x = fetched.get(r["id"])
                if x is None or x["plan_version"] != r["plan_version"]:
                    # changed (committed by another writer) between the two reads: the whole row again
                    whole = (await self.conn.execute(
                        select(t.vehicles).where(t.vehicles.c.id == r["id"]))).mappings().first()
                    if whole is None:
                        continue
                    r = rows[i] = dict(whole)
                    r["plan"] = [_visit_from_json(d) for d in (r["plan"] or [])]
                    continue
                r["plan"] = [_visit_from_json(d) for d in (x["plan"] or [])]
                if self.plans is not None and not self._wrote:
                    self.plans.put(r["id"], r["plan_version"], r["plan"])
        return [r for r in rows if r["plan"] is not None]

    async def _load(self, rows: Iterable[Any], window: tuple[datetime, datetime] | None = None) -> list[Vehicle]:
        out: list[Vehicle] = []
        rows = list(rows)
        if not rows:
            return out
        ids = [r["id"] for r in rows]
        depots = await self.stops.cache.all(self.conn, wanted={r["depot_stop_id"] for r in rows})
        if self.shift_cache is not None:
            shifts = await self.shift_cache.of(self.conn, ids, window)
        else:
            sq = select(t.shifts).where(t.shifts.c.vehicle_id.in_(ids)).order_by(t.shifts.c.starts_at)
            if window is not None:  # only the shifts that matter for this planning step
                sq = sq.where(and_(t.shifts.c.starts_at <= window[1], t.shifts.c.ends_at >= window[0]))
            shifts = {}
            for s in (await self.conn.execute(sq)).mappings():
                shifts.setdefault(s["vehicle_id"], []).append(
                    Shift(s["id"], s["vehicle_id"], _utc(s["starts_at"]), _utc(s["ends_at"]))  # type: ignore[arg-type]
                )
        for r in rows:
            depot = depots[r["depot_stop_id"]]
            v = Vehicle(
                id=r["id"],
                name_ja=r["name_ja"],
                name_en=r["name_en"],
                seats=r["seats"],
                wheelchairs=r["wheelchairs"],
                parcels=r["parcels"],
                depot_stop_id=r["depot_stop_id"],
                depot_lat=depot["lat"],
                depot_lon=depot["lon"],
                plan=r["plan"],
                plan_version=r["plan_version"],
                lat=r["lat"],
                lon=r["lon"],
                position_at=_utc(r["position_at"]),
                shifts=shifts.get(r["id"], []),
                plan_origin=r["plan_origin"],
                etas=r["etas"],
            )
            self.seen[v.id] = v
            self.tracked.append(v)
            out.append(v)
        return out

    async def list(self, window: tuple[datetime, datetime] | None = None) -> list[Vehicle]:
        rows = await self._select(select(*_VEHICLE_COLUMNS).order_by(t.vehicles.c.id))
        return await self._load(rows, window)

    async def get(self, vehicle_id: str, *, for_update: bool = False,
                  window: tuple[datetime, datetime] | None = None) -> Vehicle | None:
        q = select(*_VEHICLE_COLUMNS).where(t.vehicles.c.id == vehicle_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        loaded = await self._load(await self._select(q), window)
        return loaded[0] if loaded else None

    # ``builtins.list`` below: inside this class ``list`` names the method above.
    async def lock_all(
        self, window: tuple[datetime, datetime] | None = None
    ) -> builtins.list[Vehicle]:
        """Every vehicle, locked in id order (PostgreSQL) so writers queue without deadlock.

        With ``window``, only the shifts overlapping it are loaded (the plan is always whole).
        """
        q = select(*_VEHICLE_COLUMNS).order_by(t.vehicles.c.id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        return await self._load(await self._select(q), window)

    async def add(self, v: Vehicle) -> None:
        self._wrote = True
        await self.conn.execute(insert(t.vehicles).values(id=v.id, **_vehicle_values(v)))
        self.seen[v.id] = v
        self.tracked.append(v)

    async def save(self, v: Vehicle) -> None:
        # dropped now and again after the commit (uow): even a write that kept the version is read afresh
        self._wrote = True
        self.saved.add(v.id)
        if self.plans is not None:
            self.plans.drop([v.id])
        await self.conn.execute(update(t.vehicles).where(t.vehicles.c.id == v.id).values(**_vehicle_values(v)))

    async def replace_shifts(self, vehicle_id: str, shifts: builtins.list[Shift]) -> None:
        self.shifts_changed = True
        if self.shift_cache is not None:
            self.shift_cache.forget()
        await self.conn.execute(t.shifts.delete().where(t.shifts.c.vehicle_id == vehicle_id))
        for s in shifts:
            await self.conn.execute(
                insert(t.shifts).values(
                    id=s.id, vehicle_id=vehicle_id, starts_at=s.starts_at, ends_at=s.ends_at
                )
            )


def _booking_from_row(r: Any) -> Booking:
    return Booking(
        id=r["id"],
        account_id=r["account_id"],
        booked_by_id=r["booked_by_id"],
        channel=r["channel"],
        kind=r["kind"],
        passenger_name=r["passenger_name"],
        party_size=r["party_size"],
        wheelchairs=r["wheelchairs"],
        parcels=r["parcels"],
        origin=Place(r["origin_lat"], r["origin_lon"], r["origin_stop_id"], r["origin_address"]),
        destination=Place(r["destination_lat"], r["destination_lon"], r["destination_stop_id"],
                          r["destination_address"]),
        pickup_earliest=_utc(r["pickup_earliest"]),  # type: ignore[arg-type]
        pickup_latest=_utc(r["pickup_latest"]),  # type: ignore[arg-type]
        dropoff_latest=_utc(r["dropoff_latest"]),  # type: ignore[arg-type]
        dropoff_earliest=_utc(r["dropoff_earliest"]),
        max_ride_s=r["max_ride_s"],
        pickup_service_s=r["pickup_service_s"],
        dropoff_service_s=r["dropoff_service_s"],
        status=BookingStatus(r["status"]),
        vehicle_id=r["vehicle_id"],
        planned_pickup=_utc(r["planned_pickup"]),
        planned_dropoff=_utc(r["planned_dropoff"]),
        picked_up_at=_utc(r["picked_up_at"]),
        completed_at=_utc(r["completed_at"]),
        rider_card=r["rider_card"],
        contact_phone=r["contact_phone"],
        cancel_reason=r["cancel_reason"],
        created_at=_utc(r["created_at"]),
        promise_broken_at=_utc(r["promise_broken_at"]),
        relaxed=r["relaxed"],
        number=r["number"],
        driver_note=r["driver_note"],
    )


def _booking_values(b: Booking) -> dict[str, Any]:
    return dict(
        account_id=b.account_id,
        booked_by_id=b.booked_by_id,
        channel=b.channel,
        kind=b.kind,
        passenger_name=b.passenger_name,
        rider_card=b.rider_card,
        contact_phone=b.contact_phone,
        party_size=b.party_size,
        wheelchairs=b.wheelchairs,
        parcels=b.parcels,
        origin_stop_id=b.origin.stop_id,
        origin_lat=b.origin.lat,
        origin_lon=b.origin.lon,
        origin_address=b.origin.address,
        destination_address=b.destination.address,
        driver_note=b.driver_note,
        destination_stop_id=b.destination.stop_id,
        destination_lat=b.destination.lat,
        destination_lon=b.destination.lon,
        status=b.status.value,
        vehicle_id=b.vehicle_id,
        pickup_earliest=b.pickup_earliest,
        pickup_latest=b.pickup_latest,
        dropoff_latest=b.dropoff_latest,
        dropoff_earliest=b.dropoff_earliest,
        max_ride_s=b.max_ride_s,
        pickup_service_s=b.pickup_service_s,
        dropoff_service_s=b.dropoff_service_s,
        planned_pickup=b.planned_pickup,
        planned_dropoff=b.planned_dropoff,
        picked_up_at=b.picked_up_at,
        completed_at=b.completed_at,
        cancel_reason=b.cancel_reason,
        promise_broken_at=b.promise_broken_at,
        relaxed=b.relaxed,
    )


class BookingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: dict[str, Booking] = {}
        self.tracked: list[Booking] = []  # every instance handed out (a reload keeps the older one's events)

    def _track(self, rows: Iterable[Any]) -> list[Booking]:
        out = []
        for r in rows:
            b = _booking_from_row(r)
            self.seen[b.id] = b
            self.tracked.append(b)
            out.append(b)
        return out

    async def get(self, booking_id: str) -> Booking | None:
        rows = (
            await self.conn.execute(select(t.bookings).where(t.bookings.c.id == booking_id))
        ).mappings()
        found = self._track(rows)
        return found[0] if found else None

    async def by_idempotency_key(self, booked_by_id: str, key: str) -> tuple[Booking, str | None] | None:
        row = (
            await self.conn.execute(
                select(t.bookings).where(
                    and_(t.bookings.c.booked_by_id == booked_by_id, t.bookings.c.idempotency_key == key)
                )
            )
        ).mappings().first()
        if row is None:
            return None
        return self._track([row])[0], row["offer_id"]

    async def many(self, ids: Iterable[str]) -> list[Booking]:
        """These bookings whatever their status (unknown ids are left out)."""
        ids = list(ids)
        if not ids:
            return []
        return self._track((await self.conn.execute(select(t.bookings).where(t.bookings.c.id.in_(ids)))).mappings())

    async def for_account(self, account_id: str, *, limit: int = 100, offset: int = 0) -> list[Booking]:
        q = (
            select(t.bookings)
            # their own, and those they booked for a family member
            .where(or_(t.bookings.c.account_id == account_id, t.bookings.c.booked_by_id == account_id))
            .order_by(t.bookings.c.pickup_earliest.desc(), t.bookings.c.id)
            .limit(limit).offset(offset)
        )
        return self._track((await self.conn.execute(q)).mappings())

    async def count_for_account(self, account_id: str) -> int:
        q = select(func.count()).select_from(t.bookings).where(t.bookings.c.account_id == account_id)
        return int((await self.conn.execute(q)).scalar_one())

    async def active(self, ids: Iterable[str] | None = None) -> list[Booking]:
        q = select(t.bookings).where(t.bookings.c.status.in_([s.value for s in ACTIVE]))
        if ids is not None:
            q = q.where(t.bookings.c.id.in_(list(ids)))
        return self._track((await self.conn.execute(q)).mappings())

    async def by_number(self, number: str) -> Booking | None:
        rows = (await self.conn.execute(select(t.bookings).where(t.bookings.c.number == number))).mappings()
        found = self._track(rows)
        return found[0] if found else None

    async def search(self, *, start: datetime, end: datetime, text: str | None = None,
                     status: str | None = None, vehicle_id: str | None = None,
                     limit: int = 200, offset: int = 0) -> tuple[builtins.list[Booking], int]:
        """Bookings picked up in [start, end) matching every filter given, a page and the total."""
        b = t.bookings.c
        cond = [b.pickup_earliest >= start, b.pickup_earliest < end]
        if status:
            cond.append(b.status == status)
        if vehicle_id:
            cond.append(b.vehicle_id == vehicle_id)
        if text:
            either: builtins.list[Any] = [b.passenger_name.ilike(f"%{_like(text)}%", escape="\\")]
            number = numbers.normalise(text)
            if number:
                either.append(b.number == number)
            digits = re.sub(r"\D", "", text)
            if len(digits) >= 3:  # a phone number however it was typed: compare the digits only
                phone: Any = b.contact_phone
                for ch in "-() +":
                    phone = func.replace(phone, ch, "")
                either.append(phone.contains(digits))
            cond.append(or_(*either))
        where = and_(*cond)
        total = (await self.conn.execute(select(func.count()).select_from(t.bookings).where(where))).scalar_one()
        q = select(t.bookings).where(where).order_by(b.pickup_earliest, b.id).limit(limit).offset(offset)
        return self._track((await self.conn.execute(q)).mappings()), int(total)

    async def add(self, b: Booking, *, offer_id: str | None, idempotency_key: str | None, now: datetime) -> None:
        # The number is drawn here, the one place every booking passes through; the unique index
        # is the guarantee, the look-up only makes a clash (about 1 in 10**9 per booking) rarer still.
        if not b.number:
            for _ in range(10):
                b.number = numbers.new_number()
                if await self.by_number(b.number) is None:
                    break
        await self.conn.execute(
            insert(t.bookings).values(
                id=b.id, number=b.number, offer_id=offer_id, idempotency_key=idempotency_key,
                created_at=now, updated_at=now, **_booking_values(b),
            )
        )
        b.created_at = now
        self.seen[b.id] = b
        self.tracked.append(b)

    async def save(self, b: Booking, *, now: datetime) -> None:
        await self.conn.execute(
            update(t.bookings).where(t.bookings.c.id == b.id).values(updated_at=now, **_booking_values(b))
        )

    async def save_assignment(self, b: Booking, *, now: datetime) -> None:
        """Write only the planner's fields (vehicle, planned times): a plan step never overwrites a
        status or anything else another transaction may have changed since it read the booking."""
        await self.conn.execute(
            update(t.bookings).where(t.bookings.c.id == b.id).values(
                vehicle_id=b.vehicle_id, planned_pickup=b.planned_pickup, planned_dropoff=b.planned_dropoff,
                promise_broken_at=b.promise_broken_at, relaxed=b.relaxed,
                updated_at=now)
        )

    # ---- retention (transit/retention.py)

    def _finished_before(self, cutoff: datetime) -> Any:
        return and_(t.bookings.c.pickup_latest < cutoff, t.bookings.c.status.not_in([s.value for s in ACTIVE]))

    async def anonymise_finished(self, cutoff: datetime) -> int:
        """Blank name, phone, card, addresses, driver note and cancel reason of finished bookings whose
        pickup window ended before ``cutoff``; the trip facts stay. Returns how many changed."""
        c = t.bookings.c
        res = await self.conn.execute(
            update(t.bookings)
            .where(and_(self._finished_before(cutoff),
                        or_(c.passenger_name != "", c.contact_phone.is_not(None), c.rider_card.is_not(None),
                            c.origin_address.is_not(None), c.destination_address.is_not(None),
                            c.driver_note.is_not(None))))
            .values(passenger_name="", contact_phone=None, rider_card=None, origin_address=None,
                    destination_address=None, driver_note=None, cancel_reason=None)
        )
        return res.rowcount or 0

    def finished_ids_before(self, cutoff: datetime) -> Any:
        """A subquery: ids of the bookings ``anonymise_finished(cutoff)`` covers."""
        return select(t.bookings.c.id).where(self._finished_before(cutoff))


PERSONAL_REQUEST_FIELDS = ("passenger_name", "contact_phone", "rider_card")


class DeliveryRepository:
    """Store orders of delivery bookings (one row per delivery booking)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, row: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.deliveries).values(**row))

    async def get(self, booking_id: str) -> dict[str, Any] | None:
        q = select(t.deliveries).where(t.deliveries.c.booking_id == booking_id)
        row = (await self.conn.execute(q)).mappings().first()
        return dict(row) if row else None

    async def many(self, booking_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of these delivery bookings in one query (a page of bookings), by booking id."""
        ids = list(booking_ids)
        if not ids:
            return {}
        q = select(t.deliveries).where(t.deliveries.c.booking_id.in_(ids))
        return {r["booking_id"]: dict(r) for r in (await self.conn.execute(q)).mappings()}

    async def update(self, booking_id: str, now: datetime, **values: Any) -> None:
        await self.conn.execute(
            update(t.deliveries).where(t.deliveries.c.booking_id == booking_id).values(updated_at=now, **values)
        )

    async def count_failure(self, booking_id: str, now: datetime) -> int:
        """One more wrong handover code; returns the new count (atomic in the database)."""
        await self.conn.execute(
            update(t.deliveries).where(t.deliveries.c.booking_id == booking_id)
            .values(handover_failures=t.deliveries.c.handover_failures + 1, updated_at=now)
        )
        q = select(t.deliveries.c.handover_failures).where(t.deliveries.c.booking_id == booking_id)
        return int((await self.conn.execute(q)).scalar_one())

    async def for_store(self, store_id: str, since: datetime, limit: int = 300) -> list[tuple[dict[str, Any], Booking]]:
        """The store's orders created since ``since``, with their bookings, oldest first."""
        q = (
            select(t.deliveries, t.bookings)
            .join(t.bookings, t.bookings.c.id == t.deliveries.c.booking_id)
            .where(and_(t.deliveries.c.store_id == store_id, t.deliveries.c.created_at >= since))
            .order_by(t.bookings.c.pickup_earliest)
            .limit(limit)
        )
        out = []
        for r in (await self.conn.execute(q)).mappings():
            d = {c.name: r[t.deliveries.c[c.name]] for c in t.deliveries.columns}
            b = _booking_from_row({c.name: r[t.bookings.c[c.name]] for c in t.bookings.columns})
            out.append((d, b))
        return out


    async def forget_personal_data_of(self, booking_ids: Any) -> None:
        """Blank the shopping list and order number of these deliveries (``booking_ids``: ids or a subquery)."""
        await self.conn.execute(
            update(t.deliveries).where(t.deliveries.c.booking_id.in_(booking_ids))
            .values(shopping_list=None, order_number=None)
        )


class OfferRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, offer: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.offers).values(**offer))

    async def get(self, offer_id: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(select(t.offers).where(t.offers.c.id == offer_id))
        ).mappings().first()
        if row is None:
            return None
        d = dict(row)
        for k in ("pickup_earliest", "pickup_latest", "dropoff_latest", "planned_pickup",
                  "planned_dropoff", "created_at", "expires_at"):
            d[k] = _utc(d[k])
        return d

    async def mark_confirmed(self, offer_id: str, booking_id: str) -> None:
        await self.conn.execute(
            update(t.offers).where(t.offers.c.id == offer_id).values(booking_id=booking_id)
        )

    async def release(self, offer_id: str, now: datetime) -> None:
        """Let an unconfirmed offer go now (it can no longer be confirmed)."""
        await self.conn.execute(
            update(t.offers).where(and_(t.offers.c.id == offer_id, t.offers.c.booking_id.is_(None)))
            .values(expires_at=now)
        )

    async def purge_expired(self, before: datetime) -> int:
        res = await self.conn.execute(
            t.offers.delete().where(and_(t.offers.c.expires_at < before, t.offers.c.booking_id.is_(None)))
        )
        return res.rowcount or 0

    async def forget_personal_data_of_anonymised_bookings(self) -> int:
        """Blank the copy of name, phone and card a confirmed offer keeps in ``request`` once its
        booking was anonymised (the booking is the record; the offer must not outlive its purge)."""
        rows = (await self.conn.execute(
            select(t.offers.c.id, t.offers.c.request)
            .join(t.bookings, t.bookings.c.id == t.offers.c.booking_id)
            .where(t.bookings.c.passenger_name == "")
        )).all()
        changed = 0
        for offer_id, request in rows:
            if not any(request.get(k) for k in PERSONAL_REQUEST_FIELDS):
                continue
            blank = {**request, **dict.fromkeys(PERSONAL_REQUEST_FIELDS)}
            await self.conn.execute(update(t.offers).where(t.offers.c.id == offer_id).values(request=blank))
            changed += 1
        return changed


class AccountRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(select(t.accounts).where(t.accounts.c.token_hash == token_hash))
        ).mappings().first()
        return dict(row) if row else None

    async def get(self, account_id: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(select(t.accounts).where(t.accounts.c.id == account_id))
        ).mappings().first()
        return dict(row) if row else None

    async def add(self, account: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.accounts).values(**account))

    async def by_rider_card(self, card: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(select(t.accounts).where(t.accounts.c.rider_card == card))
        ).mappings().first()
        return dict(row) if row else None

    async def list(self) -> list[dict[str, Any]]:
        rows = (await self.conn.execute(select(t.accounts).order_by(t.accounts.c.created_at))).mappings()
        return [dict(r) for r in rows]

    async def set_token(self, account_id: str, token_hash: str, expires_at: datetime | None,
                        disabled: bool = False) -> bool:
        res = await self.conn.execute(
            update(t.accounts).where(t.accounts.c.id == account_id)
            .values(token_hash=token_hash, token_expires_at=expires_at, disabled=disabled)
        )
        return bool(res.rowcount)


class AuditLogRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(self, occurred_at: datetime, actor_id: str, actor_role: str, action: str,
                     subject_ids: Iterable[str]) -> None:
        rows = [dict(occurred_at=occurred_at, actor_id=actor_id, actor_role=actor_role, action=action,
                     subject_id=s) for s in subject_ids]
        if rows:
            await self.conn.execute(insert(t.audit_log), rows)

    async def of_subject(self, subject_id: str) -> list[dict[str, Any]]:
        rows = await self.conn.execute(
            select(t.audit_log).where(t.audit_log.c.subject_id == subject_id).order_by(t.audit_log.c.id))
        return [dict(r) for r in rows.mappings()]


class EventLogRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def since(self, when: datetime, limit: int = 10_000) -> list[dict[str, Any]]:
        """Payloads of the events logged at or after ``when``, oldest first."""
        rows = await self.conn.execute(
            select(t.event_log.c.payload).where(t.event_log.c.occurred_at >= when)
            .order_by(t.event_log.c.id).limit(limit))
        return [r[0] for r in rows]

    async def last_id(self) -> int:
        return int((await self.conn.execute(select(func.max(t.event_log.c.id)))).scalar() or 0)

    async def unattached_after(self, type_: str, after_id: int) -> builtins.list[tuple[int, dict[str, Any]]]:
        """(id, payload) of the events of ``type_`` that belong to no booking or vehicle (aggregate
        ``-``, read through its index: cheap however long the log), logged after id ``after_id``."""
        rows = await self.conn.execute(
            select(t.event_log.c.id, t.event_log.c.payload)
            .where(t.event_log.c.aggregate_id == "-", t.event_log.c.type == type_, t.event_log.c.id > after_id)
            .order_by(t.event_log.c.id))
        return [(int(r[0]), r[1]) for r in rows]

    async def append_many(self, occurred_at: datetime, payloads: Iterable[dict[str, Any]]) -> None:
        rows = [dict(occurred_at=occurred_at, type=d["type"],
                     aggregate_id=d.get("booking_id") or d.get("vehicle_id") or "-", payload=d) for d in payloads]
        if rows:
            await self.conn.execute(insert(t.event_log), rows)

def _row(r: Any) -> dict[str, Any] | None:
    return dict(r) if r else None


class RiderRepository:
    """Riders signed in by phone, their one-time codes, family links and favourites."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def by_phone(self, phone: str) -> dict[str, Any] | None:
        q = select(t.riders).where(t.riders.c.phone == phone)
        return _row((await self.conn.execute(q)).mappings().first())

    async def get(self, account_id: str) -> dict[str, Any] | None:
        q = select(t.riders).where(t.riders.c.account_id == account_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def by_line_user(self, line_user_id: str) -> str | None:
        q = select(t.riders.c.account_id).where(t.riders.c.line_user_id == line_user_id)
        r = (await self.conn.execute(q)).first()
        return str(r[0]) if r else None

    async def add(self, rider: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.riders).values(**rider))

    async def update(self, account_id: str, **values: Any) -> None:
        await self.conn.execute(update(t.riders).where(t.riders.c.account_id == account_id).values(**values))

    async def set_name(self, account_id: str, name: str) -> None:
        await self.conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(name=name))

    # ---- one-time codes

    async def add_code(self, code: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.one_time_codes).values(**code))

    async def codes_since(self, purpose: str, subject: str, since: datetime) -> builtins.list[dict[str, Any]]:
        c = t.one_time_codes.c
        q = (select(t.one_time_codes).where(c.purpose == purpose, c.subject == subject, c.created_at >= since)
             .order_by(c.created_at.desc()))
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def code(self, code_id: str) -> dict[str, Any] | None:
        q = select(t.one_time_codes).where(t.one_time_codes.c.id == code_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def code_by_hash(self, purpose: str, code_hash: str, now: datetime) -> dict[str, Any] | None:
        c = t.one_time_codes.c
        q = select(t.one_time_codes).where(c.purpose == purpose, c.code_hash == code_hash,
                                           c.used_at.is_(None), c.expires_at > now)
        return _row((await self.conn.execute(q)).mappings().first())

    async def update_code(self, code_id: str, **values: Any) -> None:
        await self.conn.execute(update(t.one_time_codes).where(t.one_time_codes.c.id == code_id).values(**values))

    async def purge_codes(self, before: datetime) -> int:
        res = await self.conn.execute(delete(t.one_time_codes).where(t.one_time_codes.c.expires_at < before))
        return res.rowcount or 0

    # ---- family

    async def link(self, guardian_id: str, member_id: str) -> dict[str, Any] | None:
        c = t.family_links.c
        q = select(t.family_links).where(c.guardian_id == guardian_id, c.member_id == member_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def link_by_id(self, link_id: str) -> dict[str, Any] | None:
        q = select(t.family_links).where(t.family_links.c.id == link_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def add_link(self, link: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.family_links).values(**link))

    async def update_link(self, link_id: str, **values: Any) -> None:
        await self.conn.execute(update(t.family_links).where(t.family_links.c.id == link_id).values(**values))

    async def links_of(self, account_id: str) -> builtins.list[dict[str, Any]]:
        """Active links where the account is the guardian or the member, with both names."""
        fl, a_g, a_m = t.family_links, t.accounts.alias("g"), t.accounts.alias("m")
        q = (select(fl, a_g.c.name.label("guardian_name"), a_m.c.name.label("member_name"))
             .join(a_g, a_g.c.id == fl.c.guardian_id).join(a_m, a_m.c.id == fl.c.member_id)
             .where(fl.c.revoked_at.is_(None),
                    (fl.c.guardian_id == account_id) | (fl.c.member_id == account_id))
             .order_by(fl.c.created_at))
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def guardians_of(self, member_id: str) -> builtins.list[str]:
        c = t.family_links.c
        q = select(c.guardian_id).where(c.member_id == member_id, c.revoked_at.is_(None))
        return [r[0] for r in await self.conn.execute(q)]

    # ---- favourites

    async def favourites(self, account_id: str) -> builtins.list[dict[str, Any]]:
        c = t.favourites.c
        q = select(t.favourites).where(c.account_id == account_id).order_by(c.created_at)
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def add_favourite(self, fav: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.favourites).values(**fav))

    async def delete_favourite(self, account_id: str, fav_id: str) -> int:
        c = t.favourites.c
        res = await self.conn.execute(delete(t.favourites).where(c.id == fav_id, c.account_id == account_id))
        return res.rowcount or 0

    # ---- home (door-to-door riders)

    async def home(self, account_id: str) -> dict[str, Any] | None:
        q = select(t.rider_homes).where(t.rider_homes.c.account_id == account_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def set_home(self, account_id: str, address: str, lat: float, lon: float, now: datetime) -> None:
        values = dict(address=address, lat=lat, lon=lon, updated_at=now)
        c = t.rider_homes.c
        res = await self.conn.execute(update(t.rider_homes).where(c.account_id == account_id).values(**values))
        if not res.rowcount:
            await self.conn.execute(insert(t.rider_homes).values(account_id=account_id, **values))

    async def delete_home(self, account_id: str) -> int:
        res = await self.conn.execute(delete(t.rider_homes).where(t.rider_homes.c.account_id == account_id))
        return res.rowcount or 0

    async def forget_idle_homes(self, before: datetime) -> int:
        """Delete the homes set before ``before`` of riders who booked nothing since then, or whose
        account is disabled (retention: the home goes when the rider stops using the service)."""
        h, b, a = t.rider_homes.c, t.bookings.c, t.accounts.c
        booked_since = select(b.id).where(b.account_id == h.account_id, b.created_at >= before).exists()
        disabled = select(a.id).where(a.id == h.account_id, a.disabled.is_(True)).exists()
        q = delete(t.rider_homes).where(or_(disabled, and_(h.updated_at < before, ~booked_since)))
        res = await self.conn.execute(q)
        return res.rowcount or 0


class NoticeRepository:
    """Sent notices by key: the idempotency record of the notifier."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, key: str) -> dict[str, Any] | None:
        q = select(t.sent_notices).where(t.sent_notices.c.key == key)
        return _row((await self.conn.execute(q)).mappings().first())

    async def add(self, notice: dict[str, Any]) -> None:
        await self.conn.execute(insert(t.sent_notices).values(**notice))

    async def claim(self, key: str, expected_status: str, expected_attempts: int, now: datetime) -> bool:
        """Take a failed (or stale) notice for another try; False if another process took it first."""
        c = t.sent_notices.c
        res = await self.conn.execute(
            update(t.sent_notices)
            .where(c.key == key, c.status == expected_status, c.attempts == expected_attempts)
            .values(status="sending", attempts=expected_attempts + 1, updated_at=now))
        return (res.rowcount or 0) == 1

    async def finish(self, key: str, status: str, now: datetime) -> None:
        await self.conn.execute(
            update(t.sent_notices).where(t.sent_notices.c.key == key).values(status=status, updated_at=now))

    async def for_account(self, account_id: str, limit: int = 50) -> builtins.list[dict[str, Any]]:
        c = t.sent_notices.c
        q = select(t.sent_notices).where(c.account_id == account_id).order_by(c.created_at.desc()).limit(limit)
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]


class TompWebhookRepository:
    """MaaS apps' webhook registrations and the outbox of TOMP events sent to them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, account_id: str) -> dict[str, Any] | None:
        q = select(t.tomp_webhooks).where(t.tomp_webhooks.c.account_id == account_id)
        return _row((await self.conn.execute(q)).mappings().first())

    async def put(self, row: dict[str, Any]) -> None:
        """Register or replace the account's webhook (``created_at`` is kept on a replacement)."""
        c = t.tomp_webhooks.c
        old = await self.get(row["account_id"])
        if old is None:
            await self.conn.execute(insert(t.tomp_webhooks).values(**row))
            return
        values = {k: v for k, v in row.items() if k not in ("account_id", "created_at")}
        await self.conn.execute(update(t.tomp_webhooks).where(c.account_id == row["account_id"]).values(**values))

    async def delete(self, account_id: str) -> int:
        res = await self.conn.execute(delete(t.tomp_webhooks).where(t.tomp_webhooks.c.account_id == account_id))
        return res.rowcount or 0

    async def subscribed_bookings(self, booking_ids: Iterable[str]) -> builtins.list[dict[str, Any]]:
        """TOMP bookings among ``booking_ids`` whose MaaS account has a webhook: the offer id (the
        TOMP booking and leg id), the account, and the booking's status, vehicle and cancel reason."""
        ids = sorted(set(booking_ids))
        if not ids:
            return []
        o, w, b = t.offers.c, t.tomp_webhooks.c, t.bookings.c
        q = (select(o.id.label("tomp_id"), o.account_id, b.id.label("booking_id"), b.status, b.vehicle_id,
                    b.cancel_reason)
             .join(t.tomp_webhooks, w.account_id == o.account_id)
             .join(t.bookings, b.id == o.booking_id)
             .where(o.booking_id.in_(ids)))
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def add_event(self, row: dict[str, Any]) -> None:
        """Raises IntegrityError when an event with this id exists (it is sent once)."""
        await self.conn.execute(insert(t.tomp_outbox).values(**row))

    async def event(self, event_id: str) -> dict[str, Any] | None:
        return _row((await self.conn.execute(select(t.tomp_outbox).where(t.tomp_outbox.c.id == event_id)))
                    .mappings().first())

    async def claim_event(self, event_id: str, expected_status: str, expected_attempts: int, now: datetime) -> bool:
        """Take an event for delivery; False if another process took it first."""
        c = t.tomp_outbox.c
        res = await self.conn.execute(
            update(t.tomp_outbox)
            .where(c.id == event_id, c.status == expected_status, c.attempts == expected_attempts)
            .values(status="sending", attempts=expected_attempts + 1, updated_at=now))
        return (res.rowcount or 0) == 1

    async def finish_event(self, event_id: str, status: str, now: datetime, error: str | None = None) -> None:
        await self.conn.execute(update(t.tomp_outbox).where(t.tomp_outbox.c.id == event_id)
                                .values(status=status, last_error=error, updated_at=now))

    async def due_events(self, stale_before: datetime, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Events to (re)deliver: pending ones, and ``sending`` ones a crashed process left, oldest first."""
        c = t.tomp_outbox.c
        q = (select(t.tomp_outbox)
             .where(or_(c.status == "pending", and_(c.status == "sending", c.updated_at < stale_before)))
             .order_by(c.created_at, c.id).limit(limit))
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def last_eta(self, tomp_id: str) -> int | None:
        c = t.tomp_outbox.c
        q = (select(c.eta_s).where(c.tomp_id == tomp_id, c.kind == "eta")
             .order_by(c.created_at.desc(), c.id.desc()).limit(1))
        v = (await self.conn.execute(q)).scalar_one_or_none()
        return int(v) if v is not None else None

    async def for_account(self, account_id: str, limit: int = 100) -> builtins.list[dict[str, Any]]:
        c = t.tomp_outbox.c
        q = select(t.tomp_outbox).where(c.account_id == account_id).order_by(c.created_at, c.id).limit(limit)
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def purge_events(self, before: datetime) -> int:
        """Drop finished events (sent, failed, refused) last touched before ``before``."""
        c = t.tomp_outbox.c
        res = await self.conn.execute(delete(t.tomp_outbox).where(
            c.status.in_(["sent", "failed", "refused"]), c.updated_at < before))
        return res.rowcount or 0
