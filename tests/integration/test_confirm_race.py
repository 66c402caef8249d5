"""Confirming one offer with different keys at the same moment: every caller gets the one booking
(a client retrying with a fresh key can never book twice, and is never told it failed)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.conftest import Served
from transit import tables as t


async def test_simultaneous_confirms_with_different_keys_get_the_same_booking(served: Served) -> None:
    c, h = served.client, served.auth("rider")
    o = (await c.post("/api/v1/offers", json={"origin": {"stop_id": "okuma_town_hall"},
                                              "destination": {"stop_id": "okumart"}}, headers=h)).json()
    answers = await asyncio.gather(*[
        c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]}, headers={**h, "Idempotency-Key": f"k{i}"})
        for i in range(8)])
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers if r.status_code != 201]
    assert len({r.json()["id"] for r in answers}) == 1
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        n = (await uow.connection.execute(select(func.count()).select_from(t.bookings))).scalar()
    assert n == 1
