"""The shared pacing ledger's table: one row per historical request a gateway was sent."""

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from backend.storage.types import UTCDateTime


class PacingSlot(SQLModel, table=True):
    """A request slot granted against one gateway's IBKR pacing budget.

    A slot is a timestamp, not a lease: it counts against the windows it falls in and nothing
    else, so a process that dies after taking slots blocks nobody once those windows have
    passed. Rows older than the longest window are pruned by the grants themselves.
    """

    __tablename__ = "ibkr_pacing_slot"
    __table_args__ = (Index("ix_ibkr_pacing_slot_gateway_granted_at", "gateway", "granted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Whose budget: the gateway's host:port, as every process that talks to it names it.
    gateway: str = Field(max_length=255, nullable=False)
    # When the request was granted, moved to when it actually left (wall clock, UTC).
    granted_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # IBKR's per-contract rule counts by contract, exchange and whatToShow.
    contract_key: str = Field(max_length=128, nullable=False)
    # IBKR's identical-request rule compares every parameter of the request.
    request_key: str = Field(max_length=512, nullable=False)
    # How many requests it counts as towards the windows.
    weight: int = Field(default=1, nullable=False)
