"""SQLModel tables and API shapes; importing this package registers every table."""

from backend.models.market_data import (
    BarSize,
    CacheCoverage,
    CacheSeriesStats,
    MarketData,
    MarketDataCache,
)
from backend.models.workflow import ExecutionStatus, LineageRecord, WorkflowExecution, WorkflowLog

__all__ = [
    "BarSize",
    "CacheCoverage",
    "CacheSeriesStats",
    "ExecutionStatus",
    "LineageRecord",
    "MarketData",
    "MarketDataCache",
    "WorkflowExecution",
    "WorkflowLog",
]
