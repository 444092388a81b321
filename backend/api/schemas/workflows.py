"""API shapes of the workflow routes: the run request, executions, logs and lineage."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from backend.api.schemas.inputs import DaysBack, Symbol
from backend.market_data.domain import MAX_SYMBOLS_PER_REQUEST, BarSize


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: StrictStr = Field(min_length=1, max_length=64)
    # The same symbol rule as the cache routes: exactly as written, lower case upper-cased.
    symbols: list[Symbol] = Field(min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST)
    data_type: BarSize = BarSize.D1
    lookback_days: DaysBack = 30
    params: dict[str, StrictInt | StrictFloat] = Field(default_factory=dict)


class ExecutionPublic(BaseModel):
    id: int
    strategy: str
    status: str
    debug_mode: bool
    symbols: list[str]
    data_type: str
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionsPublic(BaseModel):
    data: list[ExecutionPublic]
    count: int


class LogPublic(BaseModel):
    step: str
    level: str
    message: str
    created_at: datetime


class LineageMetadataPublic(BaseModel):
    data_source: str
    debug_mode: bool
    cache_hit: str
    bar_count: int
    fetched_at_min: datetime | None
    fetched_at_max: datetime | None
    checksum: str


class LineagePublic(BaseModel):
    step: str
    symbol: str
    data_type: str
    range_start: datetime
    range_end: datetime
    metadata: LineageMetadataPublic


class ExecutionDetailPublic(ExecutionPublic):
    logs: list[LogPublic]
    lineage: list[LineagePublic]
