"""The one place that maps domain errors to HTTP. Every message is Japanese first, then English."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from transit.errors import DomainError

log = logging.getLogger("okuma.api")

STATUS = {
    "invalid": 400,
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "gone": 410,
    "unauthorised": 401,
    "rate_limited": 429,
}

# Japanese names for the fields of request bodies, for validation messages.
FIELD_JA = {
    "origin": "乗る場所",
    "destination": "降りる場所",
    "stop_id": "停留所",
    "time": "時刻",
    "time_mode": "時刻の指定方法",
    "party_size": "人数",
    "wheelchairs": "車いす",
    "parcels": "荷物",
    "passenger_name": "お名前",
    "contact_phone": "電話番号",
    "offer_id": "提案ID",
    "lat": "緯度",
    "lon": "経度",
    "phone": "電話番号",
    "code": "確認コード",
    "name": "お名前",
    "label": "名前",
    "near_minutes": "お知らせの時間",
}


RETRY_AFTER_S = 2


def is_transient(exc: BaseException) -> bool:
    """A lost or refused database connection (the request may be repeated), not a bug."""
    if isinstance(exc, SQLTimeoutError | OSError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        name = type(orig).__name__ if orig is not None else ""
        state = str(getattr(orig, "sqlstate", "") or "")
        # SQLSTATE class 08 (connection exception), 57P01-03 (shutdown, cannot connect now)
        if state.startswith(("08", "57P")):
            return True
        return isinstance(orig, OSError | ConnectionError) or name in (
            "ConnectionDoesNotExistError", "ConnectionFailureError", "CannotConnectNowError",
            "InterfaceError", "AdminShutdownError", "TooManyConnectionsError",
        ) or (name == "OperationalError" and "locked" in str(orig))
    return False


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (asked of the router, as it routes)."""
    from starlette.routing import Match

    found = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            found.append(method)
    return found


def body(code: str, message_ja: str, message_en: str, **extra: object) -> dict[str, object]:
    return {
        "error": code,
        "detail": f"{message_ja} / {message_en}",
        "message_ja": message_ja,
        "message_en": message_en,
        **extra,
    }


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.kind == "unauthorised" else None
        if exc.kind == "rate_limited":
            headers = {"Retry-After": str(exc.extra.get("retry_after_s", 60))}
        return JSONResponse(
            body(exc.code, exc.message_ja, exc.message_en, **exc.extra),
            status_code=STATUS.get(exc.kind, 400),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
            name = loc[-1] if loc else ""
            problems.append(
                {
                    "field": ".".join(loc),
                    "message_ja": f"「{FIELD_JA.get(name, name) or '入力'}」の値が正しくありません。",
                    "message_en": f"{'.'.join(loc) or 'input'}: {err.get('msg', 'invalid value')}",
                }
            )
        first = problems[0] if problems else {"message_ja": "入力内容に誤りがあります。", "message_en": "Invalid input."}
        return JSONResponse(
            body("InvalidInput", first["message_ja"], first["message_en"], problems=problems),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (e.g. JSON nested too deep)
            return JSONResponse(body("InvalidInput", "送信内容を読み取れませんでした。",
                                     "The request body could not be read.", problems=[]), status_code=422)
        texts = {
            404: ("ページまたはデータが見つかりません。", "Not found."),
            405: ("この操作はできません。", "Method not allowed."),
        }
        ja, en = texts.get(exc.status_code, ("リクエストを処理できませんでした。", str(exc.detail)))
        # keep the exception's headers (WWW-Authenticate on 401); Allow on 405 lists every method of
        # the path (RFC 9110), not only those of the first route that matched it
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(body("HTTPError", ja, en), status_code=exc.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLTimeoutError)
    @app.exception_handler(OSError)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        """A database that dropped the connection or is unreachable: nothing was done, retry soon.
        Other database errors are bugs (500)."""
        if not is_transient(exc):
            return await _unexpected(_, exc)
        log.warning("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        return JSONResponse(
            body("ServiceUnavailable", "一時的に処理できませんでした。少し待ってからもう一度お試しください。",
                 "Temporarily unavailable; nothing was changed. Please try again in a moment.",
                 retry_after_s=RETRY_AFTER_S),
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            body("InternalError", "申し訳ありません。システムで問題が起きました。町の窓口にお電話ください。",
                 "Sorry, something went wrong on our side. Please call the town desk."),
            status_code=500,
        )

    class KeepAliveOnError:
        """Answer an unexpected error here, inside Starlette's outermost handler: that one re-raises
        after answering, and the server then drops the keep-alive connection (and every request
        queued on it)."""

        def __init__(self, asgi: Any) -> None:
            self.app = asgi

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            started = False

            async def watched(msg: Any) -> None:
                nonlocal started
                started = started or msg["type"] == "http.response.start"
                await send(msg)

            try:
                await self.app(scope, receive, watched)
            except Exception as exc:
                if started:
                    raise
                await (await _unexpected(Request(scope), exc))(scope, receive, send)

    app.add_middleware(KeepAliveOnError)  # innermost of the middleware: added first


# ------------------------------------------------------------------ the OpenAPI document

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail", "message_ja", "message_en"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. InvalidInput, NotFound"},
        "detail": {"type": "string", "description": "message_ja / message_en"},
        "message_ja": {"type": "string"},
        "message_en": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message_ja": {"type": "string"}, "message_en": {"type": "string"}}},
            "description": "422 only: one entry per invalid field"},
        "retry_after_s": {"type": "integer", "description": "429 and 503: seconds to wait (also Retry-After)"},
    },
    "additionalProperties": True,
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_RETRY = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}
COMMON = {
    "422": ("入力の形式が正しくない / malformed input (problems[] per field)", None),
    "503": ("一時的に利用不可 / temporarily unavailable: database connection lost (Retry-After)", _RETRY),
}
AUTHENTICATED = {
    "401": ("認証が必要・期限切れ / missing, wrong or expired token", None),
    "403": ("権限なし / wrong role", None),
    "429": ("操作が多すぎる / too many requests (Retry-After)", _RETRY),
}
WITH_BODY = {"413": ("送信内容が大きすぎる / body over 64 KiB", None)}


def document(app: FastAPI) -> None:
    """The OpenAPI document says what the answers are: every error has the one Error shape
    (FastAPI's own 422 shape is never sent), and every operation lists the errors it can give."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = ERROR_SCHEMA
        for ops in doc.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                extra = dict(COMMON)
                if op.get("security"):
                    extra.update(AUTHENTICATED)
                if "requestBody" in op:
                    extra.update(WITH_BODY)
                for code, (text, headers) in extra.items():
                    responses.setdefault(code, {"description": text})
                    if headers:
                        responses[code]["headers"] = headers
                for code, r in responses.items():
                    if code.startswith(("4", "5")):
                        r["content"] = {"application/json": {"schema": _ERROR_REF}}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
