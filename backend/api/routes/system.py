"""Health and public configuration of the running service."""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from backend.config.settings import Settings
from backend.containers import Container
from backend.core.db import Database
from backend.services.ib_connection import IBConnection

router = APIRouter(prefix="/api", tags=["system"])


class HealthPublic(BaseModel):
    status: str
    database: str


class GatewayStatus(BaseModel):
    connected: bool
    simulated: bool
    last_error: str | None


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


@router.get("/health", response_model=HealthPublic)
@inject
def health(database: Annotated[Database, Depends(Provide[Container.database])]) -> HealthPublic:
    """Whether the service is up and its database answers."""
    reachable = database.is_reachable()
    return HealthPublic(
        status="ok" if reachable else "degraded", database="ok" if reachable else "unreachable"
    )


@router.get("/config", response_model=ConfigPublic)
@inject
def config(
    settings: Annotated[Settings, Depends(Provide[Container.settings])],
    connection: Annotated[IBConnection, Depends(Provide[Container.ib_connection])],
) -> ConfigPublic:
    """The cache configuration in force. Secrets are never returned."""
    return ConfigPublic(
        debug_mode=settings.DEBUG_MODE,
        cache_enabled=settings.CACHE_ENABLED,
        cache_symbols=settings.CACHE_SYMBOLS,
        cache_exchange=settings.CACHE_EXCHANGE,
        cache_ttl_hours=settings.CACHE_TTL_HOURS,
        ib_host=settings.IB_HOST,
        ib_port=settings.IB_PORT,
        api_token_required=settings.API_TOKEN is not None,
        gateway=GatewayStatus(
            connected=connection.connected,
            simulated=settings.IB_SIMULATOR_CONTROL_URL is not None,
            last_error=connection.last_error,
        ),
    )
