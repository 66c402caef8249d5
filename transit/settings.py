"""Typed settings, read from the environment (OKUMA_* or the usual DATABASE_URL / REDIS_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from transit.db import DEFAULT_DATABASE_URL

DEFAULT_HANDOVER_SECRET = "dev-handover-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OKUMA_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "OKUMA_DATABASE_URL")
    )
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "OKUMA_REDIS_URL"))
    data_dir: str | None = None
    environment: str = "development"  # development | production
    demo: bool = False  # seed demo accounts
    simulate_fleet: bool = False  # with demo: drive the fleet with the vehicle simulator
    clock_speed: float = 1.0  # >1 runs the demo clock faster than real time
    host: str = "127.0.0.1"
    port: int = 8000
    dispatcher: bool = True  # run the re-optimising dispatcher in this process
    reoptimise_interval_s: float = 120.0  # re-plan on this timer (and soon after cancellations)
    reoptimise_budget_s: float = 2.0  # solver time budget per re-plan
    evening_batch_local: str = "20:30"  # when next-day bookings are optimised together
    shift_days: int = 8  # how many days of shifts to lay out from the fleet file
    handover_secret: str = DEFAULT_HANDOVER_SECRET  # derives grocery handover codes
    ws_queue_size: int = 256  # messages held per live connection before a slow one is dropped
    bus_channel: str = "okuma:events"  # the Redis pub/sub channel (one per deployment)
    # rate limits by name (see transit/ratelimit.py), e.g. OKUMA_RATE_LIMITS='{"offers:rider": "20/minute"}'
    rate_limits: dict[str, str] = Field(default_factory=dict)
    token_ttl_days: int = 90  # a token stops working this long after it was issued (rotate before)
    # Notifier (docs/notifications.md): LINE Messaging API when both are set, else the log.
    line_channel_access_token: str | None = None
    line_channel_secret: str | None = None
    line_api_base: str = "https://api.line.me"
    line_friend_url: str | None = None  # shown on the rider page: "add the town's LINE account"
    # SMS through Twilio's Messages API (docs/notifications.md): on when the SID, the token and a
    # sender (a number, or a messaging service SID) are set; else one-time codes go to the log.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # Rider map: tile URL template ({z}/{x}/{y}); empty = the schematic of stops only, no tiles.
    map_tile_url: str | None = None
    map_tile_attribution: str = ""

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.environment != "development" and self.handover_secret == DEFAULT_HANDOVER_SECRET:
            raise ValueError("set OKUMA_HANDOVER_SECRET outside development")
        return self
