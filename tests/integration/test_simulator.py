"""The vehicle simulator drives a vehicle of a real server over the websocket, in simulated time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from driver_app.client import DriverClient
from driver_app.simulator import FleetSimulator, SimulationOptions
from tests.conftest import T0, TOKYO
from transit.clock import FakeClock

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"


@dataclass
class LiveServer:
    """A real server (uvicorn in a thread) on a free port, SQLite in a temporary folder."""

    url: str
    clock: FakeClock
    tokens: dict[str, str]
    drivers: dict[str, str]  # vehicle id -> driver token
    _server: object = field(repr=False, default=None)
    _thread: threading.Thread | None = field(repr=False, default=None)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def stop(self) -> None:
        self._server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _prepare(settings, clock: FakeClock) -> tuple[dict[str, str], dict[str, str]]:  # type: ignore[no-untyped-def]
    from transit.accounts import create_account
    from transit.bootstrap import bootstrap
    from transit.db import migrate
    from transit.loading import load_reference

    rt = bootstrap(settings, clock=clock)
    try:
        await migrate(rt.engine)
        tokens: dict[str, str] = {}
        async with rt.services.uow() as uow:
            await load_reference(uow, rt.reference, today=clock.now().astimezone(TOKYO).date(), days=2)
            for role in ("operator", "rider"):
                _, tokens[role] = await create_account(uow, role=role, name=f"test {role}")
            drivers: dict[str, str] = {}
            for v in rt.reference.fleet:
                _, drivers[v.id] = await create_account(uow, role="driver", name=f"driver {v.id}",
                                                        vehicle_id=v.id)
            await uow.commit()
        return tokens, drivers
    finally:
        await rt.close()


def start_live_server(tmp_path: Path, clock: FakeClock) -> LiveServer:
    import uvicorn

    from api.app import create_app
    from transit.settings import Settings

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/okuma.db", dispatcher=False)
    # a thread of its own: the caller may already run an event loop (pytest-asyncio, Playwright)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        tokens, drivers = pool.submit(asyncio.run, _prepare(settings, clock)).result()
    port = _free_port()
    config = uvicorn.Config(create_app(settings, clock=clock), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="live-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", clock, tokens, drivers, server, thread)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    clock = FakeClock(T0)
    srv = start_live_server(tmp_path, clock)
    try:
        yield srv
    finally:
        srv.stop()


async def book(srv: LiveServer, origin: str = HALL, dest: str = WEST, **kw: object) -> dict:
    """An operator (phone desk) books a ride now; returns the booking."""
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as c:
        r = await c.post("/api/v1/offers", json={"origin": {"stop_id": origin},
                                                 "destination": {"stop_id": dest}, **kw})
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                         headers={"Idempotency-Key": f"k-{time.monotonic_ns()}"})
        assert r.status_code == 201, r.text
        return r.json()


async def status_of(srv: LiveServer, booking_id: str) -> str:
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as c:
        r = await c.get(f"/api/v1/bookings/{booking_id}")
        assert r.status_code == 200, r.text
        return r.json()["status"]


async def wait_status(srv: LiveServer, booking_id: str, wanted: set[str], timeout: float = 30) -> list[str]:
    """Poll until the booking reaches one of ``wanted``; returns every status seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = await status_of(srv, booking_id)
        if not seen or seen[-1] != s:
            seen.append(s)
        if s in wanted:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"booking {booking_id} stayed {seen[-1] if seen else '?'} (saw {seen})")


async def test_simulated_vehicle_carries_a_booking_to_completion(live_server: LiveServer) -> None:
    """The simulator drives the plan: the rider goes on board, then the booking is completed."""
    b = await book(live_server, passenger_name="大熊 太郎", party_size=2)
    fleet = FleetSimulator(live_server.url, live_server.drivers,
                           live_server.clock, options=SimulationOptions(no_show_rate=0.0, seed=1),
                           drive_clock=True, clock_speed=200)
    fleet.start()
    try:
        seen = await wait_status(live_server, b["id"], {"on_board", "completed"})
        seen += await wait_status(live_server, b["id"], {"completed"})
    finally:
        await fleet.stop()
    assert "on_board" in seen and seen[-1] == "completed"
    tally = fleet.tallies()[b["vehicle_id"]]
    assert ("boarded", b["id"]) in tally.log and ("dropped_off", b["id"]) in tally.log
    assert tally.positions >= 2 and tally.rejected == 0


async def test_no_show_rate_one_marks_no_show_after_the_wait(live_server: LiveServer) -> None:
    """With a no-show rate of 1 the driver waits the no-show time at the stop, then reports no_show."""
    b = await book(live_server)
    fleet = FleetSimulator(live_server.url, live_server.drivers,
                           live_server.clock, options=SimulationOptions(no_show_rate=1.0, seed=1),
                           drive_clock=True, clock_speed=200)
    fleet.start()
    try:
        seen = await wait_status(live_server, b["id"], {"no_show", "on_board", "completed"})
    finally:
        await fleet.stop()
    assert seen[-1] == "no_show", seen
    tally = fleet.tallies()[b["vehicle_id"]]
    assert tally.no_shows == 1 and tally.rejected == 0 and tally.boarded == 0


async def test_delay_factor_makes_the_vehicle_late(live_server: LiveServer) -> None:
    """Travel three times slower than planned: the drop-off is reached well after its planned time."""
    b = await book(live_server)
    fleet = FleetSimulator(live_server.url, live_server.drivers, live_server.clock,
                           options=SimulationOptions(delay_factor=3.0, seed=1),
                           drive_clock=True, clock_speed=300)
    fleet.start()
    try:
        await wait_status(live_server, b["id"], {"completed"})
    finally:
        await fleet.stop()
    late = fleet.tallies()[b["vehicle_id"]].late_s
    assert late[f"{b['id']}:dropoff"] > 600 > late[f"{b['id']}:pickup"], late


async def test_client_resends_unacknowledged_events_after_a_reconnect(live_server: LiveServer) -> None:
    """An event queued while offline goes out on reconnect and is applied once; last_seq is kept."""
    b = await book(live_server)
    vid = b["vehicle_id"]
    async with DriverClient(live_server.url, live_server.drivers[vid], vid) as c:
        await c.wait_synced()
        assert any(v.booking_id == b["id"] for v in c.plan.visits)
        seq = c.plan.seq
        await c.disconnect()
        cid = await c.send({"type": "arrived", "stop_id": HALL, "booking_ids": [b["id"]]})
        assert cid in c.pending
        c.reconnect()
        ack = await c.wait_ack(cid, timeout=10)
        assert ack.type == "ack" and ack.result == "applied"
        assert c.connections == 2 and c.plan.seq is not None and c.plan.seq >= (seq or 0)
        again = await c.event("arrived", client_event_id=cid, stop_id=HALL, booking_ids=[b["id"]])
        assert again.type == "ack" and again.result == "duplicate"
    assert await status_of(live_server, b["id"]) == "arriving"
