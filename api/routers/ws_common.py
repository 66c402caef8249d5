"""What the live channels share: authentication, the receive loop with heartbeats, error frames."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from api.limits import MAX_WS_MESSAGE_BYTES
from api.realtime import Hub, Outbox
from driver_app import protocol as p
from transit import errors
from transit.accounts import authenticate
from transit.commands import Actor

AUTH_TIMEOUT_S = 10
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def hub_of(ws: WebSocket) -> Hub:
    return ws.app.state.hub


def error(code: str, ja: str, en: str, client_event_id: str | None = None) -> p.ErrorMessage:
    return p.ErrorMessage(code=code, message_ja=ja, message_en=en, client_event_id=client_event_id)


def domain_error(e: errors.DomainError) -> p.ErrorMessage:
    return error(e.code, e.message_ja, e.message_en)


async def refuse(ws: WebSocket, msg: p.ErrorMessage, close_code: int) -> None:
    try:
        await ws.send_text(msg.model_dump_json())
        await ws.close(code=close_code)
    except Exception:  # noqa: BLE001
        pass


async def receive(ws: WebSocket, timeout_s: float) -> str | None:
    """One text frame (bytes are decoded); None when the peer went away or stayed silent too long."""
    try:
        m = await asyncio.wait_for(ws.receive(), timeout=timeout_s)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        return None
    if m["type"] == "websocket.disconnect":
        return None
    text, data = m.get("text"), m.get("bytes") or b""
    if (len(text.encode()) if text is not None else len(data)) > MAX_WS_MESSAGE_BYTES:
        # an oversized frame closes the link (1009) instead of being parsed
        await refuse(ws, error("MessageTooLarge", "メッセージが大きすぎます。",
                               f"Message too large (at most {MAX_WS_MESSAGE_BYTES} bytes)."), 1009)
        return None
    if text is not None:
        return text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "\x00"  # parsed as malformed below


def parse_error(raw: str, exc: ValidationError | ValueError) -> p.ErrorMessage:
    """A bilingual error frame for a frame that is not valid JSON or not a known message."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return error("InvalidJson", "メッセージを読み取れませんでした(JSONではありません)。",
                     "The message is not valid JSON.")
    cid = body.get("client_event_id") if isinstance(body, dict) else None
    cid = cid if isinstance(cid, str) else None
    if not isinstance(body, dict) or "type" not in body:
        return error("InvalidMessage", "メッセージに type がありません。", "The message has no 'type'.", cid)
    if isinstance(exc, ValidationError) and any(e.get("type") == "union_tag_invalid" for e in exc.errors()):
        return error("UnknownType", f"不明なメッセージ種別です: {str(body.get('type'))[:40]}",
                     f"Unknown message type: {str(body.get('type'))[:40]}", cid)
    first = exc.errors()[0] if isinstance(exc, ValidationError) and exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "message"
    return error("InvalidMessage", f"メッセージの内容が正しくありません({where})。",
                 f"Invalid message ({where}: {first.get('msg', 'invalid')}).", cid)


async def authenticate_ws(ws: WebSocket) -> tuple[Actor | None, p.TabletHello | None]:
    """The token from the first message (``hello``) only: never from the URL, which access logs and
    proxies record. A token in the URL is refused, so no client keeps sending it."""
    if "token" in ws.query_params:
        await refuse(ws, error("TokenInUrl", "トークンはURLに入れず、最初のメッセージ(hello)で送ってください。",
                               "Send the token in the first message (hello), never in the URL."),
                     CLOSE_UNAUTHORISED)
        return None, None
    raw = await receive(ws, AUTH_TIMEOUT_S)
    if raw is None:
        await refuse(ws, domain_error(errors.Unauthorised()), CLOSE_UNAUTHORISED)
        return None, None
    try:
        msg = p.parse_tablet(raw)
    except (ValidationError, ValueError) as exc:
        await refuse(ws, parse_error(raw, exc), CLOSE_UNAUTHORISED)
        return None, None
    if not isinstance(msg, p.TabletHello) or not msg.token:
        await refuse(ws, domain_error(errors.Unauthorised()), CLOSE_UNAUTHORISED)
        return None, None
    svc = ws.app.state.services
    try:
        async with svc.uow(readonly=True) as uow:
            return await authenticate(uow, msg.token), msg
    except errors.DomainError as e:
        await refuse(ws, domain_error(e), CLOSE_UNAUTHORISED)
        return None, None


async def pinger(out: Outbox, every_s: float) -> None:
    while not out.closed:
        await asyncio.sleep(every_s)
        out.send(p.Ping(t=time.time()))
