"""The one place that maps domain errors to HTTP. Every message is Japanese first, then English."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    "too_many": 429,
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
        if exc.kind == "too_many" and "retry_after_s" in exc.extra:
            headers = {"Retry-After": str(int(exc.extra["retry_after_s"]))}
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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            body("InternalError", "申し訳ありません。システムで問題が起きました。町の窓口にお電話ください。",
                 "Sorry, something went wrong on our side. Please call the town desk."),
            status_code=500,
        )
