"""The dispatcher: re-optimises every plan inside its promises, and the evening batch.

One dispatcher per service area: on PostgreSQL the process holding an advisory lock is the
leader; on SQLite (one process) it always leads. It re-plans on a timer and soon after a
cancellation, a no-show or a delay, off the event loop (the solver runs in a worker thread), and
applies the result only if (1) no plan changed meanwhile (plan versions), (2) the independent
checker finds no violation, (3) every promised request is still served, and (4) the objective
went down: vehicle time plus the riders' term (``rider_delay_weight`` of the rules,
``routing.schedule.plan_rider_cost``; docs/optimiser.md). Vehicle time is ``routing.model.plan_travel_s``
(``route_travel_s`` summed over every vehicle) on both sides (an idle vehicle's drive from its
position to its end location included). A search that
raises costs that one re-plan (logged once with the reason), never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from routing import model as rm
from routing.check import check
from routing.optimise import optimise, warm_up
from routing.schedule import plan_rider_cost
from transit.booking import BookingStatus
from transit.events import BookingCancelled, BookingStatusChanged, Event
from transit.handlers import PlanRejected, Services, apply_route, load_snapshot
from transit.planning import Snapshot

log = logging.getLogger("okuma.dispatcher")
ADVISORY_KEY = 0x0C0A_7A1  # one dispatcher per service area (one area per database today)


@dataclass(frozen=True)
class ReoptResult:
    reason: str
    applied: bool
    why: str
    requests: int
    vehicles: int
    travel_before_s: int
    travel_after_s: int
    solve_s: float
    rider_before: int = 0  # the riders' term of the objective (docs/optimiser.md), before and after
    rider_after: int = 0

    @property
    def saving_s(self) -> int:
        return self.travel_before_s - self.travel_after_s if self.applied else 0


class LeaderLock:
    """Leadership for one service area: a PostgreSQL session advisory lock, or always on SQLite.

    The lock lives as long as its database session. Every ``acquire()`` checks that the session is
    alive and still holds the lock: after the backend was terminated (or the link dropped) another
    process may lead, so this one says it does not lead until it wins the lock again.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            if await self._still_held(self._conn):
                return True
            log.warning("the dispatcher lost its leader lock (its database session ended); trying again")
            await self.release()
        conn = await self.engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})).scalar()
            await conn.commit()
        except BaseException:
            await _discard(conn)
            raise
        if got:
            self._conn = conn  # the lock lives as long as this connection
            return True
        await conn.close()
        return False

    @staticmethod
    async def _still_held(conn: AsyncConnection) -> bool:
        try:
            held = (await conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo AND objsubid = 1)"),
                {"hi": ADVISORY_KEY >> 32, "lo": ADVISORY_KEY & 0xFFFF_FFFF})).scalar()
            await conn.commit()
            return bool(held)
        except Exception:  # noqa: BLE001 - a dead session holds nothing
            return False

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    """End the session rather than pool it: a pooled session would keep holding the session-level
    lock (closing a pooled connection only rolls back)."""
    with contextlib.suppress(Exception):  # a dead session: nothing to end
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


class Dispatcher:
    def __init__(
        self,
        svc: Services,
        engine: AsyncEngine,
        *,
        interval_s: float = 120.0,
        budget_s: float = 2.0,
        lookahead_s: int = 3 * 3600,
        debounce_s: float = 5.0,
        evening_batch_local: str | None = "20:30",
        evening_budget_s: float = 30.0,
    ) -> None:
        self.svc = svc
        self.leader = LeaderLock(engine)
        self.interval_s = interval_s
        self.budget_s = budget_s
        self.lookahead_s = lookahead_s
        self.debounce_s = debounce_s
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self.history: list[ReoptResult] = []
        self.evening_batch_local = evening_batch_local
        self.evening_budget_s = evening_budget_s
        self._batched_for: date | None = None
        #: candidate plans the independent checker refused (never applied), since start
        self.rejected = 0
        #: re-plans whose search raised (each cost that one re-plan), since start
        self.failed = 0

    # ------------------------------------------------------------------ wiring

    async def on_events(self, events: Sequence[Event]) -> None:
        """Bus subscriber: cancellations, no-shows and delays ask for a re-plan soon."""
        for e in events:
            name = type(e).__name__
            if isinstance(e, BookingCancelled) or name in ("ReplanRequested", "PromiseAtRisk") or (
                isinstance(e, BookingStatusChanged) and e.status == BookingStatus.NO_SHOW.value
            ):
                self._kick.set()
                return

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leader.release()

    async def _run(self) -> None:
        try:  # compile the search (or load it from the on-disk cache) before the first re-plan
            took = await asyncio.to_thread(warm_up)
            log.info("optimiser ready in %.1f s", took)
        except Exception:  # a re-plan would compile it anyway
            log.exception("optimiser warm-up failed")
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=self.interval_s)
                reason = "event"
                await asyncio.sleep(self.debounce_s)
            except TimeoutError:
                reason = "timer"
            self._kick.clear()
            try:
                if await self.leader.acquire():
                    await self.reoptimise(reason)
                    await self._maybe_evening_batch()
            except asyncio.CancelledError:
                raise
            except Exception:  # the dispatcher must keep running; the plans stay as they were
                log.exception("re-optimisation failed")

    # ------------------------------------------------------------------ the work

    async def _snapshot(self, window: tuple[datetime, datetime]) -> tuple[Snapshot, dict[str, int]]:
        async with self.svc.uow(readonly=True) as uow:
            vehicles = await uow.vehicles.list(window)
            snap = await load_snapshot(uow, self.svc, vehicles, window)
        versions = {v.id: v.plan_version for v in vehicles}
        return snap, versions

    async def reoptimise(
        self, reason: str = "manual", *, window: tuple[datetime, datetime] | None = None,
        budget_s: float | None = None,
    ) -> ReoptResult:
        """Re-plan every request not yet on board, inside every promise; apply only if better."""
        async with self._lock:
            now = self.svc.clock.now()
            window = window or (now, now + timedelta(seconds=self.lookahead_s))
            budget = self.budget_s if budget_s is None else budget_s
            snap, versions = await self._snapshot(window)
            # the riders' term of the objective (docs/optimiser.md), from the service rules
            problem = replace(snap.problem, rider_delay_weight=self.svc.rules.rider_delay_weight)
            before = rm.plan_travel_s(problem, {v.id: v.route for v in problem.vehicles})
            n_req = len(problem.requests)
            if n_req == 0:
                return self._done(ReoptResult(reason, False, "nothing to plan", 0, len(problem.vehicles),
                                              before, before, 0.0))
            t0 = time.perf_counter()
            try:
                solution = await asyncio.to_thread(optimise, problem, time_limit_s=budget, seed=0)
            except Exception as exc:  # noqa: BLE001 - any failure of the search costs this re-plan only
                self.failed += 1
                log.error("re-plan (%s) skipped: the search failed: %s: %s", reason, type(exc).__name__, exc)
                return self._done(ReoptResult(reason, False, f"search failed: {type(exc).__name__}", n_req,
                                              len(problem.vehicles), before, before, time.perf_counter() - t0))
            solve_s = time.perf_counter() - t0
            after = rm.plan_travel_s(problem, {r.vehicle_id: [s.stop for s in r.stops] for r in solution.routes})
            result = ReoptResult(reason, False, "", n_req, len(problem.vehicles), before, after, solve_s)
            if solution.unserved:
                causes = sorted({c.value for c in solution.unserved.values()})
                return self._done(_why(result, f"would drop {len(solution.unserved)} promised request(s) "
                                               f"({', '.join(causes)})"))
            violations = check(problem, solution)
            if violations:
                self.rejected += 1
                log.warning("re-plan (%s) rejected by the checker: %s", reason,
                            "; ".join(f"{v.kind} {v.vehicle_id} {v.request_id}: {v.detail}" for v in violations[:5]))
                return self._done(_why(result, f"checker rejected the plan: {violations[0].kind}"))
            rider_before = plan_rider_cost(problem, {v.id: v.route for v in problem.vehicles})
            rider_after = plan_rider_cost(problem, {r.vehicle_id: [s.stop for s in r.stops] for r in solution.routes})
            result = replace(result, rider_before=rider_before, rider_after=rider_after)
            if after + rider_after >= before + rider_before:  # the optimiser's objective
                return self._done(_why(result, "no improvement"))
            try:
                applied = await self._apply(snap, versions, solution)
            except PlanRejected as e:  # the one writer's checker gate: nothing was stored
                return self._done(_why(result, f"stored plan rejected: {e.violations[0].kind}"))
            if not applied:
                return self._done(_why(result, "plans changed meanwhile"))
            res = replace(result, applied=True, why="applied")
            log.info("re-optimised (%s): %d requests, vehicle time %d s -> %d s (saved %d s) in %.2f s",
                     reason, n_req, before, after, before - after, solve_s)
            return self._done(res)

    def _done(self, r: ReoptResult) -> ReoptResult:
        self.history.append(r)
        del self.history[:-100]
        return r

    async def _apply(self, snap: Snapshot, versions: dict[str, int], solution: rm.Solution) -> bool:
        problem = snap.problem
        planned = set(problem.requests)
        async with self.svc.uow() as uow:
            current = {v.id: v for v in await uow.vehicles.lock_all()}
            if any(current[vid].plan_version != ver for vid, ver in versions.items() if vid in current):
                return False
            # Work on the freshly locked vehicles, with the snapshot's bookings.
            for vid in list(snap.vehicles):
                if vid in current:
                    current[vid].shifts = snap.vehicles[vid].shifts
                    snap.vehicles[vid] = current[vid]
            for b in snap.bookings.values():
                uow.bookings.seen[b.id] = b
            routes = {r.vehicle_id: tuple(s.stop for s in r.stops) for r in solution.routes}
            for v in problem.vehicles:
                route = routes.get(v.id, ())
                if tuple(route) == tuple(v.route):
                    continue
                for s in route:
                    b = snap.bookings[s.request_id]
                    if b.vehicle_id != v.id:
                        b.vehicle_id = v.id
                        await uow.bookings.save_assignment(b, now=self.svc.clock.now())
                await apply_route(uow, self.svc, snap, v.id, route, dict(problem.requests),
                                   "reoptimise", tuple(sorted({s.request_id for s in route})), drop=planned)
            await uow.commit()
        return True

    async def _maybe_evening_batch(self) -> None:
        """Once a day, after the evening cut-off, optimise tomorrow's bookings together."""
        if not self.evening_batch_local:
            return
        local = self.svc.clock.now().astimezone(self.svc.rules.tz)
        hh, mm = (int(x) for x in self.evening_batch_local.split(":"))
        tomorrow = local.date() + timedelta(days=1)
        if (local.hour, local.minute) >= (hh, mm) and self._batched_for != tomorrow:
            self._batched_for = tomorrow
            results = await self.evening_batch(tomorrow, budget_s=self.evening_budget_s)
            log.info("evening batch for %s: saved %d s of vehicle time over %d requests", tomorrow,
                     sum(r.saving_s for r in results), sum(r.requests for r in results))

    async def evening_batch(self, day: date, *, budget_s: float = 30.0) -> list[ReoptResult]:
        """Optimise a day's bookings made ahead together, window by window of the fleet's shifts."""
        tz = self.svc.rules.tz
        start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
        end = start + timedelta(days=1)
        async with self.svc.uow(readonly=True) as uow:
            vehicles = await uow.vehicles.list((start, end))
        edges = sorted({(s.starts_at, s.ends_at) for v in vehicles for s in v.shifts
                        if s.starts_at < end and s.ends_at > start})
        out = []
        for a, b in edges:
            mid = a + (b - a) / 2
            out.append(await self.reoptimise("evening_batch", window=(mid, mid), budget_s=budget_s))
        return out


def _why(r: ReoptResult, why: str) -> ReoptResult:
    return replace(r, applied=False, why=why)


__all__ = ["Dispatcher", "LeaderLock", "ReoptResult"]
