"""The per-process read caches of the booking path (plans by version, shifts), on SQLite and
PostgreSQL: a fleet read parses only plans that changed, and never serves a stale or uncommitted one."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from tests.conftest import Served
from tests.integration.test_booking_reads import counting
from transit.vehicle import Shift, Visit


def plan_reads(statements: list[str]) -> int:
    """Statements that read the plan column (the expensive part of a vehicle row)."""
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT")
               and re.search(r'vehicles\.("plan"|plan\b(?!_))', s))


async def book(served: Served, key: str, minute: int = 0) -> dict[str, Any]:
    c, h = served.client, served.auth("operator")
    when = served.clock.now() + timedelta(hours=1, minutes=minute)
    o = await c.post("/api/v1/offers", json={"origin": {"stop_id": "okuma_town_hall"},
                                             "destination": {"stop_id": "okumart"},
                                             "time_mode": "leave_at", "time": when.isoformat()}, headers=h)
    assert o.status_code == 201, o.text
    b = await c.post("/api/v1/bookings", json={"offer_id": o.json()["offer_id"]},
                     headers={**h, "Idempotency-Key": key})
    assert b.status_code == 201, b.text
    return b.json()


async def test_a_fleet_read_parses_only_plans_that_changed(served: Served) -> None:
    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    await book(served, "c1")
    async with uows(readonly=True) as uow:
        first = {v.id: (v.plan_version, v.plan) for v in await uow.vehicles.list()}
    with counting(served) as (_, statements):
        async with uows(readonly=True) as uow:
            again = {v.id: (v.plan_version, v.plan) for v in await uow.vehicles.list()}
    assert again == first and any(plan for _, plan in first.values())
    assert plan_reads(statements) == 0, statements  # every plan came from the cache
    b = await book(served, "c2", minute=20)  # one vehicle's plan changes (committed)
    with counting(served) as (_, statements):
        async with uows(readonly=True) as uow:
            after = {v.id: (v.plan_version, v.plan) for v in await uow.vehicles.list()}
    assert plan_reads(statements) == 1
    assert after[b["vehicle_id"]][0] == first[b["vehicle_id"]][0] + 1
    assert b["id"] in {x.booking_id for x in after[b["vehicle_id"]][1]}


async def test_a_plan_written_and_rolled_back_is_never_served(served: Served) -> None:
    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    async with uows(readonly=True) as uow:
        v = (await uow.vehicles.list())[0]
        before = (v.plan_version, list(v.plan))
    async with uows() as uow:  # writes a new plan, reads it back in the same transaction, rolls back
        w = await uow.vehicles.get(v.id, for_update=True)
        assert w is not None
        ghost = Visit("bkg_ghost", "pickup", w.depot_lat, w.depot_lon, None, served.clock.now())
        w.replace_plan([ghost], "test")
        await uow.vehicles.save(w)
        again = await uow.vehicles.get(v.id)
        assert again is not None and again.plan == [ghost]
    async with uows(readonly=True) as uow:
        v2 = next(x for x in await uow.vehicles.list() if x.id == v.id)
    assert (v2.plan_version, v2.plan) == before


async def test_plans_handed_out_are_copies(served: Served) -> None:
    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    await book(served, "c3")
    async with uows(readonly=True) as uow:
        v = next(x for x in await uow.vehicles.list() if x.plan)
        n = len(v.plan)
        v.plan.clear()
    async with uows(readonly=True) as uow:
        assert len(next(x for x in await uow.vehicles.list() if x.id == v.id).plan) == n


async def test_replaced_shifts_are_seen_at_once(served: Served) -> None:
    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    async with uows(readonly=True) as uow:
        v = (await uow.vehicles.list())[0]
    now = served.clock.now()
    new = [Shift("sh_test", v.id, now + timedelta(days=9), now + timedelta(days=9, hours=3))]
    async with uows() as uow:
        await uow.vehicles.replace_shifts(v.id, new)
        await uow.commit()
    async with uows(readonly=True) as uow:
        got = (await uow.vehicles.get(v.id))
    assert got is not None and [s.id for s in got.shifts] == ["sh_test"]


async def test_the_shifts_of_a_window_are_exactly_those_overlapping_it(served: Served) -> None:
    """Many shifts per vehicle (one a day, some overlapping): the cached look-up picks the same
    shifts as the database's own overlap test."""
    from sqlalchemy import and_, select

    from transit import tables as t

    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    async with uows(readonly=True) as uow:
        v = (await uow.vehicles.list())[0]
    now = served.clock.now()
    shifts = [Shift(f"sh_{d}", v.id, now + timedelta(days=d), now + timedelta(days=d, hours=13))
              for d in range(60)]
    shifts.append(Shift("sh_long", v.id, now + timedelta(days=3, hours=1), now + timedelta(days=9)))
    async with uows() as uow:
        await uow.vehicles.replace_shifts(v.id, shifts)
        await uow.commit()
    for start_h, len_h in [(0, 1), (14, 2), (13, 1), (24 * 5 + 20, 3), (24 * 8, 40), (-5, 2), (24 * 70, 1)]:
        window = (now + timedelta(hours=start_h), now + timedelta(hours=start_h + len_h))
        async with uows(readonly=True) as uow:
            got = await uow.vehicles.get(v.id, window=window)
            s = t.shifts.c
            want = (await uow.connection.execute(
                select(s.id).where(and_(s.vehicle_id == v.id, s.starts_at <= window[1], s.ends_at >= window[0]))
                .order_by(s.starts_at))).scalars().all()
        assert got is not None and [x.id for x in got.shifts] == list(want), (start_h, len_h)


async def test_a_plan_saved_without_a_new_version_is_read_as_saved(served: Served) -> None:
    """The cache is keyed by plan version, but a write that kept the version (a repair, a test's
    tampering) must not leave the old plan in this process's cache."""
    from dataclasses import replace

    b = await book(served, "c4")
    uows = served.runtime.services.uow  # type: ignore[attr-defined]
    async with uows(readonly=True) as uow:
        await uow.vehicles.list()  # cached
    async with uows() as uow:
        v = await uow.vehicles.get(b["vehicle_id"], for_update=True)
        assert v is not None
        v.plan[0] = replace(v.plan[0], planned_at=v.plan[0].planned_at + timedelta(minutes=30))
        await uow.vehicles.save(v)
        await uow.commit()
    async with uows(readonly=True) as uow:
        again = next(x for x in await uow.vehicles.list() if x.id == v.id)
    assert again.plan_version == v.plan_version and again.plan[0].planned_at == v.plan[0].planned_at
