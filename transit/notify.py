"""The notifier: tells riders (and their family) what happens, outside the open page.

One interface (``Channel``) with three adapters: LINE Messaging API push (``LineChannel``), SMS
(``SmsGateway``; ``TwilioSms`` speaks Twilio's Messages API) and a log-only development adapter
(``LogChannel``). Every outgoing POST retries through ``post_with_retry`` (also used by the TOMP
webhooks). ``Notifier`` picks a channel per rider, sends each notice at most once (the
``sent_notices`` table, keyed by notice key) and runs only after a commit: it subscribes to the
event bus and works in background tasks, so a slow LINE never holds up a booking.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from sqlalchemy.exc import IntegrityError

from transit import errors
from transit.booking import Booking, BookingStatus
from transit.clock import Clock, from_epoch, local
from transit.events import BookingCancelled, BookingStatusChanged, Event, PromiseAtRisk, RideBooked
from transit.operations import EtasUpdated
from transit.uow import UnitOfWorkFactory

log = logging.getLogger("okuma.notify")

# The events a rider (and their family) is told of.
CONFIRMED, NEAR, BOARDED, NOT_AT_STOP, AT_RISK, CANCELLED, DELIVERED = (
    "confirmed", "near", "boarded", "not_at_stop", "promise_at_risk", "cancelled", "delivered")
KINDS = (CONFIRMED, NEAR, BOARDED, NOT_AT_STOP, AT_RISK, CANCELLED, DELIVERED)
# The event types the notifier is registered for on the bus.
NOTIFY_EVENTS: tuple[type[Event], ...] = (RideBooked, BookingCancelled, BookingStatusChanged, PromiseAtRisk,
                                          EtasUpdated)
# Family guardians hear of everything but "near" (that one is for the person at the stop).
FOR_GUARDIANS = frozenset({CONFIRMED, BOARDED, NOT_AT_STOP, AT_RISK, CANCELLED, DELIVERED})
STALE_SENDING_S = 600  # a "sending" row older than this was left by a crashed process: retry it
RETRY_KEY_NS = uuid.UUID("6f0c6b8e-8d1b-4c59-9d53-2f7f3b0a9e61")


def normalise_phone(raw: str) -> str:
    """A Japanese phone number (full-width digits, hyphens, +81 all accepted) as E.164."""
    s = unicodedata.normalize("NFKC", raw or "").strip()
    digits = "".join(ch for ch in s if ch.isdigit())
    if s.startswith("+81") or (s.startswith("81") and len(digits) in (11, 12)):
        digits = "0" + digits[2:]
    if not (digits.startswith("0") and len(digits) in (10, 11) and digits[1] != "0"):
        raise errors.InvalidInput(
            "電話番号を正しく入れてください(例: 090-1234-5678)。",
            "Please enter a valid Japanese phone number (e.g. 090-1234-5678).", field="phone")
    return "+81" + digits[1:]



class DeliveryFailed(Exception):
    """A notice could not be handed over; ``permanent`` means retrying will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """Something that delivers a short text to one address (a LINE user id, a phone number)."""

    name: str

    async def send(self, address: str, text: str, retry_key: str) -> None:
        """Deliver once; the same ``retry_key`` on a retry must never deliver twice. Raises DeliveryFailed."""
        ...


class SmsGateway(Channel, Protocol):
    """An SMS provider: ``address`` is a phone number (sent as E.164). ``TwilioSms`` is one."""


def mask_phone(phone: str | None) -> str:
    """Only the last two digits: enough to tell numbers apart in a log, not enough to call."""
    if not phone:
        return "-"
    return "…" + phone[-2:]


@dataclass
class Delivered:
    channel: str
    address: str
    text: str
    retry_key: str


class LogChannel:
    """The development and test adapter: logs instead of sending, and keeps what it "sent".

    The log gets the channel, the masked address and the length of the text, never the text (it
    may hold names); ``Notifier.send_code`` logs a one-time code itself in development.
    """

    def __init__(self, name: str = "log") -> None:
        self.name = name
        self.sent: list[Delivered] = []

    async def send(self, address: str, text: str, retry_key: str) -> None:
        if any(d.retry_key == retry_key for d in self.sent):
            return  # the same retry key delivers once, as LINE does
        self.sent.append(Delivered(self.name, address, text, retry_key))
        log.info("notice via %s to %s (%d characters)", self.name, mask_phone(address), len(text))


# ----------------------------------------------------------------------------- retries (shared)


def _retryable_status(code: int) -> bool:
    return code == 429 or code >= 500


def _any_network_error(exc: httpx.HTTPError) -> bool:
    return True


@dataclass(frozen=True)
class RetryPolicy:
    """How an outgoing POST is retried: 429 (waiting ``Retry-After`` seconds when given) and the
    statuses and network errors ``retry_status`` / ``retry_error`` accept, with exponential backoff
    (``backoff_s`` * 2^(attempt-1), times 1 to 1.5 jitter, at most ``max_wait_s``), ``max_attempts`` in all.
    Used by every adapter that talks to another service (LINE, SMS, TOMP webhooks)."""

    max_attempts: int = 5
    backoff_s: float = 0.5
    max_wait_s: float = 60.0
    retry_status: Callable[[int], bool] = _retryable_status
    retry_error: Callable[[httpx.HTTPError], bool] = _any_network_error

    def wait(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and response.status_code == 429:
            after = response.headers.get("retry-after", "")
            if after.strip().isdigit():
                return min(float(after), self.max_wait_s)
        base = self.backoff_s * (2 ** (attempt - 1))
        return min(base * (1 + random.random() / 2), self.max_wait_s)  # jitter: retries do not march


async def post_with_retry(client: httpx.AsyncClient, url: str, *, what: str, policy: RetryPolicy,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                          done: Callable[[int], bool] = lambda code: code < 300,
                          **request: Any) -> httpx.Response:
    """POST the same request until ``done(status)``; retry what ``policy`` says; raise DeliveryFailed
    (``permanent`` for an answer that retrying cannot change). The request (body, headers) is the
    same object on every attempt, so a retry never sends anything different. ``what`` names the
    service in the error message (never the address or the body)."""
    last = ""
    for attempt in range(1, policy.max_attempts + 1):
        response: httpx.Response | None = None
        try:
            response = await client.post(url, **request)
        except httpx.HTTPError as exc:
            last = f"network: {type(exc).__name__}"
            if not policy.retry_error(exc):
                raise DeliveryFailed(f"{what} failed ({last}); not retried", permanent=True) from None
        else:
            code = response.status_code
            if done(code):
                return response
            last = f"HTTP {code}"
            if not policy.retry_status(code):
                raise DeliveryFailed(f"{what} refused ({last})", permanent=True)
        if attempt < policy.max_attempts:
            await sleep(policy.wait(attempt, response))
    raise DeliveryFailed(f"{what} failed after {policy.max_attempts} attempts ({last})")


class LineChannel:
    """LINE Messaging API push (``POST {base}/v2/bot/message/push``) with ``X-Line-Retry-Key``.

    Retries 429 (waiting ``Retry-After`` when given) and 5xx / network errors with exponential
    backoff (``post_with_retry``), always with the same retry key; a 409 means LINE already
    accepted that key, which counts as delivered. Other 4xx answers are permanent failures.
    """

    name = "line"

    def __init__(self, access_token: str, *, base_url: str = "https://api.line.me", max_attempts: int = 5,
                 backoff_s: float = 0.5, max_wait_s: float = 60.0, timeout_s: float = 10.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 client: httpx.AsyncClient | None = None) -> None:
        self.access_token = access_token
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s, max_wait_s=max_wait_s)
        self._sleep = sleep
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, address: str, text: str, retry_key: str) -> None:
        body = {"to": address, "messages": [{"type": "text", "text": text[:5000]}]}
        headers = {"Authorization": f"Bearer {self.access_token}", "X-Line-Retry-Key": retry_key}
        await post_with_retry(self._client, f"{self.base_url}/v2/bot/message/push", what="LINE push",
                              policy=self.policy, sleep=self._sleep,
                              done=lambda code: code < 300 or code == 409,  # 409: this retry key was accepted before
                              json=body, headers=headers)


def _not_sent(exc: httpx.HTTPError) -> bool:
    """The request never reached the provider (so retrying cannot send a second message)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


class TwilioSms:
    """SMS through Twilio's Programmable Messaging REST API (or any gateway speaking it):
    ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth
    (Account SID : Auth Token), form fields ``To`` (E.164), ``From`` (a Twilio number) or
    ``MessagingServiceSid``, ``Body``; 201 with the message resource means accepted.

    That API has no idempotency key, so a retry is made only when the request certainly created
    no message: 429 (too many requests; ``Retry-After`` honoured) and connection errors before the
    request was sent. A 5xx or a timeout after sending is an unknown outcome: not retried, a
    permanent failure, so a retry can never send the text twice. Other 4xx are permanent too.
    """

    name = "sms"

    def __init__(self, account_sid: str, auth_token: str, *, sender: str | None = None,
                 messaging_service_sid: str | None = None, base_url: str = "https://api.twilio.com",
                 max_attempts: int = 5, backoff_s: float = 0.5, max_wait_s: float = 60.0,
                 timeout_s: float = 10.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 client: httpx.AsyncClient | None = None) -> None:
        if not (sender or messaging_service_sid):
            raise ValueError("TwilioSms needs a sender number or a messaging service SID")
        self.account_sid = account_sid
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s, max_wait_s=max_wait_s,
                                  retry_status=lambda code: code == 429, retry_error=_not_sent)
        self._sleep = sleep
        self._client = client or httpx.AsyncClient(timeout=timeout_s, auth=httpx.BasicAuth(account_sid, auth_token))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, address: str, text: str, retry_key: str) -> None:
        from transit.errors import InvalidInput

        try:
            to = normalise_phone(address)
        except InvalidInput:
            raise DeliveryFailed("SMS: not a Japanese phone number", permanent=True) from None
        form = {"To": to, "Body": text[:1600]}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.sender or ""
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        await post_with_retry(self._client, url, what="SMS", policy=self.policy, sleep=self._sleep, data=form)


def line_signature(channel_secret: str, body: bytes) -> str:
    """``x-line-signature``: base64 of HMAC-SHA256 of the raw body with the channel secret."""
    mac = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def verify_line_signature(channel_secret: str, body: bytes, signature: str | None) -> bool:
    if not channel_secret or not signature:
        return False
    return hmac.compare_digest(line_signature(channel_secret, body), signature.strip())


def retry_key(notice_key: str) -> str:
    """The same notice always gets the same X-Line-Retry-Key (a UUID, as LINE asks)."""
    return str(uuid.uuid5(RETRY_KEY_NS, notice_key))


# ----------------------------------------------------------------------------- the texts


def _hm(dt: datetime | None) -> str:
    return local(dt).strftime("%H:%M") if dt else "--:--"


def compose(kind: str, b: Booking, origin_name: tuple[str, str], *, minutes: int | None = None,
            expected: datetime | None = None) -> str:
    """The notice text, Japanese first with the English below (one message, both languages)."""
    number = getattr(b, "number", None)
    ref = f"予約番号 {number}" if number else ""
    ref_en = f"Booking {number}" if number else ""
    who = b.passenger_name or "ご利用者"
    stop_ja, stop_en = origin_name
    win = f"{_hm(b.pickup_earliest)}〜{_hm(b.pickup_latest)}"
    win_en = f"{_hm(b.pickup_earliest)}-{_hm(b.pickup_latest)}"
    texts = {
        CONFIRMED: (f"予約が確定しました。{stop_ja}で {win} にお迎えに行きます。遅くとも {_hm(b.dropoff_latest)} に到着します。",
                    f"Your ride is booked: pickup at {stop_en} between {win_en}, arrival by {_hm(b.dropoff_latest)}."),
        NEAR: (f"ミニバスがあと約{minutes}分で{stop_ja}に着きます。乗る場所でお待ちください。",
               f"The minibus will reach {stop_en} in about {minutes} min. Please wait at the stop."),
        BOARDED: (f"{who}さんが{stop_ja}からミニバスに乗車しました。", f"{who} boarded the minibus at {stop_en}."),
        NOT_AT_STOP: (f"{who}さんは{stop_ja}で乗車されませんでした(お迎えの時間にいらっしゃいませんでした)。",
                      f"{who} was not at {stop_en} when the minibus came (no-show)."),
        AT_RISK: (f"お約束の時刻に遅れる見込みです。新しいお迎えの予定は {_hm(expected)} ごろです。",
                  f"We expect to be late. The new pickup estimate is about {_hm(expected)}."),
        CANCELLED: (f"予約({win}、{stop_ja}から)を取り消しました。", f"The booking ({win_en} from {stop_en}) is cancelled."),
        DELIVERED: ("お届けものをお渡ししました。ご利用ありがとうございました。", "Your delivery was handed over. Thank you."),
    }
    ja, en = texts[kind]
    head = "【大熊町 のりあいミニバス】"
    return "\n".join(x for x in (head + ja, ref, en, ref_en) if x)


# ----------------------------------------------------------------------------- the notifier


@dataclass
class Outcome:
    key: str
    status: str  # sent | duplicate | failed (retried later) | refused (permanent, not retried) | no_address
    channel: str = ""


@dataclass
class Notifier:
    """Chooses the channel per rider (LINE if linked, else SMS if a gateway is set, else the log)
    and sends each notice key once."""

    uow: UnitOfWorkFactory
    clock: Clock
    log_channel: LogChannel = field(default_factory=LogChannel)
    line: Channel | None = None
    sms: SmsGateway | None = None
    near_minutes_max: int = 30
    show_codes: bool = False  # development: one-time codes go to the log (the code only)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _near_done: set[str] = field(default_factory=set)

    # ---- channels

    def channel_for(self, rider: dict[str, Any] | None) -> tuple[Channel, str] | None:
        if rider is None:
            return None
        if rider.get("line_user_id") and self.line is not None:
            return self.line, rider["line_user_id"]
        if self.sms is not None:
            return self.sms, rider["phone"]
        return self.log_channel, rider["phone"]

    async def send_code(self, phone: str, code: str, text: str, key: str) -> Outcome:
        """A one-time code by SMS (or the log in development): straight to the phone, once per key."""
        channel: Channel = self.sms if self.sms is not None else self.log_channel
        if channel is self.log_channel and self.show_codes:
            log.warning("development: one-time code %s (phone %s)", code, mask_phone(phone))
        return await self._deliver(key, "code", "-", None, channel, phone, text)

    async def notify(self, account_id: str, kind: str, text: str, key: str,
                     booking_id: str | None = None) -> Outcome:
        async with self.uow(readonly=True) as uow:
            rider = await uow.riders.get(account_id)
        picked = self.channel_for(rider)
        if picked is None:
            return Outcome(key, "no_address")
        channel, address = picked
        return await self._deliver(key, kind, account_id, booking_id, channel, address, text)

    async def _deliver(self, key: str, kind: str, account_id: str, booking_id: str | None,
                       channel: Channel, address: str, text: str) -> Outcome:
        now = self.clock.now()
        if not await self._claim(key, kind, account_id, booking_id, channel.name, now):
            return Outcome(key, "duplicate", channel.name)
        status = "sent"
        try:
            await channel.send(address, text, retry_key(key))
        except DeliveryFailed as exc:
            # permanent: retrying cannot help, or (SMS) the outcome is unknown and a retry could send twice
            status = "refused" if exc.permanent else "failed"
            log.warning("notice %s (%s) via %s failed: %s", kind, booking_id or "-", channel.name, exc)
        except Exception:  # an adapter bug must not lose the record
            status = "failed"
            log.exception("notice %s via %s failed", kind, channel.name)
        async with self.uow() as uow:
            await uow.notices.finish(key, status, self.clock.now())
            await uow.commit()
        return Outcome(key, status, channel.name)

    async def _claim(self, key: str, kind: str, account_id: str, booking_id: str | None,
                     channel: str, now: datetime) -> bool:
        """Write the notice row first (the unique key decides who sends); a failed one may be retried."""
        try:
            async with self.uow() as uow:
                await uow.notices.add(dict(key=key, account_id=account_id, kind=kind, channel=channel,
                                           status="sending", attempts=1, booking_id=booking_id,
                                           created_at=now, updated_at=now))
                await uow.commit()
            return True
        except IntegrityError:
            pass
        async with self.uow() as uow:
            row = await uow.notices.get(key)
            if row is None:
                return False
            stale = row["status"] == "sending" and (now - row["updated_at"]).total_seconds() > STALE_SENDING_S
            if row["status"] != "failed" and not stale:
                return False
            ok = await uow.notices.claim(key, row["status"], row["attempts"], now)
            await uow.commit()
            return ok

    # ---- the bus

    async def on_events(self, events: Sequence[Event]) -> None:
        """Bus handler (after the commit; registered for ``NOTIFY_EVENTS``): the work runs in a
        background task."""
        wanted = [e for e in events if isinstance(e, NOTIFY_EVENTS)]
        if not wanted:
            return
        task = asyncio.create_task(self._handle(wanted), name="notify")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the notices under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=5)
        for t in list(self._tasks):
            t.cancel()
        for ch in (self.line, self.sms):
            if isinstance(ch, (LineChannel, TwilioSms)):
                await ch.aclose()

    async def _handle(self, events: Sequence[Event]) -> None:
        for e in events:
            try:
                await self._one(e)
            except Exception:  # one bad event must not stop the others
                log.exception("notifying %s failed", type(e).__name__)

    async def _one(self, e: Event) -> None:
        if isinstance(e, RideBooked):
            await self._booking_notice(e.booking_id, CONFIRMED, f"{CONFIRMED}:{e.booking_id}")
        elif isinstance(e, BookingCancelled):
            await self._booking_notice(e.booking_id, CANCELLED, f"{CANCELLED}:{e.booking_id}")
        elif isinstance(e, BookingStatusChanged):
            kind = {BookingStatus.ON_BOARD.value: BOARDED, BookingStatus.NO_SHOW.value: NOT_AT_STOP,
                    BookingStatus.COMPLETED.value: DELIVERED}.get(e.status)
            if kind is not None:
                await self._booking_notice(e.booking_id, kind, f"{kind}:{e.booking_id}")
        elif isinstance(e, PromiseAtRisk):
            await self._booking_notice(e.booking_id, AT_RISK, f"{AT_RISK}:{e.booking_id}:{e.promised_latest_s}",
                                       expected=from_epoch(e.expected_s))
        elif isinstance(e, EtasUpdated):  # the minibus is N minutes from a pickup
            await self._near(e)

    async def _near(self, e: EtasUpdated) -> None:
        if len(self._near_done) > 50_000:  # a memo only (sent_notices decides): keep it bounded
            self._near_done.clear()
        for booking_id, kind, eta_s, _planned, _latest, _late in e.etas:
            if kind != "pickup" or booking_id in self._near_done:
                continue
            minutes_away = (eta_s - e.computed_s) / 60
            if minutes_away > self.near_minutes_max:
                continue
            await self._booking_notice(booking_id, NEAR, f"{NEAR}:{booking_id}", minutes_away=minutes_away)

    async def _booking_notice(self, booking_id: str, kind: str, key: str, *, expected: datetime | None = None,
                              minutes_away: float | None = None) -> None:
        async with self.uow(readonly=True) as uow:
            b = await uow.bookings.get(booking_id)
            if b is None or b.account_id is None:
                return
            if kind == DELIVERED and b.kind != "grocery":
                return
            if kind == NEAR:
                rider = await uow.riders.get(b.account_id)
                if b.status is not BookingStatus.CONFIRMED or rider is None:
                    self._near_done.add(booking_id)
                    return
                if minutes_away is None or minutes_away > rider["near_minutes"]:
                    return
                self._near_done.add(booking_id)
            stop = await uow.stops.get(b.origin.stop_id) if b.origin.stop_id else None
            guardians = await uow.riders.guardians_of(b.account_id) if kind in FOR_GUARDIANS else []
        names = (stop["name_ja"], stop["name_en"]) if stop else ("乗る場所", "the pickup point")
        minutes = max(1, round(minutes_away)) if minutes_away is not None else None
        text = compose(kind, b, names, minutes=minutes, expected=expected)
        for account_id in dict.fromkeys([b.account_id, *guardians]):
            await self.notify(account_id, kind, text, f"{key}:{account_id}", booking_id=b.id)


def sign_in_text(code: str, minutes: int) -> str:
    return (f"【大熊町 のりあいミニバス】確認コード {code}({minutes}分間有効)。このコードを人に教えないでください。\n"
            f"Your sign-in code is {code} (valid {minutes} min). Do not share it.")


