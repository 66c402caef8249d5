"""The LINE webhook: signature checked, then a message carrying a link code links that LINE user."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request

from api.routers.riders import notifier_of
from transit import errors, riders
from transit.notify import verify_line_signature

router = APIRouter(tags=["line"])
log = logging.getLogger("okuma.line")


@router.post("/api/v1/line/webhook", operation_id="line_webhook",
             responses={401: {"description": "署名が違う / bad x-line-signature"},
                        404: {"description": "LINE not configured"}})
async def webhook(request: Request) -> dict[str, int]:
    """LINE Messaging API webhook (``x-line-signature``: base64 HMAC-SHA256 of the body)."""
    settings = request.app.state.runtime.settings
    if not settings.line_channel_secret:
        raise errors.NotFound("LINE連携は設定されていません。", "LINE is not configured.")
    body = await request.body()
    if not verify_line_signature(settings.line_channel_secret, body, request.headers.get("x-line-signature")):
        raise errors.Unauthorised("署名が正しくありません。", "The webhook signature is not valid.")
    try:
        payload = json.loads(body)
        events = payload.get("events", []) if isinstance(payload, dict) else []
    except ValueError:
        raise errors.InvalidInput("JSONではありません。", "The body is not JSON.") from None
    svc = request.app.state.services
    linked = 0
    for ev in events if isinstance(events, list) else []:
        if not isinstance(ev, dict) or ev.get("type") != "message":
            continue
        message, source = ev.get("message") or {}, ev.get("source") or {}
        if message.get("type") != "text" or source.get("type") != "user":
            continue
        account_id = await riders.link_line_user(str(message.get("text", "")), str(source.get("userId", "")), svc)
        if account_id is None:
            continue
        linked += 1
        await notifier_of(request).notify(
            account_id, "line_linked",
            "【大熊町 のりあいミニバス】LINEと連携しました。これからの予約のお知らせはLINEでお届けします。\n"
            "LINE is linked: notices about your rides will come here.",
            key=f"line_linked:{ev.get('webhookEventId') or message.get('id')}")
    return {"linked": linked}
