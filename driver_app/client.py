"""A Python driver-tablet client on `websockets`: the simulator, the tests and the benchmarks use it.

It speaks the protocol of ``driver_app/protocol.py`` (the only thing of ``api/`` it imports): says hello
with the driver token, the vehicle and the last seq it saw; keeps the latest plan from the snapshot
and the deltas; sends driver events with a client event id and keeps each one until the server
acknowledges it; reconnects by itself and then resends every unacknowledged event as it was, so
the server applies it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect

from driver_app import protocol as p

log = logging.getLogger("okuma.driver_client")

MessageHook = Callable[[Any], Awaitable[None] | None]


class ProtocolViolation(RuntimeError):
    """The server sent something outside the protocol (unknown type, bad JSON)."""


class Refused(RuntimeError):
    """The server refused the driver (bad token, wrong vehicle): reconnecting will not help."""

    def __init__(self, err: p.ErrorMessage) -> None:
        super().__init__(f"{err.code}: {err.message_en}")
        self.error = err


class EventRejected(RuntimeError):
    def __init__(self, ack: p.Ack | p.ErrorMessage) -> None:
        super().__init__(f"{ack.code}: {ack.message_en}")
        self.reply = ack


def ws_url(base_url: str) -> str:
    """http://host:port -> ws://host:port/ws/driver (https -> wss)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    if not base.endswith("/ws/driver"):
        base += "/ws/driver"
    return base


def new_event_id() -> str:
    return f"py-{secrets.token_hex(10)}"


@dataclass
class PlanState:
    """The vehicle's plan as the tablet knows it."""

    seq: int | None = None
    plan_version: int = 0
    visits: list[p.VisitOut] = field(default_factory=list)
    on_break: bool = False
    etas: dict[tuple[str, str], p.VisitEta] = field(default_factory=dict)


class DriverClient:
    """One tablet: ``async with DriverClient(url, token) as c: await c.wait_synced(); ...``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        vehicle_id: str | None = None,
        *,
        on_message: MessageHook | None = None,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        client_name: str = "okuma-driver-client/1",
    ) -> None:
        self.url = ws_url(base_url)
        self.token = token
        self.vehicle_id = vehicle_id
        self.on_message = on_message
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.client_name = client_name
        self.plan = PlanState()
        self.hello: p.ServerHello | None = None
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()  # unacked events, in order
        self.acks: dict[str, p.Ack | p.ErrorMessage] = {}
        self.connections = 0  # how many times a snapshot was received (1 + reconnects)
        self.refused: Refused | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ack_waiters: dict[str, asyncio.Future[p.Ack | p.ErrorMessage]] = {}
        self._closing = False
        self._paused = asyncio.Event()
        self._paused.set()  # set = allowed to connect

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"driver-client-{self.vehicle_id}")

    async def close(self) -> None:
        self._closing = True
        self._paused.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for fut in self._ack_waiters.values():
            if not fut.done():
                fut.cancel()

    async def disconnect(self) -> None:
        """Drop the link and stay offline until ``reconnect()`` (tests of offline behaviour)."""
        self._paused.clear()
        self._synced.clear()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    def reconnect(self) -> None:
        self._paused.set()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float = 10.0) -> None:
        """Until the snapshot of the current connection has arrived."""
        await asyncio.wait_for(self._synced.wait(), timeout)
        if self.refused:
            raise self.refused

    async def wait_for(self, predicate: Callable[[PlanState], bool], timeout: float = 10.0) -> PlanState:
        """Until ``predicate(plan)`` holds (checked after every snapshot, delta and eta)."""
        async def _wait() -> PlanState:
            async with self._changed:
                await self._changed.wait_for(lambda: self.refused is not None or predicate(self.plan))
            if self.refused:
                raise self.refused
            return self.plan

        return await asyncio.wait_for(_wait(), timeout)

    async def wait_changed(self, timeout: float | None = None) -> None:
        """Until the next snapshot, delta or eta (or ``timeout``, without error)."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    # ------------------------------------------------------------------ events

    async def send(self, event: p.TabletEvent | dict[str, Any], *, wait: bool = False,
                   timeout: float = 10.0) -> str:
        """Send one driver event; it is kept and resent until acknowledged. Returns its id.

        With ``wait=True`` also wait for the acknowledgement and raise ``EventRejected`` if
        the server refused the event.
        """
        data = event.model_dump(mode="json", exclude_none=True) if not isinstance(event, dict) else dict(event)
        if not data.get("client_event_id"):
            data["client_event_id"] = new_event_id()
        p.TABLET_MESSAGE.validate_python(data)  # never send what the server would refuse as malformed
        cid = data["client_event_id"]
        self.acks.pop(cid, None)  # a deliberate resend waits for the new answer
        self.pending[cid] = data
        fut: asyncio.Future[p.Ack | p.ErrorMessage] = asyncio.get_running_loop().create_future()
        self._ack_waiters[cid] = fut
        if self._ws is not None and self.synced:
            with contextlib.suppress(Exception):
                await self._ws.send(_json(data))
        if wait:
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout)
            if isinstance(reply, p.ErrorMessage) or reply.result == "rejected":
                raise EventRejected(reply)
        return cid

    async def send_position(self, lat: float, lon: float, **extra: Any) -> None:
        """Positions are sent live only; a stale one is worth nothing after a reconnect."""
        if self._ws is None or not self.synced:
            return
        data = {"type": "position", "client_event_id": new_event_id(), "lat": lat, "lon": lon, **extra}
        with contextlib.suppress(Exception):
            await self._ws.send(_json(data))

    async def event(self, type_: str, *, timeout: float = 120.0, **fields: Any) -> p.Ack | p.ErrorMessage:
        """Send an event and wait for its acknowledgement (returned, also when rejected).

        Through a disconnect the event waits in ``pending`` and goes again on reconnect.
        """
        cid = await self.send({"type": type_, **fields})
        return await self.wait_ack(cid, timeout)

    async def wait_ack(self, client_event_id: str, timeout: float = 10.0) -> p.Ack | p.ErrorMessage:
        if client_event_id in self.acks:
            return self.acks[client_event_id]
        fut = self._ack_waiters[client_event_id]
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    # ------------------------------------------------------------------ the connection

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._closing:
            await self._paused.wait()
            if self._closing:
                return
            try:
                async with connect(self.url, open_timeout=10, ping_interval=None, max_size=2**22) as ws:
                    self._ws = ws
                    delay = self.reconnect_min_s
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except Refused as exc:
                self.refused = exc
                self._synced.set()  # wake waiters; they raise
                async with self._changed:
                    self._changed.notify_all()
                return
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                log.info("driver link %s down: %s", self.vehicle_id, exc)
            finally:
                self._ws = None
                self._synced.clear()
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _session(self, ws: ClientConnection) -> None:
        hello: dict[str, Any] = {"type": "hello", "token": self.token, "client": self.client_name}
        if self.vehicle_id:
            hello["vehicle_id"] = self.vehicle_id
        if self.plan.seq is not None:
            hello["last_seq"] = self.plan.seq
        await ws.send(_json(hello))
        heartbeat = asyncio.create_task(self._heartbeat(ws))
        try:
            async for raw in ws:
                await self._handle(ws, raw)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self._last_heard = loop.time()
        while True:
            interval = (self.hello.heartbeat_s if self.hello else p.HEARTBEAT_S)
            await asyncio.sleep(interval / 2)
            if loop.time() - self._last_heard > 3 * interval:
                log.info("driver link %s: heartbeat lost", self.vehicle_id)
                await ws.close()
                return
            with contextlib.suppress(Exception):
                await ws.send(_json({"type": "ping", "t": loop.time()}))

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        self._last_heard = asyncio.get_running_loop().time()
        try:
            msg = p.parse_server(raw)
        except ValidationError as exc:
            # Unknown types and malformed frames are a bug on one side: fail loudly.
            raise ProtocolViolation(f"server sent {str(raw)[:200]!r}: {exc}") from exc
        if isinstance(msg, p.ServerHello):
            self.hello = msg
            if self.vehicle_id is None:
                self.vehicle_id = msg.vehicle_id
        elif isinstance(msg, p.Snapshot):
            self.plan.seq = msg.seq
            self.plan.plan_version = msg.plan_version
            self.plan.visits = list(msg.visits)
            self.plan.on_break = msg.on_break
            self.connections += 1
            self._synced.set()
            for data in list(self.pending.values()):  # replay, same client event ids
                await ws.send(_json(data))
        elif isinstance(msg, p.Delta):
            if self.plan.seq is None or msg.seq > self.plan.seq:
                self.plan.seq = msg.seq
                self.plan.plan_version = msg.plan_version
                self.plan.visits = list(msg.visits)
        elif isinstance(msg, p.EtaUpdate):
            self.plan.etas = {(e.booking_id, e.kind): e for e in msg.etas}
        elif isinstance(msg, p.Ack):
            self._settle(msg.client_event_id, msg)
        elif isinstance(msg, p.ErrorMessage):
            if msg.client_event_id and msg.code == "InternalError":
                log.warning("server could not record %s now; it is resent on reconnect", msg.client_event_id)
            elif msg.client_event_id:
                self._settle(msg.client_event_id, msg)
            elif msg.code in ("Unauthorised", "Forbidden"):
                raise Refused(msg)
            else:
                log.warning("server error for %s: %s %s", self.vehicle_id, msg.code, msg.message_en)
        elif isinstance(msg, p.Ping):
            await ws.send(_json({"type": "pong", "t": msg.t}))
        if self.on_message is not None:
            res = self.on_message(msg)
            if asyncio.iscoroutine(res):
                await res
        if isinstance(msg, (p.Snapshot, p.Delta, p.EtaUpdate, p.ServerHello)):
            async with self._changed:
                self._changed.notify_all()

    def _settle(self, cid: str, reply: p.Ack | p.ErrorMessage) -> None:
        self.pending.pop(cid, None)
        self.acks[cid] = reply
        while len(self.acks) > 1000:  # keep the recent ones for late wait_ack calls
            self.acks.pop(next(iter(self.acks)))
        fut = self._ack_waiters.pop(cid, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)
        if isinstance(reply, p.ErrorMessage) or reply.result == "rejected":
            log.info("event %s rejected: %s %s", cid, reply.code, reply.message_en)


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, default=_default)


def _default(o: object) -> object:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
