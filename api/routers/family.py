"""Family: a resident links a family member (their consent by a code, or at the town desk) and
books for them (``for_account_id`` on ``POST /api/v1/offers``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field
from starlette.convertors import StringConvertor, register_url_convertor

from api.deps import CurrentActor, ServicesDep
from api.routers.riders import ERRORS, PHONE, NotifierDep
from api.schemas import Strict
from transit import riders
from transit.clock import local

router = APIRouter(prefix="/api/v1/family", tags=["family"])

LINK_ID_PATTERN = r"fam_[A-Za-z0-9_\-]{1,60}"


class LinkIdConvertor(StringConvertor):
    """A link id (``fam_...``, made by the server): only such a segment routes to
    ``DELETE /{link_id}``, so ``/desk-links`` and ``/invitations`` serve POST alone (and say so in
    ``Allow``) instead of also routing DELETE to a link that cannot exist."""

    regex = LINK_ID_PATTERN


register_url_convertor("family_link", LinkIdConvertor())
LinkId = Annotated[str, Path(pattern=f"^{LINK_ID_PATTERN}$", description="fam_... (from GET /api/v1/family)")]


class FamilyPublic(BaseModel):
    link_id: str
    role: str = Field(..., description="guardian: I book for them; member: they book for me")
    account_id: str = Field(..., description="the other person's account (use as for_account_id)")
    name: str
    consent: str = Field(..., description="code | desk")
    since: datetime


class InvitationIn(Strict):
    phone: str = PHONE
    name: str = Field(..., min_length=1, max_length=100, description="the family member's name")


class InvitationPublic(BaseModel):
    invitation_id: str
    expires_at: datetime


class InvitationConfirm(Strict):
    code: str = Field(..., min_length=1, max_length=12)


class DeskLinkIn(Strict):
    guardian_phone: str = PHONE
    member_phone: str = PHONE
    member_name: str = Field(..., min_length=1, max_length=100)


class DeskLinkPublic(BaseModel):
    link_id: str


def _public(f: dict) -> FamilyPublic:
    return FamilyPublic(**{**f, "since": local(f["since"])})


@router.get("", response_model=list[FamilyPublic], operation_id="list_family", responses=ERRORS)
async def list_family(actor: CurrentActor, svc: ServicesDep) -> list[FamilyPublic]:
    return [_public(f) for f in await riders.family(actor, svc)]


@router.post("/invitations", response_model=InvitationPublic, status_code=status.HTTP_201_CREATED,
             operation_id="invite_family_member", responses=ERRORS)
async def invite(body: InvitationIn, actor: CurrentActor, svc: ServicesDep, notifier: NotifierDep) -> InvitationPublic:
    """Send a consent code to the family member's phone; if they agree they tell you the code."""
    inv_id, until = await riders.invite_family(actor, body.phone, body.name, svc, notifier)
    return InvitationPublic(invitation_id=inv_id, expires_at=local(until))


@router.post("/invitations/{invitation_id}/confirm", response_model=FamilyPublic, operation_id="confirm_family_member",
             responses=ERRORS)
async def confirm(invitation_id: str, body: InvitationConfirm, actor: CurrentActor, svc: ServicesDep) -> FamilyPublic:
    return _public(await riders.confirm_family(actor, invitation_id, body.code, svc))


@router.post("/desk-links", response_model=DeskLinkPublic, status_code=status.HTTP_201_CREATED,
             operation_id="record_family_consent_at_desk", responses=ERRORS)
async def desk(body: DeskLinkIn, actor: CurrentActor, svc: ServicesDep) -> DeskLinkPublic:
    """Town desk staff (operator) record a consent given in person."""
    return DeskLinkPublic(link_id=await riders.desk_link(actor, body.guardian_phone, body.member_phone,
                                                         body.member_name, svc))


class DeskLookupIn(Strict):
    phone: str = PHONE


class DeskResident(BaseModel):
    account_id: str
    name: str
    phone_masked: str
    links: list[FamilyPublic] = Field(..., description="active links, seen from this resident's side")


@router.post("/desk-lookup", response_model=DeskResident, operation_id="look_up_resident_at_desk", responses=ERRORS)
async def desk_lookup(body: DeskLookupIn, actor: CurrentActor, svc: ServicesDep) -> DeskResident:
    """Town desk staff (operator) find a resident by phone number, with their family links. A POST,
    so that the phone number stays out of URLs (and access logs)."""
    r = await riders.desk_resident(actor, body.phone, svc)
    return DeskResident(**{**r, "links": [_public(f) for f in r["links"]]})


@router.delete("/{link_id:family_link}", status_code=status.HTTP_204_NO_CONTENT, operation_id="end_family_link",
               responses=ERRORS)
async def unlink(link_id: LinkId, actor: CurrentActor, svc: ServicesDep) -> None:
    await riders.unlink_family(actor, link_id, svc)
