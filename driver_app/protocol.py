"""The live channels' typed message protocol: JSON objects, a discriminated union on ``type``.

Three channels share these models:

* the driver tablet (``/ws/driver``): ``TabletMessage`` in, ``ServerToTablet`` out;
* the rider page (``/ws/bookings/{id}``): ``RiderServerMessage`` out (``ping``/``pong`` in);
* the operator console (``/ws/operator``): ``OperatorServerMessage`` out.

Times are ISO 8601 with an offset (the server sends Asia/Tokyo local time). Sequence numbers
(``seq``) are per vehicle, equal to the vehicle's plan version, so they only ever rise, also
across server restarts. Every (re)connect starts with ``hello`` then a full ``snapshot``;
``delta`` messages follow. A delta carries the full replacement list of visits, so a tablet that
sees a gap in ``seq`` loses nothing; it may still ask for a ``resync``.

This module imports pydantic only, so the tablet client in ``driver_app/`` can import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
HEARTBEAT_S = 15  # both sides send a ping at least this often; 3 missed = the link is dead


class _In(BaseModel):
    # Messages from devices: unknown fields are refused, so typos surface at once.
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    # Messages to devices: a newer server may add fields; clients must ignore what they do not know.
    model_config = ConfigDict(extra="ignore")


# ------------------------------------------------------------------------------ the plan


class VisitOut(_Out):
    """One planned stop of the vehicle, with only what the driver needs for the job."""

    visit_id: str = Field(..., description="'<booking_id>:<kind>', stable across plan versions")
    booking_id: str
    kind: Literal["pickup", "dropoff"]
    booking_kind: Literal["ride", "grocery"] = "ride"
    status: str = Field(..., description="booking status: confirmed | arriving | on_board")
    stop_id: str | None = None
    stop_name_ja: str = ""
    stop_name_en: str = ""
    lat: float
    lon: float
    planned_at: datetime = Field(..., description="planned start of service (after any wait)")
    arrival_at: datetime | None = Field(None, description="planned arrival at the stop")
    departure_at: datetime | None = Field(None, description="planned departure (service done)")
    wait_until: datetime | None = Field(
        None, description="set when the schedule holds the vehicle here: start of service > arrival + 60 s")
    eta: datetime | None = None
    window_start: datetime | None = Field(None, description="pickup: the promised window")
    window_end: datetime | None = Field(None, description="pickup: window end; dropoff: latest arrival")
    passenger_name: str = Field("", description="the name as given at booking")
    booking_number: str = Field("", description="the booking number (called out when no name was given)")
    address: str | None = Field(None, description="door-to-door (no stop_id): the address as told")
    note: str | None = Field(None, description="door-to-door: the rider's note for the driver")
    contact_phone: str | None = Field(None, description="door-to-door pickup only: the number to call")
    party_size: int
    wheelchairs: int = 0
    parcels: int = 0
    handover_code_required: bool = Field(False, description="a grocery parcel: ask for the code")
    arrived_at: datetime | None = None


class PlanOut(_Out):
    vehicle_id: str
    plan_version: int
    visits: list[VisitOut]


# ------------------------------------------------------------------------ server -> tablet


class ServerHello(_Out):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    vehicle_id: str
    vehicle_name_ja: str = ""
    vehicle_name_en: str = ""
    server_time: datetime
    heartbeat_s: int = HEARTBEAT_S
    no_show_wait_s: int
    arrival_early_s: int = Field(900, description="arrived this long before a pickup window needs the vehicle near the stop")
    arrival_near_m: int = Field(150, description="'near the stop' for that rule, metres")
    event_future_tolerance_s: int = Field(60, description="event times later than server time by more are refused")
    resumed_from_seq: int | None = Field(None, description="the last_seq the tablet sent, echoed")


class Snapshot(_Out):
    type: Literal["snapshot"] = "snapshot"
    seq: int
    plan_version: int
    vehicle_id: str
    visits: list[VisitOut]
    on_break: bool = False
    generated_at: datetime


class Delta(_Out):
    type: Literal["delta"] = "delta"
    seq: int
    plan_version: int
    vehicle_id: str
    reason: str = Field(..., description="booking | cancellation | reoptimised | boarded | no_show | ...")
    visits: list[VisitOut] = Field(..., description="the full new plan (replaces the old one)")
    added: list[str] = Field(default_factory=list, description="booking ids new in the plan")
    removed: list[str] = Field(default_factory=list, description="booking ids gone from the plan")
    moved: list[str] = Field(default_factory=list, description="booking ids whose order or time changed")
    generated_at: datetime
    committed_ts: float | None = Field(
        None, description="server wall clock (Unix s) when the commit reached the hub; for latency figures")


AckResult = Literal["applied", "duplicate", "rejected"]


class Ack(_Out):
    type: Literal["ack"] = "ack"
    client_event_id: str
    result: AckResult
    code: str | None = Field(None, description="for 'rejected': the error code")
    message_ja: str = ""
    message_en: str = ""


class ErrorMessage(_Out):
    type: Literal["error"] = "error"
    code: str = Field(..., description="InvalidJson | InvalidMessage | UnknownType | Unauthorised | Forbidden | ...")
    message_ja: str
    message_en: str
    client_event_id: str | None = None


class Ping(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["ping"] = "ping"
    t: float | None = Field(None, description="sender's clock, echoed in the pong")


class Pong(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["pong"] = "pong"
    t: float | None = None


class VisitEta(_Out):
    booking_id: str
    kind: Literal["pickup", "dropoff"]
    eta: datetime
    planned_at: datetime
    promised_latest: datetime | None = None
    late_s: int = Field(0, description="seconds past the promise (0 = on time)")
    at_risk: bool = False


class EtaUpdate(_Out):
    type: Literal["eta"] = "eta"
    vehicle_id: str
    plan_version: int
    computed_at: datetime
    etas: list[VisitEta]




# ------------------------------------------------------------------------ tablet -> server


class TabletHello(_In):
    """First message (or give ``?token=`` on the URL): the driver token and the last seq seen."""

    type: Literal["hello"] = "hello"
    token: str | None = Field(None, max_length=300)
    vehicle_id: str | None = Field(None, max_length=64, description="must match the driver's vehicle")
    last_seq: int | None = Field(None, ge=0)
    client: str | None = Field(None, max_length=100, description="app name and version")


class _Event(_In):
    client_event_id: str = Field(..., min_length=1, max_length=100, description="unique per event; resend as is")
    at: AwareDatetime | None = Field(None, description="when it happened on the tablet (offline replay)")


class PositionReport(_Event):
    type: Literal["position"] = "position"
    lat: float = Field(..., ge=-90, le=90)
    lon: float = Field(..., ge=-180, le=180)
    heading: float | None = Field(None, ge=0, lt=360)
    speed_kmh: float | None = Field(None, ge=0, le=200)


class Arrived(_Event):
    """At a stop. ``booking_ids`` names the visits; else every next visit at ``stop_id``."""

    type: Literal["arrived"] = "arrived"
    stop_id: str | None = Field(None, max_length=64)
    booking_ids: list[str] = Field(default_factory=list, max_length=50)
    lat: float | None = Field(None, ge=-90, le=90, description="where the tablet is (for the early-arrival rule)")
    lon: float | None = Field(None, ge=-180, le=180)


class Boarded(_Event):
    type: Literal["boarded"] = "boarded"
    booking_id: str = Field(..., max_length=64)
    count: int = Field(..., ge=1, le=50)


class NoShow(_Event):
    """Allowed only ``no_show_wait_s`` after arrival at the pickup (else rejected)."""

    type: Literal["no_show"] = "no_show"
    booking_id: str = Field(..., max_length=64)


class DroppedOff(_Event):
    type: Literal["dropped_off"] = "dropped_off"
    booking_id: str = Field(..., max_length=64)


class ParcelPickedUp(_Event):
    type: Literal["parcel_picked_up"] = "parcel_picked_up"
    booking_id: str = Field(..., max_length=64)
    code: str | None = Field(None, max_length=16)


class ParcelHandedOver(_Event):
    type: Literal["parcel_handed_over"] = "parcel_handed_over"
    booking_id: str = Field(..., max_length=64)
    code: str = Field(..., min_length=1, max_length=16, description="the recipient's handover code")


class BreakStart(_Event):
    type: Literal["break_start"] = "break_start"


class BreakEnd(_Event):
    type: Literal["break_end"] = "break_end"


class Resync(_In):
    """Ask for a fresh snapshot (e.g. after a gap in seq)."""

    type: Literal["resync"] = "resync"


TabletEvent = (
    PositionReport | Arrived | Boarded | NoShow | DroppedOff | ParcelPickedUp | ParcelHandedOver
    | BreakStart | BreakEnd
)

TabletMessage = Annotated[
    (
        TabletHello | PositionReport | Arrived | Boarded | NoShow | DroppedOff | ParcelPickedUp
        | ParcelHandedOver | BreakStart | BreakEnd | Resync | Ping | Pong
    ),
    Field(discriminator="type"),
]

EVENT_TYPES = frozenset(
    {"position", "arrived", "boarded", "no_show", "dropped_off", "parcel_picked_up",
     "parcel_handed_over", "break_start", "break_end"}
)


# --------------------------------------------------------------------------- rider page


class BookingLive(_Out):
    """A rider's booking as it lives: status, planned and expected times, where the bus is."""

    type: Literal["booking"] = "booking"
    booking_id: str
    number: str = Field("", description="the booking number, as in the REST answers")
    status: str
    vehicle_id: str | None = None
    vehicle_name_ja: str = ""
    vehicle_name_en: str = ""
    pickup_window_start: datetime
    pickup_window_end: datetime
    latest_dropoff: datetime
    planned_pickup: datetime | None = None
    planned_dropoff: datetime | None = None
    eta_pickup: datetime | None = None
    eta_dropoff: datetime | None = None
    vehicle_lat: float | None = None
    vehicle_lon: float | None = None
    minutes_away: int | None = Field(
        None, description="minutes until the expected pickup, by the server's clock (the page's 'near' notice)")
    at_risk: bool = False
    handover_code: str | None = Field(None, description="a delivery: the code the recipient gives the driver")
    delivery_status: str | None = Field(
        None, description="a delivery: ordered | ready | picked_up | delivered | returning | returned | locked | cancelled")
    message_ja: str = ""
    message_en: str = ""
    updated_at: datetime


class PromiseAtRiskOut(_Out):
    type: Literal["promise_at_risk"] = "promise_at_risk"
    booking_id: str
    vehicle_id: str
    expected: datetime
    promised_latest: datetime
    late_s: int
    message_ja: str
    message_en: str


class PromiseClearedOut(_Out):
    """A promise flagged at risk is no longer at risk: once, when the ETA is back inside it
    (``on_time``), the booking ended (``ended``) or it moved to another vehicle (``moved``)."""

    type: Literal["promise_cleared"] = "promise_cleared"
    booking_id: str
    vehicle_id: str
    reason: Literal["on_time", "ended", "moved"]


class PromiseBrokenOut(_Out):
    """Reality broke the promise: the plan now keeps the earliest feasible time (never silently)."""

    type: Literal["promise_broken"] = "promise_broken"
    booking_id: str
    vehicle_id: str
    kind: Literal["pickup", "dropoff"]
    promised_latest: datetime
    expected: datetime
    message_ja: str
    message_en: str


RiderServerMessage = Annotated[
    BookingLive | PromiseAtRiskOut | PromiseClearedOut | PromiseBrokenOut | ErrorMessage | Ping | Pong,
    Field(discriminator="type"),
]


# ----------------------------------------------------------------------- operator console


class VehicleLive(_Out):
    type: Literal["vehicle"] = "vehicle"
    vehicle_id: str
    name_ja: str
    name_en: str
    lat: float
    lon: float
    position_at: datetime | None = None
    plan_version: int
    visits_left: int
    next_stop_id: str | None = None
    on_break: bool = False
    connected: bool = False


class PlanChangedOut(_Out):
    type: Literal["plan_changed"] = "plan_changed"
    vehicle_id: str
    plan_version: int
    reason: str
    booking_ids: list[str] = Field(default_factory=list)


class ReplanNeeded(_Out):
    type: Literal["replan_needed"] = "replan_needed"
    vehicle_id: str
    reason: str
    booking_id: str | None = None


class BookingChangedOut(_Out):
    """A booking was made, cancelled or changed status (ids and status only: the console reads
    the details it is allowed to see over REST)."""

    type: Literal["booking_changed"] = "booking_changed"
    booking_id: str
    vehicle_id: str | None = None
    status: str


class HandoverLockedOut(_Out):
    """Five wrong handover codes: the delivery is locked and goes back to its store. Call the resident."""

    type: Literal["handover_locked"] = "handover_locked"
    booking_id: str
    vehicle_id: str | None = None
    store_id: str
    failures: int
    message_ja: str = "受け渡しコードの誤りが続いたため、配達を止めました。お客様に連絡してください。"
    message_en: str = "Too many wrong handover codes: the delivery is locked. Please call the resident."


OperatorServerMessage = Annotated[
    (
        VehicleLive | PlanChangedOut | PromiseAtRiskOut | PromiseClearedOut | PromiseBrokenOut | HandoverLockedOut
        | ReplanNeeded | BookingChangedOut | ErrorMessage | Ping | Pong
    ),
    Field(discriminator="type"),
]


ServerToTablet = Annotated[
    (
        ServerHello | Snapshot | Delta | Ack | ErrorMessage | Ping | Pong | EtaUpdate
        | PromiseAtRiskOut | PromiseClearedOut
    ),
    Field(discriminator="type"),
]


TABLET_MESSAGE: TypeAdapter[TabletMessage] = TypeAdapter(TabletMessage)
SERVER_TO_TABLET: TypeAdapter[ServerToTablet] = TypeAdapter(ServerToTablet)
RIDER_MESSAGE: TypeAdapter[RiderServerMessage] = TypeAdapter(RiderServerMessage)
OPERATOR_MESSAGE: TypeAdapter[OperatorServerMessage] = TypeAdapter(OperatorServerMessage)


def parse_tablet(raw: str | bytes) -> TabletMessage:
    """Parse one tablet frame; raises pydantic.ValidationError."""
    return TABLET_MESSAGE.validate_json(raw)


def parse_server(raw: str | bytes) -> ServerToTablet:
    """Parse one server frame (for clients)."""
    return SERVER_TO_TABLET.validate_json(raw)


def dump(msg: BaseModel) -> str:
    return msg.model_dump_json(exclude_none=False)
