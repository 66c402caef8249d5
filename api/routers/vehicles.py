"""Vehicles: the fleet with positions (operators) and one vehicle's plan (its driver, operators)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Request

from api.deps import CurrentActor, ServicesDep, require
from api.schemas import ApproachingPublic, PathId
from driver_app import protocol as p
from transit import errors
from transit.clock import local
from transit.commands import Actor

router = APIRouter(prefix="/api/v1", tags=["vehicles"])
Operator = Annotated[Actor, require("operator", "admin")]

ERRORS = {
    401: {"description": "認証が必要 / authentication required"},
    403: {"description": "権限なし / wrong role"},
    404: {"description": "見つからない / not found"},
}


@router.get("/vehicles", response_model=list[p.VehicleLive], operation_id="list_vehicles", responses=ERRORS)
async def list_vehicles(actor: Operator, request: Request) -> list[p.VehicleLive]:
    """Every vehicle with its last position, plan version, visits left and whether a tablet is online."""
    hub = request.app.state.hub
    return await hub.views.vehicles(set(hub.tablets))


@router.get("/vehicles/{vehicle_id}/plan", response_model=p.PlanOut, operation_id="read_vehicle_plan",
            responses=ERRORS)
async def read_plan(vehicle_id: PathId, actor: CurrentActor, request: Request) -> p.PlanOut:
    """The vehicle's current plan (the same visits a tablet snapshot carries)."""
    if actor.role == "driver":
        if actor.vehicle_id != vehicle_id:
            raise errors.Forbidden("この運転士はその車両に割り当てられていません。",
                                   "This driver is not assigned to that vehicle.")
    elif actor.role not in ("operator", "admin"):
        raise errors.Forbidden()
    hub = request.app.state.hub
    vehicle, visits, _ = await hub.views.vehicle_plan(vehicle_id)
    if vehicle is None:
        raise errors.NotFound("その車両は見つかりません。", "That vehicle does not exist.")
    return p.PlanOut(vehicle_id=vehicle.id, plan_version=vehicle.plan_version, visits=visits)


APPROACHING_S = 3600  # minibuses due at a stop within this time are "approaching"


@router.get("/stops/{stop_id}/approaching", response_model=list[ApproachingPublic],
            operation_id="list_approaching",
            responses={**ERRORS, 400: {"description": "停留所がない / UnknownStop: no such stop (message_ja, message_en)"}})
async def approaching(stop_id: PathId, actor: CurrentActor, svc: ServicesDep) -> list[ApproachingPublic]:
    """Minibuses whose plan stops here within the next hour, soonest first (a kiosk: its own stop)."""
    if actor.role == "kiosk":
        if actor.stop_id != stop_id:
            raise errors.Forbidden("この端末では、この停留所の情報のみ表示できます。",
                                   "This kiosk shows its own stop only.")
    elif actor.role not in ("operator", "admin"):
        raise errors.Forbidden()
    now = svc.clock.now()
    async with svc.uow(readonly=True) as uow:
        if await uow.stops.get(stop_id) is None:
            raise errors.UnknownStop(stop_id=stop_id)
        vehicles = await uow.vehicles.list()
    out = []
    for v in vehicles:
        due = [x.planned_at for x in v.plan
               if x.stop_id == stop_id and now <= x.planned_at <= now + timedelta(seconds=APPROACHING_S)]
        if due:
            out.append(ApproachingPublic(vehicle_id=v.id, name_ja=v.name_ja, name_en=v.name_en,
                                         planned_at=local(min(due))))
    return sorted(out, key=lambda a: a.planned_at)
