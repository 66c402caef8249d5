"""Limits at the edge, before any route runs: body and header sizes, and the security headers.

Pure ASGI (no BaseHTTPMiddleware), so a refused request costs no body parsing: a declared length
over the limit is answered at once (413), a streamed body is counted while it arrives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from api.errors import body as error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024  # the largest valid request body is under 2 KiB
MAX_HEADERS = 50
MAX_HEADER_BYTES = 16 * 1024  # all names and values together
MAX_WS_MESSAGE_BYTES = 64 * 1024  # one websocket frame from a tablet or a page


async def _answer(send: Send, status: int, code: str, ja: str, en: str,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    payload = json.dumps(error_body(code, ja, en), ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": payload})


class SizeLimits:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, max_headers: int = MAX_HEADERS,
                 max_header_bytes: int = MAX_HEADER_BYTES,
                 secured: Callable[[], list[tuple[re.Pattern[str], str]]] | None = None) -> None:
        self.app, self.max_body = app, max_body
        self.max_headers, self.max_header_bytes = max_headers, max_header_bytes
        self._secured_source = secured
        self._secured: list[tuple[re.Pattern[str], str]] | None = None

    def _needs_token(self, scope: Scope) -> bool:
        if self._secured_source is None:
            return False
        if self._secured is None:
            self._secured = self._secured_source()
        path, method = scope.get("path", ""), scope.get("method", "")
        return any(m == method and rx.match(path) for rx, m in self._secured)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if len(headers) > self.max_headers or sum(len(k) + len(v) for k, v in headers) > self.max_header_bytes:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009})
                return
            await _answer(send, 431, "HeadersTooLarge", "リクエストのヘッダーが大きすぎます。",
                          f"Request headers too large (at most {self.max_headers} headers, "
                          f"{self.max_header_bytes} bytes).")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if (scope.get("method") not in ("GET", "HEAD", "OPTIONS")
                and not any(k == b"authorization" for k, _ in headers)
                and self._needs_token(scope)):
            # a body for an operation that needs a token, sent without one: refused unread
            await _answer(send, 401, "Unauthorised", "ログインが必要です。トークンを確認してください。",
                          "Authentication is required. Please check your token.",
                          headers=((b"www-authenticate", b"Bearer"),))
            return
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413, "BodyTooLarge", "送信内容が大きすぎます。",
                          f"Request body too large (at most {self.max_body} bytes).")
            return
        # Read the (small) body before any route runs, counting as it arrives: a body over the
        # limit is refused before it is parsed, authenticated or kept.
        chunks: list[bytes] = []
        seen = 0
        more = scope.get("method") not in ("GET", "HEAD", "OPTIONS")
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await _answer(send, 413, "BodyTooLarge", "送信内容が大きすぎます。",
                              f"Request body too large (at most {self.max_body} bytes).")
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def secured_operations(openapi: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """(path pattern, method) of every operation the OpenAPI document says needs a token."""
    found = []
    for path, ops in openapi.get("paths", {}).items():
        rx = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
        found.extend((rx, method.upper()) for method, op in ops.items() if op.get("security"))
    return found


def inline_hashes(*folders: Path) -> tuple[list[str], list[str]]:
    """CSP hashes of the inline <script> and <style> blocks of the pages (so none needs
    'unsafe-inline', and a page edited later keeps working)."""
    found: dict[str, set[str]] = {"script": set(), "style": set()}
    for folder in folders:
        for page in sorted(folder.glob("*.html")) if folder.exists() else []:
            html = page.read_text(encoding="utf-8")
            for tag in found:
                for m in re.finditer(rf"<{tag}(?![^>]*\bsrc=)[^>]*>(.*?)</{tag}>", html, re.S):
                    if m.group(1).strip():
                        digest = base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode()
                        found[tag].add(f"'sha256-{digest}'")
    return sorted(found["script"]), sorted(found["style"])


def content_security_policy(scripts: list[str], styles: list[str]) -> str:
    return "; ".join([
        "default-src 'none'",
        " ".join(["script-src 'self'", *scripts]),
        " ".join(["style-src 'self'", *styles]),
        # style="" attributes set by the pages' own scripts (layout only; a style attribute cannot run code)
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ])


# The interactive API docs (/docs, /redoc) load FastAPI's bundled viewer from its CDN.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'; "
            "base-uri 'none'")


class SecurityHeaders:
    """The same headers on every answer (pages, API, errors); API answers are never cached."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"geolocation=(self), camera=(), microphone=(), payment=()"),
        ]
        self.page = [*common, (b"content-security-policy", csp.encode())]
        self.docs = [*common, (b"content-security-policy", DOCS_CSP.encode())]
        self.api = [*common, (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
                    (b"cache-control", b"no-store")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = (self.api if path.startswith(("/api/", "/readyz", "/healthz", "/openapi.json"))
                 else self.docs if path.startswith(("/docs", "/redoc")) else self.page)

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                names = {k.lower() for k, _ in msg.get("headers", [])}
                msg["headers"] = [*msg.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(msg)

        await self.app(scope, receive, with_headers)
