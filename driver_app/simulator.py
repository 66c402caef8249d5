"""A vehicle simulator: drives a vehicle along its plan in simulated time, over the websocket only.

Each simulated vehicle is one ``DriverClient``. It takes the first stop of the plan the server
sent, leaves so as to arrive at the planned time, moves along a straight line from where it is to
the stop over the leg's travel time (reporting positions on the way), reports ``arrived``, then
for each visit there: a drop-off (``dropped_off``), a boarding (``boarded`` with the party size),
or a no-show (``no_show`` once the wait time has passed). Travel takes ``delay_factor`` times the
nominal time, so factors above 1 make the vehicle late and exercise the ETA and promise checks.

Time comes from an injected ``transit.clock.Clock``: an ``AcceleratedClock`` (the demo), a
``FakeClock`` the caller (or ``FleetSimulator(drive_clock=True)``) moves forward, or a
``SimulatedClock`` (the what-if simulator, ``okuma simulate SCENARIO``): there every wait parks
the vehicle on the clock, a plan change wakes it, and positions wait for their acknowledgement,
so simulated time moves only when every vehicle has nothing left to do at this instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from driver_app import protocol as p
from driver_app.client import DriverClient, Refused
from transit.clock import Clock, FakeClock, SimulatedClock

log = logging.getLogger("okuma.simulator")

# Okuma town hall, where the Okuma fleet starts the day; override with ``start``.
DEFAULT_START = (37.38200, 140.95870)


@dataclass(frozen=True)
class SimulationOptions:
    """How the simulated drivers and riders behave. Times in simulated seconds."""

    no_show_rate: float = 0.0  # chance that a rider is not at the stop
    delay_factor: float = 1.0  # actual travel time / nominal travel time
    speed_kmh: float = 30.0  # nominal speed on the leg (straight line x circuity)
    circuity: float = 1.3
    min_leg_s: float = 30.0
    position_every_s: float = 15.0  # a GPS fix this often while moving
    board_s_per_person: float = 30.0
    board_s_per_wheelchair: float = 180.0
    parcel_s: float = 60.0
    arrive_early_s: float = 0.0  # leave this much earlier than needed
    seed: int | None = None
    # grocery: booking id -> the code the recipient shows (None: nobody there); may be a coroutine
    handover_code: Callable[[str], str | Awaitable[str | None] | None] | None = None
    # grocery, nobody to hand it to: the driver calls the desk, which sends it back (True if it did)
    recipient_absent: Callable[[str], Awaitable[bool]] | None = None
    # grocery going back: the driver hands it to the store, which records it (True if it did)
    parcel_returned: Callable[[str], Awaitable[bool]] | None = None
    no_show_for: Callable[[str], bool | None] | None = None  # booking id -> decided elsewhere (None: draw)
    delay_rate: float = 0.0  # chance that a leg is held up (traffic, a slow boarding)
    delayed_factor: float = 1.5  # travel time of a held-up leg / nominal (on top of delay_factor)

    def __post_init__(self) -> None:
        if not 0.0 <= self.no_show_rate <= 1.0 or not 0.0 <= self.delay_rate <= 1.0:
            raise ValueError("no_show_rate and delay_rate must be within 0..1")
        if self.delayed_factor < 1:
            raise ValueError("delayed_factor must be at least 1")
        if self.delay_factor <= 0:
            raise ValueError("delay_factor must be positive")
        if self.speed_kmh <= 0 or self.circuity < 1 or self.position_every_s <= 0:
            raise ValueError("speed_kmh > 0, circuity >= 1 and position_every_s > 0 are required")


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(h)))


#: how often a refused ``arrived`` is sent again (a minute apart) before the stop is given up
ARRIVAL_TRIES = 3


def _same_place(a: p.VisitOut, b: p.VisitOut) -> bool:
    if a.stop_id is not None or b.stop_id is not None:
        return a.stop_id == b.stop_id
    return distance_m((a.lat, a.lon), (b.lat, b.lon)) < 5


def interpolate(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    """The point a fraction ``f`` (0..1) of the way from ``a`` to ``b`` (short legs: linear is fine)."""
    f = min(1.0, max(0.0, f))
    return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f


@dataclass
class Tally:
    """What a simulated vehicle did, for tests and the demo log."""

    arrived: int = 0
    boarded: int = 0
    no_shows: int = 0
    dropped_off: int = 0
    rejected: int = 0
    positions: int = 0
    distance_m: float = 0.0  # driven, along the road (straight line x circuity)
    delayed_legs: int = 0
    returned: int = 0  # parcels handed back to the store
    log: list[tuple[str, str]] = field(default_factory=list)  # (event type, booking id)
    late_s: dict[str, float] = field(default_factory=dict)  # visit id -> arrival minus planned time


class VehicleSimulator:
    """One simulated vehicle and its driver."""

    def __init__(
        self,
        base_url: str,
        token: str,
        clock: Clock,
        *,
        vehicle_id: str | None = None,
        options: SimulationOptions | None = None,
        start: tuple[float, float] | None = None,
        rng: random.Random | None = None,
        client: DriverClient | None = None,
    ) -> None:
        self.clock = clock
        self.options = options or SimulationOptions()
        self.client = client or DriverClient(base_url, token, vehicle_id, client_name="okuma-simulator/1")
        self.vehicle_id = vehicle_id
        self.position = start or DEFAULT_START
        self.rng = rng or random.Random(self.options.seed)
        self.tally = Tally()
        self._no_show: dict[str, bool] = {}  # booking id -> decided once
        self._done: set[str] = set()  # visit ids handled here, until the server drops them
        self._skipped: set[str] = set()  # visit ids the server refused; not retried
        self._arrival_refusals: dict[str, int] = {}  # visit id -> refused arrivals there
        self._returning: set[str] = set()  # parcels the desk sent back (nobody was there)

    # ------------------------------------------------------------------ time

    def _real_slice(self, sim_s: float) -> float:
        speed = getattr(self.clock, "speed", 1.0) or 0.0
        if speed <= 0:  # a FakeClock moved by someone else: poll often
            return 0.02
        return max(0.005, min(sim_s / speed, 0.25))

    @property
    def _simulated(self) -> bool:
        return isinstance(self.clock, SimulatedClock)

    async def _park(self, when: datetime, seq: int | None) -> bool:
        """On a SimulatedClock: park until ``when``; True if the plan changed (seq) meanwhile."""
        clock = self.clock
        assert isinstance(clock, SimulatedClock)
        while True:
            if seq is not None and self.client.plan.seq != seq:
                return True
            change = asyncio.ensure_future(self.client.wait_changed()) if seq is not None else None
            try:
                interrupted = await clock.sleep_until(when, change)
            finally:
                if change is not None:
                    change.cancel()
            if not interrupted:
                return seq is not None and self.client.plan.seq != seq

    async def _wait_until(self, when: datetime, *, wake_on_change: bool = True) -> bool:
        """Wait until the clock reaches ``when``; True if a plan change cut the wait short."""
        seq = self.client.plan.seq
        if self._simulated:
            return await self._park(when, seq if wake_on_change else None)
        while True:
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return False
            if wake_on_change and self.client.plan.seq != seq:
                return True
            await asyncio.sleep(self._real_slice(left))

    def _travel_s(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        o = self.options
        d = distance_m(a, b) * o.circuity
        return max(o.min_leg_s, d / (o.speed_kmh / 3.6)) if d > 1 else 0.0

    def _at(self) -> str:
        return self.clock.now().isoformat()

    # ------------------------------------------------------------------ the plan

    def _todo(self) -> list[p.VisitOut]:
        return [v for v in self.client.plan.visits
                if v.visit_id not in self._done and v.visit_id not in self._skipped
                and not (v.kind == "pickup" and v.status == "on_board")]

    def _next_stop(self) -> list[p.VisitOut]:
        """The first run of visits at one place served straight on (not the ones the plan has the
        vehicle wait for there: boarding a rider before their time puts them on board while the plan
        still has the seat for others)."""
        todo = self._todo()
        if not todo:
            return []
        first = todo[0]
        group = [first]
        for v in todo[1:]:
            # same place, and served straight on: a visit the schedule holds the vehicle for
            # (``wait_until``, or planned after the previous visit's departure) is a later stop
            prev = group[-1]
            later = v.wait_until is not None or v.planned_at > (prev.departure_at or prev.planned_at) \
                + timedelta(seconds=60)
            if not _same_place(v, first) or later:
                break
            group.append(v)
        return group

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Drive until cancelled."""
        self.client.start()
        await self.client.wait_synced(timeout=30)
        if self.vehicle_id is None and self.client.hello is not None:
            self.vehicle_id = self.client.hello.vehicle_id
        await self._report_position()
        while True:
            group = self._next_stop()
            if not group:
                await self._idle()
                continue
            if await self._drive_to(group):
                continue  # the plan changed on the way: look again from here
            await self._serve(group)

    async def _idle(self) -> None:
        self._done &= {v.visit_id for v in self.client.plan.visits}
        if self._simulated:  # parked until the plan changes (or a day passes)
            await self._park(self.clock.now() + timedelta(days=1), self.client.plan.seq)
            return
        await self.client.wait_changed(timeout=0.5)

    async def _report_position(self) -> None:
        if self._simulated:  # acknowledged, so the server has it before time moves on
            await self.client.event("position", lat=self.position[0], lon=self.position[1], at=self._at())
        else:
            await self.client.send_position(self.position[0], self.position[1], at=self._at())
        self.tally.positions += 1

    def _move_to(self, point: tuple[float, float]) -> None:
        self.tally.distance_m += distance_m(self.position, point) * self.options.circuity
        self.position = point

    async def _drive_to(self, group: list[p.VisitOut]) -> bool:
        """Move to the stop of ``group``; True if the plan changed and the leg was abandoned."""
        o = self.options
        first = group[0]
        target = (first.lat, first.lon)
        nominal = self._travel_s(self.position, target)
        # Leave so as to be there at the planned time (a bus does not run early).
        leave = first.planned_at - timedelta(seconds=nominal + o.arrive_early_s)
        if self.clock.now() < leave and await self._wait_until(leave):
            return True
        actual = nominal * o.delay_factor
        if o.delay_rate > 0 and self.rng.random() < o.delay_rate:
            actual *= o.delayed_factor
            self.tally.delayed_legs += 1
        if actual <= 0:
            return False
        origin, t0 = self.position, self.clock.now()
        seq = self.client.plan.seq
        arrive = t0 + timedelta(seconds=actual)
        while True:
            step_end = min(self.clock.now() + timedelta(seconds=o.position_every_s), arrive)
            changed = await self._wait_until(step_end)
            # compared as times: the fraction can stay a hair below 1 at microsecond resolution
            frac = 1.0 if self.clock.now() >= arrive else (self.clock.now() - t0).total_seconds() / actual
            self._move_to(interpolate(origin, target, frac))
            await self._report_position()
            if frac >= 1.0:
                self._move_to(target)
                return False
            if changed or self.client.plan.seq != seq:
                nxt = self._next_stop()
                if not nxt or nxt[0].visit_id != first.visit_id:
                    return True
                seq = self.client.plan.seq

    async def _serve(self, group: list[p.VisitOut]) -> None:
        o = self.options
        # The plan may have changed since the stop was chosen (a re-plan while driving): the visits
        # served here are the current plan's at this place, never a stale list's.
        fresh = self._next_stop()
        if not fresh or not _same_place(fresh[0], group[0]):
            return  # the next stop is elsewhere now: the run loop drives there
        group = fresh
        arrived_at = self.clock.now()
        first = group[0]
        ack = await self.client.event("arrived", stop_id=first.stop_id,
                                      booking_ids=list(dict.fromkeys(v.booking_id for v in group)),
                                      at=self._at())
        if not self._ok(ack, "arrived", first.booking_id):
            # a driver presses again: up to ARRIVAL_TRIES times, a minute apart, then gives the stop up
            tries = self._arrival_refusals.get(first.visit_id, 0) + 1
            self._arrival_refusals[first.visit_id] = tries
            if tries >= ARRIVAL_TRIES:
                for v in group:
                    self._skipped.add(v.visit_id)
            else:
                await self._sleep(60)
            return
        self.tally.arrived += 1
        for v in group:
            self.tally.late_s[v.visit_id] = (arrived_at - v.planned_at).total_seconds()
        # Drop-offs first (people get off before others get on), then boardings.
        for v in sorted(group, key=lambda v: v.kind != "dropoff"):
            if v.kind == "dropoff":
                if v.handover_code_required and not await self._parcel_wait(v):
                    continue  # handed over inside its window, never early; re-planned: later
                await self._sleep(o.parcel_s * v.parcels + o.board_s_per_person * (v.party_size > 0)
                                  + o.board_s_per_wheelchair * v.wheelchairs)
                if v.handover_code_required:
                    await self._parcel_dropoff(v)
                    continue
                ack = await self.client.event("dropped_off", booking_id=v.booking_id, at=self._at())
                if self._ok(ack, "dropped_off", v.booking_id, v.visit_id):
                    self.tally.dropped_off += 1
            elif v.booking_kind == "grocery":
                if not await self._parcel_wait(v):
                    continue  # re-planned while waiting at the store: later, as the plan says
                await self._sleep(o.parcel_s * max(1, v.parcels))
                ack = await self.client.event("parcel_picked_up", booking_id=v.booking_id, at=self._at())
                if self._ok(ack, "parcel_picked_up", v.booking_id, v.visit_id):
                    self.tally.boarded += 1
            else:
                decided = o.no_show_for(v.booking_id) if o.no_show_for else None
                no_show = self._no_show.setdefault(
                    v.booking_id, decided if decided is not None else self.rng.random() < o.no_show_rate)
                if no_show:
                    wait = self.client.hello.no_show_wait_s if self.client.hello else 180
                    await self._wait_until(arrived_at + timedelta(seconds=wait + 1), wake_on_change=False)
                    ack = await self.client.event("no_show", booking_id=v.booking_id, at=self._at())
                    for _ in range(200):
                        # a server clock slower than ours judges the wait by its own time: wait more
                        if not (isinstance(ack, p.Ack) and ack.code == "NoShowTooEarly"):
                            break
                        await self._sleep(30)
                        if not any(x.visit_id == v.visit_id for x in self.client.plan.visits):
                            break
                        ack = await self.client.event("no_show", booking_id=v.booking_id, at=self._at())
                    if self._ok(ack, "no_show", v.booking_id, v.visit_id):
                        self.tally.no_shows += 1
                        # its drop-off goes from the plan too
                        self._done.update(x.visit_id for x in self.client.plan.visits
                                          if x.booking_id == v.booking_id)
                else:
                    await self._sleep(o.board_s_per_person * v.party_size
                                      + o.board_s_per_wheelchair * v.wheelchairs)
                    ack = await self.client.event("boarded", booking_id=v.booking_id,
                                                  count=v.party_size, at=self._at())
                    if self._ok(ack, "boarded", v.booking_id, v.visit_id):
                        self.tally.boarded += 1

    # ------------------------------------------------------------------ groceries at the drop-off

    async def _parcel_wait(self, v: p.VisitOut) -> bool:
        """A parcel changes hands when the plan says: the store hands it over then (its goods stay
        cold until then) and the recipient gets it inside the window; a minibus that is at the stop
        earlier, e.g. for a rider getting off there, waits. The wait follows the plan as it
        changes: False (not now) when the visit left the plan or is no longer at this stop next
        (a re-plan moved it): the driver goes on with the plan and comes back for it."""
        while True:
            here = {x.visit_id: x for x in self._next_stop()}
            cur = here.get(v.visit_id)
            if cur is None:
                return False
            if self.clock.now() >= cur.planned_at:
                return True
            await self._wait_until(cur.planned_at)  # cut short by a plan change: look again

    async def _parcel_dropoff(self, v: p.VisitOut) -> None:
        """A parcel's drop-off: hand it over with the code the recipient shows; nobody there: call
        the desk (the parcel goes back, the plan changes); back at the store: hand it to the staff.

        The code comes from ``options.handover_code`` (the recipient's side), never from the tablet."""
        o = self.options
        if v.booking_id in self._returning:
            done = bool(o.parcel_returned and await o.parcel_returned(v.booking_id))
            if done:
                self.tally.log.append(("parcel_returned", v.booking_id))
                self.tally.returned += 1
                self._done.add(v.visit_id)
            else:
                log.warning("%s: returned parcel %s not taken back", self.vehicle_id, v.booking_id)
                self._skipped.add(v.visit_id)
            return
        code = o.handover_code(v.booking_id) if o.handover_code else None
        if inspect.isawaitable(code):
            code = await code
        if not code:
            wait = self.client.hello.no_show_wait_s if self.client.hello else 180
            await self._sleep(wait)  # rings, waits as for a rider, then calls the desk
            if o.recipient_absent and await o.recipient_absent(v.booking_id):
                self._returning.add(v.booking_id)
                self.tally.log.append(("recipient_absent", v.booking_id))
                return  # the drop-off now goes back: its new place comes with the plan
            log.warning("%s: no handover code for %s; skipped", self.vehicle_id, v.booking_id)
            self._skipped.add(v.visit_id)
            return
        ack = await self.client.event("parcel_handed_over", booking_id=v.booking_id, code=code, at=self._at())
        if self._ok(ack, "parcel_handed_over", v.booking_id, v.visit_id):
            self.tally.dropped_off += 1

    async def _sleep(self, sim_s: float) -> None:
        if sim_s > 0:
            await self._wait_until(self.clock.now() + timedelta(seconds=sim_s), wake_on_change=False)

    def _ok(self, ack: p.Ack | p.ErrorMessage, what: str, booking_id: str, visit_id: str | None = None) -> bool:
        good = isinstance(ack, p.Ack) and ack.result in ("applied", "duplicate")
        if good:
            self.tally.log.append((what, booking_id))
            if visit_id:
                self._done.add(visit_id)
        else:
            self.tally.rejected += 1
            log.warning("%s: %s %s refused: %s %s", self.vehicle_id, what, booking_id,
                        getattr(ack, "code", None), ack.message_en)
            if visit_id:
                self._skipped.add(visit_id)
        return good

    async def close(self) -> None:
        await self.client.close()


class FleetSimulator:
    """One ``VehicleSimulator`` per vehicle, all on the same clock."""

    def __init__(
        self,
        base_url: str,
        tokens_by_vehicle: Mapping[str, str],
        clock: Clock,
        *,
        options: SimulationOptions | None = None,
        starts: Mapping[str, tuple[float, float]] | None = None,
        drive_clock: bool = False,
        clock_speed: float = 60.0,
    ) -> None:
        self.clock = clock
        self.options = options or SimulationOptions()
        base_seed = self.options.seed
        self.vehicles: dict[str, VehicleSimulator] = {}
        for n, (vid, token) in enumerate(sorted(tokens_by_vehicle.items())):
            rng = random.Random(None if base_seed is None else base_seed * 1000 + n)
            self.vehicles[vid] = VehicleSimulator(
                base_url, token, clock, vehicle_id=vid, options=self.options,
                start=(starts or {}).get(vid), rng=rng,
            )
        if drive_clock and not isinstance(clock, FakeClock):
            raise ValueError("drive_clock needs a FakeClock")
        self.drive_clock = drive_clock
        self.clock_speed = clock_speed
        self._tasks: list[asyncio.Task[None]] = []

    async def _tick(self) -> None:
        """Move a FakeClock forward at ``clock_speed`` simulated seconds per real second."""
        clock = self.clock
        assert isinstance(clock, FakeClock)
        step = 0.05
        while True:
            await asyncio.sleep(step)
            clock.advance(step * self.clock_speed)

    def start(self) -> None:
        if self._tasks:
            return
        if self.drive_clock:
            self._tasks.append(asyncio.create_task(self._tick(), name="fleet-clock"))
        for vid, sim in self.vehicles.items():
            task = asyncio.create_task(self._guard(vid, sim), name=f"sim-{vid}")
            self._tasks.append(task)
            if isinstance(self.clock, SimulatedClock):
                self.clock.join(task)  # type: ignore[arg-type]

    async def _guard(self, vid: str, sim: VehicleSimulator) -> None:
        try:
            await sim.run()
        except asyncio.CancelledError:
            raise
        except Refused as exc:
            log.error("simulated %s refused by the server: %s", vid, exc)
        except Exception:
            log.exception("simulated %s stopped", vid)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await asyncio.gather(*(s.close() for s in self.vehicles.values()), return_exceptions=True)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or until cancelled)."""
        self.start()
        try:
            if stop is None:
                await asyncio.gather(*self._tasks)
            else:
                await stop.wait()
        finally:
            await self.stop()

    def tallies(self) -> dict[str, Tally]:
        return {vid: s.tally for vid, s in self.vehicles.items()}


def parse_tokens(items: Iterable[str]) -> dict[str, str]:
    """``["minibus_1=TOKEN", ...]`` -> ``{"minibus_1": "TOKEN"}``."""
    out: dict[str, str] = {}
    for item in items:
        vid, sep, token = item.partition("=")
        if not sep or not vid or not token:
            raise ValueError(f"expected VEHICLE=TOKEN, got {item!r}")
        out[vid.strip()] = token.strip()
    return out


async def simulate_cli(
    url: str,
    tokens_by_vehicle: Mapping[str, str],
    *,
    speed: float = 1.0,
    no_show_rate: float = 0.0,
    delay_factor: float = 1.0,
    seed: int | None = None,
) -> None:
    """``okuma simulate``: drive the vehicles of a running server until interrupted.

    The simulated clock starts at the server's own time (read from its ``hello``) and runs
    ``speed`` times faster than real time; give the server the same speed (OKUMA_CLOCK_SPEED) or
    waits such as the no-show time are judged on different clocks.
    """
    from transit.clock import AcceleratedClock

    if not tokens_by_vehicle:
        raise SystemExit("no driver tokens: give --token VEHICLE=TOKEN")
    vid, token = next(iter(tokens_by_vehicle.items()))
    async with DriverClient(url, token, vid) as probe:
        await probe.wait_synced(timeout=15)
        assert probe.hello is not None
        server_time = probe.hello.server_time
    clock = AcceleratedClock(server_time, speed)
    print(f"simulating {', '.join(sorted(tokens_by_vehicle))} on {url} from {server_time.isoformat()}"
          f" at x{speed:g} (no-show rate {no_show_rate:g}, delay factor {delay_factor:g}); Ctrl-C stops")
    fleet = FleetSimulator(url, tokens_by_vehicle, clock, options=SimulationOptions(
        no_show_rate=no_show_rate, delay_factor=delay_factor, seed=seed))
    try:
        await fleet.run()
    finally:
        for v, tally in fleet.tallies().items():
            print(f"  {v}: arrived {tally.arrived}, boarded {tally.boarded}, no-shows {tally.no_shows},"
                  f" dropped off {tally.dropped_off}, refused {tally.rejected}")
