"""Live channels for people other than drivers: a rider's booking, and the operator console."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from api.realtime import OperatorConn, RiderConn
from api.routers.ws_common import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    authenticate_ws,
    domain_error,
    error,
    hub_of,
    parse_error,
    pinger,
    receive,
    refuse,
)
from api.schemas import is_id
from driver_app import protocol as p
from transit import errors, handlers

router = APIRouter()


async def _listen(ws: WebSocket, out) -> None:  # type: ignore[no-untyped-def]
    """Answer pings; anything else from a watcher gets an error, and the link stays."""
    while not out.closed:
        raw = await receive(ws, 3 * p.HEARTBEAT_S)
        if raw is None:
            return
        try:
            msg = p.parse_tablet(raw)
        except (ValidationError, ValueError) as exc:
            out.send(parse_error(raw, exc))
            continue
        if isinstance(msg, p.Ping):
            out.send(p.Pong(t=msg.t))
        elif not isinstance(msg, (p.Pong, p.TabletHello)):
            out.send(error("NotAllowed", "この接続では送信できないメッセージです。",
                           "This channel does not accept that message."))


@router.websocket("/ws/bookings/{booking_id}")
async def booking_channel(ws: WebSocket, booking_id: str) -> None:
    """A booking's live status and ETA, for the rider who owns it (or the kiosk/operator who booked)."""
    await ws.accept()
    actor, _ = await authenticate_ws(ws)
    if actor is None:
        return
    svc = ws.app.state.services
    try:
        if not is_id(booking_id) or actor.role == "driver":  # drivers have /ws/driver
            raise errors.NotFound()
        if actor.role in ("driver", "store"):
            # This channel carries a delivery's handover code; the driver must never see it.
            raise errors.NotFound("その予約は見つかりません。", "That booking does not exist.")
        await handlers.get_booking(booking_id, actor, svc)
    except errors.DomainError as e:
        await refuse(ws, domain_error(e), CLOSE_NOT_FOUND)
        return
    hub = hub_of(ws)
    conn = RiderConn(booking_id, hub.outbox(ws))
    hub.add_rider(conn)
    ping_task = asyncio.create_task(pinger(conn.out, p.HEARTBEAT_S))
    try:
        await hub.refresh_rider(booking_id)
        await _listen(ws, conn.out)
    finally:
        ping_task.cancel()
        hub.remove_rider(conn)
        await conn.out.close()


@router.websocket("/ws/operator")
async def operator_channel(ws: WebSocket) -> None:
    """Vehicles, plan changes, promises at risk and re-plan triggers, for the operator console."""
    await ws.accept()
    actor, _ = await authenticate_ws(ws)
    if actor is None:
        return
    if actor.role not in ("operator", "admin"):
        await refuse(ws, domain_error(errors.Forbidden()), CLOSE_FORBIDDEN)
        return
    hub = hub_of(ws)
    conn = OperatorConn(hub.outbox(ws))
    hub.add_operator(conn)
    ping_task = asyncio.create_task(pinger(conn.out, p.HEARTBEAT_S))
    try:
        for v in await hub.views.vehicles(set(hub.tablets)):
            conn.out.send(v)
        await _listen(ws, conn.out)
    finally:
        ping_task.cancel()
        hub.remove_operator(conn)
        await conn.out.close()
