"""The driver tablet channel: /ws/driver. Snapshot on (re)connect, deltas, acknowledged events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from api.realtime import TabletConn
from api.routers.ws_common import (
    CLOSE_FORBIDDEN,
    authenticate_ws,
    domain_error,
    error,
    hub_of,
    parse_error,
    pinger,
    receive,
    refuse,
)
from driver_app import protocol as p
from transit import errors
from transit import operations as ops

router = APIRouter()
log = logging.getLogger("okuma.ws.driver")


def command(vehicle_id: str, m: p.TabletEvent) -> ops.DriverEvent:
    """A protocol event as the operations command (the websocket edge stays thin)."""
    base = dict(vehicle_id=vehicle_id, client_event_id=m.client_event_id, at=m.at)
    if isinstance(m, p.PositionReport):
        return ops.ReportPosition(**base, lat=m.lat, lon=m.lon, heading=m.heading, speed_kmh=m.speed_kmh)
    if isinstance(m, p.Arrived):
        return ops.ReportArrival(**base, stop_id=m.stop_id, booking_ids=tuple(m.booking_ids), lat=m.lat, lon=m.lon)
    if isinstance(m, p.Boarded):
        return ops.ReportBoarded(**base, booking_id=m.booking_id, count=m.count)
    if isinstance(m, p.NoShow):
        return ops.ReportNoShow(**base, booking_id=m.booking_id)
    if isinstance(m, p.DroppedOff):
        return ops.ReportDropOff(**base, booking_id=m.booking_id)
    if isinstance(m, p.ParcelPickedUp):
        return ops.ReportParcelPickedUp(**base, booking_id=m.booking_id, code=m.code)
    if isinstance(m, p.ParcelHandedOver):
        return ops.ReportParcelHandedOver(**base, booking_id=m.booking_id, code=m.code)
    if isinstance(m, p.BreakStart):
        return ops.ReportBreak(**base, started=True)
    return ops.ReportBreak(**base, started=False)


@router.websocket("/ws/driver")
async def driver_channel(ws: WebSocket, vehicle_id: str | None = None,
                         last_seq: int | None = None) -> None:
    await ws.accept()
    actor, hello = await authenticate_ws(ws)
    if actor is None:
        return
    if actor.role != "driver" or not actor.vehicle_id:
        await refuse(ws, domain_error(errors.Forbidden(
            "この接続は運転士用です。", "This channel is for drivers.")), CLOSE_FORBIDDEN)
        return
    wanted = (hello.vehicle_id if hello else None) or vehicle_id
    if wanted and wanted != actor.vehicle_id:
        await refuse(ws, domain_error(errors.Forbidden(
            "この運転士はその車両に割り当てられていません。", "This driver is not assigned to that vehicle.")),
            CLOSE_FORBIDDEN)
        return
    hub = hub_of(ws)
    operations: ops.Operations = ws.app.state.runtime.operations
    conn = TabletConn(actor.vehicle_id, hub.outbox(ws))
    resumed = hello.last_seq if hello and hello.last_seq is not None else last_seq
    ping_task = asyncio.create_task(pinger(conn.out, p.HEARTBEAT_S))
    try:
        await hub.add_tablet(conn, resumed_from=resumed)
        while not conn.out.closed:
            raw = await receive(ws, 3 * p.HEARTBEAT_S)
            if raw is None:
                break
            try:
                msg = p.parse_tablet(raw)
            except (ValidationError, ValueError) as exc:
                conn.out.send(parse_error(raw, exc))
                continue
            if isinstance(msg, p.Ping):
                conn.out.send(p.Pong(t=msg.t))
            elif isinstance(msg, p.Pong):
                pass
            elif isinstance(msg, (p.Resync, p.TabletHello)):
                if isinstance(msg, p.TabletHello) and msg.vehicle_id and msg.vehicle_id != actor.vehicle_id:
                    conn.out.send(error("Forbidden", "この運転士はその車両に割り当てられていません。",
                                        "This driver is not assigned to that vehicle."))
                    continue
                await hub.send_snapshot(conn)
            else:
                started = time.perf_counter()
                try:
                    result = await operations.report(command(actor.vehicle_id, msg))
                except errors.DomainError as e:
                    result = ops.EventResult("rejected", e.code, e.message_ja, e.message_en)
                except Exception:  # answer, keep the link, keep the event for a resend
                    log.exception("driver event failed")
                    conn.out.send(error("InternalError", "一時的に記録できませんでした。もう一度送ってください。",
                                        "Could not record this just now. Please send it again.",
                                        msg.client_event_id))
                    continue
                conn.out.send(p.Ack(client_event_id=msg.client_event_id, result=result.result,
                                    code=result.code, message_ja=result.message_ja,
                                    message_en=result.message_en))
                log.debug("%s %s in %.1f ms", msg.type, result.result, (time.perf_counter() - started) * 1e3)
    finally:
        ping_task.cancel()
        hub.remove_tablet(conn)
        await conn.out.close()
        with contextlib.suppress(Exception):  # the peer may already be gone
            await ws.close()
