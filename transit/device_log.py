"""Queries on the device_events table: tablet events applied exactly once, keyed by client event id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from transit import tables as t


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class DeviceEventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, client_event_id: str) -> dict[str, Any] | None:
        row = (
            await self.conn.execute(
                select(t.device_events).where(t.device_events.c.client_event_id == client_event_id)
            )
        ).mappings().first()
        if row is None:
            return None
        d = dict(row)
        d["received_at"] = _utc(d["received_at"])
        return d

    async def add(self, client_event_id: str, vehicle_id: str, type_: str, payload: dict[str, Any],
                  received_at: datetime, result: dict[str, Any]) -> None:
        await self.conn.execute(
            insert(t.device_events).values(
                client_event_id=client_event_id, vehicle_id=vehicle_id, type=type_, payload=payload,
                received_at=received_at, result=result,
            )
        )

    async def for_vehicle(self, vehicle_id: str, types: tuple[str, ...], since: datetime) -> list[dict[str, Any]]:
        """The vehicle's events of these types received since ``since``, oldest first."""
        q = (
            select(t.device_events)
            .where(
                and_(
                    t.device_events.c.vehicle_id == vehicle_id,
                    t.device_events.c.type.in_(types),
                    t.device_events.c.received_at >= since,
                )
            )
            .order_by(t.device_events.c.received_at)
        )
        out = []
        for r in (await self.conn.execute(q)).mappings():
            d = dict(r)
            d["received_at"] = _utc(d["received_at"])
            out.append(d)
        return out

    async def purge_before(self, before: datetime) -> int:
        """Delete the events received before ``before`` (retention); returns how many."""
        res = await self.conn.execute(t.device_events.delete().where(t.device_events.c.received_at < before))
        return res.rowcount or 0
