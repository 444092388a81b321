"""The dependency-injector container: the one place where parts are built and swapped."""

from dependency_injector import containers, providers

from backend.api.errors import error_summary
from backend.config.settings import Settings
from backend.ibkr.client import IBKRClient
from backend.ibkr.connection import IBConnection
from backend.ibkr.pacing import PacingScheduler, limits_scaled
from backend.market_data.inventory import CacheInventory
from backend.market_data.lookup_counts import LookupCounts
from backend.market_data.population import CachePopulationService
from backend.market_data.refresh_jobs import RefreshJobs, new_instance_id
from backend.market_data.request_budget import RequestPlanner
from backend.market_data.service import DataSourcePolicy, MarketDataService
from backend.market_data.stats import CacheStatsService
from backend.market_data.verify_jobs import VerifyJobs
from backend.storage.database import Database
from backend.storage.database_probe import DatabaseProbe
from backend.storage.market_data_repository import MarketDataCacheRepository
from backend.storage.pacing_ledger import DatabasePacingLedger
from backend.storage.refresh_job_repository import RefreshJobRepository
from backend.storage.series_lock import SeriesLocks
from backend.storage.types import utc_now
from backend.storage.workflow_repository import WorkflowRepository
from backend.workflows.executor import StrategyExecutor
from backend.workflows.strategies import default_registry


def choose_policy(debug_mode: bool, cache_enabled: bool) -> str:
    """DEBUG_MODE wins: cache only. Otherwise read through the cache, or go live without it."""
    if debug_mode:
        return DataSourcePolicy.CACHE_ONLY.value
    return (DataSourcePolicy.READ_THROUGH if cache_enabled else DataSourcePolicy.LIVE).value


def _market_data_service(
    policy, client, repository, config, clock, locks, lookups
) -> providers.Singleton:
    """The one way a MarketDataService provider is made; the policy and client differ."""
    return providers.Singleton(
        MarketDataService,
        repository=repository,
        policy=policy,
        client=client,
        ttl_hours=config.CACHE_TTL_HOURS,
        clock=clock,
        locks=locks,
        lookups=lookups,
    )


class Container(containers.DeclarativeContainer):
    wiring_config = containers.WiringConfiguration(
        packages=["backend.api.routes"], modules=["backend.api.deps"]
    )

    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=Settings)
    # Injected everywhere time matters, so tests move time instead of sleeping.
    clock = providers.Object(utc_now)

    database = providers.Singleton(
        Database,
        database_url=config.DATABASE_URL,
        pool_size=config.DB_POOL_SIZE,
        lock_connections=config.FETCH_CONCURRENCY,
    )
    market_data_repository = providers.Singleton(MarketDataCacheRepository, database=database)
    # Readiness: its own connection and thread, so health stays fast however busy the pool is.
    database_probe = providers.Singleton(DatabaseProbe, database_url=config.DATABASE_URL)
    # One per process: every path that fetches a series queues on the same per-series lock.
    series_locks = providers.Singleton(
        SeriesLocks, database=database, fetch_slots=config.FETCH_CONCURRENCY
    )
    # One per process: every service's lookups are tallied together and written by one thread.
    lookup_counts = providers.Singleton(LookupCounts, repository=market_data_repository)

    # One pacing budget per gateway, in the database: every process that talks to the gateway
    # (replicas, the CLI) takes its slots from the same ledger, so together they keep to IBKR's
    # limits. The scheduler queues this process's callers in arrival order in front of it.
    pacing_ledger = providers.Singleton(
        DatabasePacingLedger,
        database=database,
        gateway=providers.Callable("{}:{}".format, config.IB_HOST, config.IB_PORT),
    )
    pacing = providers.Singleton(
        PacingScheduler,
        limits=providers.Callable(limits_scaled, config.IB_PACING_SCALE),
        ledger=pacing_ledger,
    )
    ib_connection = providers.Singleton(
        IBConnection,
        host=config.IB_HOST,
        port=config.IB_PORT,
        client_id=config.IB_CLIENT_ID,
        connect_timeout=config.IB_CONNECT_TIMEOUT,
    )
    ibkr_client = providers.Singleton(
        IBKRClient, connection=ib_connection, pacing=pacing, clock=clock
    )

    data_source_policy = providers.Callable(choose_policy, config.DEBUG_MODE, config.CACHE_ENABLED)

    # The explicit way to fill the cache (API refresh, CLI); allowed in DEBUG_MODE too. Live mode's
    # workflows read through this same instance, so a refresh and a workflow share one fetch.
    refresh_service = _market_data_service(
        DataSourcePolicy.READ_THROUGH,
        ibkr_client,
        market_data_repository,
        config,
        clock,
        series_locks,
        lookup_counts,
    )

    # The path workflows read through. In DEBUG_MODE it is built without any IBKR client.
    market_data_service = providers.Selector(
        data_source_policy,
        cache_only=_market_data_service(
            DataSourcePolicy.CACHE_ONLY,
            None,
            market_data_repository,
            config,
            clock,
            series_locks,
            lookup_counts,
        ),
        read_through=refresh_service,
        live=_market_data_service(
            DataSourcePolicy.LIVE,
            ibkr_client,
            market_data_repository,
            config,
            clock,
            series_locks,
            lookup_counts,
        ),
    )

    # Every refresh and live workflow is costed in IBKR requests before anything is sent.
    request_planner = providers.Singleton(
        RequestPlanner,
        service=refresh_service,
        client=ibkr_client,
        limits=pacing.provided.limits,
        ceiling=config.REQUEST_CEILING,
    )

    # Cache management API: reads and clears the cache (never IBKR), statistics, refresh jobs.
    cache_inventory = providers.Singleton(
        CacheInventory,
        repository=market_data_repository,
        clock=clock,
        default_exchange=config.CACHE_EXCHANGE,
    )
    cache_stats_service = providers.Singleton(
        CacheStatsService, repository=market_data_repository, clock=clock, lookups=lookup_counts
    )
    # This process as the owner of the refresh jobs it runs: made once, at start-up.
    instance_id = providers.Singleton(new_instance_id)
    refresh_job_repository = providers.Singleton(RefreshJobRepository, database=database)
    # Jobs are rows, so every replica answers for every job; each runs as an asyncio task on
    # the loop of the process that owns it, which heartbeats it.
    refresh_jobs = providers.Singleton(
        RefreshJobs,
        service=refresh_service,
        connection=ib_connection,
        planner=request_planner,
        repository=refresh_job_repository,
        clock=clock,
        default_exchange=config.CACHE_EXCHANGE,
        instance_id=instance_id,
        describe_error=providers.Object(error_summary),
        budget_policy=config.REQUEST_BUDGET_POLICY,
        queue_ceiling=config.JOB_QUEUE_CEILING,
        heartbeat_s=config.JOB_HEARTBEAT_S,
        missed_heartbeats=config.JOB_MISSED_HEARTBEATS,
        keep_finished=config.JOB_KEEP_FINISHED,
        keep_days=config.JOB_KEEP_DAYS,
    )
    # Verify asks IBKR again: through the refresh service (its locks and pacing), refused in
    # DEBUG_MODE, which never contacts IBKR.
    verify_jobs = providers.Singleton(
        VerifyJobs,
        service=refresh_service,
        clock=clock,
        debug_mode=config.DEBUG_MODE,
        default_exchange=config.CACHE_EXCHANGE,
    )

    # Batch filling for the CLI: many series through refresh_service and the same pacing.
    cache_population_service = providers.Singleton(
        CachePopulationService,
        refresh_service=refresh_service,
        client=ibkr_client,
        repository=market_data_repository,
        clock=clock,
    )

    # Strategy workflows read through market_data_service, so DEBUG_MODE reaches them with no ifs.
    workflow_repository = providers.Singleton(WorkflowRepository, database=database)
    strategies = providers.Singleton(default_registry)
    strategy_executor = providers.Singleton(
        StrategyExecutor,
        market_data_service=market_data_service,
        repository=workflow_repository,
        strategies=strategies,
        exchange=config.CACHE_EXCHANGE,
        debug_mode=config.DEBUG_MODE,
        clock=clock,
        workflow_deadline_s=config.WORKFLOW_DEADLINE_S,
        instance_id=instance_id,
        heartbeat_s=config.JOB_HEARTBEAT_S,
        missed_heartbeats=config.JOB_MISSED_HEARTBEATS,
        # DEBUG_MODE sends nothing to IBKR: nothing to cost, and no client to cost it with.
        request_planner=providers.Selector(
            data_source_policy,
            cache_only=providers.Object(None),
            read_through=request_planner,
            live=request_planner,
        ),
    )


def build_container(settings: Settings) -> Container:
    container = Container(settings=providers.Object(settings))
    container.config.from_pydantic(settings)
    return container


async def close_command_parts(container: Container) -> None:
    """What a command (populate, resume, verify) leaves open, closed at its end: the gateway
    connection, then the pacing ledger, the lookup counts not yet written and the database pool,
    each after the parts that use it."""
    await container.ib_connection().close()
    container.pacing_ledger().close()
    container.lookup_counts().close()
    container.database().dispose()
