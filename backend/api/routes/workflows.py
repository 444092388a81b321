"""Strategy workflows: run one (synchronously), list executions, show one with logs and lineage."""

import asyncio
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from loguru import logger

from backend.api.deps import GUARDED, require_api_token
from backend.api.errors import ErrorPublic
from backend.api.schemas.workflows import (
    ExecuteRequest,
    ExecutionDetailPublic,
    ExecutionPublic,
    ExecutionsPublic,
    LineageMetadataPublic,
    LineagePublic,
    LogPublic,
)
from backend.containers import Container
from backend.storage.workflow_repository import WorkflowRepository
from backend.storage.workflow_tables import LineageRecord, WorkflowExecution, WorkflowLog
from backend.workflows.executor import StrategyExecutor
from backend.workflows.strategies import StrategyInputError

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

# Ids and offsets beyond a 32-bit integer cannot exist (PostgreSQL's INTEGER), and would overflow
# the database driver instead of matching nothing.
MAX_ID = 2**31 - 1
# How often a running workflow checks that its HTTP client is still there.
DISCONNECT_POLL_S = 0.25
CLIENT_CLOSED_REQUEST = 499


@router.post(
    "/execute",
    response_model=ExecutionPublic,
    dependencies=[Depends(require_api_token)],
    responses={
        400: {"model": ErrorPublic, "description": "The body is not readable JSON"},
        **GUARDED,
    },
)
@inject
async def execute_workflow(
    request: ExecuteRequest,
    http_request: Request,
    executor: Annotated[StrategyExecutor, Depends(Provide[Container.strategy_executor])],
) -> ExecutionPublic | Response:
    """Run a strategy over the symbols and return the finished execution.

    Synchronous: the response comes when the run has ended (completed, partial or failed), by
    WORKFLOW_DEADLINE_S at the latest. In DEBUG_MODE it reads only the cache and is quick; in
    live mode it waits for IBKR's answers. A symbol that fails does not fail the request: see
    the execution's status and per_symbol. A client that disconnects cancels the run: nothing
    more is asked of IBKR and the execution is recorded as cancelled.
    """
    run = asyncio.ensure_future(
        executor.execute(
            request.strategy,
            request.symbols,
            request.data_type.value,
            request.lookback_days,
            request.params,
        )
    )
    try:
        execution = await _unless_disconnected(run, http_request)
    except StrategyInputError as exc:
        # Same 422 body as any other invalid field, naming e.g. "strategy" or "params.fast".
        location = ("body", *exc.field.split("."))
        raise RequestValidationError(
            [{"loc": location, "msg": str(exc), "type": "value_error"}]
        ) from None
    if execution is None:
        # Nobody is left to read an answer; 499 is what the access log shows for it.
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return _execution_public(execution)


async def _unless_disconnected(
    run: asyncio.Future[WorkflowExecution], http_request: Request
) -> WorkflowExecution | None:
    """The run's execution; None once the client went away and the run has been cancelled.

    The server does not cancel a handler whose client left, so this polls for the disconnect.
    """
    try:
        while True:
            done, _ = await asyncio.wait({run}, timeout=DISCONNECT_POLL_S)
            if done:
                return run.result()
            if await http_request.is_disconnected():
                logger.warning("workflow client disconnected; cancelling the run")
                run.cancel()
                # The executor records the execution as cancelled before it ends.
                await asyncio.wait({run})
                return None
    finally:
        # Cancelled itself (e.g. at shutdown): the run must not go on without its caller.
        if not run.done():
            run.cancel()


@router.get("/executions", response_model=ExecutionsPublic)
@inject
def list_executions(
    repository: Annotated[WorkflowRepository, Depends(Provide[Container.workflow_repository])],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ExecutionsPublic:
    """Workflow executions, newest first, a page at a time."""
    rows, count = repository.list_executions(limit, offset)
    return ExecutionsPublic(data=[_execution_public(row) for row in rows], count=count)


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionDetailPublic,
    responses={404: {"model": ErrorPublic, "description": "No such execution"}},
)
@inject
def get_execution(
    execution_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    repository: Annotated[WorkflowRepository, Depends(Provide[Container.workflow_repository])],
) -> ExecutionDetailPublic:
    """One execution with its step logs and the lineage of every data input."""
    execution = repository.get_execution(execution_id)
    if execution is None:
        raise HTTPException(404, f"workflow execution {execution_id} does not exist")
    return ExecutionDetailPublic(
        **_execution_public(execution).model_dump(),
        logs=[_log_public(log) for log in repository.logs_for(execution_id)],
        lineage=[_lineage_public(record) for record in repository.lineage_for(execution_id)],
    )


def _execution_public(execution: WorkflowExecution) -> ExecutionPublic:
    return ExecutionPublic.model_validate(execution, from_attributes=True)


def _log_public(log: WorkflowLog) -> LogPublic:
    return LogPublic.model_validate(log, from_attributes=True)


def _lineage_public(record: LineageRecord) -> LineagePublic:
    return LineagePublic(
        step=record.step,
        symbol=record.symbol,
        data_type=record.data_type,
        range_start=record.range_start,
        range_end=record.range_end,
        metadata=LineageMetadataPublic.model_validate(record.meta),
    )
