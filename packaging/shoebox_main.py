"""The bundle's entry point: the `shoebox` command (the app, or the CLI with a command)."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    # Before anything can spawn: a spawned child of a frozen program re-runs this file.
    multiprocessing.freeze_support()
    from desktop.launcher import main

    sys.exit(main())
