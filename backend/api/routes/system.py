"""Health, public configuration and metrics of the running service."""

from collections import Counter
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from backend.api.schemas.system import (
    ConfigPublic,
    GatewayStatus,
    HealthPublic,
    HealthUnavailablePublic,
    LivenessPublic,
)
from backend.config.settings import Settings
from backend.containers import Container
from backend.core import metrics
from backend.ibkr.connection import IBConnection
from backend.market_data.refresh_jobs import RefreshJobs
from backend.storage.database import Database
from backend.storage.database_probe import DatabaseProbe

router = APIRouter(prefix="/api", tags=["system"])
# At the root, where Prometheus looks by default. Unauthenticated, behind the Host check.
metrics_router = APIRouter(tags=["system"])


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthUnavailablePublic, "description": "The database is down"}},
)
@inject
async def health(
    probe: Annotated[DatabaseProbe, Depends(Provide[Container.database_probe])],
) -> HealthPublic | JSONResponse:
    """Readiness: 200 when the database answers, else 503. Point a load balancer here.

    Cheap under any load: concurrent calls share one SELECT 1 on a connection of its own, and
    wait for it at most a couple of seconds.
    """
    problem = await probe.problem()
    if problem is None:
        return HealthPublic(status="ok", database="ok")
    body = HealthUnavailablePublic(
        status="unavailable",
        database="unreachable",
        detail=f"the database does not answer: {problem}",
        code="database_unavailable",
    )
    return JSONResponse(body.model_dump(), status_code=503)


@router.get("/health/live", response_model=LivenessPublic)
async def liveness() -> LivenessPublic:
    """Liveness: 200 whenever the process serves requests; never looks at the database.

    For a supervisor deciding whether to restart the process: a database outage is not
    cured by restarting, so it does not fail this check.
    """
    return LivenessPublic(status="ok")


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
            last_error_at=connection.last_error_at,
        ),
    )


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
@inject
async def prometheus_metrics(
    database: Annotated[Database, Depends(Provide[Container.database])],
    jobs: Annotated[RefreshJobs, Depends(Provide[Container.refresh_jobs])],
) -> Response:
    """Prometheus text format: requests, latency, cache lookups, gateway, pacing, pool, jobs."""
    body = metrics.render(database.connections_in_use(), _jobs_by_state(jobs))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _jobs_by_state(jobs: RefreshJobs) -> dict[str, int]:
    # Read on the event loop, where jobs change state, so the snapshot is consistent.
    return dict(Counter(job.status for job in jobs.jobs()))
