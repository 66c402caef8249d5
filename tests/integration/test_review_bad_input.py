"""Bad input to the endpoints the last merge added (family desk, TOMP webhook, delivery read-out and
return): a 4xx with a message in both languages, never a 500."""

from __future__ import annotations

from tests.conftest import Served
from tests.integration.test_tomp import _maas

NASTY = ["\x00", "090\x001234\x005678", "0" * 100_000, "\uff58" * 5000, "+81 90-1234-5678\ud800"[:-1] + "\u202e"]


async def test_desk_lookup_with_bad_phones(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    for phone in NASTY:
        r = await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": phone})
        assert 400 <= r.status_code < 500, (phone[:20], r.status_code, r.text[:200])
        assert r.json()["message_ja"] and r.json()["message_en"]
    for body in ({"phone": 9012345678}, {"phone": None}, {}, {"phone": ["090"]}, {"phone": "09012345678", "x": 1}):
        r = await c.post("/api/v1/family/desk-lookup", headers=op, json=body)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text[:200])


async def test_webhook_registration_with_bad_urls(served: Served) -> None:
    c, h = served.client, await _maas(served, "bad input app")
    for url in ["http://exa\x00mple.org/tomp", "https://xn--a.example/x", "http://[::1/x",
                "http://example.org:99999/x", "https://例え.テスト/tomp\x00", "javascript:alert(1)"]:
        r = await c.put("/tomp/webhook", headers=h, json={"callbackUrl": url, "secret": "s" * 20})
        assert 400 <= r.status_code < 500, (url[:30], r.status_code, r.text[:200])
        assert r.json()["message_ja"] and r.json()["message_en"]


async def test_unknown_and_odd_delivery_ids(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    for bid in ["nope", "x" * 5000, "%00", "..%2F..%2Fetc"]:
        for method, path in (("GET", f"/api/v1/deliveries/{bid}"), ("POST", f"/api/v1/deliveries/{bid}/return")):
            r = await c.request(method, path, headers=op, json={} if method == "POST" else None)
            assert 400 <= r.status_code < 500, (method, bid[:20], r.status_code, r.text[:200])


async def test_odd_tomp_booking_and_leg_ids(served: Served) -> None:
    c, h = served.client, await _maas(served, "odd id app")
    for bid in ["%00", "x" * 5000, "nope"]:
        for method, path in (("GET", f"/tomp/bookings/{bid}"), ("GET", f"/tomp/legs/{bid}"),
                             ("GET", f"/tomp/legs/{bid}/progress"), ("GET", f"/tomp/bookings/{bid}/notifications")):
            r = await c.request(method, path, headers=h)
            assert 400 <= r.status_code < 500, (method, path[:40], r.status_code, r.text[:200])


async def test_odd_stop_ids_for_the_approaching_minibuses(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    for sid in ["%00", "x" * 5000, "..%2F..%2Fetc", "okuma%E2%80%AEtown"]:
        r = await c.get(f"/api/v1/stops/{sid}/approaching", headers=op)
        assert 400 <= r.status_code < 500, (sid[:20], r.status_code, r.text[:200])
        assert r.json()["message_ja"] and r.json()["message_en"]
