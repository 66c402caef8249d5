"""TOMP webhooks: leg events, no-shows and ETAs POSTed to the MaaS app, signed, once each.

TOMP 1.6 lets a MaaS provider (MP) give a ``callbackUrl``: "the base url for callback, f.x. the
POST legs/{id}/events and POST /bookings/{id}/events". A MaaS account registers that base URL
and a secret once (``PUT /tomp/webhook``); then, for each of its bookings, this module POSTs the
1.6 shapes to the MP's own endpoints under it:

- ``/bookings/{id}/events``       ``bookingOperation`` COMMIT (committed), CANCEL (cancelled);
- ``/legs/{id}/events``           ``legEvent`` ASSIGN_ASSET (vehicle assigned or changed),
                                  PREPARE (vehicle arriving), SET_IN_USE (boarded), FINISH;
- ``/bookings/{id}/notifications`` ``notification`` USER_NO_SHOW, ETA (pickup ETA changed).

The bus handler only queues the domain events; a background worker (off the request) turns
them into outbox rows and delivers them. Each row's id is derived from what happened (never from
the time), so the same domain event seen twice (Redis replay, a second server process) makes
one row, and a retry resends the stored body byte for byte. Delivery retries 429 and 5xx with
backoff through ``transit.notify.post_with_retry``. Field by field: docs/feeds.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from transit.booking import BookingStatus
from transit.clock import Clock, from_epoch, local
from transit.events import BookingCancelled, BookingStatusChanged, Event, PlanChanged, RideBooked
from transit.notify import DeliveryFailed, RetryPolicy, post_with_retry
from transit.operations import EtasUpdated
from transit.uow import UnitOfWorkFactory

log = logging.getLogger("okuma.tomp.webhooks")

EVENT_TYPES: tuple[type[Event], ...] = (RideBooked, BookingCancelled, BookingStatusChanged, PlanChanged,
                                        EtasUpdated)
EVENT_NS = uuid.UUID("0b7c2a4e-5a52-4d43-9a55-8f2b7f3c1d20")
SIGNATURE_HEADER = "X-Okuma-Signature"
EVENT_ID_HEADER = "X-Okuma-Event-Id"
API_VERSION = "1.6.0"
STALE_SENDING_S = 600  # a "sending" row older than this was left by a crashed process
MAX_HELD_BATCHES = 10_000  # batches kept while the database fails; beyond, the oldest go (logged)
ETA_STEP_S = 120  # an ETA notification when the pickup ETA moved this much since the last one sent
PICKUP_OPEN = (BookingStatus.CONFIRMED.value, BookingStatus.ARRIVING.value)
LEG_EVENT = {BookingStatus.ARRIVING.value: "PREPARE", BookingStatus.ON_BOARD.value: "SET_IN_USE",
             BookingStatus.COMPLETED.value: "FINISH"}
CANCEL_ORIGIN = {"maas": "MP", "rider": "END_USER"}  # otherwise the town cancelled: TO


def signature(secret: str, body: bytes) -> str:
    """``X-Okuma-Signature``: ``sha256=`` + hex HMAC-SHA256 of the raw body with the webhook secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(signature(secret, body), (header or "").strip())


def event_id(key: str) -> str:
    return str(uuid.uuid5(EVENT_NS, key))


def _texts(kind: str, minutes: int | None, when: datetime | None, lang: str) -> str:
    hm = local(when).strftime("%H:%M") if when else ""
    ja = {"no_show": "乗車場所でお会いできなかったため、予約は終了しました。",
          "eta": f"お迎えはあと約{minutes}分({hm}ごろ)の予定です。"}
    en = {"no_show": "The rider was not at the pickup; the booking has ended.",
          "eta": f"Pickup expected in about {minutes} min (around {hm})."}
    return (en if lang == "en" else ja)[kind]


@dataclass
class TompWebhooks:
    uow: UnitOfWorkFactory
    clock: Clock
    operator_id: str  # our maas-id header as the sender (the agency id of the GTFS feed)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    timeout_s: float = 10.0
    sweep_s: float = 30.0  # how often the worker looks for rows left behind (a restart, a crash)
    _queue: asyncio.Queue[list[Event]] = field(default_factory=asyncio.Queue)
    _worker: asyncio.Task[None] | None = None
    _busy: bool = False
    _pending: int = 0  # batches queued and not yet fully handled
    _held: list[list[Event]] = field(default_factory=list)  # taken from the queue, rows not yet written
    _client: httpx.AsyncClient | None = None
    _last_stamp: datetime | None = None

    # ---- the bus side: enqueue only

    async def on_events(self, events: Sequence[Event]) -> None:
        """Bus handler (registered for ``EVENT_TYPES``): queue and return; nothing waits on delivery."""
        if not events:
            return
        self._queue.put_nowait(list(events))
        self._pending += 1
        self.start()

    def start(self) -> None:
        """Start the worker now (the app's lifespan), so rows left by a restart are swept (after
        ``sweep_s``) even if no event comes."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="tomp-webhooks")

    async def drain(self) -> None:
        """Wait until every queued event is handled and every due row delivered (tests, shutdown)."""
        while self._worker is not None and not self._worker.done() and (self._pending or self._busy):
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=5)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:  # a sweep every sweep_s even without events (rows a restart left)
            try:
                batch = await asyncio.wait_for(self._queue.get(), timeout=self.sweep_s)
            except TimeoutError:
                batch = []
            self._busy = True
            try:
                if batch:
                    self._held.append(batch)
                while self._held:  # oldest first; kept until its rows are written (a DB blip loses nothing)
                    await self._enqueue(self._held[0])
                    self._held.pop(0)
                    self._pending -= 1
                await self.deliver_due()
            except Exception:  # keep the worker alive; held batches and rows stay for the next round
                log.exception("TOMP webhook round failed (%d batches held for the next round)", len(self._held))
                while len(self._held) > MAX_HELD_BATCHES:
                    self._held.pop(0)
                    self._pending -= 1
                    log.error("TOMP webhook: the oldest held batch of events was dropped (more than %d held)",
                              MAX_HELD_BATCHES)
            finally:
                self._busy = False

    # ---- domain events -> outbox rows

    async def _enqueue(self, events: Sequence[Event]) -> None:
        ids: set[str] = set()
        for e in events:
            if isinstance(e, (RideBooked, BookingCancelled, BookingStatusChanged)):
                ids.add(e.booking_id)
            elif isinstance(e, PlanChanged):
                ids.update(e.booking_ids)
            elif isinstance(e, EtasUpdated):
                ids.update(b for b, kind, *_ in e.etas if kind == "pickup")
        async with self.uow(readonly=True) as uow:
            subs = {r["booking_id"]: r for r in await uow.tomp_webhooks.subscribed_bookings(ids)}
            hooks = {a: await uow.tomp_webhooks.get(a) for a in {r["account_id"] for r in subs.values()}}
        if not subs:
            return
        now = self.clock.now()
        for e in events:
            for row in self._rows(e, subs, hooks, now):
                await self._add(row, self._stamp(now))

    def _stamp(self, now: datetime) -> datetime:
        """Strictly increasing ``created_at`` in this process: rows are delivered in the order made."""
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def _rows(self, e: Event, subs: dict[str, dict[str, Any]], hooks: dict[str, Any],
              now: datetime) -> list[dict[str, Any]]:
        t = local(now).isoformat()
        out: list[dict[str, Any]] = []

        def add(sub: dict[str, Any], kind: str, key: str, path: str, body: dict[str, Any],
                eta_s: int | None = None) -> None:
            out.append(dict(id=event_id(key), account_id=sub["account_id"], tomp_id=sub["tomp_id"], kind=kind,
                            path=path, body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                            eta_s=eta_s))

        if isinstance(e, (RideBooked, BookingCancelled, BookingStatusChanged)) and e.booking_id in subs:
            sub = subs[e.booking_id]
            tid = sub["tomp_id"]
            if isinstance(e, RideBooked):
                add(sub, "commit", f"commit:{tid}", f"/bookings/{tid}/events", {"operation": "COMMIT"})
                add(sub, "assign", f"assign:{tid}:{e.vehicle_id}", f"/legs/{tid}/events",
                    {"time": t, "event": "ASSIGN_ASSET", "asset": {"id": e.vehicle_id}})
            elif isinstance(e, BookingCancelled):
                origin = CANCEL_ORIGIN.get(e.reason, "TO")
                add(sub, "cancel", f"cancel:{tid}", f"/bookings/{tid}/events",
                    {"operation": "CANCEL", "origin": origin})
            elif e.status == BookingStatus.NO_SHOW.value:
                lang = hooks[sub["account_id"]]["language"]
                add(sub, "no_show", f"no_show:{tid}", f"/bookings/{tid}/notifications",
                    {"type": "USER_NO_SHOW", "legId": tid, "comment": _texts("no_show", None, None, lang)})
            elif e.status in LEG_EVENT:
                add(sub, LEG_EVENT[e.status].lower(), f"{e.status}:{tid}", f"/legs/{tid}/events",
                    {"time": t, "event": LEG_EVENT[e.status]})
        elif isinstance(e, PlanChanged):
            for bid in e.booking_ids:
                moved = subs.get(bid)
                if moved is not None and moved["vehicle_id"] and moved["status"] in PICKUP_OPEN:
                    tid = moved["tomp_id"]
                    add(moved, "assign", f"assign:{tid}:{moved['vehicle_id']}", f"/legs/{tid}/events",
                        {"time": t, "event": "ASSIGN_ASSET", "asset": {"id": moved["vehicle_id"]}})
        elif isinstance(e, EtasUpdated):
            for bid, kind, eta_s, *_ in e.etas:
                waiting = subs.get(bid)
                if kind != "pickup" or waiting is None or waiting["status"] not in PICKUP_OPEN:
                    continue
                tid = waiting["tomp_id"]
                minutes = max(0, round((eta_s - e.computed_s) / 60))
                lang = hooks[waiting["account_id"]]["language"]
                add(waiting, "eta", f"eta:{tid}:{eta_s // 60}", f"/bookings/{tid}/notifications",
                    {"type": "ETA", "minutes": minutes, "legId": tid,
                     "comment": _texts("eta", minutes, from_epoch(eta_s), lang)}, eta_s=eta_s)
        return out

    async def _add(self, row: dict[str, Any], now: datetime) -> None:
        try:
            async with self.uow() as uow:
                if row["kind"] == "eta":
                    last = await uow.tomp_webhooks.last_eta(row["tomp_id"])
                    if last is not None and abs(row["eta_s"] - last) < ETA_STEP_S:
                        return
                await uow.tomp_webhooks.add_event({**row, "status": "pending", "attempts": 0,
                                                   "created_at": now, "updated_at": now})
                await uow.commit()
        except IntegrityError:
            pass  # this event is already in the outbox: sent (or being sent) once

    # ---- delivery

    async def deliver_due(self) -> int:
        """Deliver every pending row (and rows a crashed process left), oldest first; returns how many sent."""
        now = self.clock.now()
        async with self.uow(readonly=True) as uow:
            rows = await uow.tomp_webhooks.due_events(now - timedelta(seconds=STALE_SENDING_S))
        sent = 0
        for row in rows:
            sent += await self._deliver(row)
        return sent

    async def _deliver(self, row: dict[str, Any]) -> int:
        now = self.clock.now()
        async with self.uow() as uow:
            if not await uow.tomp_webhooks.claim_event(row["id"], row["status"], row["attempts"], now):
                await uow.commit()
                return 0  # another process has it
            hook = await uow.tomp_webhooks.get(row["account_id"])
            await uow.commit()
        status, error = "sent", None
        if hook is None:
            status, error = "refused", "no webhook registered"
        else:
            body = row["body"].encode("utf-8")
            headers = {"Content-Type": "application/json", "Api": "TOMP", "Api-Version": API_VERSION,
                       "maas-id": self.operator_id, "addressed-to": hook["maas_id"],
                       "Content-Language": hook["language"], EVENT_ID_HEADER: row["id"],
                       SIGNATURE_HEADER: signature(hook["secret"], body)}
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self.timeout_s)
            try:
                await post_with_retry(self._client, hook["callback_url"].rstrip("/") + row["path"],
                                      what="TOMP webhook", policy=self.policy, sleep=self.sleep,
                                      content=body, headers=headers)
            except DeliveryFailed as exc:
                status, error = ("refused" if exc.permanent else "failed"), str(exc)[:100]
                log.warning("TOMP webhook %s (%s) for %s: %s", row["kind"], row["id"], row["account_id"], error)
        async with self.uow() as uow:
            await uow.tomp_webhooks.finish_event(row["id"], status, self.clock.now(), error)
            await uow.commit()
        return 1 if status == "sent" else 0


# ------------------------------------------------------------------------------ registration

def _internal_host(host: str) -> bool:
    """This machine or a non-public network: localhost names and IP literals that are not global
    (loopback, private, link-local such as the cloud metadata address, unspecified, reserved)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name: not resolved here (docs/feeds.md)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


def check_callback_url(url: str, *, development: bool) -> str:
    """An absolute http(s) URL (a port, if any, 1-65535) without credentials, query or fragment. Outside development: https,
    and not this machine or a private network (our server must not be made to POST to its own
    internal services); development allows both."""
    from transit import errors

    bad = errors.InvalidInput("callbackUrl は http(s) の絶対URL(認証情報・クエリなし)です。",
                              "callbackUrl must be an absolute http(s) URL without credentials or query.",
                              field="callbackUrl")
    try:
        u = httpx.URL(url)
        text = str(u).rstrip("/")
        ok = (u.scheme in ("http", "https") and bool(u.host) and not (u.userinfo or u.query or u.fragment)
              and (u.port is None or 0 < u.port < 65536))
    except (httpx.InvalidURL, ValueError):  # IDNA errors are ValueErrors
        raise bad from None
    if not ok:
        raise bad
    if development:
        return text
    if u.scheme != "https":
        raise errors.InvalidInput("callbackUrl は https にしてください。", "callbackUrl must use https.",
                                  field="callbackUrl")
    if _internal_host(u.host):
        raise errors.InvalidInput("callbackUrl にこのサーバーや内部ネットワークの宛先は使えません。",
                                  "callbackUrl may not point at this server or a private network.",
                                  field="callbackUrl")
    return text


async def register(uow: UnitOfWorkFactory, now: datetime, account_id: str, *, callback_url: str, secret: str,
                   maas_id: str, language: str) -> dict[str, Any]:
    async with uow() as u:
        await u.tomp_webhooks.put(dict(account_id=account_id, callback_url=callback_url, secret=secret,
                                       maas_id=maas_id, language=language, created_at=now, updated_at=now))
        await u.commit()
    row = await registration(uow, account_id)
    assert row is not None
    return row


async def registration(uow: UnitOfWorkFactory, account_id: str) -> dict[str, Any] | None:
    async with uow(readonly=True) as u:
        return await u.tomp_webhooks.get(account_id)


async def unregister(uow: UnitOfWorkFactory, account_id: str) -> bool:
    async with uow() as u:
        n = await u.tomp_webhooks.delete(account_id)
        await u.commit()
    return n > 0
