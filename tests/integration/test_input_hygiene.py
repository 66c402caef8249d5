"""Bad input gets a clear 4xx, never a 500 (NUL bytes on PostgreSQL, control characters, loose
types, odd path ids); a lost database connection gets 503 with a retry hint."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from tests.conftest import Served

RIDE = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"}}


async def _booking(served: Served) -> dict:
    h = served.auth("rider")
    o = (await served.client.post("/api/v1/offers", json=RIDE, headers=h)).json()
    r = await served.client.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                                 headers={**h, "Idempotency-Key": "in-1"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("bad", ["大熊\x00花子", "a\x1b[31mb", "bell\x07", "re\u202eversed", "two\nlines"])
async def test_control_characters_in_a_name_are_refused(served: Served, bad: str) -> None:
    r = await served.client.post("/api/v1/offers", json={**RIDE, "passenger_name": bad}, headers=served.auth("rider"))
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["field"] == "passenger_name" and r.json()["message_ja"]


async def test_nul_bytes_anywhere_get_4xx(served: Served) -> None:
    c, h = served.client, served.auth("rider")
    b = await _booking(served)
    answers = [
        await c.post("/api/v1/offers", json={"origin": {"stop_id": "a\x00"}, "destination": RIDE["destination"]},
                     headers=h),
        await c.post("/api/v1/bookings", json={"offer_id": "off_\x00"}, headers=h),
        await c.get("/api/v1/bookings/bkg%00x", headers=h),
        await c.post("/api/v1/bookings/bkg%00x/cancel", headers=h),
        await c.post(f"/api/v1/bookings/{b['id']}/cancel", json={"reason": "x\x00"}, headers=h),
        await c.get("/api/v1/vehicles/v%00/plan", headers=served.auth("operator")),
    ]
    assert [r.status_code for r in answers] == [422] * 6, [r.text for r in answers]
    # the booking is untouched and a clean cancel still works
    r = await c.post(f"/api/v1/bookings/{b['id']}/cancel", json={"reason": "予定変更"}, headers=h)
    assert r.status_code == 200 and r.json()["cancel_reason"] == "予定変更"


@pytest.mark.parametrize("field,value", [("party_size", True), ("party_size", "2"), ("party_size", 2.5),
                                         ("wheelchairs", False), ("parcels", "1")])
async def test_counts_must_be_integers(served: Served, field: str, value: object) -> None:
    r = await served.client.post("/api/v1/offers", json={**RIDE, field: value}, headers=served.auth("rider"))
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == field


async def test_a_lost_database_connection_gets_503_with_retry_after(served: Served) -> None:
    """Nothing was done: the answer says so, in both languages, and when to try again."""
    app = served.app

    @app.get("/test-only/lost-connection")  # type: ignore[attr-defined]
    async def lost() -> None:
        raise DBAPIError("SELECT 1", {}, ConnectionResetError("reset by peer"), connection_invalidated=True)

    @app.get("/test-only/bug")  # type: ignore[attr-defined]
    async def bug() -> None:
        raise DBAPIError("SELECT 1", {}, ValueError("a bug"))

    r = await served.client.get("/test-only/lost-connection")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert r.json()["error"] == "ServiceUnavailable" and r.json()["message_ja"] and r.json()["retry_after_s"] == 2
    r = await served.client.get("/test-only/bug")
    assert r.status_code == 500 and "Retry-After" not in r.headers


async def test_drivers_see_only_bookings_still_to_serve_and_not_the_rider_channel(served: Served) -> None:
    import json

    import websockets

    from tests.integration.test_driver_ws import live_server

    c = served.client
    b = await _booking(served)
    vehicle = b["vehicle_id"]
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        from transit.accounts import create_account

        _, tok = await create_account(uow, role="driver", name="d", vehicle_id=vehicle)
        await uow.commit()
    dh = {"Authorization": f"Bearer {tok}"}
    assert (await c.get(f"/api/v1/bookings/{b['id']}", headers=dh)).status_code == 200  # to serve: yes
    async with live_server(served.app) as base:
        async with websockets.connect(f"{base}/ws/bookings/{b['id']}") as ws:
            await ws.send(json.dumps({"type": "hello", "token": tok}))
            assert json.loads(await ws.recv())["code"] == "NotFound"
    r = await c.post(f"/api/v1/bookings/{b['id']}/cancel", json={"reason": "具合が悪い"}, headers=served.auth("rider"))
    assert r.status_code == 200
    assert (await c.get(f"/api/v1/bookings/{b['id']}", headers=dh)).status_code == 404  # finished: no


async def test_the_operator_list_pages_instead_of_stopping_silently(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    ids = []
    for i in range(3):
        o = (await c.post("/api/v1/offers", json=RIDE, headers=op)).json()
        ids.append((await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                                 headers={**op, "Idempotency-Key": f"pg{i}"})).json()["id"])
    first = await c.get("/api/v1/bookings?limit=2", headers=op)
    assert len(first.json()) == 2 and first.headers["X-Next-Offset"] == "2"
    assert 'rel="next"' in first.headers["Link"]
    rest = await c.get("/api/v1/bookings?limit=2&offset=2", headers=op)
    assert len(rest.json()) == 1 and "X-Next-Offset" not in rest.headers
    assert {x["id"] for x in first.json() + rest.json()} == set(ids)
    assert (await c.get("/api/v1/bookings?limit=501", headers=op)).status_code == 422


async def test_the_openapi_document_matches_the_answers(served: Served) -> None:
    """405 lists every method of the path; JSON nested too deep is 422 like any malformed body;
    the documented error shape is the one sent."""
    c, h = served.client, served.auth("operator")
    r = await c.request("TRACE", "/api/v1/bookings", headers=h)
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    r = await c.post("/api/v1/offers", content="[" * 30_000 + "]" * 30_000, headers={
        **h, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "InvalidInput"
    doc = (await c.get("/openapi.json")).json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    me = doc["paths"]["/api/v1/me"]["get"]["responses"]
    assert {"401", "422", "429", "503"} <= set(me)
    assert me["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


async def test_a_server_error_keeps_the_connection(served: Served) -> None:
    """An unexpected error is a bilingual 500, and the keep-alive connection serves the next request."""
    import asyncio

    from tests.integration.test_driver_ws import live_server

    @served.app.get("/test-only/boom")  # type: ignore[attr-defined]
    async def boom() -> None:
        raise RuntimeError("a bug")

    async with live_server(served.app) as base:
        host, port = base.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /test-only/boom HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        got = b""
        while got.count(b"HTTP/1.1 ") < 2:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
        writer.close()
    assert b"HTTP/1.1 500" in got and b"InternalError" in got
    assert b"HTTP/1.1 200" in got, got.decode(errors="replace")  # the second request was answered


async def test_what_the_fuzz_test_found_on_the_merged_endpoints(served: Served) -> None:
    """The OpenAPI document says what the merged endpoints answer (found by tests/e2e/test_api_fuzz.py)."""
    c, op, rider = served.client, served.auth("operator"), served.auth("rider")
    # /family/desk-links and /family/invitations are not links: DELETE does not route there
    for path in ("/api/v1/family/desk-links", "/api/v1/family/invitations"):
        r = await c.request("OPTIONS", path, headers=op)
        assert r.status_code == 405 and r.headers["Allow"] == "POST", (path, r.headers)
        assert (await c.delete(path, headers=op)).status_code == 405
    assert (await c.delete("/api/v1/family/fam_nosuchlink", headers=rider)).status_code == 404
    doc = (await c.get("/openapi.json")).json()
    (link_id,) = doc["paths"]["/api/v1/family/{link_id}"]["delete"]["parameters"]
    assert link_id["schema"]["pattern"].startswith("^fam_")
    # a day is YYYY-MM-DD, not a number pydantic would read as a Unix time
    for bad in ("0", "1700000000", "2026-1-1"):
        r = await c.get("/api/v1/bookings", params={"day": bad}, headers=rider)
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "day", (bad, r.text)
    # an unknown stop's approaching minibuses: the 400 UnknownStop is documented
    r = await c.get("/api/v1/stops/no_such_stop/approaching", headers=op)
    assert r.status_code == 400 and r.json()["error"] == "UnknownStop"
    assert "400" in doc["paths"]["/api/v1/stops/{stop_id}/approaching"]["get"]["responses"]
    # the schema of an offer says the cross-field rules the validators enforce
    offer = doc["components"]["schemas"]["OfferCreate"]
    assert [set(x["required"]) for x in offer["anyOf"]] == [{"origin"}, {"kind", "delivery"}]
    delivery = doc["components"]["schemas"]["DeliveryIn"]
    assert [x["required"] for x in delivery["anyOf"]] == [["order_number"], ["shopping_list"]]
    r = await c.post("/api/v1/offers", headers=rider, json={
        "kind": "delivery", "destination": {"stop_id": "okuma_town_hall"},
        "delivery": {"store_id": "okumart", "order_number": "", "shopping_list": " ",
                     "window_start": "2026-12-02T10:00:00+09:00", "window_end": "2026-12-02T12:00:00+09:00"}})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "delivery"
