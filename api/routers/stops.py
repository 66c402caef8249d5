from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep
from api.schemas import ServicePublic, StopPublic

router = APIRouter(prefix="/api/v1", tags=["stops"])


@router.get("/stops", response_model=list[StopPublic], operation_id="list_stops")
async def list_stops(svc: ServicesDep) -> list[StopPublic]:
    """Every stop: Japanese name, kana reading, English name, position, kiosk and wheelchair flags."""
    async with svc.uow(readonly=True) as uow:
        rows = await uow.stops.list()
    return [StopPublic(**r) for r in rows]


@router.get("/service", response_model=ServicePublic, operation_id="read_service")
async def read_service(svc: ServicesDep) -> ServicePublic:
    """Service hours, fare and the town office's phone number (from the service rules)."""
    r = svc.rules
    return ServicePublic(timezone=r.timezone, service_start=r.service_start_local.strftime("%H:%M"),
                         service_end=r.service_end_local.strftime("%H:%M"), fare_yen=r.fare_yen,
                         office_phone=r.office_phone)
