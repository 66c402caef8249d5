"""Operator reads of bookings: the audit row is written in the read's own unit of work, and a page
of bookings loads its deliveries' rows in one query (no query per delivery), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.conftest import Served
from tests.integration.test_deliveries import order


class CountingUow:
    """Wraps the services' unit-of-work factory and counts the units of work opened."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.opened: list[bool] = []  # readonly flag of each

    def __call__(self, *, readonly: bool = False) -> Any:
        self.opened.append(readonly)
        return self.factory(readonly=readonly)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.factory, name)


@contextmanager
def counting(served: Served) -> Iterator[tuple[CountingUow, list[str]]]:
    svc = served.runtime.services  # type: ignore[attr-defined]
    wrapped = CountingUow(svc.uow)
    statements: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = served.runtime.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_execute)
    svc.uow = wrapped
    try:
        yield wrapped, statements
    finally:
        svc.uow = wrapped.factory
        event.remove(engine, "before_cursor_execute", on_execute)


def deliveries_selects(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM deliveries" in s)


async def test_an_operator_read_is_audited_in_its_own_unit_of_work(served: Served) -> None:
    b = await order(served)
    c, op = served.client, served.auth("operator")
    for path in (f"/api/v1/bookings/{b['id']}", f"/api/v1/bookings/by-number/{b['number']}", "/api/v1/bookings"):
        served.app.state.actor_cache.clear()  # type: ignore[attr-defined]
        await c.get("/api/v1/me", headers=op)  # the token is cached now: only the read counts below
        with counting(served) as (uows, _):
            r = await c.get(path, headers=op)
        assert r.status_code == 200, r.text
        assert len(uows.opened) == 1, (path, uows.opened)
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        rows = await uow.audit.of_subject(b["id"])
    assert [r["action"] for r in rows] == ["read_booking", "read_booking_by_number", "list_bookings"]


async def test_a_rider_read_stays_read_only(served: Served) -> None:
    b = await order(served)
    c, h = served.client, served.auth("rider")
    await c.get("/api/v1/me", headers=h)
    with counting(served) as (uows, statements):
        r = await c.get(f"/api/v1/bookings/{b['id']}", headers=h)
    assert r.status_code == 200 and r.json()["delivery"]["handover_code"]
    assert uows.opened == [True]
    assert not any(s.lstrip().upper().startswith("INSERT") for s in statements)


async def test_a_page_of_deliveries_reads_their_rows_in_one_query(served: Served) -> None:
    made = [await order(served, start_h=h) for h in (10, 11, 12)]
    c, op = served.client, served.auth("operator")
    await c.get("/api/v1/me", headers=op)
    with counting(served) as (_, statements):
        r = await c.get("/api/v1/bookings", headers=op)
    assert r.status_code == 200, r.text
    listed = {x["id"]: x for x in r.json()}
    for b in made:  # every delivery still comes with its order (the code only in the desk's read-out)
        assert listed[b["id"]]["delivery"]["booking_id"] == b["id"]
        assert listed[b["id"]]["delivery"]["store_id"] == b["delivery"]["store_id"]
        assert listed[b["id"]]["delivery"]["handover_code"] is None
    assert deliveries_selects(statements) == 1, statements
