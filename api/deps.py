"""Dependency aliases: the services, the current actor, role checks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from transit import errors
from transit.accounts import authenticate, hash_token
from transit.commands import Actor
from transit.events import Event, TokenRevoked
from transit.handlers import Services
from transit.repositories import EventLogRepository

bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


ACTOR_TTL_S = 30.0  # a disabled account stops working within this time at the latest
REVOCATION_POLL_S = 1.0  # how often each process looks for tokens revoked by another process
REVOCATION_SETTLED_S = 60.0  # a logged revocation older than this can no longer be overtaken by an earlier id


class RevocationWatch:
    """Drops revoked and rotated tokens from this process's token cache as soon as it hears of them.

    Every revocation is a ``TokenRevoked`` event (logged, and published on the bus): with Redis it
    reaches every process at once (``on_events``); without it, and for a process that missed the
    bus, ``poll`` looks at the event log at most once a second (one indexed query) before a cached
    token is trusted.
    """

    def __init__(self, cache: dict[str, tuple[float, Actor]]) -> None:
        self.cache = cache
        self._next_at = 0.0
        self._low: int | None = None
        self._seen: dict[int, float] = {}  # event ids recently seen (a later commit may carry a lower id)

    def forget(self, account_ids: set[str]) -> None:
        if account_ids:
            for key in [k for k, (_, a) in self.cache.items() if a.account_id in account_ids]:
                self.cache.pop(key, None)

    async def on_events(self, events: Sequence[Event]) -> None:
        self.forget({e.account_id for e in events if isinstance(e, TokenRevoked)})

    async def start(self, svc: Services) -> None:
        """Before the first token is cached: revocations logged from now on are the ones to look for."""
        if self._low is None:
            async with svc.uow.engine.connect() as conn:
                low = await EventLogRepository(conn).last_id()
            if self._low is None:
                self._low = low
                self._next_at = time.monotonic() + REVOCATION_POLL_S

    async def poll(self, svc: Services) -> None:
        now = time.monotonic()
        if now < self._next_at or self._low is None:
            return
        self._next_at = now + REVOCATION_POLL_S
        async with svc.uow.engine.connect() as conn:
            rows = await EventLogRepository(conn).unattached_after("TokenRevoked", self._low)
        revoked = set()
        for event_id, payload in rows:
            if event_id not in self._seen:
                self._seen[event_id] = now
                revoked.add(payload["account_id"])
        settled = [i for i, at in self._seen.items() if now - at > REVOCATION_SETTLED_S]
        if settled:
            self._low = max(self._low, *settled)
            for i in settled:
                del self._seen[i]
        self.forget(revoked)


async def current_actor(
    request: Request,
    svc: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    token = creds.credentials if creds else None
    # A short per-process cache keyed by the token's hash saves a database round trip per call;
    # revocations elsewhere evict it (RevocationWatch).
    cache: dict[str, tuple[float, Actor]] = request.app.state.actor_cache
    key = hash_token(token) if token else ""
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        await request.app.state.revocations.poll(svc)
        hit = cache.get(key)
        if hit is not None:
            return hit[1]
    limiter = request.app.state.runtime.limiter
    client = request.client.host if request.client else "-"
    await limiter.check("auth:failures", client)  # an address that guessed too often waits
    try:
        async with svc.uow(readonly=True) as uow:
            actor = await authenticate(uow, token)
    except errors.Unauthorised:
        if token:
            await limiter.hit("auth:failures", client)
        raise
    await request.app.state.revocations.start(svc)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (time.monotonic() + ACTOR_TTL_S, actor)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def forget_token(request: Request) -> None:
    """Drop this request's token from the actor cache (after a rotation: it must stop working now)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        request.app.state.actor_cache.pop(hash_token(auth[7:].strip()), None)


async def limit_offers(request: Request, actor: Actor) -> None:
    """Offers per rider account and per kiosk (the operators' desk is not limited)."""
    if actor.role in ("rider", "kiosk"):
        await request.app.state.runtime.limiter.hit(f"offers:{actor.role}", actor.account_id)


def require(*roles: str):  # type: ignore[no-untyped-def]
    async def _check(actor: CurrentActor) -> Actor:
        if actor.role not in roles:
            raise errors.Forbidden()
        return actor

    return Depends(_check)


IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                              pattern=r"^[\x21-\x7e]+$",
                                              description="1〜200文字 / 1 to 200 printable ASCII characters")]


def handover_secret(request: Request) -> str:
    """The secret the handover codes are derived from (never sent to a driver)."""
    return request.app.state.runtime.operations.handover_secret
