"""create_app(): settings, logging, container, lifespan and routers; `app` for uvicorn."""

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from loguru import logger

from backend.api.errors import install_error_handlers
from backend.api.middleware import HeadMiddleware, RequestMetricsMiddleware, TrustedHostMiddleware
from backend.api.routes import market_data_cache, strategies, system, workflows
from backend.config.settings import Settings, load_settings
from backend.containers import Container, build_container
from backend.core.logging import configure_logging
from backend.core.memory import keep_freed_memory
from backend.market_data import calendar as market_calendar
from backend.market_data.service import DataSourcePolicy

FRONTEND_DIST = Path(__file__).resolve().parents[1] / "frontend" / "dist"


def create_app(
    settings: Settings | None = None,
    container: Container | None = None,
    frontend_dist: Path = FRONTEND_DIST,
) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.LOG_LEVEL)
    keep_freed_memory()
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # ib_insync looks the loop up through get_event_loop(); under uvicorn that must be this one.
        asyncio.set_event_loop(asyncio.get_running_loop())
        # Sync routes run on anyio's threads, each holding at most one pooled connection: capped
        # at what the pool has left after the database threads, a burst of requests queues for
        # a thread instead of timing out on the pool.
        to_thread.current_default_thread_limiter().total_tokens = container.database().route_threads
        await asyncio.to_thread(market_calendar.warm_up)
        _build_routes_now(_app)
        policy = container.data_source_policy()
        logger.info(
            "starting: debug_mode={} cache_enabled={} policy={} database={} gateway={}:{}",
            settings.DEBUG_MODE,
            settings.CACHE_ENABLED,
            policy,
            container.database().dialect,
            settings.IB_HOST,
            settings.IB_PORT,
        )
        connection = container.ib_connection()
        # In DEBUG_MODE nothing connects at start-up; only an explicit refresh opens the gateway.
        if policy != DataSourcePolicy.CACHE_ONLY:
            connection.start_keeping_connected()
        # Executions a stopped process left running can never finish now: say so once.
        await container.strategy_executor().interrupt_unfinished()
        yield
        await container.refresh_jobs().cancel_running()
        await container.verify_jobs().cancel_running()
        await container.strategy_executor().close()
        await connection.close()
        await asyncio.to_thread(container.pacing_ledger().close)
        await asyncio.to_thread(container.lookup_counts().close)
        container.database().dispose()
        container.database_probe().close()

    app = FastAPI(title="Market data cache", version="0.1.0", lifespan=lifespan)
    app.state.container = container
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    # Added last is outermost: metrics see every request, HEAD drops the body of any answer
    # (a refused host's too), and the Host check comes before any route.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.ALLOWED_HOSTS)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(RequestMetricsMiddleware)
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(system.metrics_router)
    app.include_router(market_data_cache.router)
    app.include_router(workflows.router)
    app.include_router(strategies.router)
    _serve_frontend(app, frontend_dist)
    return app


def _build_routes_now(app: FastAPI) -> None:
    """FastAPI builds each included router's validators on its first request, ~100 ms of CPU on
    the event loop that would stall every request in flight then; build them before serving."""
    for route in app.router.routes:
        for build in ("effective_candidates", "effective_low_priority_routes"):
            if callable(getattr(route, build, None)):
                getattr(route, build)()


def _serve_frontend(app: FastAPI, frontend_dist: Path) -> None:
    """Serve the built UI at / so one port carries both the API and the UI."""
    if (frontend_dist / "index.html").is_file():
        app.mount("/", StaticFiles(directory=frontend_dist, html=True), name="frontend")
    else:
        logger.info("no built UI at {}; run `npm run build` in frontend/", frontend_dist)


def _module_app() -> FastAPI:
    # `uvicorn backend.main:app` imports this module; a bad setting stops it with one line.
    return create_app()


app = _module_app()
