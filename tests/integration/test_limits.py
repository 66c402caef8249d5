"""Limits at the edge: body, header and websocket frame sizes, rate limits with 429 + Retry-After,
and the security headers on every answer."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from api.limits import MAX_BODY_BYTES, MAX_HEADERS, MAX_WS_MESSAGE_BYTES
from tests.conftest import Served, start_served
from tests.integration.test_driver_ws import live_server

RIDE = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"}}


async def test_an_oversized_body_is_refused_before_it_is_read(served: Served) -> None:
    c = served.client
    big = json.dumps({**RIDE, "passenger_name": "x" * (MAX_BODY_BYTES + 10)})
    r = await c.post("/api/v1/offers", content=big, headers={**served.auth("rider"),
                                                             "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "BodyTooLarge" and r.json()["message_ja"]
    # streamed without a length: counted while it arrives
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 4096
    r = await c.post("/api/v1/offers", content=chunks(), headers={**served.auth("rider"),
                                                                    "Content-Type": "application/json"})
    assert r.status_code == 413
    r = await c.post("/api/v1/offers", json=RIDE, headers=served.auth("rider"))
    assert r.status_code == 201  # a normal body passes


async def test_a_huge_declared_length_is_answered_at_once(served: Served) -> None:
    """A request that declares 10 GB and sends nothing gets 413 at once, not a wait."""
    async with live_server(served.app) as base:
        host, port = base.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /api/v1/offers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer x\r\nContent-Length: 10000000000\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 3)
        writer.close()
    assert b" 413 " in head


async def test_too_many_or_too_large_headers_get_431(served: Served) -> None:
    c = served.client
    many = {f"X-Pad-{i}": "y" for i in range(MAX_HEADERS + 1)}
    assert (await c.get("/api/v1/stops", headers=many)).status_code == 431
    r = await c.get("/api/v1/stops", headers={f"X-Big-{i}": "z" * 8000 for i in range(3)})
    assert r.status_code == 431 and r.json()["error"] == "HeadersTooLarge"
    assert (await c.get("/api/v1/stops")).status_code == 200


async def test_an_oversized_websocket_frame_closes_that_link_only(served: Served) -> None:
    async with live_server(served.app) as base:
        async with websockets.connect(f"{base}/ws/operator", max_size=None) as big, \
                websockets.connect(f"{base}/ws/operator") as other:
            for ws in (big, other):
                await ws.send(json.dumps({"type": "hello", "token": served.tokens["operator"]}))
                await asyncio.wait_for(ws.recv(), 5)
            await big.send(json.dumps({"type": "ping", "pad": "p" * (MAX_WS_MESSAGE_BYTES + 1)}))
            seen = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    seen.append(json.loads(await asyncio.wait_for(big.recv(), 5)))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            assert any(m.get("code") == "MessageTooLarge" for m in seen)
            await other.send(json.dumps({"type": "ping", "t": 1}))
            while json.loads(await asyncio.wait_for(other.recv(), 5))["type"] != "pong":
                pass


@pytest.fixture
async def strict(database_url: str, clock):  # type: ignore[no-untyped-def]
    """A served app with small rate limits."""
    s, ctx = await start_served(database_url, clock, settings_update={"rate_limits": {
        "offers:rider": "3/minute", "offers:kiosk": "4/minute", "auth:failures": "5/minute"}})
    try:
        yield s
    finally:
        await s.client.aclose()
        await ctx.__aexit__(None, None, None)


async def test_offers_per_rider_per_minute_get_429_with_retry_after(strict: Served) -> None:
    c = strict.client
    for _ in range(3):
        assert (await c.post("/api/v1/offers", json=RIDE, headers=strict.auth("rider"))).status_code == 201
    r = await c.post("/api/v1/offers", json=RIDE, headers=strict.auth("rider"))
    assert r.status_code == 429 and r.json()["error"] == "RateLimited"
    assert r.json()["message_ja"] and r.json()["message_en"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # another rider and the operators' desk are not held back by this rider
    assert (await c.post("/api/v1/offers", json=RIDE, headers=strict.auth("rider2"))).status_code == 201
    assert (await c.post("/api/v1/offers", json=RIDE, headers=strict.auth("operator"))).status_code == 201


async def test_bad_tokens_from_one_address_get_429(strict: Served) -> None:
    c = strict.client
    for i in range(5):
        r = await c.get("/api/v1/me", headers={"Authorization": f"Bearer wrong-{i}"})
        assert r.status_code == 401
    r = await c.get("/api/v1/me", headers={"Authorization": "Bearer wrong-again"})
    assert r.status_code == 429 and "Retry-After" in r.headers


async def test_security_headers_on_pages_and_api(served: Served) -> None:
    c = served.client
    for path in ("/", "/kiosk", "/operator", "/driver/", "/api/v1/stops", "/api/v1/me", "/static/js/api.js"):
        r = await c.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        directives = dict((d.split(" ", 1) + [""])[:2] for d in csp.split("; "))
        assert "unsafe-inline" not in directives.get("script-src", "") + directives.get("style-src", "")
    page = (await c.get("/kiosk")).headers["content-security-policy"]
    assert "default-src 'none'" in page and "script-src 'self'" in page
    assert (await c.get("/api/v1/stops")).headers["cache-control"] == "no-store"


async def test_a_body_without_a_token_is_refused_unread(served: Served) -> None:
    """An operation that needs a token answers 401 before reading a body sent without one."""
    async with live_server(served.app) as base:
        host, port = base.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /api/v1/offers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 60000\r\n\r\n")  # and the body never comes
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 3)
        writer.close()
    assert b" 401 " in head
    r = await served.client.post("/api/v1/offers", json=RIDE)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorised"
    assert (await served.client.get("/api/v1/stops")).status_code == 200  # open operations stay open
