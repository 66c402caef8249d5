"""Dependency aliases: the services, the current actor, role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from transit import errors
from transit.accounts import authenticate
from transit.commands import Actor
from transit.handlers import Services

bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_actor(
    svc: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    token = creds.credentials if creds else None
    async with svc.uow(readonly=True) as uow:
        return await authenticate(uow, token)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def require(*roles: str):  # type: ignore[no-untyped-def]
    async def _check(actor: CurrentActor) -> Actor:
        if actor.role not in roles:
            raise errors.Forbidden()
        return actor

    return Depends(_check)


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
