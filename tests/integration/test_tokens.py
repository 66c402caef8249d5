"""Tokens expire, rotate and can be revoked (API and `okuma accounts`)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.conftest import Served
from transit.accounts import DEFAULT_TOKEN_TTL_DAYS, revoke

ROOT = Path(__file__).resolve().parents[2]


async def test_a_token_expires(served: Served) -> None:
    c, h = served.client, served.auth("rider")
    assert (await c.get("/api/v1/me", headers=h)).status_code == 200
    served.clock.advance(timedelta(days=DEFAULT_TOKEN_TTL_DAYS, seconds=1).total_seconds())
    served.app.state.actor_cache.clear()  # type: ignore[attr-defined]
    r = await c.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.json()["reason"] == "token_expired" and r.json()["message_ja"]


async def test_rotation_gives_a_new_token_and_ends_the_old_one(served: Served) -> None:
    c, h = served.client, served.auth("rider")
    r = await c.post("/api/v1/me/token", headers=h)
    assert r.status_code == 200, r.text
    new = r.json()["token"]
    assert new != served.tokens["rider"] and r.json()["expires_at"]
    assert (await c.get("/api/v1/me", headers=h)).status_code == 401  # at once, in this process
    me = await c.get("/api/v1/me", headers={"Authorization": f"Bearer {new}"})
    assert me.status_code == 200 and me.json()["role"] == "rider"


async def test_revoked_token_stops_working(served: Served) -> None:
    c, h = served.client, served.auth("kiosk")
    me = (await c.get("/api/v1/me", headers=h)).json()
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        await revoke(uow, me["account_id"])
        await uow.commit()
    served.clock.advance(31)  # the per-process actor cache holds a token at most 30 s
    served.app.state.actor_cache.clear()  # type: ignore[attr-defined]
    assert (await c.get("/api/v1/me", headers=h)).status_code == 401


def test_okuma_accounts_create_rotate_revoke(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db"}

    def okuma(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    assert okuma("migrate").returncode == 0
    out = okuma("accounts", "create", "--role", "operator", "--name", "desk")
    acc = out.stdout.split()[1]
    listed = okuma("accounts", "list").stdout
    assert acc in listed and "expires" in listed
    rot = okuma("accounts", "rotate", acc)
    assert rot.returncode == 0 and "new token: okm_operator_" in rot.stdout
    rev = okuma("accounts", "revoke", acc)
    assert rev.returncode == 0 and "revoked" in rev.stdout
    assert "revoked" in okuma("accounts", "list").stdout
    bad = okuma("accounts", "revoke", "acc_nobody")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


async def test_operator_reads_of_personal_data_are_audited(served: Served) -> None:
    """Every booking an operator reads or lists is in the audit log with who and when; riders'
    reads of their own bookings are not."""
    c = served.client
    h = served.auth("rider")
    o = (await c.post("/api/v1/offers", json={"origin": {"stop_id": "okuma_town_hall"},
                                              "destination": {"stop_id": "okumart"}}, headers=h)).json()
    b = (await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                      headers={**h, "Idempotency-Key": "aud"})).json()
    assert (await c.get(f"/api/v1/bookings/{b['id']}", headers=h)).status_code == 200
    op = served.auth("operator")
    assert (await c.get(f"/api/v1/bookings/{b['id']}", headers=op)).status_code == 200
    assert b["id"] in [x["id"] for x in (await c.get("/api/v1/bookings", headers=op)).json()]
    operator = (await c.get("/api/v1/me", headers=op)).json()["account_id"]
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        rows = await uow.audit.of_subject(b["id"])
    assert [(r["actor_id"], r["actor_role"], r["action"]) for r in rows] == [
        (operator, "operator", "read_booking"), (operator, "operator", "list_bookings")]
    assert all(r["occurred_at"] == served.clock.now() for r in rows)
