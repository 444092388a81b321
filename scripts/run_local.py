"""`make run`'s entry point: the launcher itself is backend/devtools/run_local.py."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Python puts scripts/ on the import path, not the repository root: run the module from the
    # root instead. exec keeps the process id, so signals sent to this script reach the module.
    os.chdir(Path(__file__).resolve().parents[1])
    os.execv(sys.executable, [sys.executable, "-m", "backend.devtools.run_local", *sys.argv[1:]])
