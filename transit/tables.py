"""Table definitions (SQLAlchemy Core). Every timestamp is timezone-aware and stored in UTC."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import (
    JSON,
    TIMESTAMP,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """TIMESTAMP WITH TIME ZONE that always stores UTC and always returns aware UTC datetimes.

    SQLite keeps no offset, so an aware datetime is converted to UTC before it is written.
    """

    impl = TIMESTAMP(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


TS = UTCDateTime()

stops = Table(
    "stops",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name_ja", String(200), nullable=False),
    Column("name_kana", String(200), nullable=False),
    Column("name_en", String(200), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("kiosk", Boolean, nullable=False, default=False),
    Column("wheelchair", Boolean, nullable=False, default=False),
    Column("zone", String(32), nullable=False, default="other"),
)

vehicles = Table(
    "vehicles",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name_ja", String(200), nullable=False),
    Column("name_en", String(200), nullable=False),
    Column("seats", Integer, nullable=False),
    Column("wheelchairs", Integer, nullable=False),
    Column("parcels", Integer, nullable=False),
    Column("depot_stop_id", String(64), ForeignKey("stops.id"), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("plan_version", Integer, nullable=False, default=0),
    Column("lat", Float),
    Column("lon", Float),
    Column("position_at", TS),
    # where and when the stored plan was timed from: {"lat", "lon", "at_s"}
    Column("plan_origin", JSON),
    # the latest ETAs: {"computed_s", "plan_version", "position_at_s", "at_risk", "etas"}
    Column("etas", JSON),
)

shifts = Table(
    "shifts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("vehicle_id", String(64), ForeignKey("vehicles.id"), nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Index("ix_shifts_vehicle_start", "vehicle_id", "starts_at"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("stop_id", String(64), ForeignKey("stops.id")),  # kiosk: the stop it is bound to
    Column("vehicle_id", String(64), ForeignKey("vehicles.id")),  # driver: the vehicle
    Column("door_to_door", Boolean, nullable=False, default=False),
    Column("locale", String(8), nullable=False, default="ja"),
    Column("created_at", TS, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("rider_card", String(64)),  # rider: the number on their rider card (kiosk, desk)
    Index("ix_accounts_rider_card", "rider_card", unique=True),
    Column("token_expires_at", TS),  # NULL: issued before tokens expired (works until rotated)
)

offers = Table(
    "offers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("request", JSON, nullable=False),
    Column("vehicle_id", String(64), ForeignKey("vehicles.id"), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("pickup_earliest", TS, nullable=False),
    Column("pickup_latest", TS, nullable=False),
    Column("dropoff_latest", TS, nullable=False),
    Column("planned_pickup", TS, nullable=False),
    Column("planned_dropoff", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("booking_id", String(64)),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("number", String(8), nullable=False),  # transit/numbers.py: short, unique, read aloud
    Column("account_id", String(64), ForeignKey("accounts.id")),
    Column("booked_by_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("offer_id", String(64), ForeignKey("offers.id"), unique=True),
    Column("idempotency_key", String(200)),
    Column("channel", String(16), nullable=False),
    Column("kind", String(16), nullable=False, default="ride"),
    Column("passenger_name", String(200), nullable=False),
    Column("rider_card", String(64)),
    Column("contact_phone", String(32)),
    Column("party_size", Integer, nullable=False),
    Column("wheelchairs", Integer, nullable=False),
    Column("parcels", Integer, nullable=False),
    Column("origin_stop_id", String(64), ForeignKey("stops.id")),
    Column("origin_lat", Float, nullable=False),
    Column("origin_lon", Float, nullable=False),
    Column("destination_stop_id", String(64), ForeignKey("stops.id")),
    Column("destination_lat", Float, nullable=False),
    Column("destination_lon", Float, nullable=False),
    Column("origin_address", String(200)),  # door-to-door: the address as told
    Column("destination_address", String(200)),
    Column("driver_note", String(200)),  # a note for the driver (door-to-door)
    Column("status", String(16), nullable=False),
    Column("vehicle_id", String(64), ForeignKey("vehicles.id")),
    Column("pickup_earliest", TS, nullable=False),
    Column("pickup_latest", TS, nullable=False),
    Column("dropoff_latest", TS, nullable=False),
    Column("dropoff_earliest", TS),  # deliveries: the start of the chosen window (rides: none)
    Column("max_ride_s", Integer, nullable=False),
    Column("pickup_service_s", Integer, nullable=False),
    Column("dropoff_service_s", Integer, nullable=False),
    Column("planned_pickup", TS),
    Column("planned_dropoff", TS),
    Column("picked_up_at", TS),
    Column("completed_at", TS),
    Column("cancel_reason", Text),
    # reality broke the promise: when it was flagged, and the widened limits planned with since
    Column("promise_broken_at", TS),
    Column("relaxed", JSON),  # {"pickup_latest_s", "dropoff_latest_s", "max_ride_s"}
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("booked_by_id", "idempotency_key", name="uq_bookings_idempotency"),
    Index("ix_bookings_account_status", "account_id", "status"),
    Index("ix_bookings_vehicle_status", "vehicle_id", "status"),
    Index("ix_bookings_number", "number", unique=True),
)

event_log = Table(
    "event_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", TS, nullable=False),
    Column("type", String(64), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_event_log_aggregate", "aggregate_id"),
)

audit_log = Table(
    # Who read a rider's personal data (operators and admins), when, and whose.
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", TS, nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("actor_role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False),  # a booking id
    Index("ix_audit_log_subject", "subject_id"),
)

device_events = Table(
    # Tablet events applied exactly once: the client event id is the key.
    "device_events",
    metadata,
    Column("client_event_id", String(100), primary_key=True),
    Column("vehicle_id", String(64), ForeignKey("vehicles.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("result", JSON, nullable=False),
)

deliveries = Table(
    # A delivery booking's store order: what the store prepares and how its handover went.
    "deliveries",
    metadata,
    Column("booking_id", String(64), ForeignKey("bookings.id"), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("order_number", String(32)),
    Column("shopping_list", Text),
    Column("temperature", String(16), nullable=False),  # ambient | chilled | frozen
    Column("parcels_ready", Integer),
    Column("ready_at", TS),
    Column("return_stop_id", String(64), ForeignKey("stops.id")),
    Column("returned_at", TS),
    Column("handover_failures", Integer, nullable=False, default=0),
    Column("locked_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_deliveries_store", "store_id", "created_at"),
)

# ------------------------------------------------------------ riders, family, favourites, notices

riders = Table(
    # A resident signed in by phone number: the phone (to send sign-in codes), an optional LINE
    # user id (linked by a one-time code) and how many minutes ahead "the minibus is near" is told.
    "riders",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), primary_key=True),
    Column("phone", String(20), nullable=False, unique=True),  # E.164, e.g. +819012345678
    Column("line_user_id", String(64), unique=True),
    Column("near_minutes", Integer, nullable=False, default=5),
    Column("created_at", TS, nullable=False),
)

rider_homes = Table(
    # A door-to-door rider's home, set once by the rider (address as written, and the pin): the
    # default "home" of their ride and delivery forms and the desk's door-to-door entry. Only the
    # rider and the operator read it; retention forgets it when the rider stops using the service.
    "rider_homes",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), primary_key=True),
    Column("address", String(200), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("updated_at", TS, nullable=False),
)

one_time_codes = Table(
    # Every one-time code (sign-in, LINE link, family consent): only a hash of the code is kept.
    "one_time_codes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # sign_in | line_link | family
    Column("subject", String(64), nullable=False),  # the phone (sign_in) or the account id
    Column("code_hash", String(64), nullable=False),
    Column("data", JSON, nullable=False, default=dict),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("used_at", TS),
    Index("ix_one_time_codes_subject", "purpose", "subject", "created_at"),
    Index("ix_one_time_codes_hash", "purpose", "code_hash"),
)

family_links = Table(
    # A guardian may book for a family member and is told when they boarded or were not at the stop.
    "family_links",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("guardian_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("member_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("consent", String(16), nullable=False),  # desk | code
    Column("consented_by", String(64), nullable=False),  # the operator's or the member's account
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    UniqueConstraint("guardian_id", "member_id", name="uq_family_links_pair"),
)

favourites = Table(
    "favourites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("origin_stop_id", String(64), ForeignKey("stops.id"), nullable=False),
    Column("destination_stop_id", String(64), ForeignKey("stops.id"), nullable=False),
    Column("party_size", Integer, nullable=False, default=1),
    Column("wheelchairs", Integer, nullable=False, default=0),
    Column("created_at", TS, nullable=False),
    Index("ix_favourites_account", "account_id"),
)

sent_notices = Table(
    # One row per notice key: a retried event or a second server process never sends twice.
    "sent_notices",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # sending | sent | failed
    Column("attempts", Integer, nullable=False, default=1),
    Column("booking_id", String(64)),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

tomp_webhooks = Table(
    # One webhook per MaaS account (TOMP callbackUrl + the secret its events are signed with).
    "tomp_webhooks",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("callback_url", String(500), nullable=False),
    Column("secret", String(200), nullable=False),  # kept in clear: it signs (HMAC) every delivery
    Column("maas_id", String(200), nullable=False),
    Column("language", String(8), nullable=False),  # ja | en: the language of the comment texts
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

tomp_outbox = Table(
    # One row per webhook event (id = the event id): the exact body is kept, so a retry resends it.
    "tomp_outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("tomp_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("path", String(300), nullable=False),  # under the callback URL: /legs/{id}/events, ...
    Column("body", Text, nullable=False),
    Column("eta_s", Integer),  # ETA notifications: the pickup ETA sent (epoch seconds)
    Column("status", String(16), nullable=False),  # pending | sending | sent | failed | refused
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(100)),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_tomp_outbox_status", "status", "updated_at"),
    Index("ix_tomp_outbox_tomp_id", "tomp_id", "kind"),
)
