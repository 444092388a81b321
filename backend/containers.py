"""The dependency-injector container: the one place where parts are built and swapped."""

from dependency_injector import containers, providers

from backend.config.settings import Settings
from backend.core.db import Database
from backend.models.types import utc_now


class Container(containers.DeclarativeContainer):
    wiring_config = containers.WiringConfiguration(packages=["backend.api.routes"])

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=Settings)
    # Injected everywhere time matters, so tests move time instead of sleeping.
    clock = providers.Object(utc_now)

    database = providers.Singleton(Database, database_url=config.DATABASE_URL)


def build_container(settings: Settings) -> Container:
    container = Container(settings=providers.Object(settings))
    container.config.from_pydantic(settings)
    return container
