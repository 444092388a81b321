"""The host platform's workflow records: executions, their step logs, and data lineage."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from backend.storage.types import JSONType, UTCDateTime, utc_now


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    # The backend process stopped while the execution ran; set at the next start-up.
    INTERRUPTED = "interrupted"
    # The caller went away (the HTTP client disconnected) before the run finished.
    CANCELLED = "cancelled"


UNFINISHED_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class WorkflowExecution(SQLModel, table=True):
    __tablename__ = "workflow_executions"
    __table_args__ = (Index("ix_workflow_executions_started_at", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    strategy: str = Field(max_length=64, nullable=False)
    status: str = Field(default=ExecutionStatus.PENDING, max_length=16, nullable=False)
    debug_mode: bool = Field(default=False, nullable=False)
    symbols: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONType, nullable=True)
    error: str | None = Field(default=None, nullable=True)
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The backend process running it, and when that process last said it still does: replicas
    # share the table, and only an execution whose heartbeat stopped is interrupted.
    owner: str | None = Field(default=None, max_length=64, nullable=True)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class ExecutionStepRecord(SQLModel):
    """The columns a row of one execution's steps starts with; it is deleted with the execution.

    execution_id is indexed (ix_<table>_execution_id): these rows are read an execution at a time.
    """

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(
        foreign_key="workflow_executions.id", nullable=False, ondelete="CASCADE", index=True
    )
    step: str = Field(max_length=64, nullable=False)


class WorkflowLog(ExecutionStepRecord, table=True):
    __tablename__ = "workflow_logs"

    level: str = Field(max_length=10, nullable=False)
    message: str = Field(nullable=False)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class LineageRecord(ExecutionStepRecord, table=True):
    __tablename__ = "lineage_records"

    symbol: str = Field(max_length=12, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)
    range_start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    range_end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # data source, debug_mode, cache hit kind, bar count, fetched_at range, checksum of the bars.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONType,
        nullable=False,
        sa_column_kwargs={"name": "metadata"},
    )
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
