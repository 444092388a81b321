"""What the benchmarks share: --help from their documentation, and one JSON line per figure."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def parse_help(description: str, argv: Sequence[str] | None = None) -> None:
    """A benchmark takes no options: `--help` shows its figures and how they are measured."""
    argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)


def emit(
    name: str, value: float, unit: str, baseline: float | None, digits: int = 3, **detail
) -> None:
    """Print one figure as a JSON line: its value beside its baseline, with the details."""
    record = {"name": name, "value": round(value, digits), "unit": unit, "baseline": baseline}
    print(json.dumps({**record, "detail": detail}), flush=True)
