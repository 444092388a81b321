"""Faults armed through the control API, consumed by the next matching historical requests."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FAULT_KINDS = ("disconnect", "delay", "no_data", "pacing", "timeout")
DEFAULT_DELAY_SECONDS = 1.0


class InvalidFault(ValueError):
    """A fault specification the control API rejects; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class Fault:
    kind: str
    count: int = 1
    symbol: str | None = None
    seconds: float | None = None
    # Matching requests served normally before the fault applies: a failure mid-way through.
    after: int = 0

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise InvalidFault("body", "expected a JSON object")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise InvalidFault("kind", f"kind must be one of {', '.join(FAULT_KINDS)}")
        count = data.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidFault("count", "count must be a positive integer")
        symbol = data.get("symbol")
        if symbol is not None and (not isinstance(symbol, str) or not symbol):
            raise InvalidFault("symbol", "symbol must be a non-empty string")
        seconds = data.get("seconds")
        if seconds is not None and (
                not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0):
            raise InvalidFault("seconds", "seconds must be a non-negative number")
        after = data.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise InvalidFault("after", "after must be a non-negative integer")
        if kind == "delay" and seconds is None:
            seconds = DEFAULT_DELAY_SECONDS
        unknown = set(data) - {"kind", "count", "symbol", "seconds", "after"}
        if unknown:
            field = sorted(unknown)[0]
            raise InvalidFault(field, f"unknown field {field!r}")
        return cls(kind, count, symbol.upper() if symbol else None, seconds, after)

    def to_json(self) -> dict:
        return asdict(self)


class FaultBoard:
    def __init__(self):
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take(self, symbol: str) -> Fault | None:
        """The first armed fault matching `symbol`, using up one of its count."""
        for fault in self._faults:
            if fault.symbol is None or fault.symbol == symbol.upper():
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return Fault(fault.kind, 1, fault.symbol, fault.seconds)
        return None

    def to_json(self) -> list[dict]:
        return [f.to_json() for f in self._faults]

    def clear(self) -> None:
        self._faults.clear()
