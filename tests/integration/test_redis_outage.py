"""A Redis outage loses no live message between server processes: when Redis returns, every
process replays the event log since the outage began; the outage is logged once, and its end once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence

import httpx
import pytest

from tests.conftest import REDIS_URL, TOKYO, unavailable
from transit.accounts import create_account
from transit.db import make_engine, migrate
from transit.events import BookingCancelled, Event, RideBooked
from transit.loading import load_reference

pytestmark = pytest.mark.redis


class Proxy:
    """A TCP relay in front of Redis that can be cut (an outage) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.links):
            w.close()
        self.links.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


async def test_messages_sent_during_an_outage_arrive_when_redis_returns(database_url: str, clock, caplog) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from transit.settings import Settings

    host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
    try:
        _, w = await asyncio.open_connection(host, int(port))
        w.close()
    except OSError as exc:
        unavailable("Redis", exc)
    proxy = Proxy((host, int(port)))
    await proxy.up()
    engine = make_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    settings = Settings(database_url=database_url, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                        dispatcher=False, bus_channel=f"okuma:test:{secrets.token_hex(4)}")
    a, b = create_app(settings, clock=clock), create_app(settings, clock=clock)
    caplog.set_level(logging.INFO, logger="okuma.bus")
    async with a.router.lifespan_context(a), b.router.lifespan_context(b):
        rt = b.state.runtime
        async with rt.services.uow() as uow:
            await load_reference(uow, rt.reference, today=clock.now().astimezone(TOKYO).date(), days=2)
            _, token = await create_account(uow, role="operator", name="desk")
            await uow.commit()
        heard: list[Event] = []

        async def record(events: Sequence[Event]) -> None:
            heard.extend(events)

        a.state.runtime.bus.subscribe(record)
        h = {"Authorization": f"Bearer {token}"}
        ride = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "okumart"}}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=b), base_url="http://b") as c:

            async def book(key: str) -> str:
                o = (await c.post("/api/v1/offers", json=ride, headers=h)).json()
                r = await c.post("/api/v1/bookings", json={"offer_id": o["offer_id"]},
                                 headers={**h, "Idempotency-Key": key})
                assert r.status_code == 201, r.text
                return r.json()["id"]

            async def wait_for(pred, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
                for _ in range(int(timeout * 20)):
                    if pred():
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"A never heard {what}")

            before = await book("before")
            await wait_for(lambda: any(isinstance(e, RideBooked) and e.booking_id == before for e in heard),
                           "the booking made while Redis was up")
            await proxy.down()
            await asyncio.sleep(0.3)
            during = [await book("during-1"), await book("during-2")]
            for bid in during:
                r = await c.post(f"/api/v1/bookings/{bid}/cancel", headers=h)
                assert r.status_code == 200
            await asyncio.sleep(0.5)
            assert not any(getattr(e, "booking_id", None) in during for e in heard)  # really cut off
            await proxy.up()
            for bid in during:
                await wait_for(lambda bid=bid: any(isinstance(e, RideBooked) and e.booking_id == bid for e in heard),
                               f"booking {bid}")
                await wait_for(lambda bid=bid: any(isinstance(e, BookingCancelled) and e.booking_id == bid
                                                   for e in heard), f"cancellation {bid}")
            await wait_for(lambda: a.state.runtime.bus.down_since is None and b.state.runtime.bus.down_since is None,
                           "the end of the outage")
    await proxy.down()
    downs = [r for r in caplog.records if r.name == "okuma.bus" and "unreachable" in r.getMessage()]
    ups = [r for r in caplog.records if r.name == "okuma.bus" and "reachable again" in r.getMessage()]
    assert len(downs) == 2 and len(ups) == 2, [r.getMessage() for r in caplog.records]  # once per process
    assert all(r.levelno == logging.ERROR and not r.exc_info for r in downs)
    assert not [r for r in caplog.records if r.name == "okuma.bus" and r.exc_info]  # no tracebacks
