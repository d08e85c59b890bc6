"""`python -m desktop [--library DIR]`: the app without the CLI."""

from __future__ import annotations

import argparse
import sys

from desktop.app import run_app

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="shoebox-app")
    parser.add_argument("--library", metavar="DIR")
    sys.exit(run_app(parser.parse_args().library))
