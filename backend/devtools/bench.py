"""What the benchmarks share: --help from their documentation, and one JSON line per figure."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence


def parse_help(description: str, argv: Sequence[str] | None = None) -> None:
    """A benchmark takes no options: `--help` shows its figures and how they are measured."""
    argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)


def emit(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    digits: int = 3,
    *,
    target: float | None = None,
    **detail,
) -> None:
    """Print one figure as a JSON line: its value beside its baseline, with the details; with a
    target (an upper bound), whether the value meets it (PASS) or not (MISS)."""
    record = {"name": name, "value": round(value, digits), "unit": unit, "baseline": baseline}
    if target is not None:
        record["target"] = target
        record["result"] = "PASS" if value <= target else "MISS"
    print(json.dumps({**record, "detail": detail}), flush=True)


def emit_ratio(
    name: str,
    figure: float,
    baseline: float,
    unit: str,
    *,
    target: float | None = None,
    digits: int = 4,
    **detail,
) -> None:
    """Print a figure divided by its baseline, both measured in the same run, beside the ratio:
    value is the ratio; figure and baseline are the two measurements, in `unit`."""
    record = {
        "name": name,
        "value": round(figure / baseline, 3),
        "unit": "ratio",
        "figure": round(figure, digits),
        "baseline": round(baseline, digits),
        "figure_unit": unit,
    }
    if target is not None:
        record["target"] = target
        record["result"] = "PASS" if figure / baseline <= target else "MISS"
    print(json.dumps({**record, "detail": detail}), flush=True)


def emit_pending(name: str, reason: str, **detail) -> None:
    """Print a figure that cannot be measured yet, and why."""
    record = {"name": name, "value": None, "result": "PENDING", "reason": reason}
    print(json.dumps({**record, "detail": detail}), flush=True)


def seconds(action: Callable[[], object]) -> float:
    """How long one call of `action` takes, by the wall clock."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)
