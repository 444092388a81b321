"""`make bench`: pacing budget; `--help` lists the figures (backend/devtools/bench_pacing.py)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Python puts scripts/ on the import path, not the repository root: run the benchmark from the
    # root as a module, in this same process.
    os.chdir(Path(__file__).resolve().parents[1])
    os.execv(sys.executable, [sys.executable, "-m", "backend.devtools.bench_pacing", *sys.argv[1:]])
