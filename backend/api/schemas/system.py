"""API shapes of the system routes: health, liveness and the configuration in force."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class HealthPublic(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class HealthUnavailablePublic(BaseModel):
    """503: the database did not answer. Data routes answer 503 database_unavailable too."""

    status: Literal["unavailable"]
    database: Literal["unreachable"]
    detail: str
    code: Literal["database_unavailable"]


class LivenessPublic(BaseModel):
    status: Literal["ok"]


class GatewayStatus(BaseModel):
    """last_error: the latest failure to connect or drop of the link, kept after a reconnect
    so that a brief outage stays visible; `connected` says how things stand now."""

    connected: bool
    simulated: bool
    last_error: str | None
    last_error_at: datetime | None


class ConfigPublic(BaseModel):
    debug_mode: bool
    cache_enabled: bool
    cache_symbols: list[str]
    cache_exchange: str
    cache_ttl_hours: int
    ib_host: str
    ib_port: int
    api_token_required: bool
    gateway: GatewayStatus
