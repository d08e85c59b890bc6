"""The `shoebox` command: the app when no command is given, else the engine's CLI.

Lives in `desktop/` because it may open the GUI; the engine never imports the
desktop layer. Qt is imported only when the app is opened, so `shoebox status`
stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys


def command_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


VALUE_OPTIONS = ("--library", "--broker")  # the global options that take a value


def split_open_paths(argv: list[str], commands: set[str]) -> tuple[list[str], list[str]]:
    """`shoebox [--library DIR] PATH...` (the desktop entry's `%F`, a folder dropped on
    the icon): the options, and the paths to open in the app. Paths only when the
    first word after the options is no command and names something that exists."""
    options: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in VALUE_OPTIONS and i + 1 < len(argv):
            options += argv[i : i + 2]
            i += 2
        elif word.split("=", 1)[0] in VALUE_OPTIONS and "=" in word:
            options.append(word)
            i += 1
        else:
            break
    rest = argv[i:]
    first = rest[0] if rest else ""
    if first and first not in commands and not first.startswith("-") and os.path.exists(first):
        return options, rest
    return argv, []


def main(argv: list[str] | None = None) -> int:
    from engine.cli import build_parser
    from engine.cli import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    argv, open_paths = split_open_paths(argv, command_names(parser))
    args = parser.parse_args(argv)
    if args.command is not None:
        return cli_main(argv)
    if args.broker:  # the app's worker host, a child, reads it from there
        from engine.jobs.broker import BROKER_ENV

        os.environ[BROKER_ENV] = args.broker
    try:
        from desktop.app import run_app
    except ImportError as exc:  # installed without the `gui` extra
        print(f"shoebox: the app needs PySide6 and qasync ({exc}); try `make run`", file=sys.stderr)
        parser.print_help()
        return 2
    return run_app(args.library, open_paths=[os.path.abspath(p) for p in open_paths])


if __name__ == "__main__":
    sys.exit(main())
