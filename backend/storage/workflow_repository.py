"""SQL for workflow records: executions, their step logs and lineage records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update

from backend.storage.database import Database
from backend.storage.workflow_tables import (
    UNFINISHED_STATUSES,
    ExecutionStatus,
    ExecutionStepRecord,
    LineageRecord,
    WorkflowExecution,
    WorkflowLog,
)

StepRecord = TypeVar("StepRecord", bound=ExecutionStepRecord)


class WorkflowRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    # -- executions -----------------------------------------------------------------------------

    def create_execution(
        self,
        strategy: str,
        symbols: list[str],
        data_type: str,
        parameters: dict[str, Any],
        debug_mode: bool,
        started_at: datetime,
        owner: str | None = None,
    ) -> WorkflowExecution:
        execution = WorkflowExecution(
            owner=owner,
            heartbeat_at=started_at,
            strategy=strategy,
            status=ExecutionStatus.PENDING,
            debug_mode=debug_mode,
            symbols=symbols,
            data_type=data_type,
            parameters=parameters,
            started_at=started_at,
        )
        with self.database.session() as session:
            session.add(execution)
            session.commit()
            session.refresh(execution)
        return execution

    def set_status(self, execution_id: int, status: ExecutionStatus) -> None:
        with self.database.session() as session:
            session.execute(
                update(WorkflowExecution)
                .where(WorkflowExecution.id == execution_id)
                .values(status=status.value)
            )
            session.commit()

    def finish_execution(
        self,
        execution_id: int,
        status: ExecutionStatus,
        result: dict[str, Any] | None,
        error: str | None,
        finished_at: datetime,
    ) -> WorkflowExecution:
        with self.database.session() as session:
            execution = session.get(WorkflowExecution, execution_id)
            if execution is None:
                raise LookupError(f"workflow execution {execution_id} does not exist")
            execution.status = status.value
            execution.result = result
            execution.error = error
            execution.finished_at = finished_at
            session.commit()
            session.refresh(execution)
        return execution

    def heartbeat(self, owner: str, at: datetime) -> None:
        """The owner's unfinished executions are still running."""
        unfinished = [status.value for status in UNFINISHED_STATUSES]
        with self.database.session() as session:
            session.execute(
                update(WorkflowExecution)
                .where(WorkflowExecution.owner == owner, WorkflowExecution.status.in_(unfinished))
                .values(heartbeat_at=at)
            )
            session.commit()

    def interrupt_unfinished(
        self,
        step: str,
        error: str,
        finished_at: datetime,
        stale_before: datetime,
        alive_owner: str | None = None,
    ) -> list[int]:
        """Mark interrupted, with a log line each, every pending or running execution whose
        process has not heartbeaten since `stale_before` (or never did: rows older than owners).
        `alive_owner`'s executions are left alone: the caller is that process and runs them.

        Returns their ids. One transaction, so a second sweep finds nothing left to mark.
        """
        unfinished = [status.value for status in UNFINISHED_STATUSES]
        stale = or_(
            WorkflowExecution.heartbeat_at.is_(None), WorkflowExecution.heartbeat_at < stale_before
        )
        if alive_owner is not None:
            stale = and_(
                stale,
                or_(WorkflowExecution.owner.is_(None), WorkflowExecution.owner != alive_owner),
            )
        with self.database.session() as session:
            ids = list(
                session.execute(
                    select(WorkflowExecution.id)
                    .where(WorkflowExecution.status.in_(unfinished), stale)
                    .order_by(WorkflowExecution.id)
                ).scalars()
            )
            if not ids:
                return []
            session.execute(
                update(WorkflowExecution)
                .where(
                    WorkflowExecution.id.in_(ids), WorkflowExecution.status.in_(unfinished), stale
                )
                .values(
                    status=ExecutionStatus.INTERRUPTED.value,
                    error=error,
                    finished_at=finished_at,
                )
            )
            session.add_all(
                WorkflowLog(
                    execution_id=execution_id,
                    step=step,
                    level="ERROR",
                    message=error,
                    created_at=finished_at,
                )
                for execution_id in ids
            )
            session.commit()
        return ids

    def get_execution(self, execution_id: int) -> WorkflowExecution | None:
        with self.database.session() as session:
            return session.get(WorkflowExecution, execution_id)

    def list_executions(self, limit: int, offset: int) -> tuple[list[WorkflowExecution], int]:
        """A page of executions, newest first, and the total count."""
        with self.database.session() as session:
            total = session.execute(
                select(func.count()).select_from(WorkflowExecution)
            ).scalar_one()
            rows = session.execute(
                select(WorkflowExecution)
                .order_by(WorkflowExecution.started_at.desc(), WorkflowExecution.id.desc())
                .limit(limit)
                .offset(offset)
            ).scalars()
            return list(rows), total

    # -- logs and lineage -----------------------------------------------------------------------

    def add_log(
        self, execution_id: int, step: str, level: str, message: str, created_at: datetime
    ) -> None:
        self._insert(
            WorkflowLog(
                execution_id=execution_id,
                step=step,
                level=level,
                message=message,
                created_at=created_at,
            )
        )

    def add_lineage(
        self,
        execution_id: int,
        step: str,
        symbol: str,
        data_type: str,
        range_start: datetime,
        range_end: datetime,
        meta: dict[str, Any],
        created_at: datetime,
    ) -> None:
        self._insert(
            LineageRecord(
                execution_id=execution_id,
                step=step,
                symbol=symbol,
                data_type=data_type,
                range_start=range_start,
                range_end=range_end,
                meta=meta,
                created_at=created_at,
            )
        )

    def logs_for(self, execution_id: int) -> list[WorkflowLog]:
        """The execution's log lines in the order they were written."""
        return self._step_records(WorkflowLog, execution_id, WorkflowLog.created_at, WorkflowLog.id)

    def lineage_for(self, execution_id: int) -> list[LineageRecord]:
        return self._step_records(LineageRecord, execution_id, LineageRecord.id)

    def _step_records(
        self, table: type[StepRecord], execution_id: int, *order_by: Any
    ) -> list[StepRecord]:
        with self.database.session() as session:
            return list(
                session.execute(
                    select(table).where(table.execution_id == execution_id).order_by(*order_by)
                ).scalars()
            )

    def _insert(self, record: ExecutionStepRecord) -> None:
        with self.database.session() as session:
            session.add(record)
            session.commit()
