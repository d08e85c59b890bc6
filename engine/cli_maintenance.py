"""`shoebox backup|restore|doctor`: keeping a library safe (docs/architecture.md,
"Reliability (issue 16)"). `backup` and `restore` work on the files and never open
the library as the app does (a damaged catalog can still be restored)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_BUSY = 3  # as `shoebox work`'s EXIT_LOCKED: the app or a worker holds the library
EXIT_PROBLEMS = 1  # `doctor`: something is still wrong


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _err(message: str, code: int = 2) -> int:
    print(f"shoebox: {message}", file=sys.stderr)
    return code


def _library_dir(args: argparse.Namespace) -> Path:
    from engine.config import default_library_dir

    return Path(args.library).expanduser().absolute() if args.library else default_library_dir()


def cmd_backup(args: argparse.Namespace) -> int:
    from engine.backup import CATALOG_FILE, BackupError, backup_library

    root = _library_dir(args)
    if not (root / CATALOG_FILE).exists():
        return _err(f"no library at {root}")
    try:
        info = backup_library(root, "manual", to=Path(args.to) if args.to else None)
    except BackupError as exc:
        return _err(str(exc))
    if args.json:
        _emit(info.as_dict())
    else:
        print(f"Backed up the catalog to {info.path} ({info.size:,} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from engine.backup import BackupError, LibraryBusyError, restore

    root = _library_dir(args)
    try:
        result = restore(root, Path(args.file))
    except LibraryBusyError as exc:
        return _err(str(exc), EXIT_BUSY)
    except BackupError as exc:
        return _err(str(exc))
    if args.json:
        _emit(result.as_dict())
    else:
        kept = f"; the catalog it replaced is kept as {result.previous}" if result.previous else ""
        print(f"Restored the catalog from {result.restored}{kept}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from engine import doctor
    from engine.cli import _open

    lib = _open(args)
    try:
        report = doctor.run(lib, repair=args.repair)
    finally:
        lib.close()
    if args.json:
        _emit(report.as_dict())
    else:
        for name, check in report.checks.items():
            state = "ok" if not check.found else f"{check.found} found"
            if args.repair and check.found:
                state += f", {check.fixed} fixed"
            print(f"{name:<18} {state}")
            for line in check.details if check.found else []:
                print(f"    {line}")
        if not report.ok and not args.repair:
            print("Run `shoebox doctor --repair` to fix what can be fixed.")
    return 0 if report.ok else EXIT_PROBLEMS


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", parents=[json_flag], help="back up the catalog now")
    p.add_argument("--to", metavar="DIR", help="write the backup into DIR (default: backups/)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[json_flag], help="put a backup of the catalog back")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("doctor", parents=[json_flag], help="check the library (and repair it)")
    p.add_argument("--repair", action="store_true", help="fix what can be fixed")
    p.set_defaults(func=cmd_doctor)
