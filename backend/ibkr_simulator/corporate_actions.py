"""Stock splits and cash dividends per stock, and the factors that put bars on the basis of now.

The seeded path of a stock (paths.daily_walk) is its price adjusted for every split in this
table: as traded, a bar before a split stood higher by the split's ratio, so the traded price
drops by the ratio on the split's effective date. IBKR serves history adjusted as of the
moment of the request: once a split has taken effect it divides the prices of the bars before
it by the ratio and multiplies their volume by it; a split still ahead leaves them as traded.

Split dates are the effective dates (the first session on the new basis), from public split
histories. Dividends are quarterly cash dividends per share as paid, on their ex-dates, for KO,
MSFT and JPM from 2019 on. They approximate the real ones: JPM's entries from 2019 to July 2025
and MSFT's from May 2021 to November 2024 agree with published dividend histories; KO's amounts
are its quarterly rates of each year and its ex-dates follow its usual pattern (mid-March,
mid-June, mid-September, around 1 December), possibly a few days off. Earlier dividends of
these three are not modelled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Split:
    effective: dt.date  # the first session trading on the new basis (the ex-date)
    ratio: Fraction  # new shares per old share: 10 for 10:1, 3/2 for 3:2


@dataclass(frozen=True)
class Dividend:
    ex_date: dt.date
    amount: float  # cash per share as paid, on the basis of its own day


def _splits(*rows: tuple[str, int | str]) -> tuple[Split, ...]:
    return tuple(Split(dt.date.fromisoformat(day), Fraction(ratio)) for day, ratio in rows)


def _dividends(*rows: tuple[str, float]) -> tuple[Dividend, ...]:
    return tuple(Dividend(dt.date.fromisoformat(day), amount) for day, amount in rows)


SPLITS: dict[str, tuple[Split, ...]] = {
    "AAPL": _splits(("1987-06-16", 2), ("2000-06-21", 2), ("2005-02-28", 2), ("2014-06-09", 7),
                    ("2020-08-31", 4)),
    "AMZN": _splits(("1998-06-02", 2), ("1999-01-05", 3), ("1999-09-02", 2), ("2022-06-06", 20)),
    # Alphabet's 2014 distribution of class C shares was a dividend in kind, not a split of
    # GOOGL; it is left out.
    "GOOGL": _splits(("2022-07-18", 20)),
    # 480 of today's shares per IPO share. The 2001 split was payable on 10 September; the
    # market was closed 11-14 September, so the first split-adjusted session was the 17th.
    "NVDA": _splits(("2000-06-27", 2), ("2001-09-17", 2), ("2006-04-07", 2), ("2007-09-11", "3/2"),
                    ("2021-07-20", 4), ("2024-06-10", 10)),
    "TSLA": _splits(("2020-08-31", 5), ("2022-08-25", 3)),
}

DIVIDENDS: dict[str, tuple[Dividend, ...]] = {
    "KO": _dividends(
        ("2019-03-14", 0.40), ("2019-06-14", 0.40), ("2019-09-13", 0.40), ("2019-11-29", 0.40),
        ("2020-03-13", 0.41), ("2020-06-12", 0.41), ("2020-09-14", 0.41), ("2020-11-30", 0.41),
        ("2021-03-12", 0.42), ("2021-06-14", 0.42), ("2021-09-14", 0.42), ("2021-11-30", 0.42),
        ("2022-03-14", 0.44), ("2022-06-14", 0.44), ("2022-09-15", 0.44), ("2022-11-30", 0.44),
        ("2023-03-16", 0.46), ("2023-06-15", 0.46), ("2023-09-14", 0.46), ("2023-11-30", 0.46),
        ("2024-03-14", 0.485), ("2024-06-14", 0.485), ("2024-09-13", 0.485),
        ("2024-11-29", 0.485),
        ("2025-03-14", 0.51), ("2025-06-13", 0.51), ("2025-09-15", 0.51), ("2025-12-01", 0.51),
    ),
    "MSFT": _dividends(
        ("2019-02-20", 0.46), ("2019-05-15", 0.46), ("2019-08-14", 0.46), ("2019-11-20", 0.51),
        ("2020-02-19", 0.51), ("2020-05-20", 0.51), ("2020-08-19", 0.51), ("2020-11-18", 0.56),
        ("2021-02-17", 0.56), ("2021-05-19", 0.56), ("2021-08-18", 0.56), ("2021-11-17", 0.62),
        ("2022-02-16", 0.62), ("2022-05-18", 0.62), ("2022-08-17", 0.62), ("2022-11-16", 0.68),
        ("2023-02-15", 0.68), ("2023-05-17", 0.68), ("2023-08-16", 0.68), ("2023-11-15", 0.75),
        ("2024-02-14", 0.75), ("2024-05-15", 0.75), ("2024-08-15", 0.75), ("2024-11-21", 0.83),
        ("2025-02-20", 0.83), ("2025-05-15", 0.83), ("2025-08-21", 0.83), ("2025-11-20", 0.91),
    ),
    "JPM": _dividends(
        ("2019-01-03", 0.80), ("2019-04-04", 0.80), ("2019-07-03", 0.80), ("2019-10-03", 0.90),
        ("2020-01-03", 0.90), ("2020-04-03", 0.90), ("2020-07-02", 0.90), ("2020-10-05", 0.90),
        ("2021-01-05", 0.90), ("2021-04-05", 0.90), ("2021-07-02", 0.90), ("2021-10-05", 1.00),
        ("2022-01-05", 1.00), ("2022-04-05", 1.00), ("2022-07-05", 1.00), ("2022-10-05", 1.00),
        ("2023-01-05", 1.00), ("2023-04-05", 1.00), ("2023-07-05", 1.00), ("2023-10-05", 1.05),
        ("2024-01-04", 1.05), ("2024-04-04", 1.15), ("2024-07-05", 1.15), ("2024-10-04", 1.25),
        ("2025-01-06", 1.25), ("2025-04-04", 1.40), ("2025-07-03", 1.40), ("2025-10-06", 1.50),
    ),
}


def cumulative_factor(event_days: np.ndarray, event_factors: np.ndarray, days: np.ndarray,
                      today: int) -> np.ndarray:
    """For each day (an ordinal), the product of the factors of the events dated after it and
    on or before `today`: the events a bar of that day has been through by today."""
    if len(event_days) == 0:
        return np.ones(len(days))
    # Products from the first event on, so that each answer is one ratio of two of them; with
    # whole and half ratios (every split here) they are exact.
    products = np.r_[1.0, np.cumprod(event_factors)]
    passed_by_day = np.searchsorted(event_days, days, side="right")
    passed_by_today = np.searchsorted(event_days, today, side="right")
    return products[np.maximum(passed_by_today, passed_by_day)] / products[passed_by_day]


@dataclass(frozen=True)
class CorporateActions:
    """One stock's splits and dividends."""

    splits: Sequence[Split] = ()
    dividends: Sequence[Dividend] = ()

    @classmethod
    def for_symbol(cls, symbol: str) -> CorporateActions:
        return cls(SPLITS.get(symbol, ()), DIVIDENDS.get(symbol, ()))

    def split_days(self) -> np.ndarray:
        return np.array([s.effective.toordinal() for s in self.splits], dtype=np.int64)

    def split_ratios(self) -> np.ndarray:
        return np.array([float(s.ratio) for s in self.splits])

    def shares_today_per_share(self, days: np.ndarray) -> np.ndarray:
        """How many shares of after every split one share held on each day became: a price
        as traded that day is the path's price times this."""
        return cumulative_factor(self.split_days(), self.split_ratios(), days,
                                 dt.date.max.toordinal())

    def split_factor(self, days: np.ndarray, today: int) -> np.ndarray:
        """The ratios of the splits a bar of each day has been through by `today`: IBKR divides
        the bar's prices by this and multiplies its volume by it."""
        return cumulative_factor(self.split_days(), self.split_ratios(), days, today)
