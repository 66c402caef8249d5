"""The server's logs of a busy run (access lines, websocket lines, a database error) carry no token
and no personal data: the log text of the run is grepped for every secret used in it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import websockets
from sqlalchemy import text

from tests.conftest import Served
from tests.integration.test_numbers_kiosk_console import add_rider
from tests.local_server import serve

NAME, PHONE, CARD, KEY = "秘密 花子", "0240-99-8765", "CARD-SECRET-4242", "idem-secret-77"


@asynccontextmanager
async def logging_server(app: Any) -> AsyncIterator[tuple[str, io.StringIO]]:
    """uvicorn at the production log level (info: access lines on), its log text in a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    # the server's log only (this test's own HTTP and websocket clients log their URLs)
    handler.addFilter(lambda r: not r.name.startswith(("httpx", "httpcore", "websockets.client")))
    names = ["", "uvicorn", "uvicorn.access", "uvicorn.error"]
    root_level = logging.getLogger().level
    try:
        async with serve(app, log_level="info", ws="websockets-sansio") as url:
            logging.getLogger().setLevel(logging.INFO)
            for n in names:
                logging.getLogger(n).addHandler(handler)
            yield url.removeprefix("http://"), buf
    finally:  # after the server stopped: its shutdown lines are in the buffer too
        for n in names:
            logging.getLogger(n).removeHandler(handler)
        logging.getLogger().setLevel(root_level)


async def _ws_session(url: str, token: str, frames: int = 1) -> list[dict[str, Any]]:
    async with websockets.connect(url, open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        return [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(frames)]


async def test_logs_of_a_run_hold_no_token_and_no_personal_data(served: Served) -> None:
    tokens = served.tokens
    holder = await add_rider(served, NAME, CARD)  # the desk books with a registered rider's card
    async with logging_server(served.app) as (host, buf):
        async with httpx.AsyncClient(base_url=f"http://{host}") as c:
            h = {"Authorization": f"Bearer {tokens['operator']}"}
            ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"},
                    "passenger_name": NAME, "contact_phone": PHONE, "rider_card": CARD}
            o = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
            b = (await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                              headers={**h, "Idempotency-Key": KEY})).json()
            assert b["passenger_name"] == NAME
            # every role calls the API once (including a rejected, bad token)
            for role in ("rider", "kiosk", "driver", "store", "admin"):
                await c.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens[role]}"})
            await c.get("/api/v1/me", headers={"Authorization": "Bearer okm_rider_not-a-real-token"})
            # a pasted provisioning link and a stale client that still puts the token in the URL
            await c.get(f"/driver/?token={tokens['driver']}")
            with suppress(Exception):
                await _ws_session(f"ws://{host}/ws/operator?token={tokens['operator']}", tokens["operator"])
            # every live channel, authenticated by its first message
            assert (await _ws_session(f"ws://{host}/ws/operator", tokens["operator"]))[0]["type"] == "vehicle"
            assert (await _ws_session(f"ws://{host}/ws/bookings/{b['id']}", tokens["operator"]))[0]["type"] \
                == "booking"
            assert (await _ws_session(f"ws://{host}/ws/driver", tokens["driver"]))[0]["type"] == "hello"
            # a database error while the booking's INSERT carries name, phone, card and key
            await _fail_booking_inserts(served)
            o = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
            r = await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                             headers={**h, "Idempotency-Key": KEY + "-2"})
            assert r.status_code >= 500
        await asyncio.sleep(0.05)
    logs = buf.getvalue()
    assert "GET /driver/" in logs and "POST /api/v1/bookings" in logs  # the access log was captured
    assert "Traceback" in logs or "unexpected error" in logs  # and so was the database error
    for secret in [*tokens.values(), holder, "okm_rider_not-a-real-token", NAME, PHONE, CARD, KEY]:
        assert secret not in logs, f"{secret!r} found in the server log"


async def _fail_booking_inserts(served: Served) -> None:
    """A trigger makes every booking INSERT fail inside the database (with its parameters bound)."""
    engine = served.runtime.engine  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text("CREATE TRIGGER no_bookings BEFORE INSERT ON bookings "
                                    "BEGIN INSERT INTO no_such_table VALUES (1); END"))
        else:
            await conn.execute(text("CREATE FUNCTION no_bookings() RETURNS trigger AS $$ BEGIN "
                                    "RAISE EXCEPTION 'bookings refused'; END $$ LANGUAGE plpgsql"))
            await conn.execute(text("CREATE TRIGGER no_bookings BEFORE INSERT ON bookings "
                                    "FOR EACH ROW EXECUTE FUNCTION no_bookings()"))


async def test_a_token_in_a_websocket_url_is_refused(served: Served) -> None:
    """Every live channel takes its token from the first message only; one in the URL is refused."""
    async with logging_server(served.app) as (host, _):
        for path, role in (("/ws/driver", "driver"), ("/ws/operator", "operator"),
                           ("/ws/bookings/bkg_x", "rider")):
            async with websockets.connect(f"ws://{host}{path}?token={served.tokens[role]}") as ws:
                e = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert e["type"] == "error" and e["code"] == "TokenInUrl" and e["message_ja"]
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 4401
                else:
                    raise AssertionError("the channel stayed open")
