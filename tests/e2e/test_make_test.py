"""`make test` on a machine without the browser the browser tests drive."""

from __future__ import annotations

import os
import subprocess

from tests.support.processes import ROOT


def test_make_test_without_chromium_stops_first_saying_what_to_install(tmp_path):
    missing = tmp_path / "chromium"

    result = subprocess.run(
        # No apt-get to install it with: as on a machine without root or without apt.
        ["make", f"CHROMIUM={missing}", f"APT_GET={tmp_path / 'apt-get'}", "test"],
        cwd=ROOT,
        # Run as a user would, not as a sub-make of `make test` itself (which would print
        # "Entering directory" lines and pass its own variables down).
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    # Nothing ran before the check: no install step, no test.
    assert result.stdout == ""
    assert (
        f"the browser tests need chromium at {missing}: install it (sudo apt-get install chromium)"
        in result.stderr.splitlines()[0]
    )
