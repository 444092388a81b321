"""Fill the market-data cache from IBKR: `--help` shows how (backend/cli/populate.py)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Python puts scripts/ on the import path, not the repository root: run the CLI from the root
    # as a module. exec keeps the process id, so Ctrl-C and exit codes are the CLI's own.
    os.chdir(Path(__file__).resolve().parents[1])
    os.execv(sys.executable, [sys.executable, "-m", "backend.cli.populate", *sys.argv[1:]])
