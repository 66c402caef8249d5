"""Dependency aliases: the services, the current actor, role checks."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from transit import errors
from transit.accounts import authenticate, hash_token
from transit.commands import Actor
from transit.handlers import Services

bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


ACTOR_TTL_S = 30.0  # a disabled account stops working within this time


async def current_actor(
    request: Request,
    svc: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    token = creds.credentials if creds else None
    # A short per-process cache keyed by the token's hash saves a database round trip per call.
    cache: dict[str, tuple[float, Actor]] = request.app.state.actor_cache
    key = hash_token(token) if token else ""
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
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
