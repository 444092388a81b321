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
    # Historical-data requests per symbol, the number a cache test usually cares about.
    requests_by_symbol: Counter = field(default_factory=Counter)

    def to_json(self, connections_open: int) -> dict:
        return {
            "connections_total": self.connections_total,
            "connections_open": connections_open,
            "historical_requests": self.historical_requests,
            "contract_requests": self.contract_requests,
            "head_timestamp_requests": self.head_timestamp_requests,
            "pacing_violations": self.pacing_violations,
            "errors_sent": self.errors_sent,
            "requests_by_symbol": dict(self.requests_by_symbol),
        }
