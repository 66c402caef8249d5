"""Stores and deliveries: the store page's orders, "ready", the live store channel, returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, WebSocket
from pydantic import BaseModel

from api.deps import CurrentActor, ServicesDep, handover_secret, require
from api.routers.bookings import ERRORS
from api.routers.rider_ws import _listen
from api.routers.ws_common import (
    CLOSE_FORBIDDEN,
    authenticate_ws,
    domain_error,
    hub_of,
    pinger,
    refuse,
)
from api.schemas import DeliveryPublic, PathId, ReadyIn, ReturnIn, StoreOrders, StorePublic
from driver_app import protocol as p
from transit import deliveries, errors
from transit.clock import local
from transit.commands import Actor
from transit.events import (
    BookingCancelled,
    BookingStatusChanged,
    DeliveryChanged,
    Event,
    PlanChanged,
)
from transit.handlers import Services
from transit.stores import Store

router = APIRouter(prefix="/api/v1", tags=["stores"])
ws_router = APIRouter()
StoreStaff = Annotated[Actor, require("store")]
Recipient = Annotated[Actor, require("rider", "kiosk", "operator", "admin")]

def store_public(s: Store) -> StorePublic:
    return StorePublic(id=s.id, name_ja=s.name_ja, name_kana=s.name_kana, name_en=s.name_en, stop_id=s.stop_id,
                       opens_local=s.opens_local.strftime("%H:%M"), closes_local=s.closes_local.strftime("%H:%M"),
                       preparation_s=s.preparation_s)


@router.get("/stores", response_model=list[StorePublic], operation_id="list_stores")
async def list_stores(svc: ServicesDep) -> list[StorePublic]:
    """The stores that send groceries on the minibuses: stop, opening hours, preparation time."""
    return [store_public(s) for s in svc.stores.values()]


async def _orders(actor: Actor, svc: Services, secret: str) -> StoreOrders:
    store, views = await deliveries.store_orders(actor, svc, secret)
    return StoreOrders(store=store_public(store), orders=[DeliveryPublic.of(v) for v in views])


@router.get("/store/orders", response_model=StoreOrders, operation_id="list_store_orders", responses=ERRORS)
async def store_orders(actor: StoreStaff, svc: ServicesDep, request: Request) -> StoreOrders:
    """The signed-in store's orders of today: to prepare, ready, on the minibus, delivered or returned."""
    return await _orders(actor, svc, handover_secret(request))


@router.post("/store/orders/{booking_id}/ready", response_model=DeliveryPublic, operation_id="mark_order_ready",
             responses=ERRORS)
async def mark_ready(booking_id: PathId, body: ReadyIn, actor: StoreStaff, svc: ServicesDep,
                     request: Request) -> DeliveryPublic:
    """The order is packed: its parcel count and temperature. The minibus may collect it from now."""
    v = await deliveries.mark_ready(booking_id, body.parcels, body.temperature, actor, svc, handover_secret(request))
    return DeliveryPublic.of(v)


@router.get("/deliveries/{booking_id}", response_model=DeliveryPublic, operation_id="read_delivery",
            responses=ERRORS)
async def read_delivery(booking_id: PathId, actor: CurrentActor, svc: ServicesDep, request: Request) -> DeliveryPublic:
    """A delivery for its recipient (with the handover code), the desk (with the code: its audited
    read-out), or its store (no code). Drivers: 404."""
    return DeliveryPublic.of(await deliveries.get_delivery(booking_id, actor, svc, handover_secret(request),
                                                           read_out=True))


@router.post("/deliveries/{booking_id}/return", response_model=DeliveryPublic, operation_id="return_delivery",
             responses=ERRORS)
async def return_delivery(booking_id: PathId, actor: Recipient, svc: ServicesDep, request: Request,
                          body: ReturnIn | None = None) -> DeliveryPublic:
    """Could not be handed over: back to the store (no stop_id) or to a pickup point the resident chooses."""
    v = await deliveries.choose_return(booking_id, body.stop_id if body else None, actor, svc,
                                       handover_secret(request))
    return DeliveryPublic.of(v)


@router.post("/deliveries/{booking_id}/received-back", response_model=DeliveryPublic,
             operation_id="confirm_delivery_returned", responses=ERRORS)
async def received_back(booking_id: PathId, actor: Annotated[Actor, require("store", "operator", "admin")],
                        svc: ServicesDep, request: Request) -> DeliveryPublic:
    """The store (its own returns) or the town desk received a returned parcel from the driver."""
    return DeliveryPublic.of(await deliveries.confirm_returned(booking_id, actor, svc, handover_secret(request)))


# ------------------------------------------------------------------------------ the live store channel


class StoreOrdersMessage(StoreOrders):
    type: Literal["store_orders"] = "store_orders"
    generated_at: datetime


class _Watch(BaseModel):
    booking_ids: set[str] = set()
    vehicle_ids: set[str] = set()


def _touches(events: Sequence[Event], store_id: str, watch: _Watch) -> bool:
    for e in events:
        if isinstance(e, DeliveryChanged) and e.store_id == store_id:
            return True
        if isinstance(e, (BookingStatusChanged, BookingCancelled)) and e.booking_id in watch.booking_ids:
            return True
        if isinstance(e, PlanChanged) and (e.vehicle_id in watch.vehicle_ids
                                           or watch.booking_ids.intersection(e.booking_ids)):
            return True
    return False


@ws_router.websocket("/ws/store")
async def store_channel(ws: WebSocket) -> None:
    """The store page's live orders. Authenticate with a first ``hello`` message (no token in the URL)."""
    await ws.accept()
    actor, _ = await authenticate_ws(ws)
    if actor is None:
        return
    svc: Services = ws.app.state.services
    secret = ws.app.state.runtime.operations.handover_secret
    try:
        first = await _orders(actor, svc, secret)
    except errors.DomainError as e:
        await refuse(ws, domain_error(e), CLOSE_FORBIDDEN)
        return
    out = hub_of(ws).outbox(ws)
    watch = _Watch()
    dirty = asyncio.Event()

    def send(orders: StoreOrders) -> None:
        watch.booking_ids = {o.booking_id for o in orders.orders}
        watch.vehicle_ids = {o.vehicle_id for o in orders.orders if o.vehicle_id}
        out.send(StoreOrdersMessage(**orders.model_dump(), generated_at=local(svc.clock.now())))

    async def on_events(events: Sequence[Event]) -> None:
        if _touches(events, first.store.id, watch):
            dirty.set()

    async def refresher() -> None:
        while not out.closed:
            await dirty.wait()
            await asyncio.sleep(0.2)  # one refresh for a burst of events
            dirty.clear()
            send(await _orders(actor, svc, secret))

    send(first)
    bus = ws.app.state.runtime.bus
    bus.subscribe(on_events)
    tasks = [asyncio.create_task(refresher()), asyncio.create_task(pinger(out, p.HEARTBEAT_S))]
    try:
        await _listen(ws, out)
    finally:
        bus.unsubscribe(on_events)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await out.close()
