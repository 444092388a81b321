"""Refresh jobs as rows: what each job asked for, who runs it, its heartbeat and its results."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from backend.storage.types import JSONType, UTCDateTime


class RefreshJobRow(SQLModel, table=True):
    """One refresh job, read by every replica: GET by id answers from here, not from memory.

    `owner` is the instance id of the process running it (made at start-up) and `heartbeat_at`
    when that process last said it still is; a queued or running job whose heartbeat is older
    than a few heartbeats is shown as interrupted (its process stopped). `cancel_requested` is
    how a replica that does not run the job asks the owner to stop it: the owner's heartbeat
    reads it. The request, the series, the estimate, the results and the runs are JSON: they
    are read and written a job at a time, never searched.
    """

    __tablename__ = "market_data_refresh_job"
    __table_args__ = (
        # The backlog (unfinished jobs) and pruning (finished ones by age) both start here.
        Index("ix_market_data_refresh_job_status_created_at", "status", "created_at"),
    )

    job_id: str = Field(primary_key=True, max_length=32)
    status: str = Field(max_length=16, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    owner: str = Field(max_length=64, nullable=False)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    cancel_requested: bool = Field(default=False, nullable=False)
    # IBKR historical requests the job was planned to need: the backlog of unfinished jobs,
    # summed over every replica, is what JOB_QUEUE_CEILING bounds.
    estimated_requests: int = Field(nullable=False)
    request: dict[str, Any] = Field(sa_type=JSONType, nullable=False)
    series: list[dict[str, Any]] = Field(sa_type=JSONType, nullable=False)
    estimate: dict[str, Any] = Field(sa_type=JSONType, nullable=False)
    results: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    # One entry per run: the first, then each resume ({owner, started_at, requests_sent, ...}).
    runs: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType, nullable=False)
