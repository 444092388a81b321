"""Counters the control API reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    connections_total: int = 0
    historical_requests: int = 0
    contract_requests: int = 0
    head_timestamp_requests: int = 0
    pacing_violations: int = 0
    errors_sent: int = 0
    # Historical requests received and not answered yet, over every connection, the most there
    # ever were at once, and those refused for going over the limit (error 322).
    open_historical_requests: int = 0
    max_open_historical_requests: int = 0
    simultaneous_limit_rejections: int = 0
    # Historical-data requests per symbol, the number a cache test usually cares about.
    requests_by_symbol: Counter = field(default_factory=Counter)

    def to_json(self, connections_open: int, pacing: dict | None = None) -> dict:
        return {
            "connections_total": self.connections_total,
            "connections_open": connections_open,
            "historical_requests": self.historical_requests,
            "contract_requests": self.contract_requests,
            "head_timestamp_requests": self.head_timestamp_requests,
            "pacing_violations": self.pacing_violations,
            "errors_sent": self.errors_sent,
            "requests_by_symbol": dict(self.requests_by_symbol),
            "open_historical_requests": self.open_historical_requests,
            "max_open_historical_requests": self.max_open_historical_requests,
            "simultaneous_limit_rejections": self.simultaneous_limit_rejections,
            "pacing": pacing or {},
        }
