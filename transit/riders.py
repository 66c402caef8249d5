"""Riders by phone number: sign-in by a one-time code, LINE link, family links, favourites.

Every code is random, kept only as a hash, expires, and dies after ``MAX_WRONG`` wrong tries;
sending codes is rate limited per phone (``CODE_GAP_S`` apart, ``CODES_PER_HOUR``), and a phone
with ``MAX_WRONG`` wrong codes inside ``LOCK_S`` is locked for the rest of that time.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from transit import errors
from transit.accounts import hash_token, rotate_token
from transit.commands import Actor
from transit.handlers import Services
from transit.notify import Notifier, normalise_phone, sign_in_text
from transit.uow import UnitOfWork

CODE_TTL_S = 600
CODE_GAP_S = 60
CODES_PER_HOUR = 5
MAX_WRONG = 5
LOCK_S = 900
LINE_CODE_TTL_S = 1800
FAMILY_CODE_TTL_S = 1800
NEAR_MINUTES = (3, 5, 10, 15)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # no I, L, O, U: nothing to misread


def clean_name(raw: str | None) -> str:
    """A name as given, without control characters (PostgreSQL refuses NUL), at most 100 characters."""
    return "".join(ch for ch in unicodedata.normalize("NFC", raw or "") if unicodedata.category(ch)[0] != "C").strip()[:100]


def _code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _digits(n: int = 6) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def _letters(n: int = 6) -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(n))


def _retry_after(now: datetime, at: datetime) -> int:
    return max(1, math.ceil((at - now).total_seconds()))


@dataclass(frozen=True)
class SignInStarted:
    expires_at: datetime
    resend_after_s: int


@dataclass(frozen=True)
class SignedIn:
    account_id: str
    token: str
    new_rider: bool


# ------------------------------------------------------------------------ tokens and accounts


def placeholder_token_hash() -> str:
    """The hash of a token nobody holds: a rider account exists before its first sign-in ends."""
    return hash_token(secrets.token_urlsafe(32))


async def _rider_account(uow: UnitOfWork, phone: str, name: str, now: datetime) -> tuple[str, bool]:
    """The rider account for a phone, created (with a placeholder token) when there is none."""
    found = await uow.riders.by_phone(phone)
    if found is not None:
        return found["account_id"], False
    account_id = f"acc_{secrets.token_urlsafe(9)}"
    await uow.accounts.add(dict(id=account_id, role="rider", name=clean_name(name), token_hash=placeholder_token_hash(),
                                stop_id=None, vehicle_id=None, door_to_door=False, locale="ja",
                                created_at=now, disabled=False))
    await uow.riders.add(dict(account_id=account_id, phone=phone, line_user_id=None, near_minutes=5,
                              created_at=now))
    return account_id, True


# ------------------------------------------------------------------------ sign-in


def _locked_until(codes: list[dict[str, Any]], now: datetime) -> datetime | None:
    recent = [c for c in codes if c["created_at"] >= now - timedelta(seconds=LOCK_S)]
    wrong = sum(c["attempts"] for c in recent)
    if wrong < MAX_WRONG:
        return None
    last = max(c["created_at"] for c in recent if c["attempts"])
    return last + timedelta(seconds=LOCK_S)


async def _wrong_try(uow: UnitOfWork, row: dict[str, Any], now: datetime) -> int:
    """Count a wrong try and commit it (the code dies at MAX_WRONG); returns the tries left."""
    attempts = row["attempts"] + 1
    await uow.riders.update_code(row["id"], attempts=attempts, used_at=now if attempts >= MAX_WRONG else None)
    await uow.commit()
    return max(0, MAX_WRONG - attempts)


def _wrong(left: int) -> errors.WrongCode:
    return errors.WrongCode(f"確認コードが違います。あと{left}回まで試せます。",
                            f"That code is not right. {left} tries left.", attempts_left=left)


def _locked(until: datetime, now: datetime) -> errors.RateLimited:
    return errors.RateLimited(
        "確認コードを何度も間違えたため、この電話番号はしばらく使えません。時間をおいてお試しいただくか、町の窓口にお電話ください。",
        "Too many wrong codes: this number is locked for a while. Try again later or call the town desk.",
        retry_after_s=_retry_after(now, until))


async def start_sign_in(phone_raw: str, svc: Services, notifier: Notifier) -> SignInStarted:
    """Send a six-digit code to the phone (by SMS, or to the log in development)."""
    phone = normalise_phone(phone_raw)
    now = svc.clock.now()
    code = _digits()
    code_id = f"otc_{secrets.token_urlsafe(9)}"
    async with svc.uow() as uow:
        codes = await uow.riders.codes_since("sign_in", phone, now - timedelta(hours=1))
        until = _locked_until(codes, now)
        if until is not None and until > now:
            raise _locked(until, now)
        if codes and (now - codes[0]["created_at"]).total_seconds() < CODE_GAP_S:
            raise errors.RateLimited(
                "確認コードは1分に1回まで送れます。少し待ってからもう一度お試しください。",
                "A code can be sent once a minute. Please wait a little.",
                retry_after_s=_retry_after(now, codes[0]["created_at"] + timedelta(seconds=CODE_GAP_S)))
        if len(codes) >= CODES_PER_HOUR:
            raise errors.RateLimited(
                "確認コードを送れる回数を超えました。1時間ほどしてからお試しください。",
                "Too many codes were sent to this number. Please try again in an hour.",
                retry_after_s=_retry_after(now, codes[-1]["created_at"] + timedelta(hours=1)))
        # Earlier codes stop working once a new one is sent.
        for c in codes:
            if c["used_at"] is None:
                await uow.riders.update_code(c["id"], used_at=now)
        await uow.riders.add_code(dict(id=code_id, purpose="sign_in", subject=phone,
                                       code_hash=_code_hash(code_id, code), data={}, created_at=now,
                                       expires_at=now + timedelta(seconds=CODE_TTL_S), attempts=0))
        await uow.commit()
    await notifier.send_code(phone, code, sign_in_text(code, CODE_TTL_S // 60), key=f"code:{code_id}")
    return SignInStarted(now + timedelta(seconds=CODE_TTL_S), CODE_GAP_S)


async def verify_sign_in(phone_raw: str, code: str, name: str | None, svc: Services) -> SignedIn:
    """Check the latest code; a right one signs in (creating the rider on first use)."""
    phone = normalise_phone(phone_raw)
    code = unicodedata.normalize("NFKC", code or "").strip()
    now = svc.clock.now()
    async with svc.uow() as uow:
        codes = await uow.riders.codes_since("sign_in", phone, now - timedelta(hours=1))
        until = _locked_until(codes, now)
        if until is not None and until > now:
            raise _locked(until, now)
        live = next((c for c in codes if c["used_at"] is None and c["expires_at"] > now), None)
        if live is None:
            raise errors.WrongCode("確認コードの有効期限が切れています。もう一度コードを送ってください。",
                                   "The code has expired. Please ask for a new one.")
        if not hmac.compare_digest(live["code_hash"], _code_hash(live["id"], code)):
            left = await _wrong_try(uow, live, now)
            updated = [{**c, "attempts": MAX_WRONG - left} if c["id"] == live["id"] else c for c in codes]
            if _locked_until(updated, now) is not None:
                raise _locked(now + timedelta(seconds=LOCK_S), now)
            raise _wrong(left)
        await uow.riders.update_code(live["id"], used_at=now)
        account_id, new = await _rider_account(uow, phone, name or "", now)
        account = await uow.accounts.get(account_id)
        if account is None or account["disabled"]:
            raise errors.Forbidden("この利用者は停止されています。町の窓口にお問い合わせください。",
                                   "This rider is disabled. Please contact the town desk.")
        if clean_name(name) and not account["name"]:
            await uow.riders.set_name(account_id, clean_name(name))
        # the one token path (expiry as for every account; the phone's previous token stops working)
        token, _ = await rotate_token(uow, account_id)
        await uow.commit()
    return SignedIn(account_id, token, new)


# ------------------------------------------------------------------------ profile and LINE


def _rider_only(actor: Actor) -> None:
    if actor.role != "rider":
        raise errors.Forbidden()


async def profile(actor: Actor, svc: Services) -> dict[str, Any]:
    _rider_only(actor)
    async with svc.uow(readonly=True) as uow:
        rider = await uow.riders.get(actor.account_id)
        account = await uow.accounts.get(actor.account_id)
        home = await uow.riders.home(actor.account_id)
    return dict(account_id=actor.account_id, name=account["name"] if account else actor.name,
                phone_masked=_masked_display(rider["phone"]) if rider else None,
                line_linked=bool(rider and rider["line_user_id"]),
                near_minutes=rider["near_minutes"] if rider else 5,
                door_to_door=actor.door_to_door, home=_home_view(home))


def _home_view(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return dict(address=row["address"], lat=row["lat"], lon=row["lon"]) if row else None


@dataclass(frozen=True)
class Home:
    """A door-to-door rider's home: the address as written and the pin (inside the service area)."""

    address: str
    lat: float
    lon: float


def _checked_home(home: Home, svc: Services) -> Home:
    address = clean_name(home.address)
    if not address:
        raise errors.InvalidInput("自宅の住所を入れてください。", "Please enter your home address.",
                                  field="home.address")
    if not svc.area.contains(home.lat, home.lon):  # the one test of "inside the area" (as bookings)
        raise errors.OutsideServiceArea(field="home")
    return Home(address, home.lat, home.lon)


def _masked_display(phone: str) -> str:
    return "*" * 7 + phone[-4:]


async def update_profile(actor: Actor, svc: Services, *, name: str | None, near_minutes: int | None,
                         home: Home | None = None, clear_home: bool = False) -> dict[str, Any]:
    """Change the name, the "near" minutes, and (door-to-door riders only) the home or clear it."""
    _rider_only(actor)
    if near_minutes is not None and near_minutes not in NEAR_MINUTES:
        raise errors.InvalidInput(f"お知らせは {', '.join(map(str, NEAR_MINUTES))} 分前から選んでください。",
                                  f"Choose {', '.join(map(str, NEAR_MINUTES))} minutes.", field="near_minutes")
    if home is not None:
        if not actor.door_to_door:
            raise errors.Forbidden("自宅の登録はドアツードアに登録された方のみです。町の窓口にお問い合わせください。",
                                   "Only riders registered for door-to-door can set a home. Please contact the town desk.")
        home = _checked_home(home, svc)
    async with svc.uow() as uow:
        if home is not None:
            await uow.riders.set_home(actor.account_id, home.address, home.lat, home.lon, svc.clock.now())
        elif clear_home:
            await uow.riders.delete_home(actor.account_id)
        if name is not None:
            await uow.riders.set_name(actor.account_id, clean_name(name))
        if near_minutes is not None:
            if await uow.riders.get(actor.account_id) is None:
                raise errors.InvalidInput("電話番号で登録した利用者だけが設定できます。",
                                          "Only riders signed in by phone have this setting.")
            await uow.riders.update(actor.account_id, near_minutes=near_minutes)
        await uow.commit()
    return await profile(actor, svc)


async def start_line_link(actor: Actor, svc: Services) -> tuple[str, datetime]:
    """A code the rider sends to the town's LINE account; the webhook then links that LINE user."""
    _rider_only(actor)
    now = svc.clock.now()
    async with svc.uow() as uow:
        if await uow.riders.get(actor.account_id) is None:
            raise errors.InvalidInput("電話番号で登録した利用者だけがLINEと連携できます。",
                                      "Only riders signed in by phone can link LINE.")
        code = _letters()
        await uow.riders.add_code(dict(id=f"otc_{secrets.token_urlsafe(9)}", purpose="line_link",
                                       subject=actor.account_id, code_hash=_code_hash("line", code), data={},
                                       created_at=now, expires_at=now + timedelta(seconds=LINE_CODE_TTL_S),
                                       attempts=0))
        await uow.commit()
    return code, now + timedelta(seconds=LINE_CODE_TTL_S)


async def link_line_user(text: str, line_user_id: str, svc: Services) -> str | None:
    """A LINE message carrying a link code: link that LINE user; the rider's account id, or None."""
    code = unicodedata.normalize("NFKC", text or "").strip().upper().replace("-", "").replace(" ", "")
    if len(code) != 6 or not line_user_id:
        return None
    now = svc.clock.now()
    async with svc.uow() as uow:
        row = await uow.riders.code_by_hash("line_link", _code_hash("line", code), now)
        if row is None:
            return None
        await uow.riders.update_code(row["id"], used_at=now)
        holder = await uow.riders.by_line_user(line_user_id)
        if holder is not None and holder != row["subject"]:
            await uow.riders.update(holder, line_user_id=None)  # one LINE user, one rider
        await uow.riders.update(row["subject"], line_user_id=line_user_id)
        await uow.commit()
    return str(row["subject"])


# ------------------------------------------------------------------------ family


def _family_view(link: dict[str, Any], me: str) -> dict[str, Any]:
    guardian = link["guardian_id"] == me
    return dict(link_id=link["id"], role="guardian" if guardian else "member",
                account_id=link["member_id"] if guardian else link["guardian_id"],
                name=link["member_name"] if guardian else link["guardian_name"],
                consent=link["consent"], since=link["created_at"])


async def family(actor: Actor, svc: Services) -> list[dict[str, Any]]:
    _rider_only(actor)
    async with svc.uow(readonly=True) as uow:
        return [_family_view(x, actor.account_id) for x in await uow.riders.links_of(actor.account_id)]


async def _add_link(uow: UnitOfWork, guardian: str, member: str, consent: str, by: str, now: datetime) -> str:
    if guardian == member:
        raise errors.InvalidInput("ご自身とは連携できません。", "You cannot link yourself.")
    found = await uow.riders.link(guardian, member)
    if found is not None:
        await uow.riders.update_link(found["id"], revoked_at=None, consent=consent, consented_by=by,
                                     created_at=now)
        return str(found["id"])
    link_id = f"fam_{secrets.token_urlsafe(9)}"
    await uow.riders.add_link(dict(id=link_id, guardian_id=guardian, member_id=member, consent=consent,
                                   consented_by=by, created_at=now, revoked_at=None))
    return link_id


async def invite_family(actor: Actor, phone_raw: str, name: str, svc: Services,
                        notifier: Notifier) -> tuple[str, datetime]:
    """Send a consent code to the family member's phone; they tell it to the guardian if they agree."""
    _rider_only(actor)
    phone = normalise_phone(phone_raw)
    now = svc.clock.now()
    code, code_id = _digits(), f"otc_{secrets.token_urlsafe(9)}"
    async with svc.uow() as uow:
        sent = await uow.riders.codes_since("family", actor.account_id, now - timedelta(hours=1))
        if len(sent) >= CODES_PER_HOUR:
            raise errors.RateLimited(retry_after_s=_retry_after(now, sent[-1]["created_at"] + timedelta(hours=1)))
        await uow.riders.add_code(dict(id=code_id, purpose="family", subject=actor.account_id,
                                       code_hash=_code_hash(code_id, code), data={"phone": phone, "name": clean_name(name)},
                                       created_at=now, expires_at=now + timedelta(seconds=FAMILY_CODE_TTL_S),
                                       attempts=0))
        me = await uow.accounts.get(actor.account_id)
        member = await uow.riders.by_phone(phone)
        await uow.commit()
    who = (me or {}).get("name") or "ご家族"
    minutes = FAMILY_CODE_TTL_S // 60
    text = (f"【大熊町 のりあいミニバス】{who}さんが、あなたの代わりにミニバスを予約し、乗車のお知らせを受け取れるようにしたいそうです。"
            f"同意される場合は、確認コード {code} を{who}さんに伝えてください({minutes}分間有効)。\n"
            f"{who} asks to book minibus rides for you and be told when you board. "
            f"If you agree, tell them the code {code} (valid {minutes} min).")
    picked = notifier.channel_for(member)
    if member is not None and picked is not None and picked[0] is notifier.line:
        await notifier.notify(member["account_id"], "family_code", text, key=f"code:{code_id}")
    else:  # by SMS (or the development log, which shows the code)
        await notifier.send_code(phone, code, text, key=f"code:{code_id}")
    return code_id, now + timedelta(seconds=FAMILY_CODE_TTL_S)


async def confirm_family(actor: Actor, invitation_id: str, code: str, svc: Services) -> dict[str, Any]:
    _rider_only(actor)
    code = unicodedata.normalize("NFKC", code or "").strip()
    now = svc.clock.now()
    async with svc.uow() as uow:
        row = await uow.riders.code(invitation_id)
        if (row is None or row["purpose"] != "family" or row["subject"] != actor.account_id
                or row["used_at"] is not None or row["expires_at"] <= now):
            raise errors.WrongCode()
        if not hmac.compare_digest(row["code_hash"], _code_hash(row["id"], code)):
            raise _wrong(await _wrong_try(uow, row, now))
        await uow.riders.update_code(row["id"], used_at=now)
        member, _ = await _rider_account(uow, row["data"]["phone"], row["data"].get("name", ""), now)
        await _add_link(uow, actor.account_id, member, "code", member, now)
        await uow.commit()
    return next(f for f in await family(actor, svc) if f["account_id"] == member)


async def desk_link(actor: Actor, guardian_phone: str, member_phone: str, member_name: str,
                    svc: Services) -> str:
    """Town desk staff record a consent given in person: the guardian may book for the member."""
    if actor.role not in ("operator", "admin"):
        raise errors.Forbidden()
    g, m = normalise_phone(guardian_phone), normalise_phone(member_phone)
    now = svc.clock.now()
    async with svc.uow() as uow:
        guardian = await uow.riders.by_phone(g)
        if guardian is None:
            raise errors.NotFound("その電話番号の利用者は登録されていません。先にアプリで登録してもらってください。",
                                  "No rider has that phone number. They should sign in to the app first.")
        member, _ = await _rider_account(uow, m, member_name, now)
        link_id = await _add_link(uow, guardian["account_id"], member, "desk", actor.account_id, now)
        await uow.commit()
    return link_id


async def _desk_read(actor: Actor, phone_raw: str, svc: Services, action: str,
                     read: Callable[[UnitOfWork, str], Awaitable[Any]]) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
    """The town desk reads something of a resident found by phone number: staff only, the read in
    the audit log (``action``, subject: the rider's account), in the read's own unit of work."""
    if actor.role not in ("operator", "admin"):
        raise errors.Forbidden()
    phone = normalise_phone(phone_raw)
    async with svc.uow() as uow:
        rider = await uow.riders.by_phone(phone)
        if rider is None:
            raise errors.NotFound("その電話番号の利用者は登録されていません。",
                                  "No rider has that phone number.")
        account = await uow.accounts.get(rider["account_id"])
        data = await read(uow, rider["account_id"])
        await uow.audit.record(svc.clock.now(), actor.account_id, actor.role, action, [rider["account_id"]])
        await uow.commit()
    return {**rider, "phone": phone}, account, data


async def desk_resident(actor: Actor, phone_raw: str, svc: Services) -> dict[str, Any]:
    """Town desk staff look a resident up by phone number: their name and active family links, each
    seen from the resident's side."""
    rider, account, links = await _desk_read(actor, phone_raw, svc, "read_family_links",
                                             lambda uow, aid: uow.riders.links_of(aid))
    return dict(account_id=rider["account_id"], name=(account or {}).get("name") or "",
                phone_masked=_masked_display(rider["phone"]),
                links=[_family_view(x, rider["account_id"]) for x in links])


async def desk_home(actor: Actor, phone_raw: str, svc: Services) -> dict[str, Any]:
    """Town desk staff take a door-to-door caller's saved home for the phone booking."""
    rider, account, home = await _desk_read(actor, phone_raw, svc, "read_rider_home",
                                            lambda uow, aid: uow.riders.home(aid))
    return dict(account_id=rider["account_id"], name=(account or {}).get("name") or "",
                door_to_door=bool(account and account["door_to_door"]), home=_home_view(home))


async def unlink_family(actor: Actor, link_id: str, svc: Services) -> None:
    """Either side may end a link at any time; so may the town desk (operator, admin)."""
    desk = actor.role in ("operator", "admin")
    if not desk:
        _rider_only(actor)
    async with svc.uow() as uow:
        link = await uow.riders.link_by_id(link_id)
        if link is None or (not desk and actor.account_id not in (link["guardian_id"], link["member_id"])):
            raise errors.NotFound()
        await uow.riders.update_link(link_id, revoked_at=svc.clock.now())
        if desk:  # the desk acting on residents' links is recorded, as its lookup is (docs/privacy.md)
            await uow.audit.record(svc.clock.now(), actor.account_id, actor.role, "end_family_link",
                                   [link["guardian_id"], link["member_id"]])
        await uow.commit()


async def may_book_for(uow: UnitOfWork, guardian_id: str, member_id: str) -> bool:
    link = await uow.riders.link(guardian_id, member_id)
    return link is not None and link["revoked_at"] is None


async def notices(actor: Actor, svc: Services) -> list[dict[str, Any]]:
    """The notices sent to this rider (kind, channel, status; no texts are kept)."""
    _rider_only(actor)
    async with svc.uow(readonly=True) as uow:
        return await uow.notices.for_account(actor.account_id)


# ------------------------------------------------------------------------ favourites


async def favourites(actor: Actor, svc: Services) -> list[dict[str, Any]]:
    _rider_only(actor)
    async with svc.uow(readonly=True) as uow:
        return await uow.riders.favourites(actor.account_id)


async def add_favourite(actor: Actor, svc: Services, *, label: str, origin: str, destination: str,
                        party_size: int, wheelchairs: int) -> dict[str, Any]:
    _rider_only(actor)
    if origin == destination:
        raise errors.SameOriginDestination()
    async with svc.uow() as uow:
        for s in (origin, destination):
            if await uow.stops.get(s) is None:
                raise errors.UnknownStop(stop_id=s)
        if len(await uow.riders.favourites(actor.account_id)) >= 20:
            raise errors.InvalidInput("お気に入りは20件までです。", "Up to 20 favourites.")
        fav = dict(id=f"fav_{secrets.token_urlsafe(9)}", account_id=actor.account_id, label=clean_name(label) or "★",
                   origin_stop_id=origin, destination_stop_id=destination, party_size=party_size,
                   wheelchairs=wheelchairs, created_at=svc.clock.now())
        await uow.riders.add_favourite(fav)
        await uow.commit()
    return fav


async def delete_favourite(actor: Actor, fav_id: str, svc: Services) -> None:
    _rider_only(actor)
    async with svc.uow() as uow:
        if not await uow.riders.delete_favourite(actor.account_id, fav_id):
            raise errors.NotFound()
        await uow.commit()

