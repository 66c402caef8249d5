"""The what-if simulator: a whole service day through the production code, on a simulated clock.

A composition root like ``api/server.py``: it builds the real app (``api.app.create_app``) on a
fresh database (SQLite in a temporary folder, or a new PostgreSQL database next to
``DATABASE_URL``), serves it with uvicorn on a loopback port, and drives it with

* people: every request of the scenario is made at its time through the REST API (phone app,
  kiosk and phone-desk accounts; offer, then confirm; cancellations later);
* the dispatcher: ``transit.dispatcher.Dispatcher.reoptimise`` on the simulated timer and soon
  after a cancellation, no-show or delay (the same rule the dispatcher's own loop uses);
* the fleet: ``driver_app.simulator.FleetSimulator``, one websocket tablet per vehicle, the same
  vehicle simulator as the demo, running in this process on the same clock.

Time is a ``transit.clock.SimulatedClock``: it jumps to the next wake-up once every participant
waits and every plan change has reached its tablet. After every step in which something
happened, the invariants are checked (``_check_invariants``) and every violation is counted.
This is the one module of ``api/`` allowed to import ``driver_app`` (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx

from api.sim_report import table
from driver_app.simulator import FleetSimulator, SimulationOptions, distance_m
from transit import kpi
from transit import scenarios as sc
from transit.accounts import create_account
from transit.booking import BookingStatus
from transit.clock import SimulatedClock
from transit.db import migrate
from transit.events import BookingCancelled, BookingStatusChanged, Event
from transit.handlers import Services
from transit.invariants import check_invariants
from transit.loading import load_reference, shift_segments
from transit.operations import EtasUpdated, VehicleMoved
from transit.reference_data import (
    AreaFeature,
    FleetVehicle,
    ReferenceData,
    ServiceArea,
    Shift,
    StopInfo,
    load_okuma,
)
from transit.settings import Settings
from transit.uow import UnitOfWork

log = logging.getLogger("okuma.simulate")
TERMINAL = {BookingStatus.COMPLETED.value, BookingStatus.CANCELLED.value, BookingStatus.NO_SHOW.value}
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SimConfig:
    scenario: str
    seed: int = 1
    vehicles: int | None = None  # None: the scenario's (all-day) or every vehicle of the plan (okuma)
    shifts: str = "all-day"  # all-day | okuma
    window_min: int | None = None  # pickup window length (rules.pickup_window_s)
    database_url: str | None = None  # PostgreSQL server to create a fresh database on
    start: str | None = None  # only requests asked for at or after this local HH:MM
    end: str | None = None  # ... and before this one
    reopt_interval_s: float = 600.0  # the dispatcher's timer, simulated seconds
    reopt_budget_s: float | None = None  # solver seconds per re-plan (wall); None: the scenario's, else 0.5
    progress: bool = True
    deliveries: bool = True  # False: the scenario's kind "delivery" flows are left out (same rides)


@dataclass(frozen=True)
class Violation:
    kind: str
    vehicle_id: str | None
    booking_id: str | None
    detail: str = ""


@dataclass
class SimResult:
    config: SimConfig
    summary: dict[str, Any]
    kpis: kpi.Kpis
    rides: list[kpi.RideOutcome]
    violations: dict[str, int]
    occupancy: list[tuple[datetime, int]]
    hourly: dict[datetime, tuple[int, float]]
    co2: tuple[float, float]
    fleet_hours: float
    tz: Any
    reopt: list[Any] = field(default_factory=list)
    cpu_s: float = 0.0


# ------------------------------------------------------------------------------ reference data


def _fleet(scn: sc.Scenario, base: ReferenceData, cfg: SimConfig) -> tuple[FleetVehicle, ...]:
    if cfg.shifts == "okuma":
        fleet = base.fleet
        return fleet[: cfg.vehicles] if cfg.vehicles else fleet
    if cfg.shifts != "all-day":
        raise sc.ScenarioError("--shifts must be okuma or all-day")
    spec = scn.fleet.get("all_day", {})
    like = base.vehicles_by_id.get(spec.get("like", ""), base.fleet[0])
    n = cfg.vehicles or int(spec.get("vehicles", 3))
    shift = Shift(ALL_DAYS, dtime.fromisoformat(spec.get("start", "07:00")), dtime.fromisoformat(spec.get("end", "20:00")))
    return tuple(dataclasses.replace(like, id=f"minibus_{i}", name_ja=f"ミニバス{i}号", name_en=f"Minibus {i}",
                                     shifts=(shift,)) for i in range(1, n + 1))


def _city(scn: sc.Scenario, cfg: SimConfig) -> ReferenceData:
    """A synthetic square city: a grid of stops ``spacing_km`` apart, one zone, depots spread out."""
    import math

    raw = scn.raw
    grid, km = int(raw["grid"]), float(raw["spacing_km"])
    lat0, lon0 = raw["origin_latlon"]
    dlat = km / 111.32
    dlon = km / (111.32 * math.cos(math.radians(lat0)))
    stops = tuple(
        StopInfo(f"g_{r:02d}_{c:02d}", f"グリッド {r}-{c}", "ぐりっど", f"Grid {r}-{c}", lat0 + r * dlat,
                 lon0 + c * dlon, False, True, "other", "synthetic city grid")
        for r in range(grid) for c in range(grid)
    )
    m = 0.5
    ring = ((lon0 - m * dlon, lat0 - m * dlat), (lon0 + (grid - 1 + m) * dlon, lat0 - m * dlat),
            (lon0 + (grid - 1 + m) * dlon, lat0 + (grid - 1 + m) * dlat), (lon0 - m * dlon, lat0 + (grid - 1 + m) * dlat),
            (lon0 - m * dlon, lat0 - m * dlat))
    area = ServiceArea((AreaFeature("city", "other", "仮想都市", "synthetic city", ((ring,),)),))
    spec = raw["fleet"]["all_day"]
    n = cfg.vehicles or int(spec["vehicles"])
    side = max(1, round(math.sqrt(int(spec.get("depots", 16)))))
    depots = [stops[(int((i + 0.5) * grid / side)) * grid + int((j + 0.5) * grid / side)].stop_id
              for i in range(side) for j in range(side)]
    shift = Shift(ALL_DAYS, dtime.fromisoformat(spec["start"]), dtime.fromisoformat(spec["end"]))
    fleet = tuple(FleetVehicle(f"bus_{i:03d}", f"バス{i}", f"Bus {i}", int(spec.get("seats", 8)), 1, 4,
                               depots[i % len(depots)], (shift,)) for i in range(n))
    return ReferenceData(stops, fleet, load_okuma().rules, area)


def build_reference(scn: sc.Scenario, cfg: SimConfig) -> ReferenceData:
    ref = _city(scn, cfg) if scn.reference == "city" else load_okuma()
    fleet = ref.fleet if scn.reference == "city" else _fleet(scn, ref, cfg)
    rules = ref.rules
    if cfg.window_min:
        w = int(cfg.window_min) * 60
        rules = dataclasses.replace(rules, pickup_window_s=w, max_wait_s=max(rules.max_wait_s, w))
    return ReferenceData(ref.stops, fleet, rules, ref.area)


# ------------------------------------------------------------------------------ invariants


async def _check_invariants(uow: UnitOfWork, services: Services, now: datetime) -> list[Violation]:
    """The invariants of operation (``transit.invariants.check_invariants``, the one checker the
    tests use too), plus one the simulator can see from outside: a live booking assigned to a
    vehicle is on that vehicle's plan."""
    out = [Violation(v.kind, v.vehicle_id, v.booking_id, v.detail)
           for v in await check_invariants(uow, services, now)]
    vehicles = await uow.vehicles.list()
    on_plan = {(veh.id, x.booking_id) for veh in vehicles for x in veh.plan}
    for b in await uow.bookings.active():
        if b.vehicle_id and (b.vehicle_id, b.id) not in on_plan and b.dropoff_latest > now - timedelta(hours=3):
            out.append(Violation("booking_missing_from_plan", b.vehicle_id, b.id, b.status.value))
    return out


# ------------------------------------------------------------------------------ groceries


@dataclass
class GoodsOrder:
    """One delivery the simulation booked: the scenario's trip and the window it got."""

    trip: sc.Trip
    auth: dict[str, str]  # the orderer's channel: the resident's app, the kiosk, or the desk
    window_start: datetime
    window_end: datetime
    moved: bool = False  # the first window had no minibus: a later one was taken
    receipt_code: str | None = None  # a kiosk order: the code printed on the receipt
    ready_at: datetime | None = None


@dataclass
class GoodsLedger:
    requested: int = 0
    orders: dict[str, GoodsOrder] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    store_refused: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ the day


class DaySimulation:
    """One simulated service day (or window of it) of one scenario and configuration."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.scn = sc.load(cfg.scenario)
        self.ref = build_reference(self.scn, cfg)
        self.tz = self.ref.rules.tz
        trips = sc.generate(self.scn, cfg.seed, deliveries=cfg.deliveries)
        window = cfg.start or cfg.end or None
        if window is None and self.scn.raw.get("window"):
            cfg = dataclasses.replace(cfg, start=self.scn.raw["window"][0], end=self.scn.raw["window"][1])
            self.cfg = cfg
        self.trips = sc.in_window(trips, self.scn.at(cfg.start) if cfg.start else None,
                                  self.scn.at(cfg.end) if cfg.end else None)
        self.refusals: list[str] = []
        self.refused_trains = 0
        self.offer_ms: list[float] = []
        self.reopt_s: list[float] = []
        self.reopt_results: list[Any] = []
        self.booked: dict[str, sc.Trip] = {}
        self.open: set[str] = set()
        self.no_show_ids: set[str] = set()
        self.violations: dict[tuple[str, str | None, str | None], Violation] = {}
        self.checks = 0
        self._changes = 0
        self._agenda: list[tuple[datetime, int, str, Any]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self._kick_at: datetime | None = None
        self.tokens: dict[str, str] = {}
        self.goods = GoodsLedger()

    # ---------------------------------------------------------------- set-up

    async def _database(self, stack: contextlib.AsyncExitStack) -> str:
        from transit.db import normalise_url

        given = normalise_url(self.cfg.database_url) if self.cfg.database_url else ""
        if given.startswith("postgresql"):
            import asyncpg

            base = given.replace("postgresql+asyncpg://", "postgresql://")
            server, _ = base.rsplit("/", 1)
            name = f"okuma_sim_{secrets.token_hex(5)}"
            conn = await asyncpg.connect(base)
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()

            async def drop() -> None:
                c = await asyncpg.connect(base)
                try:
                    await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await c.close()

            stack.push_async_callback(drop)
            return f"{server}/{name}"
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="okuma-sim-"))
        return f"sqlite+aiosqlite:///{tmp}/sim.db"

    async def _prepare(self, rt: Any) -> dict[str, str]:
        await migrate(rt.engine)
        drivers: dict[str, str] = {}
        async with rt.services.uow() as uow:
            await load_reference(uow, self.ref, today=self.scn.day, days=1)
            for v in self.ref.fleet:
                _, drivers[v.id] = await create_account(uow, role="driver", name=f"{v.id} 運転士", vehicle_id=v.id)
            for i in range(20):
                _, self.tokens[f"app:{i}"] = await create_account(uow, role="rider", name=f"住民 {i}")
            for s in self.ref.kiosk_stops():
                _, self.tokens[f"kiosk:{s.stop_id}"] = await create_account(uow, role="kiosk", name=f"{s.name_ja} キオスク",
                                                                            stop_id=s.stop_id)
            _, self.tokens["phone"] = await create_account(uow, role="operator", name="交通窓口")
            await self._prepare_stores(uow, rt.services)
            await uow.commit()
        return drivers

    # ---------------------------------------------------------------- agenda (people and the dispatcher's timer)

    def _push(self, when: datetime, what: str, arg: Any = None) -> None:
        heapq.heappush(self._agenda, (when, next(self._seq), what, arg))
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _token(self, trip: sc.Trip) -> str:
        if trip.channel == "kiosk" and f"kiosk:{trip.origin}" in self.tokens:
            return self.tokens[f"kiosk:{trip.origin}"]
        if trip.channel == "phone":
            return self.tokens["phone"]
        return self.tokens[f"app:{int(trip.id.rsplit('-', 1)[1]) % 20}"]

    async def _book(self, http: httpx.AsyncClient, trip: sc.Trip) -> None:
        if trip.kind == "delivery":
            await self._order(http, trip)
            return
        auth = {"Authorization": f"Bearer {self._token(trip)}"}
        body: dict[str, Any] = {"origin": {"stop_id": trip.origin}, "destination": {"stop_id": trip.destination},
                                "time_mode": trip.mode, "party_size": trip.party,
                                "wheelchairs": 1 if trip.wheelchair else 0}
        if trip.mode != "now":
            body["time"] = trip.time.isoformat()
        if trip.channel == "phone":
            body["passenger_name"] = f"電話予約 {trip.id[-5:]}"
        t0 = time.perf_counter()
        r = await http.post("/api/v1/offers", json=body, headers=auth)
        self.offer_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 201:
            self._refused(trip, r)
            return
        r2 = await http.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                             headers={**auth, "Idempotency-Key": trip.id})
        if r2.status_code != 201:
            self._refused(trip, r2)
            return
        bid = r2.json()["id"]
        self.booked[bid] = trip
        self.open.add(bid)
        if trip.no_show:
            self.no_show_ids.add(bid)
        if trip.cancel_at is not None:
            self._push(max(trip.cancel_at, self.clock.now()), "cancel", (bid, auth))

    def _refused(self, trip: sc.Trip, r: httpx.Response) -> None:
        try:
            b = r.json()
        except ValueError:
            b = {}
        cause = b.get("cause") or b.get("error") or f"http_{r.status_code}"
        if r.status_code >= 500:
            log.error("server error on %s: %s", trip.id, r.text[:300])
        self.refusals.append(str(cause))
        if trip.train is not None:
            self.refused_trains += 1

    async def _cancel(self, http: httpx.AsyncClient, bid: str, auth: dict[str, str]) -> None:
        if bid not in self.open:
            return
        await http.post(f"/api/v1/bookings/{bid}/cancel", json={"reason": "rider"}, headers=auth)

    async def _reoptimise(self, reason: str) -> None:
        t0 = time.perf_counter()
        try:
            res = await self.dispatcher.reoptimise(reason)
        except Exception:  # one failed re-plan is counted, never the end of the day
            log.exception("re-optimisation failed")
            self.reopt_results.append(None)
            return
        self.reopt_s.append(time.perf_counter() - t0)
        self.reopt_results.append(res)

    async def _agenda_loop(self, http: httpx.AsyncClient) -> None:
        clock = self.clock
        while True:
            demand_left = any(what != "timer" for _, _, what, _ in self._agenda)
            if not demand_left and not self.open and self._kick_at is None:
                return
            when = self._agenda[0][0] if self._agenda else clock.now() + timedelta(days=1)
            if self._kick_at is not None and self._kick_at < when:
                when = self._kick_at
            if when > clock.now():
                self._wake = asyncio.get_running_loop().create_future()
                await clock.sleep_until(when, self._wake)  # type: ignore[arg-type]
                self._wake = None
                continue
            if self._kick_at is not None and self._kick_at <= clock.now():
                self._kick_at = None
                await self._reoptimise("event")
                continue
            _, _, what, arg = heapq.heappop(self._agenda)
            if what == "book":
                await self._book(http, arg)
            elif what == "cancel":
                await self._cancel(http, *arg)
            elif what == "ready":
                await self._store_ready(http, arg)
            elif what == "timer":
                await self._reoptimise("timer")
                self._push(clock.now() + timedelta(seconds=self.cfg.reopt_interval_s), "timer")

    async def _on_events(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, (VehicleMoved, EtasUpdated)):
                continue
            self._changes += 1
            if (isinstance(e, BookingStatusChanged) and e.status in TERMINAL) or isinstance(e, BookingCancelled):
                self.open.discard(e.booking_id)
        await self.dispatcher.on_events(events)
        kick = getattr(self.dispatcher, "_kick", None)
        if kick is not None and kick.is_set():
            kick.clear()
            if self._kick_at is None:
                self._kick_at = self.clock.now() + timedelta(seconds=self.dispatcher.debounce_s)
                if self._wake is not None and not self._wake.done():
                    self._wake.set_result(None)

    # ---------------------------------------------------------------- checks after every step

    async def _after_step(self) -> None:
        every = float(self.scn.raw.get("check_every_s", 0))
        now = self.clock.now()
        if self._changes == 0 and not (every and now >= self._next_check):
            return
        if every and now < self._next_check:
            return
        self._changes = 0
        self._next_check = now + timedelta(seconds=every)
        async with self.services.uow(readonly=True) as uow:
            found = await _check_invariants(uow, self.services, now)
        self.checks += 1
        for v in found:
            key = (v.kind, v.vehicle_id, v.booking_id)
            if key not in self.violations:
                self.violations[key] = v
                log.warning("invariant violated at %s: %s %s %s %s", now.astimezone(self.tz).strftime("%H:%M:%S"),
                            v.kind, v.vehicle_id, v.booking_id, v.detail)
        if self.pbar is not None:
            self.pbar.n = int((now - self.t_start).total_seconds() // 60)
            self.pbar.set_postfix(booked=len(self.booked), refused=len(self.refusals),
                                  violations=len(self.violations), refresh=False)
            self.pbar.refresh()

    # ---------------------------------------------------------------- run

    async def run(self) -> SimResult:
        import uvicorn

        from api.app import create_app

        wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        cfg, scn = self.cfg, self.scn
        first = min((t.made_at for t in self.trips), default=scn.at(scn.raw.get("sim_start", "06:30")))
        self.t_start = min(first, scn.at(scn.raw.get("service_start", "07:00"))) - timedelta(minutes=5)
        self.clock = clock = SimulatedClock(self.t_start)
        self.pbar = None
        self._next_check = self.t_start
        async with contextlib.AsyncExitStack() as stack:
            url = await self._database(stack)
            settings = Settings(database_url=url, redis_url=None, dispatcher=False, demo=False,
                                simulate_fleet=False, environment="development", ws_queue_size=4096)
            app = create_app(settings, clock=clock, reference=self.ref)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                   lifespan="on", ws_ping_interval=None))
            serving = asyncio.create_task(server.serve())
            stack.push_async_callback(self._stop_server, server, serving)
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            rt = app.state.runtime
            self.services = rt.services
            drivers = await self._prepare(rt)
            from transit.dispatcher import Dispatcher

            self.dispatcher = Dispatcher(rt.services, rt.engine, interval_s=cfg.reopt_interval_s,
                                         budget_s=cfg.reopt_budget_s or float(scn.raw.get("reopt_budget_s", 0.5)),
                                         evening_batch_local=None)
            if not await self.dispatcher.leader.acquire():
                raise SystemExit("the simulation's dispatcher could not take the leader lock")
            stack.push_async_callback(self.dispatcher.leader.release)
            rt.bus.subscribe(self._on_events)
            rates = scn.rates
            options = SimulationOptions(
                no_show_rate=0.0, seed=cfg.seed, speed_kmh=self.ref.rules.speed_kmh, circuity=self.ref.rules.circuity,
                position_every_s=float(scn.raw.get("position_every_s", 60)), delay_rate=float(rates["delay"]),
                delayed_factor=float(rates["delayed_factor"]), no_show_for=lambda bid: bid in self.no_show_ids,
                handover_code=self._recipient_code, recipient_absent=self._desk_return,
                parcel_returned=self._store_received_back,
            )
            starts = {v.id: (self.ref.stop(v.depot_stop_id).lat, self.ref.stop(v.depot_stop_id).lon)
                      for v in self.ref.fleet}
            fleet = FleetSimulator(f"http://127.0.0.1:{port}", drivers, clock, options=options, starts=starts)
            self.fleet = fleet
            fleet.start()
            stack.push_async_callback(fleet.stop)
            for t in self.trips:
                self._push(t.made_at, "book", t)
            self._push(self.t_start + timedelta(seconds=cfg.reopt_interval_s), "timer")
            end = max(s.ends_at for v in self.ref.fleet for s in shift_segments(v, scn.day, self.tz)) + timedelta(minutes=30)
            if cfg.progress:
                from tqdm import tqdm

                self.pbar = tqdm(total=int((end - self.t_start).total_seconds() // 60), unit="sim-min",
                                 desc=f"{scn.name} seed {cfg.seed}", file=sys.stderr, leave=False)
            hub = app.state.hub
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://simulation", timeout=120) as http:
                self.http = http
                agenda = asyncio.create_task(self._agenda_loop(http), name="people-and-timer")
                clock.join(agenda)  # type: ignore[arg-type]
                await clock.run(end, settled=self._settled(hub), after_step=self._after_step)
                await self._after_step()
                if not agenda.done():
                    agenda.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await agenda
                elif agenda.exception() is not None:
                    raise agenda.exception()  # type: ignore[misc]
            if self.pbar is not None:
                self.pbar.close()
            result = await self._collect(wall0)
        return result

    def _settled(self, hub: Any) -> Callable[[], bool]:
        since: list[float | None] = [None]

        def settled() -> bool:
            for vid, sim in self.fleet.vehicles.items():
                if sim.client.plan.plan_version < hub.latest_version.get(vid, 0) and vid in hub.tablets:
                    if since[0] is None:
                        since[0] = time.monotonic()
                    if time.monotonic() - since[0] > 10:  # a lost tablet must not stop the day
                        log.warning("%s: plan %d not on its tablet after 10 s; going on", vid,
                                    hub.latest_version.get(vid, 0))
                        since[0] = None
                        return True
                    return False
            since[0] = None
            return True

        return settled

    @staticmethod
    async def _stop_server(server: Any, serving: asyncio.Task[None]) -> None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, timeout=10)

    # ---------------------------------------------------------------- groceries: residents, stores, the desk

    async def _prepare_stores(self, uow: UnitOfWork, services: Services) -> None:
        """One staff account per store (role ``store``, bound to its stop)."""
        for store in services.stores.values():
            _, self.tokens[f"store:{store.id}"] = await create_account(uow, role="store", name=store.name_ja,
                                                                       stop_id=store.stop_id)

    def _order_token(self, trip: sc.Trip) -> str:
        """Who orders: the resident's phone app, the kiosk at the home stop, or the phone desk."""
        if trip.channel == "kiosk" and f"kiosk:{trip.destination}" in self.tokens:
            return self.tokens[f"kiosk:{trip.destination}"]
        if trip.channel == "phone":
            return self.tokens["phone"]
        return self.tokens[f"app:{int(trip.id.rsplit('d', 1)[1]) % 20}"]

    async def _order(self, http: httpx.AsyncClient, trip: sc.Trip) -> None:
        """A resident orders a delivery (``POST /api/v1/offers`` kind ``delivery``, then confirm).
        No minibus in the window: the first alternative window offered is taken (a later run)."""
        auth = {"Authorization": f"Bearer {self._order_token(trip)}"}
        goods = self.goods
        goods.requested += 1
        assert trip.window_end is not None
        start, width = trip.time, trip.window_end - trip.time
        r = None
        for attempt in range(3):
            body: dict[str, Any] = {
                "kind": "delivery", "destination": {"stop_id": trip.destination},
                "passenger_name": f"住民 {trip.id[-5:]}",
                "delivery": {"store_id": trip.store_id, "order_number": f"S-{trip.id[-4:]}",
                             "window_start": start.isoformat(), "window_end": (start + width).isoformat(),
                             "parcels": trip.parcels, "temperature": trip.temperature}}
            t0 = time.perf_counter()
            r = await http.post("/api/v1/offers", json=body, headers=auth)
            self.offer_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code == 201:
                break
            alts = (r.json() or {}).get("alternatives") if r.status_code == 409 else None
            if not alts or attempt == 2:
                break
            start = datetime.fromisoformat(alts[0])
        assert r is not None
        if r.status_code != 201:
            self._goods_refused(trip, r)
            return
        offer = r.json()
        r2 = await http.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                             headers={**auth, "Idempotency-Key": trip.id})
        if r2.status_code != 201:
            self._goods_refused(trip, r2)
            return
        booking = r2.json()
        bid = booking["id"]
        self.booked[bid] = trip
        self.open.add(bid)
        receipt = (booking.get("delivery") or {}).get("handover_code")
        goods.orders[bid] = GoodsOrder(trip, auth, start, start + width, moved=start != trip.time,
                                       receipt_code=receipt if trip.channel == "kiosk" else None)
        if trip.cancel_at is not None:
            self._push(max(trip.cancel_at, self.clock.now()), "cancel", (bid, auth))
        store = self.services.stores[trip.store_id]
        now = self.clock.now()
        ready = max(now + timedelta(seconds=store.preparation_s), store.opens_at(now.astimezone(self.tz).date(), self.tz))
        self._push(ready, "ready", bid)

    def _goods_refused(self, trip: sc.Trip, r: httpx.Response) -> None:
        try:
            b = r.json()
        except ValueError:
            b = {}
        if r.status_code >= 500:
            log.error("server error on %s: %s", trip.id, r.text[:300])
        self.goods.refusals.append(str(b.get("cause") or b.get("error") or f"http_{r.status_code}"))

    async def _store_ready(self, http: httpx.AsyncClient, bid: str) -> None:
        """The store has packed the order: ``POST /api/v1/store/orders/{id}/ready`` with its token."""
        order = self.goods.orders[bid]
        if bid not in self.open:
            return  # cancelled meanwhile
        token = self.tokens[f"store:{order.trip.store_id}"]
        r = await http.post(f"/api/v1/store/orders/{bid}/ready", headers={"Authorization": f"Bearer {token}"},
                            json={"parcels": order.trip.parcels, "temperature": order.trip.temperature})
        if r.status_code == 200:
            order.ready_at = self.clock.now()
        else:
            self.goods.store_refused.append(f"ready:{r.status_code}:{(r.json() or {}).get('error')}")

    async def _recipient_code(self, bid: str) -> str | None:
        """The recipient at the door shows the code from their own channel: the kiosk receipt, the
        phone app (``GET /api/v1/deliveries/{id}`` with the resident's token), or the desk reads it
        out (the same read with the desk's token). An absent recipient shows nothing."""
        order = self.goods.orders.get(bid)
        if order is None or order.trip.absent:
            return None
        if order.receipt_code:
            return order.receipt_code
        r = await self.http.get(f"/api/v1/deliveries/{bid}", headers=order.auth)
        return r.json().get("handover_code") if r.status_code == 200 else None

    async def _desk_return(self, bid: str) -> bool:
        """Nobody at the door: the driver calls the desk, which sends the parcel back to its store."""
        r = await self.http.post(f"/api/v1/deliveries/{bid}/return", json={},
                                 headers={"Authorization": f"Bearer {self.tokens['phone']}"})
        if r.status_code != 200:
            self.goods.store_refused.append(f"return:{r.status_code}:{(r.json() or {}).get('error')}")
        return r.status_code == 200

    async def _store_received_back(self, bid: str) -> bool:
        """The returned parcel is handed to the store, which records it (``received-back``)."""
        order = self.goods.orders.get(bid)
        if order is None:
            return False
        token = self.tokens[f"store:{order.trip.store_id}"]
        r = await self.http.post(f"/api/v1/deliveries/{bid}/received-back",
                                 headers={"Authorization": f"Bearer {token}"})
        if r.status_code != 200:
            self.goods.store_refused.append(f"received_back:{r.status_code}:{(r.json() or {}).get('error')}")
        return r.status_code == 200

    async def _delivery_figures(self, bookings: list[Any]) -> dict[str, Any]:
        """The day's deliveries as the bookings and the stores' orders recorded them."""
        goods, limit = self.goods, self.ref.rules.chilled_max_out_of_store_s
        async with self.services.uow(readonly=True) as uow:
            rows = {bid: await uow.deliveries.get(bid) for bid in goods.orders}
        served = on_time = returned = breaches = before_ready = cancelled = 0
        out_of_store: list[float] = []
        for b in bookings:
            order = goods.orders.get(b.id)
            row = rows.get(b.id) or {}
            if order is None:
                continue
            if b.status is BookingStatus.CANCELLED:
                cancelled += 1
                continue
            if b.picked_up_at is not None and row.get("ready_at") and b.picked_up_at < row["ready_at"]:
                before_ready += 1
            if b.status is not BookingStatus.COMPLETED or b.completed_at is None:
                continue
            if row.get("returned_at"):
                returned += 1
                continue
            served += 1
            on_time += order.window_start <= b.completed_at <= order.window_end
            if b.picked_up_at is not None:
                # as the limit is planned (a max ride): from the end of loading at the store to
                # the start of the handover at the door (its dwell, ``dwell_parcel_s`` a parcel)
                handover_s = self.ref.rules.dwell_s(boardings=0, parcels=b.parcels)
                out_s = (b.completed_at - b.picked_up_at).total_seconds() - handover_s
                out_of_store.append(out_s)
                breaches += row.get("temperature", order.trip.temperature) != "ambient" and out_s > limit + 1
        booked = len(goods.orders)
        due = booked - cancelled - sum(1 for o in goods.orders.values() if o.trip.absent)
        return {
            "requested": goods.requested,
            "booked": booked,
            "refused": len(goods.refusals),
            "moved_to_later_window": sum(1 for o in goods.orders.values() if o.moved),
            "cancelled": cancelled,
            "served": served,
            "on_time_pct": round(100 * on_time / due, 1) if due > 0 else 100.0,
            "served_of_due_pct": round(100 * served / due, 1) if due > 0 else 100.0,
            "returned": returned,
            "chilled_limit_breaches": breaches,
            "picked_up_before_ready": before_ready,
            "out_of_store_max_min": round(max(out_of_store, default=0.0) / 60, 1),
            "store_steps_refused": len(goods.store_refused),
        }

    # ---------------------------------------------------------------- results

    async def _collect(self, wall0: float) -> SimResult:
        svc, tz, scn = self.services, self.tz, self.scn
        ops = self.services_ops
        day0 = datetime.combine(scn.day, dtime(), tzinfo=tz)
        rides: list[kpi.RideOutcome] = []
        async with svc.uow(readonly=True) as uow:
            bookings, _ = await uow.bookings.search(start=day0 - timedelta(days=1), end=day0 + timedelta(days=2),
                                                    limit=10**7)
            arrivals: dict[str, Any] = {}
            noshow_late: list[Violation] = []
            for v in self.ref.fleet:
                arrivals.update(await ops.arrivals(uow, v.id))
                noshow_late += await self._no_show_rule(uow, v.id, arrivals)
        for v in noshow_late:
            self.violations[(v.kind, v.vehicle_id, v.booking_id)] = v
        for b in bookings:
            trip = self.booked.get(b.id)
            if trip is None or trip.kind == "delivery":  # deliveries: _delivery_figures
                continue
            a = (b.origin.lat, b.origin.lon)
            d = (b.destination.lat, b.destination.lon)
            direct_m = distance_m(a, d)
            direct_s = int(svc.travel.matrix(*_latlon([a, d]))[0][1])
            train = None
            if trip.train:
                train = {"connection": trip.train["connection"], "time": scn.at(trip.train["time"])}
            rides.append(kpi.outcome_of(b, direct_s, direct_m, arrivals.get(b.id),
                                        requested_at=trip.time if trip.mode != "arrive_by" else None, train=train))
        for r in rides:  # what broke, for whoever reads the log (ids and times only)
            if r.served and not r.on_time and r.pickup_at is not None and r.completed_at is not None:
                log.warning("late: %s on %s (%s): pickup %+d s, drop-off %+d s against the promise", r.booking_id,
                            r.vehicle_id, "arrive-by" if r.requested_at is None else "leave",
                            (r.pickup_at - r.pickup_latest).total_seconds(),
                            (r.completed_at - r.dropoff_latest).total_seconds())
        # Booked but never finished (the day ended first) counts as not carried.
        unfinished = [r for r in rides if r.status not in TERMINAL]
        refusals = self.refusals + ["not_completed"] * len(unfinished)
        shifts = [(s.starts_at, s.ends_at) for v in self.ref.fleet for s in shift_segments(v, scn.day, tz)]
        k = kpi.summarise(rides, refusals, shifts, tz, refused_train_connections=self.refused_trains)
        k.promises_broken += sum(1 for v in noshow_late)
        served = [r for r in rides if r.served]
        vkm = sum(s.tally.distance_m for s in self.fleet.vehicles.values()) / 1000
        starts = [(self.ref.stop(v.depot_stop_id).lat, self.ref.stop(v.depot_stop_id).lon, min(a for a, _ in
                   [(s.starts_at, s.ends_at) for s in shift_segments(v, scn.day, tz)])) for v in self.ref.fleet]
        coords = {b.id: ((b.origin.lat, b.origin.lon), (b.destination.lat, b.destination.lon)) for b in bookings}
        vkm_np = kpi.no_pooling_vkm(served, coords, starts, self.ref.rules.speed_kmh, self.ref.rules.circuity,
                                    distance_m)
        fleet_hours = sum((b - a).total_seconds() for a, b in shifts) / 3600
        plans_rejected = sum(1 for r in self.reopt_results if r is None or "checker" in r.why or "reject" in r.why)
        summary = {
            "scenario": scn.name,
            "requests": k.requests,
            "served_pct": k.served_pct,
            "mean_wait_min": k.mean_wait_min,
            "p95_wait_min": k.p95_wait_min,
            "on_time_pct": k.on_time_pct,
            "ride_ratio_mean": k.ride_ratio_mean,
            "vkm": round(vkm, 1),
            "vkm_no_pooling": round(vkm_np, 1),
            "vkm_saved_pct": round(100 * (1 - vkm / vkm_np), 1) + 0.0 if vkm_np else 0.0,  # never -0.0
            "pax_per_vehicle_hour_peak": k.pax_per_vehicle_hour_peak,
            "train_connections_made_pct": k.train_connections_made_pct,
            "promises_broken": k.promises_broken,
            "plans_rejected": plans_rejected,
            "invariant_violations": len(self.violations),
            "offer_p95_ms": round(kpi.percentile(self.offer_ms, 95), 1),
            "reopt_cycle_p95_s": round(kpi.percentile(self.reopt_s, 95), 2),
            "wall_s": round(time.perf_counter() - wall0, 1),
            "deliveries": await self._delivery_figures(bookings),
        }
        kinds: dict[str, int] = {}
        for v in self.violations.values():
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        hourly = kpi.passengers_per_vehicle_hour(served, shifts, tz)
        occ = kpi.occupancy(served, self.t_start, max([r.completed_at for r in served if r.completed_at] or [self.t_start]))
        return SimResult(self.cfg, summary, k, rides, kinds, occ, hourly,
                         kpi.co2_kg(vkm, served, self.ref.rules.circuity), fleet_hours, tz, self.reopt_results,
                         time.process_time() - self.cpu0)

    @property
    def services_ops(self) -> Any:
        from transit.operations import Operations

        return Operations(self.services)

    async def _no_show_rule(self, uow: UnitOfWork, vehicle_id: str, arrivals: dict[str, datetime]) -> list[Violation]:
        """A no-show recorded before max(arrival, window start) + the wait time breaks the rule."""
        from transit.device_log import DeviceEventRepository

        out = []
        rows = await DeviceEventRepository(uow.connection).for_vehicle(vehicle_id, ("no_show",),
                                                                       self.t_start - timedelta(days=1))
        wait = timedelta(seconds=self.ref.rules.no_show_wait_s)
        for r in rows:
            bid = (r["payload"] or {}).get("booking_id")
            at = datetime.fromisoformat(r["payload"]["at"])
            b = await uow.bookings.get(bid) if bid else None
            if b is None:
                continue
            arrived = arrivals.get(bid)
            due = max(arrived or b.pickup_earliest, b.pickup_earliest) + wait
            if at < due - timedelta(seconds=1):
                out.append(Violation("no_show_too_early", vehicle_id, bid, f"at {at.isoformat()}, due {due.isoformat()}"))
        return out


def _latlon(points: list[tuple[float, float]]) -> tuple[Any, Any]:
    import numpy as np

    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


# ------------------------------------------------------------------------------ output


def simulate_day(cfg: SimConfig) -> SimResult:
    return asyncio.run(DaySimulation(cfg).run())


COMPARE_KEYS = ("vehicles", "window_min", "shifts")


def parse_compare(items: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in COMPARE_KEYS or not values:
            raise SystemExit(f"--compare wants KEY=V1,V2 with KEY one of {', '.join(COMPARE_KEYS)}; got {item!r}")
        out.append((key, [v.strip() for v in values.split(",") if v.strip()]))
    return out


def compare(base: SimConfig, axes: list[tuple[str, list[str]]],
            on_result: Callable[[SimResult], Awaitable[None] | None] | None = None) -> list[tuple[str, SimResult]]:
    """One run per value of each axis, the others at the base configuration."""
    rows = []
    for key, values in axes:
        for v in values:
            cfg = dataclasses.replace(base, **{key: v if key == "shifts" else int(v)})
            res = simulate_day(cfg)
            rows.append((f"{key}={v}", res))
            if on_result is not None:
                on_result(res)
    return rows


def compare_table(rows: list[tuple[str, SimResult]]) -> str:
    head = f"{'variant':18s} {'fleet h':>8s} {'served %':>9s} {'wait min':>9s} {'on time %':>10s} {'vkm':>7s}" \
           f" {'saved %':>8s} {'broken':>7s} {'viol.':>6s}"
    lines = [head, "-" * len(head)]
    for name, r in rows:
        s = r.summary
        lines.append(f"{name:18s} {r.fleet_hours:8.0f} {s['served_pct']:9.1f} {s['mean_wait_min']:9.2f}"
                     f" {s['on_time_pct']:10.1f} {s['vkm']:7.1f} {s['vkm_saved_pct']:8.1f} {s['promises_broken']:7d}"
                     f" {s['invariant_violations']:6d}")
    return "\n".join(lines)


def delivery_table(d: dict[str, Any]) -> str:
    """The deliveries' lines of the report (keys: docs/simulate.md)."""
    return (f"deliveries: {d['requested']} requested, {d['booked']} booked ({d['moved_to_later_window']} in a later"
            f" window, {d['refused']} refused), {d['cancelled']} cancelled; {d['served']} delivered"
            f" ({d['served_of_due_pct']} % of those due), {d['on_time_pct']} % of those due inside their window;"
            f" {d['returned']} returned; chilled-limit breaches {d['chilled_limit_breaches']}"
            f" (longest out of the store {d['out_of_store_max_min']} min); picked up before ready"
            f" {d['picked_up_before_ready']}; store/desk steps refused {d['store_steps_refused']}")


def json_line(summary: dict[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False)


def main(args: Any) -> int:
    """``okuma simulate SCENARIO``: progress on stderr, the table, then one JSON line last."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    base = SimConfig(scenario=args.scenario, seed=args.seed, vehicles=args.vehicles, shifts=args.shifts,
                     window_min=args.window_min, database_url=args.database_url, start=args.start, end=args.end,
                     reopt_interval_s=args.reopt_interval, reopt_budget_s=args.reopt_budget,
                     progress=not args.no_progress)
    try:
        sc.load(base.scenario)
    except sc.ScenarioError as e:
        raise SystemExit(str(e)) from None
    out = Path(args.out) if args.out else None
    if args.compare:
        from api.sim_report import write_compare

        rows = compare(base, parse_compare(args.compare), on_result=lambda r: print(table(r), flush=True))
        print(compare_table(rows))
        if out:
            path = write_compare(rows, out)
            print(f"plot: {path}")
        print(json.dumps({"scenario": base.scenario, "compare": [{"variant": n, "fleet_hours": round(r.fleet_hours, 1),
                                                                   **r.summary} for n, r in rows]}, ensure_ascii=False))
        return 0
    res = simulate_day(base)
    print(table(res))
    if res.summary["deliveries"]["requested"]:
        print(delivery_table(res.summary["deliveries"]))
    if out:
        from api.sim_report import write_report

        print(f"report: {write_report(res, out)}")
    print(json_line(res.summary))
    return 0


# ------------------------------------------------------------------------------ the demo's background demand


async def demo_demand(services: Services, scenario: str = "okuma-weekday", seed: int = 1,
                      token: str = "demo-operator") -> None:
    """Book a scenario's requests on the service's own clock, day after day (``okuma serve --demo``).

    The requests of each service day are the scenario's, moved to that day; those asked for
    before "now" are skipped, those made earlier but still ahead are booked at once. Every
    request goes through the same handlers as the pages (as the phone desk); refusals are fine.
    """
    from transit import handlers
    from transit.accounts import authenticate
    from transit.commands import ConfirmOffer, PlaceRef, RequestRide
    from transit.errors import DomainError

    scn = sc.load(scenario)
    async with services.uow(readonly=True) as uow:
        actor = await authenticate(uow, token)
    clock, tz = services.clock, services.rules.tz
    day = clock.now().astimezone(tz).date()
    booked = 0
    for n in itertools.count():
        shift = day - scn.day
        for trip in sc.generate(scn, seed + n):
            made, when = trip.made_at + shift, trip.time + shift
            now = clock.now()
            if when < now + timedelta(minutes=2):
                continue
            if made > now:
                await clock.sleep((made - now).total_seconds())
            mode = trip.mode if trip.mode != "now" else "leave_at"
            cmd = RequestRide(origin=PlaceRef(stop_id=trip.origin), destination=PlaceRef(stop_id=trip.destination),
                              time_mode=mode, time=max(when, clock.now() + timedelta(minutes=1)), party_size=trip.party,
                              wheelchairs=1 if trip.wheelchair else 0, passenger_name=f"デモ乗客 {trip.id[-4:]}")
            try:
                offer = await handlers.request_offer(cmd, actor, services)
                await handlers.confirm_offer(ConfirmOffer(offer.id, f"demo-{day}-{trip.id}"), actor, services)
                booked += 1
                log.info("demo demand: booked %s (%d today)", trip.id, booked)
            except DomainError as e:
                log.info("demo demand: %s refused (%s)", trip.id, e.code)
        day = day + timedelta(days=1)
        start = datetime.combine(day, dtime(6, 30), tzinfo=tz)
        if start > clock.now():
            await clock.sleep((start - clock.now()).total_seconds())
