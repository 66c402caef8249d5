"""Accounts and tokens. Tokens are random secrets; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from transit import errors
from transit.commands import Actor
from transit.events import TokenRevoked
from transit.uow import UnitOfWork

ROLES = ("rider", "kiosk", "operator", "driver", "store", "admin", "maas")  # maas: a MaaS app (TOMP)
DEFAULT_TOKEN_TTL_DAYS = 90


def new_token(role: str) -> str:
    return f"okm_{role}_{secrets.token_urlsafe(32)}"


def token_expiry(now: datetime, ttl_days: int | None) -> datetime | None:
    return now + timedelta(days=ttl_days) if ttl_days else None


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_account(
    uow: UnitOfWork,
    *,
    role: str,
    name: str,
    stop_id: str | None = None,
    vehicle_id: str | None = None,
    door_to_door: bool = False,
    token: str | None = None,
    rider_card: str | None = None,
    ttl_days: int | None = DEFAULT_TOKEN_TTL_DAYS,
) -> tuple[str, str]:
    """Create an account; returns (account id, token). The token is shown once, never stored; it
    stops working ``ttl_days`` after it was issued (None: never)."""
    if role not in ROLES:
        raise errors.InvalidInput(f"役割は {', '.join(ROLES)} のいずれかです。", f"Role must be one of {', '.join(ROLES)}.")
    if role == "kiosk" and not stop_id:
        raise errors.InvalidInput("キオスクには停留所が必要です。", "A kiosk must be bound to a stop.")
    if role == "driver" and not vehicle_id:
        raise errors.InvalidInput("運転士には車両が必要です。", "A driver must be bound to a vehicle.")
    if rider_card is not None:
        rider_card = rider_card.strip().upper()
        if role != "rider" or not re.fullmatch(r"[A-Z0-9\-]{1,32}", rider_card):
            raise errors.InvalidInput("乗車カード番号は利用者の英数字1〜32文字です。",
                                      "A rider card number (riders only) has 1 to 32 letters, digits or hyphens.")
        if await uow.accounts.by_rider_card(rider_card) is not None:
            raise errors.RiderCardTaken()
    if role == "store" and not stop_id:
        raise errors.InvalidInput("お店のアカウントにはお店の停留所が必要です。", "A store account must be bound to its store's stop.")
    if stop_id and await uow.stops.get(stop_id) is None:
        raise errors.UnknownStop()
    if vehicle_id and await uow.vehicles.get(vehicle_id) is None:
        raise errors.NotFound("その車両は見つかりません。", "That vehicle does not exist.")
    token = token or new_token(role)
    account_id = f"acc_{secrets.token_urlsafe(9)}"
    await uow.accounts.add(
        dict(
            id=account_id,
            role=role,
            name=name,
            token_hash=hash_token(token),
            stop_id=stop_id,
            vehicle_id=vehicle_id,
            door_to_door=door_to_door,
            rider_card=rider_card,
            locale="ja",
            created_at=uow.clock.now(),
            disabled=False,
            token_expires_at=token_expiry(uow.clock.now(), ttl_days),
        )
    )
    return account_id, token


async def rotate_token(uow: UnitOfWork, account_id: str,
                       ttl_days: int | None = DEFAULT_TOKEN_TTL_DAYS) -> tuple[str, datetime | None]:
    """A new token for the account (shown once); the old one stops working at once."""
    row = await uow.accounts.get(account_id)
    if row is None or row["disabled"]:
        raise errors.NotFound("そのアカウントは見つかりません。", "That account does not exist.")
    token = new_token(row["role"])
    expires = token_expiry(uow.clock.now(), ttl_days)
    await uow.accounts.set_token(account_id, hash_token(token), expires)
    uow.record(TokenRevoked(account_id, "rotated"))  # the old token: dropped from every server's cache
    return token, expires


async def revoke(uow: UnitOfWork, account_id: str) -> None:
    """The account's token stops working for good (the account is disabled; a new one is needed)."""
    if await uow.accounts.get(account_id) is None:
        raise errors.NotFound("そのアカウントは見つかりません。", "That account does not exist.")
    # the hash of a secret nobody knows: the old token no longer matches any account
    await uow.accounts.set_token(account_id, hash_token(secrets.token_urlsafe(32)), None, disabled=True)
    uow.record(TokenRevoked(account_id, "revoked"))  # dropped from every server's token cache at once


async def authenticate(uow: UnitOfWork, token: str | None) -> Actor:
    if not token:
        raise errors.Unauthorised()
    row = await uow.accounts.by_token_hash(hash_token(token))
    if row is None or row["disabled"]:
        raise errors.Unauthorised()
    expires = row.get("token_expires_at")
    if expires is not None and expires <= uow.clock.now():
        raise errors.Unauthorised("トークンの有効期限が切れました。新しいトークンを受け取ってください。",
                                  "This token has expired. Please get a new one.", reason="token_expired")
    return Actor(
        account_id=row["id"],
        role=row["role"],
        name=row["name"],
        stop_id=row["stop_id"],
        vehicle_id=row["vehicle_id"],
        door_to_door=bool(row["door_to_door"]),
    )

