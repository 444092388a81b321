"""create_app(): settings, logging, container, lifespan and routers; `app` for uvicorn."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from loguru import logger

from backend.api.routes import system
from backend.config.settings import Settings, load_settings
from backend.containers import Container, build_container
from backend.core.logging import configure_logging


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.LOG_LEVEL)
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        logger.info(
            "starting: debug_mode={} cache_enabled={} database={}",
            settings.DEBUG_MODE,
            settings.CACHE_ENABLED,
            container.database().dialect,
        )
        yield
        container.database().dispose()

    app = FastAPI(title="Market data cache", version="0.1.0", lifespan=lifespan)
    app.state.container = container
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.include_router(system.router)
    return app


def _module_app() -> FastAPI:
    # `uvicorn backend.main:app` imports this module; a bad setting stops it with one line.
    return create_app()


app = _module_app()
