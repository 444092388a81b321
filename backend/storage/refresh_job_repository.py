"""SQL for refresh jobs: insert, read, owner-checked updates, heartbeats, take-over and pruning."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from backend.storage.database import Database
from backend.storage.refresh_job_tables import RefreshJobRow

# Stored statuses of a job that has not ended; "interrupted" is stored when a process stopped
# its jobs on shutdown, and shown (not stored) for a job whose owner stopped heartbeating.
UNFINISHED_STATUSES = ("queued", "running")
ENDED_STATUSES = ("completed", "partial", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class Heartbeat:
    """What the owner learns from its heartbeat about one of its jobs."""

    job_id: str
    # Another replica asked for the job to stop (DELETE on a replica that does not run it).
    cancel_requested: bool
    # False once another process took the job over (a resume after this one looked dead).
    still_owned: bool


@dataclass(frozen=True)
class BacklogEntry:
    job_id: str
    created_at: datetime
    estimated_requests: int


class RefreshJobRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    def insert(self, row: RefreshJobRow) -> RefreshJobRow:
        with self.database.session() as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return row

    def get(self, job_id: str) -> RefreshJobRow | None:
        with self.database.session() as session:
            return session.get(RefreshJobRow, job_id)

    def update_owned(self, job_id: str, owner: str, **values: Any) -> bool:
        """Write `values` if `owner` still runs the job; False once another process took it."""
        with self.database.session() as session:
            result = session.execute(
                update(RefreshJobRow)
                .where(RefreshJobRow.job_id == job_id, RefreshJobRow.owner == owner)
                .values(**values)
            )
            session.commit()
            return result.rowcount == 1

    def heartbeat(
        self, owner: str, job_ids: Iterable[str], now: datetime, runs: dict[str, list[dict]]
    ) -> list[Heartbeat]:
        """Stamp the owner's unfinished jobs alive (with their runs' progress) and read back
        whether any was asked to stop or taken over. One transaction."""
        ids = list(job_ids)
        if not ids:
            return []
        with self.database.session() as session:
            for job_id in ids:
                values: dict[str, Any] = {"heartbeat_at": now}
                if job_id in runs:
                    values["runs"] = runs[job_id]
                session.execute(
                    update(RefreshJobRow)
                    .where(
                        RefreshJobRow.job_id == job_id,
                        RefreshJobRow.owner == owner,
                        RefreshJobRow.status.in_(UNFINISHED_STATUSES),
                    )
                    .values(**values)
                )
            rows = session.execute(
                select(
                    RefreshJobRow.job_id, RefreshJobRow.cancel_requested, RefreshJobRow.owner
                ).where(RefreshJobRow.job_id.in_(ids))
            ).all()
            session.commit()
        found = {job_id: (cancel, row_owner) for job_id, cancel, row_owner in rows}
        return [
            Heartbeat(
                job_id,
                cancel_requested=found.get(job_id, (False, None))[0],
                still_owned=found.get(job_id, (False, None))[1] == owner,
            )
            for job_id in ids
        ]

    def request_cancel(self, job_id: str) -> bool:
        """Flag an unfinished job to be stopped by its owner; False if it has ended."""
        with self.database.session() as session:
            result = session.execute(
                update(RefreshJobRow)
                .where(
                    RefreshJobRow.job_id == job_id,
                    RefreshJobRow.status.in_(UNFINISHED_STATUSES),
                )
                .values(cancel_requested=True)
            )
            session.commit()
            return result.rowcount == 1

    def take_over(
        self,
        job_id: str,
        owner: str,
        now: datetime,
        stale_before: datetime,
        resumable: tuple[str, ...],
        **values: Any,
    ) -> bool:
        """Make `owner` the job's owner if it has ended in a resumable status or its owner
        stopped heartbeating before `stale_before`. Atomic: of two replicas resuming the same
        job at once, one wins and the other gets False."""
        with self.database.session() as session:
            result = session.execute(
                update(RefreshJobRow)
                .where(
                    RefreshJobRow.job_id == job_id,
                    (
                        RefreshJobRow.status.in_(resumable)
                        | (
                            RefreshJobRow.status.in_(UNFINISHED_STATUSES)
                            & (RefreshJobRow.heartbeat_at < stale_before)
                        )
                    ),
                )
                .values(owner=owner, heartbeat_at=now, cancel_requested=False, **values)
            )
            session.commit()
            return result.rowcount == 1

    def backlog(self, stale_before: datetime) -> list[BacklogEntry]:
        """Unfinished jobs whose owners are alive, oldest first, over every replica."""
        with self.database.session() as session:
            rows = session.execute(
                select(
                    RefreshJobRow.job_id, RefreshJobRow.created_at, RefreshJobRow.estimated_requests
                )
                .where(
                    RefreshJobRow.status.in_(UNFINISHED_STATUSES),
                    RefreshJobRow.heartbeat_at >= stale_before,
                )
                .order_by(RefreshJobRow.created_at, RefreshJobRow.job_id)
            ).all()
        return [BacklogEntry(*row) for row in rows]

    def prune(self, ended_before: datetime, keep: int) -> int:
        """Delete the jobs that ended (or whose owner last heartbeat) before `ended_before`,
        then all but the newest `keep` ended ones. A live job heartbeats, so it is never old."""
        ended_at = func.coalesce(RefreshJobRow.finished_at, RefreshJobRow.heartbeat_at)
        with self.database.session() as session:
            deleted = session.execute(delete(RefreshJobRow).where(ended_at < ended_before)).rowcount
            beyond = (
                select(RefreshJobRow.job_id)
                .where(RefreshJobRow.status.in_(ENDED_STATUSES))
                .order_by(ended_at.desc(), RefreshJobRow.created_at.desc(), RefreshJobRow.job_id)
                .offset(keep)
            )
            old = list(session.execute(beyond).scalars())
            if old:
                deleted += session.execute(
                    delete(RefreshJobRow).where(RefreshJobRow.job_id.in_(old))
                ).rowcount
            session.commit()
        return deleted


def stale_before(now: datetime, heartbeat_s: float, missed: int) -> datetime:
    """Heartbeats older than this mean the owner has stopped."""
    return now - timedelta(seconds=heartbeat_s * missed)
