"""The FastAPI application. Engines and collaborators are made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.deps import RevocationWatch
from api.limits import (
    SecurityHeaders,
    SizeLimits,
    content_security_policy,
    inline_hashes,
    secured_operations,
)
from api.realtime import Hub
from api.routers import (
    bookings,
    driver_ws,
    family,
    gtfs,
    kpis,
    line_webhook,
    rider_ws,
    riders,
    stops,
    stores,
    tomp,
    vehicles,
)
from transit.bootstrap import Runtime, bootstrap
from transit.clock import Clock
from transit.db import database_problem
from transit.dispatcher import Dispatcher
from transit.feeds.gtfs import FeedMeta
from transit.feeds.tomp_webhooks import EVENT_TYPES as WEBHOOK_EVENTS
from transit.feeds.tomp_webhooks import TompWebhooks
from transit.notify import NOTIFY_EVENTS
from transit.reference_data import ReferenceData
from transit.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
DRIVER_STATIC = Path(__file__).resolve().parent.parent / "driver_app" / "static"


READY_TIMEOUT_S = 3.0
_QUERY = re.compile(r"\?[^\s\"]*")


class DropQueryStrings(logging.Filter):
    """Access and websocket log lines keep the path and drop the query string: an old client or a
    pasted provisioning link (``/driver/?token=``) must not put a token in the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub("", a) if isinstance(a, str) and "?" in a else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = _QUERY.sub("", record.msg)
        return True


def install_log_redaction() -> None:
    """Idempotent: uvicorn's own loggers (access lines and ``"WebSocket /path" [accepted]`` lines)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropQueryStrings) for f in logger.filters):
            logger.addFilter(DropQueryStrings())


GC_THRESHOLDS = (10_000, 10, 10)  # CPython's default is (700, 10, 10)


def tune_gc() -> None:
    """Fewer cyclic garbage collections: a request allocates thousands of small objects (rows,
    plans, schedules), and with the default thresholds the collector ran every few hundred of
    them, a full pass over the heap (the cached plans, the reference data) now and then in the
    middle of a request. What was loaded at start-up is frozen out of the collector's passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _heap_snapshots() -> asyncio.Task[None] | None:
    """With ``OKUMA_TRACEMALLOC_DIR`` set (a soak that looks for leaks, ``bench/soak.py
    --tracemalloc``): trace allocations and write a snapshot there every
    ``OKUMA_TRACEMALLOC_EVERY_S`` seconds (default 60) as ``<pid>-<n>.snap``. Off by default: tracing
    slows the server down."""
    folder = os.environ.get("OKUMA_TRACEMALLOC_DIR")
    if not folder:
        return None
    every = float(os.environ.get("OKUMA_TRACEMALLOC_EVERY_S", "60"))
    tracemalloc.start(8)

    async def dump() -> None:
        n = 0
        while True:
            await asyncio.sleep(every)
            gc.collect()
            tracemalloc.take_snapshot().dump(str(Path(folder) / f"{os.getpid()}-{n:04d}.snap"))
            n += 1

    return asyncio.create_task(dump(), name="heap-snapshots")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    reference: ReferenceData | None = None,
) -> FastAPI:
    settings = settings or Settings()

    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()  # again: uvicorn configures its loggers after the app is made
        runtime: Runtime = bootstrap(settings, clock=clock, reference=reference)
        tune_gc()
        app.state.runtime = runtime
        app.state.services = runtime.services
        app.state.actor_cache = {}
        app.state.revocations = RevocationWatch(app.state.actor_cache)
        runtime.bus.subscribe(app.state.revocations.on_events)  # tokens revoked anywhere leave the cache
        if runtime.notifier is not None:  # notices run after the commit, from the bus
            runtime.bus.subscribe(runtime.notifier.on_events, *NOTIFY_EVENTS)
        webhooks = TompWebhooks(runtime.services.uow, runtime.services.clock, operator_id=_operator_id(settings))
        runtime.bus.subscribe(webhooks.on_events, *WEBHOOK_EVENTS)  # TOMP webhooks: queued, sent off the request
        app.state.tomp_webhooks = webhooks
        webhooks.start()
        hub = Hub(runtime)
        app.state.hub = hub
        await hub.start()
        heap = _heap_snapshots()
        dispatcher = None
        if settings.dispatcher:
            dispatcher = Dispatcher(runtime.services, runtime.engine, interval_s=settings.reoptimise_interval_s,
                                    budget_s=settings.reoptimise_budget_s,
                                    evening_batch_local=settings.evening_batch_local)
            runtime.bus.subscribe(dispatcher.on_events)
            dispatcher.start()
        app.state.dispatcher = dispatcher
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            await hub.stop()
            await webhooks.close()
            await runtime.close()
            if heap is not None:
                heap.cancel()

    app = FastAPI(
        title="Okuma on-demand transit / 大熊町オンデマンド交通",
        version="1.0.0",
        description="Book shared minibus rides in Okuma. 乗合ミニバスの予約API。Errors carry message_ja and message_en.",
        lifespan=lifespan,
        # /docs is served below from the vendored Swagger UI (no CDN, works offline); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    errors.document(app)
    # before every route: nothing is parsed before the sizes (and the presence of a token) are checked
    app.add_middleware(SizeLimits, secured=lambda: secured_operations(app.openapi()))
    app.add_middleware(SecurityHeaders, csp=content_security_policy(*inline_hashes(STATIC, DRIVER_STATIC)))
    app.include_router(stops.router)
    app.include_router(bookings.router)
    app.include_router(vehicles.router)
    app.include_router(kpis.router)
    app.include_router(driver_ws.router)
    app.include_router(rider_ws.router)
    app.include_router(gtfs.router)
    app.include_router(tomp.router)
    app.include_router(stores.router)
    app.include_router(stores.ws_router)
    app.include_router(riders.router)
    app.include_router(family.router)
    app.include_router(line_webhook.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Whether it can serve is /readyz."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the database is reachable and migrated, and Redis answers when configured."""
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            problem = await asyncio.wait_for(database_problem(runtime.engine), READY_TIMEOUT_S)
        except TimeoutError:
            problem = f"データベースが応答しません / database did not answer within {READY_TIMEOUT_S:g} s"
        checks["database"] = problem or "ok"
        if runtime.settings.redis_url:
            checks["redis"] = "ok" if await runtime.bus.ping(READY_TIMEOUT_S) else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        if ready:
            return JSONResponse({"status": "ready", "checks": checks})
        return JSONResponse(
            errors.body("NotReady", "現在サービスを提供できません。しばらくしてからお試しください。",
                        "Not ready to serve; try again shortly.", status="not_ready", checks=checks),
            status_code=503, headers={"Retry-After": "5"},
        )

    if DRIVER_STATIC.exists():  # the driver tablet page (driver_app/static)
        app.mount("/driver", StaticFiles(directory=DRIVER_STATIC, html=True), name="driver")
    if STATIC.exists():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False, response_model=None)
        async def index() -> FileResponse | RedirectResponse:
            page = STATIC / "index.html"
            if page.exists():
                return FileResponse(page)
            return RedirectResponse("/docs")

        # The pages: static HTML files; the service worker sits at the root so it controls "/".
        for path, name in (("/kiosk", "kiosk.html"), ("/operator", "operator.html"), ("/store", "store.html"),
                           ("/docs", "docs.html")):
            app.add_api_route(path, _page(STATIC / name), methods=["GET"], include_in_schema=False)

        @app.get("/sw.js", include_in_schema=False)
        async def service_worker() -> FileResponse:
            return FileResponse(STATIC / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    return app


def _operator_id(settings: Settings) -> str:
    """Our ``maas-id`` when we call a MaaS app: the agency id of the GTFS feed (feed.json)."""
    try:
        return FeedMeta.load(settings.data_dir).agency_id
    except (OSError, ValueError, TypeError):
        return "okuma"


def _page(file: Path):  # type: ignore[no-untyped-def]
    async def page() -> FileResponse:
        return FileResponse(file)

    return page
