"""The one place that maps domain errors to HTTP. Every message is Japanese first, then English."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLTimeoutError

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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        texts = {
            404: ("ページまたはデータが見つかりません。", "Not found."),
            405: ("この操作はできません。", "Method not allowed."),
        }
        ja, en = texts.get(exc.status_code, ("リクエストを処理できませんでした。", str(exc.detail)))
        return JSONResponse(body("HTTPError", ja, en), status_code=exc.status_code)

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
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            body("InternalError", "申し訳ありません。システムで問題が起きました。町の窓口にお電話ください。",
                 "Sorry, something went wrong on our side. Please call the town desk."),
            status_code=500,
        )
