"""`shoebox self-test [--json] [--keep DIR]`: proves that Shoebox works on this machine
(engine/selftest/). It never opens the user's library: `--library` is ignored."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_FAILED = 1  # a check failed: the report names it and what to do


def cmd_self_test(args: argparse.Namespace) -> int:
    from engine.selftest import run_self_test

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = run_self_test(
            None if args.json else progress,
            keep=Path(args.keep) if args.keep else None,
        )
    except KeyboardInterrupt:
        print("shoebox: self-test interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text())
        if args.keep:
            print(f"The samples and the library are kept in {Path(args.keep).absolute()}")
    return 0 if report.ok else EXIT_FAILED


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "self-test",
        parents=[json_flag],
        help="check that Shoebox works on this machine (in a temporary library)",
        description="Makes sample photos and documents, imports them into a temporary "
        "library, processes them with the stages that need no downloaded weights and "
        "checks every result. Exit status 0 when every check passed, 1 when one failed.",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="make the samples and the library in DIR (new or empty) and keep them",
    )
    p.set_defaults(func=cmd_self_test)
