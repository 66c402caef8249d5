"""All queries live here. Rows in, plain domain objects out."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

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


class StopRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def list(self) -> list[dict[str, Any]]:
        rows = (await self.conn.execute(select(t.stops).order_by(t.stops.c.id))).mappings()
        return [dict(r) for r in rows]

    async def get(self, stop_id: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(select(t.stops).where(t.stops.c.id == stop_id))
        ).mappings().first()
        return dict(row) if row else None

    async def upsert(self, stop: dict[str, Any]) -> None:
        existing = await self.get(stop["id"])
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
    }


def _visit_from_json(d: dict[str, Any]) -> Visit:
    return Visit(
        booking_id=d["booking_id"],
        kind=d["kind"],
        lat=d["lat"],
        lon=d["lon"],
        stop_id=d.get("stop_id"),
        planned_at=datetime.fromisoformat(d["planned_at"]),
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
    )


class VehicleRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.seen: dict[str, Vehicle] = {}

    async def _load(self, rows: Iterable[Any], window: tuple[datetime, datetime] | None = None) -> list[Vehicle]:
        out: list[Vehicle] = []
        rows = list(rows)
        if not rows:
            return out
        ids = [r["id"] for r in rows]
        depots = {
            s["id"]: s
            for s in (
                await self.conn.execute(
                    select(t.stops).where(t.stops.c.id.in_({r["depot_stop_id"] for r in rows}))
                )
            ).mappings()
        }
        sq = select(t.shifts).where(t.shifts.c.vehicle_id.in_(ids)).order_by(t.shifts.c.starts_at)
        if window is not None:  # only the shifts that matter for this planning step
            sq = sq.where(and_(t.shifts.c.starts_at <= window[1], t.shifts.c.ends_at >= window[0]))
        shift_rows = (await self.conn.execute(sq)).mappings()
        shifts: dict[str, list[Shift]] = {}
        for s in shift_rows:
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
                plan=[_visit_from_json(d) for d in (r["plan"] or [])],
                plan_version=r["plan_version"],
                lat=r["lat"],
                lon=r["lon"],
                position_at=_utc(r["position_at"]),
                shifts=shifts.get(r["id"], []),
            )
            self.seen[v.id] = v
            out.append(v)
        return out

    async def list(self, window: tuple[datetime, datetime] | None = None) -> list[Vehicle]:
        rows = (await self.conn.execute(select(t.vehicles).order_by(t.vehicles.c.id))).mappings()
        return await self._load(rows, window)

    async def get(self, vehicle_id: str, *, for_update: bool = False,
                  window: tuple[datetime, datetime] | None = None) -> Vehicle | None:
        q = select(t.vehicles).where(t.vehicles.c.id == vehicle_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        rows = (await self.conn.execute(q)).mappings().all()
        loaded = await self._load(rows, window)
        return loaded[0] if loaded else None

    # ``builtins.list`` below: inside this class ``list`` names the method above.
    async def lock_all(
        self, window: tuple[datetime, datetime] | None = None
    ) -> builtins.list[Vehicle]:
        """Every vehicle, locked in id order (PostgreSQL) so writers queue without deadlock.

        With ``window``, only the shifts overlapping it are loaded (the plan is always whole).
        """
        q = select(t.vehicles).order_by(t.vehicles.c.id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        return await self._load((await self.conn.execute(q)).mappings().all(), window)

    async def add(self, v: Vehicle) -> None:
        await self.conn.execute(insert(t.vehicles).values(id=v.id, **_vehicle_values(v)))
        self.seen[v.id] = v

    async def save(self, v: Vehicle) -> None:
        await self.conn.execute(update(t.vehicles).where(t.vehicles.c.id == v.id).values(**_vehicle_values(v)))

    async def replace_shifts(self, vehicle_id: str, shifts: builtins.list[Shift]) -> None:
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
        max_ride_s=b.max_ride_s,
        pickup_service_s=b.pickup_service_s,
        dropoff_service_s=b.dropoff_service_s,
        planned_pickup=b.planned_pickup,
        planned_dropoff=b.planned_dropoff,
        picked_up_at=b.picked_up_at,
        completed_at=b.completed_at,
        cancel_reason=b.cancel_reason,
    )


class BookingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: dict[str, Booking] = {}

    def _track(self, rows: Iterable[Any]) -> list[Booking]:
        out = []
        for r in rows:
            b = _booking_from_row(r)
            self.seen[b.id] = b
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

    async def for_account(self, account_id: str, *, limit: int = 100) -> list[Booking]:
        q = (
            select(t.bookings)
            .where(t.bookings.c.account_id == account_id)
            .order_by(t.bookings.c.pickup_earliest.desc())
            .limit(limit)
        )
        return self._track((await self.conn.execute(q)).mappings())

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
            either: builtins.list[ColumnElement[bool]] = [b.passenger_name.ilike(f"%{_like(text)}%", escape="\\")]
            number = numbers.normalise(text)
            if number:
                either.append(b.number == number)
            digits = re.sub(r"\D", "", text)
            if len(digits) >= 3:  # a phone number however it was typed: compare the digits only
                phone: ColumnElement[Any] = b.contact_phone
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
                updated_at=now)
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

    async def purge_expired(self, before: datetime) -> int:
        res = await self.conn.execute(
            t.offers.delete().where(and_(t.offers.c.expires_at < before, t.offers.c.booking_id.is_(None)))
        )
        return res.rowcount or 0


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


class EventLogRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def append(self, occurred_at: datetime, type_: str, aggregate_id: str, payload: dict[str, Any]) -> None:
        await self.conn.execute(
            insert(t.event_log).values(
                occurred_at=occurred_at, type=type_, aggregate_id=aggregate_id, payload=payload
            )
        )
