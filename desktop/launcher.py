"""The `shoebox` command: the app when no command is given, else the engine's CLI.

Lives in `desktop/` because it may open the GUI; the engine never imports the
desktop layer. Qt is imported only when the app is opened, so `shoebox status`
stays fast.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli import build_parser
    from engine.cli import main as cli_main

    args = build_parser().parse_args(argv)
    if args.command is not None:
        return cli_main(argv)
    try:
        from desktop.app import run_app
    except ImportError as exc:  # installed without the `gui` extra
        print(f"shoebox: the app needs PySide6 and qasync ({exc}); try `make run`", file=sys.stderr)
        build_parser().print_help()
        return 2
    return run_app(args.library)


if __name__ == "__main__":
    sys.exit(main())
