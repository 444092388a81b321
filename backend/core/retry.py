"""Exponential back-off between attempts, for the IBKR client's chunks and the CLI's series."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_base, stop_after_attempt, wait_exponential


@dataclass(frozen=True)
class Backoff:
    """Up to `attempts` tries; the waits between them double from `base_s`, capped at `max_s`."""

    attempts: int
    base_s: float
    max_s: float
    # Tests pass a sleep that returns at once, so retries cost no wall-clock time.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def retrying(
        self,
        retry: retry_base,
        before_sleep: Callable[[RetryCallState], None],
        reraise: bool = False,
    ) -> AsyncRetrying:
        """`retry` says which failures are worth another try."""
        return AsyncRetrying(
            retry=retry,
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.base_s, max=self.max_s),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=reraise,
        )
