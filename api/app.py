"""The FastAPI application. Engines and collaborators are made in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.realtime import Hub
from api.routers import bookings, driver_ws, kpis, rider_ws, stops, vehicles
from transit.bootstrap import Runtime, bootstrap
from transit.clock import Clock
from transit.dispatcher import Dispatcher
from transit.reference_data import ReferenceData
from transit.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
DRIVER_STATIC = Path(__file__).resolve().parent.parent / "driver_app" / "static"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    reference: ReferenceData | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: Runtime = bootstrap(settings, clock=clock, reference=reference)
        app.state.runtime = runtime
        app.state.services = runtime.services
        app.state.actor_cache = {}
        hub = Hub(runtime)
        app.state.hub = hub
        await hub.start()
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
            await runtime.close()

    app = FastAPI(
        title="Okuma on-demand transit / 大熊町オンデマンド交通",
        version="1.0.0",
        description="Book shared minibus rides in Okuma. 乗合ミニバスの予約API。Errors carry message_ja and message_en.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(stops.router)
    app.include_router(bookings.router)
    app.include_router(vehicles.router)
    app.include_router(kpis.router)
    app.include_router(driver_ws.router)
    app.include_router(rider_ws.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

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
        for path, name in (("/kiosk", "kiosk.html"), ("/operator", "operator.html"), ("/store", "store.html")):
            app.add_api_route(path, _page(STATIC / name), methods=["GET"], include_in_schema=False)

        @app.get("/sw.js", include_in_schema=False)
        async def service_worker() -> FileResponse:
            return FileResponse(STATIC / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    return app


def _page(file: Path):  # type: ignore[no-untyped-def]
    async def page() -> FileResponse:
        return FileResponse(file)

    return page
