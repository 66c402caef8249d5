"""Riders: sign-in by phone number and a one-time code, profile, LINE link, favourites, map settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field

from api.deps import CurrentActor, ServicesDep
from api.routers.bookings import ERRORS as BOOKING_ERRORS
from api.schemas import Strict
from transit import riders
from transit.clock import local
from transit.notify import Notifier

router = APIRouter(prefix="/api/v1", tags=["riders"])

ERRORS = {
    **{k: v for k, v in BOOKING_ERRORS.items() if k in (401, 403, 404)},
    400: {"description": "不正な入力・コード違い / bad input or wrong code (message_ja, message_en)"},
    429: {"description": "試行が多すぎる / too many tries (Retry-After, retry_after_s)"},
}
PHONE = Field(..., min_length=6, max_length=24, description="日本の電話番号 / Japanese phone number, e.g. 090-1234-5678")


def notifier_of(request: Request) -> Notifier:
    n = request.app.state.runtime.notifier
    assert n is not None
    return n


NotifierDep = Annotated[Notifier, Depends(notifier_of)]


class SignInStart(Strict):
    phone: str = PHONE


class SignInStarted(BaseModel):
    expires_at: datetime
    resend_after_s: int


class SignInVerify(Strict):
    phone: str = PHONE
    code: str = Field(..., min_length=1, max_length=12)
    name: str | None = Field(None, max_length=100, description="お名前 (first sign-in only)")


class SignedIn(BaseModel):
    token: str = Field(..., description="rider token: send as Authorization: Bearer")
    account_id: str
    new_rider: bool


class HomeIn(Strict):
    address: str = Field(..., min_length=1, max_length=200, description="住所 as written, e.g. 大熊町大川原字南平1234")
    lat: float = Field(..., ge=-90, le=90)
    lon: float = Field(..., ge=-180, le=180)


class HomePublic(BaseModel):
    address: str
    lat: float
    lon: float


class Profile(BaseModel):
    account_id: str
    name: str
    phone_masked: str | None
    line_linked: bool
    near_minutes: int
    door_to_door: bool = Field(False, description="registered for door-to-door: may ask for a ride or delivery at home (lat/lon)")
    home: HomePublic | None = Field(None, description="door-to-door riders: the home they set (null: none)")


class ProfileUpdate(Strict):
    name: str | None = Field(None, max_length=100)
    near_minutes: int | None = Field(None, description="「まもなく到着」を何分前に知らせるか: 3, 5, 10 or 15")
    home: HomeIn | None = Field(None, description="door-to-door riders only: the home, inside the service area; null clears it")


class DeskHomeIn(Strict):
    phone: str = PHONE


class DeskHome(BaseModel):
    account_id: str
    name: str
    door_to_door: bool
    home: HomePublic | None


class LineLink(BaseModel):
    code: str = Field(..., description="send this to the town's LINE account within expires_at")
    expires_at: datetime
    friend_url: str | None


class FavouriteIn(Strict):
    label: str = Field(..., min_length=1, max_length=100)
    origin_stop_id: str = Field(..., max_length=64)
    destination_stop_id: str = Field(..., max_length=64)
    party_size: int = Field(1, ge=1, le=6)
    wheelchairs: int = Field(0, ge=0, le=6)


class FavouritePublic(BaseModel):
    id: str
    label: str
    origin_stop_id: str
    destination_stop_id: str
    party_size: int
    wheelchairs: int


class NoticePublic(BaseModel):
    kind: str = Field(..., description="confirmed | near | boarded | not_at_stop | promise_at_risk | cancelled | delivered | …")
    channel: str = Field(..., description="line | sms | log")
    status: str = Field(..., description="sending | sent | failed")
    booking_id: str | None
    at: datetime


class RiderConfig(BaseModel):
    tile_url: str | None = Field(None, description="map tiles ({z}/{x}/{y}); null: the schematic of stops")
    tile_attribution: str
    near_minutes_choices: list[int]


@router.post("/sign-in/code", response_model=SignInStarted, status_code=status.HTTP_202_ACCEPTED,
             operation_id="send_sign_in_code", responses=ERRORS)
async def send_code(body: SignInStart, svc: ServicesDep, notifier: NotifierDep) -> SignInStarted:
    """Send a six-digit code to the phone (SMS; in development it is printed to the server log)."""
    started = await riders.start_sign_in(body.phone, svc, notifier)
    return SignInStarted(expires_at=local(started.expires_at), resend_after_s=started.resend_after_s)


@router.post("/sign-in/verify", response_model=SignedIn, operation_id="verify_sign_in_code", responses=ERRORS)
async def verify_code(body: SignInVerify, svc: ServicesDep) -> SignedIn:
    """Exchange the code for a rider token (the rider is created on the first sign-in)."""
    done = await riders.verify_sign_in(body.phone, body.code, body.name, svc)
    return SignedIn(token=done.token, account_id=done.account_id, new_rider=done.new_rider)


@router.get("/rider/config", response_model=RiderConfig, operation_id="read_rider_config")
async def config(request: Request) -> RiderConfig:
    s = request.app.state.runtime.settings
    return RiderConfig(tile_url=s.map_tile_url or None, tile_attribution=s.map_tile_attribution,
                       near_minutes_choices=list(riders.NEAR_MINUTES))


@router.get("/rider/profile", response_model=Profile, operation_id="read_rider_profile", responses=ERRORS)
async def read_profile(actor: CurrentActor, svc: ServicesDep) -> Profile:
    return Profile(**await riders.profile(actor, svc))


@router.patch("/rider/profile", response_model=Profile, operation_id="update_rider_profile", responses=ERRORS)
async def update_profile(body: ProfileUpdate, actor: CurrentActor, svc: ServicesDep) -> Profile:
    """Only the fields sent change; ``home`` (door-to-door riders only) must lie inside the service area."""
    home = riders.Home(body.home.address, body.home.lat, body.home.lon) if body.home is not None else None
    clear = "home" in body.model_fields_set and body.home is None
    return Profile(**await riders.update_profile(actor, svc, name=body.name, near_minutes=body.near_minutes,
                                                 home=home, clear_home=clear))


@router.post("/desk/rider-home", response_model=DeskHome, operation_id="read_rider_home_at_desk", responses=ERRORS)
async def desk_home(body: DeskHomeIn, actor: CurrentActor, svc: ServicesDep) -> DeskHome:
    """Town desk staff (operator) take a caller's saved home for a door-to-door booking. A POST, so
    the phone number stays out of URLs and logs."""
    return DeskHome(**await riders.desk_home(actor, body.phone, svc))


@router.post("/rider/line-link", response_model=LineLink, status_code=status.HTTP_201_CREATED,
             operation_id="start_line_link", responses=ERRORS)
async def line_link(actor: CurrentActor, svc: ServicesDep, request: Request) -> LineLink:
    """A one-time code to send to the town's LINE account; notices then come by LINE."""
    code, until = await riders.start_line_link(actor, svc)
    return LineLink(code=code, expires_at=local(until), friend_url=request.app.state.runtime.settings.line_friend_url)


@router.get("/rider/notices", response_model=list[NoticePublic], operation_id="list_rider_notices",
            responses=ERRORS)
async def list_notices(actor: CurrentActor, svc: ServicesDep) -> list[NoticePublic]:
    """The notices sent to me, newest first (at most 50)."""
    return [NoticePublic(kind=n["kind"], channel=n["channel"], status=n["status"], booking_id=n["booking_id"],
                         at=local(n["created_at"])) for n in await riders.notices(actor, svc)]


@router.get("/favourites", response_model=list[FavouritePublic], operation_id="list_favourites", responses=ERRORS)
async def list_favourites(actor: CurrentActor, svc: ServicesDep) -> list[FavouritePublic]:
    return [FavouritePublic(**f) for f in await riders.favourites(actor, svc)]


@router.post("/favourites", response_model=FavouritePublic, status_code=status.HTTP_201_CREATED,
             operation_id="add_favourite", responses=ERRORS)
async def add_favourite(body: FavouriteIn, actor: CurrentActor, svc: ServicesDep) -> FavouritePublic:
    fav = await riders.add_favourite(actor, svc, label=body.label, origin=body.origin_stop_id,
                                     destination=body.destination_stop_id, party_size=body.party_size,
                                     wheelchairs=body.wheelchairs)
    return FavouritePublic(**fav)


@router.delete("/favourites/{favourite_id}", status_code=status.HTTP_204_NO_CONTENT,
               operation_id="delete_favourite", responses=ERRORS)
async def delete_favourite(favourite_id: str, actor: CurrentActor, svc: ServicesDep) -> None:
    await riders.delete_favourite(actor, favourite_id, svc)
