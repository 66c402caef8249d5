"""Service KPIs for the operator console: today's figures from transit/kpi.py (the simulator's code)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import require
from transit import kpi
from transit.commands import Actor

router = APIRouter(prefix="/api/v1", tags=["kpis"])
Operator = Annotated[Actor, require("operator", "admin")]


class KpisToday(BaseModel):
    date: str
    computed_at: str
    booked: int
    completed: int
    cancelled: int
    no_shows: int
    on_board_now: int
    mean_wait_min: float
    p95_wait_min: float
    on_time_pct: float
    ride_ratio_mean: float
    promises_broken: int
    passengers: int
    pax_per_vehicle_hour_peak: float
    peak_hour: str


@router.get("/kpis/today", response_model=KpisToday, operation_id="read_kpis_today",
            responses={401: {"description": "認証が必要 / authentication required"},
                       403: {"description": "権限なし / wrong role"}})
async def kpis_today(actor: Operator, request: Request) -> KpisToday:
    """Today's service KPIs (Asia/Tokyo day), defined in docs/simulate.md; live, computed on each call."""
    rt = request.app.state.runtime
    return KpisToday(**await kpi.today(rt.services, rt.operations))
