"""Database, column types, tables and repositories; importing it registers every table."""

from backend.market_data.domain import BarSize
from backend.storage.market_data_tables import (
    CacheCoverage,
    CacheSeriesStats,
    MarketData,
    MarketDataCache,
)
from backend.storage.pacing_tables import PacingSlot
from backend.storage.refresh_job_tables import RefreshJobRow
from backend.storage.workflow_tables import (
    ExecutionStatus,
    LineageRecord,
    WorkflowExecution,
    WorkflowLog,
)

__all__ = [
    "BarSize",
    "CacheCoverage",
    "CacheSeriesStats",
    "ExecutionStatus",
    "LineageRecord",
    "MarketData",
    "MarketDataCache",
    "RefreshJobRow",
    "PacingSlot",
    "WorkflowExecution",
    "WorkflowLog",
]
