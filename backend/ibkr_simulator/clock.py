"""The simulator's clock: fixed at an instant that tests can move, or the real time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .sessions import CALENDAR_END

CLOCK_EXAMPLE = "2024-07-31T21:00:00Z"
# Sessions (and so every price) are generated up to the calendars' end.
LATEST_CLOCK = dt.datetime.combine(dt.date.fromisoformat(CALENDAR_END) + dt.timedelta(days=1),
                                   dt.time(), dt.UTC)


class InvalidClock(ValueError):
    """A clock setting the control API rejects; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Clock:
    """What the simulator takes for now: which bars exist, head timestamps, reqCurrentTime and
    the corporate actions that have taken effect. Pacing keeps to the real monotonic time."""

    def __init__(self, fixed: dt.datetime | None = None):
        self._fixed: dt.datetime | None = None
        self.set(fixed)

    def now(self) -> dt.datetime:
        return self._fixed or dt.datetime.now(dt.UTC)

    def set(self, fixed: dt.datetime | None) -> None:
        """Stop the clock at `fixed` (timezone-aware), or follow the real time with None."""
        if fixed is not None:
            if fixed.tzinfo is None:
                raise ValueError("now must be timezone-aware")
            if fixed >= LATEST_CLOCK:
                raise ValueError(f"now must be before {LATEST_CLOCK:%Y-%m-%d}")
            fixed = fixed.astimezone(dt.UTC)
        self._fixed = fixed

    def to_json(self) -> dict:
        return {"now": self.now().isoformat(), "fixed": self._fixed is not None}


def clock_from_json(data: Any) -> dt.datetime | None:
    """The instant of a `POST /clock` body `{"now": "<ISO-8601>"}`; null means the real time."""
    if not isinstance(data, dict):
        raise InvalidClock("body", f'expected a JSON object like {{"now": "{CLOCK_EXAMPLE}"}}')
    unknown = sorted(set(data) - {"now"})
    if unknown:
        raise InvalidClock(unknown[0], f"unknown field {unknown[0]!r}; the body takes only now")
    if "now" not in data:
        raise InvalidClock("now", f"now is required: an ISO-8601 instant with a time zone such "
                                  f"as {CLOCK_EXAMPLE}, or null for the real time")
    text = data["now"]
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidClock("now", f"now must be a string such as {CLOCK_EXAMPLE} or null")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidClock("now", f"now must be an ISO-8601 instant such as {CLOCK_EXAMPLE}; "
                                  f"got {text!r}") from exc
    if moment.tzinfo is None:
        raise InvalidClock("now", f"now has no time zone: add Z or an offset such as +00:00 "
                                  f"(got {text!r}, e.g. {CLOCK_EXAMPLE})")
    if moment >= LATEST_CLOCK:
        raise InvalidClock("now", f"now must be before {LATEST_CLOCK:%Y-%m-%d}, where the "
                                  f"simulator's session calendars end; got {text!r}")
    return moment
