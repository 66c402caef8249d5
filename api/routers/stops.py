from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep
from api.schemas import StopPublic

router = APIRouter(prefix="/api/v1", tags=["stops"])


@router.get("/stops", response_model=list[StopPublic], operation_id="list_stops")
async def list_stops(svc: ServicesDep) -> list[StopPublic]:
    """Every stop: Japanese name, kana reading, English name, position, kiosk and wheelchair flags."""
    async with svc.uow(readonly=True) as uow:
        rows = await uow.stops.list()
    return [StopPublic(**r) for r in rows]
