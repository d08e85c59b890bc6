"""`shoebox` command line: the same engine calls as the app, JSON for scripts.

Start-up matters (`shoebox status` in well under a second): heavy modules (Pillow,
Huey, Qt) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import LANES, default_library_dir
from engine.diskspace import DiskFullError
from engine.doctor import CHECKS as DOCTOR_CHECKS
from engine.errors import SettingsError, ShoeboxError
from engine.jobs.supervisor import EXIT_DISK_FULL

if TYPE_CHECKING:
    from engine.library import Library

STABLE_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "import": (
        "session_id",
        "files_seen",
        "items_new",
        "duplicates",
        "relinked",
        "unchanged",
        "skipped",
        "unreadable",
        "changing",
        "missing",
        "jobs_queued",
        "failed",
        "cancelled",
        "rate_limited_s",
        "waited",
    ),
    "status": (
        "items",
        "missing_items",
        "stages",
        "lanes",
        "seq",
        "workers",
        "background",
        "queue",
        "queue.items",
        "queue.total",
        "queue.finished",
        "queue.remaining",
        "queue.queued",
        "queue.running",
        "queue.failed",
        "queue.waiting",
        "queue.skipped",
        "queue.active_imports",
        "queue.paused",
        "queue.rate",
        "queue.eta_s",
        "queue.disk_full",
    ),
    "items": (
        "id",
        "hash",
        "kind",
        "format",
        "size",
        "paths",
        "missing_paths",
        "metadata",
        "taken_at",
        "taken_at_source",
        "taken_at_guess",
        "thumbnails",
        "thumbnail",
        "stages",
        "tags",
        "detections",
        "embedding",
        "labels",
    ),
    "label list": (
        "name",
        "version",
        "examples",
        "negatives",
        "auto",
        "in_review",
        "estimated_precision",
        "audited_precision",
        "audited_precision_lower",
        "audited",
        "threshold",
        "suggest_only",
        "why_suggest_only",
        "training",
        "id",
    ),
    "review": ("id", "label", "score", "why", "reason"),
    "doctor": (
        "repair",
        "ok",
        *(
            f"{check}{key}"
            for check in DOCTOR_CHECKS
            for key in ("", ".found", ".fixed", ".details")
        ),
    ),
    "similar": ("id", "paths", "kind", "score"),
    "sessions": (
        "id",
        "kind",
        "roots",
        "state",
        "paused",
        "lane_paused",
        "started_at",
        "files",
        "items_new",
        "planned",
        "total",
        "finished",
        "remaining",
        "jobs",
        "jobs_total",
        "jobs_finished",
        "rate",
        "eta_s",
    ),
    "metrics": (
        "window_s",
        "stages",
        "hosts",
        "lanes",
        "throughput",
        "background",
    ),
}
"""JSON keys scripts may rely on, per command (`shoebox COMMAND --json`); a dotted key
is nested (`queue.eta_s`), `sessions` gives a list of objects with these keys. Each
is documented (tests/test_docs.py checks both that the command emits it and that the
docs name it). `sessions` also has each job state's count at the top level, and
`lanes`/`stages` in `status` map names to `{state: count}` (states: ledger.STATES)."""


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _open(args: argparse.Namespace) -> Library:
    from engine.library import Library

    return Library(Path(args.library) if args.library else default_library_dir())


def cmd_import(args: argparse.Namespace) -> int:
    from engine.jobs.supervisor import run_until_done

    lib = _open(args)
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        print(f"shoebox: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    interactive = not args.json and sys.stderr.isatty()

    def progress(s: Any) -> None:
        print(f"\rcatalogued {s.files_seen} files, {s.items_new} new", end="", file=sys.stderr)

    from engine.diskspace import DiskFullError, full_message, is_disk_full_error
    from engine.jobs.supervisor import EXIT_DISK_FULL

    try:
        summary = lib.import_paths(args.paths, progress=progress if interactive else None)
    except Exception as exc:
        if not is_disk_full_error(exc):
            raise
        # The scan's transaction rolled back: what was catalogued before stays, and the
        # same import run again goes on from there.
        print(f"\nshoebox: {full_message(lib.root, None)} Then import again.", file=sys.stderr)
        return EXIT_DISK_FULL
    if interactive:
        print(file=sys.stderr)
    if args.wait and not summary.cancelled:

        def restarted(code: int) -> None:
            print(f"shoebox: the worker stopped (status {code}); restarting it", file=sys.stderr)

        done = threading.Event()
        if interactive:
            threading.Thread(
                target=_print_progress, args=(lib, summary.session_id, done), daemon=True
            ).start()
        try:
            run_until_done(
                lib.root,
                summary.session_id,
                lambda: lib.has_pending_work(summary.session_id),
                on_restart=restarted,
            )
        except DiskFullError as exc:
            print(f"\nshoebox: {exc} Then run `shoebox work`.", file=sys.stderr)
            return EXIT_DISK_FULL
        finally:
            done.set()
        if interactive:
            print(file=sys.stderr)
    result = lib.session_summary(summary.session_id).as_dict()
    result["missing"] = summary.missing  # the scan's own findings: not kept per session
    result["changing"] = summary.changing
    result["rate_limited_s"] = summary.rate_limited_s
    result["waited"] = bool(args.wait)
    if args.json:
        _emit(result)
    else:
        print(
            f"Import {result['session_id']}: {result['files_seen']} files, "
            f"{result['items_new']} new, {result['duplicates']} duplicates, "
            f"{result['relinked']} re-linked, {result['skipped']} skipped, "
            f"{result['failed']} failed"
            + ("" if args.wait else f"; {result['jobs_queued']} jobs queued (run `shoebox work`)")
        )
        _print_scan_problems(lib, summary.session_id)
    lib.close()
    return 0


def _print_scan_problems(lib: Library, session_id: int, limit: int = 20) -> None:
    """The files the scan could not catalogue, each with its reason (on stderr)."""
    rows = lib.catalog.read(
        "SELECT display, reason FROM scan_problems WHERE session_id = ? ORDER BY id",
        (session_id,),
    )
    for display, reason in rows[:limit]:
        print(f"  not read: {display}: {reason}", file=sys.stderr)
    if len(rows) > limit:
        print(f"  … and {len(rows) - limit} more (shoebox sessions --json)", file=sys.stderr)


def _print_progress(lib: Library, session_id: int, done: threading.Event) -> None:
    """A one-line progress display on stderr, from the same query the app's panel uses."""
    from engine.progress import ProgressTracker, format_eta, format_rate

    tracker = ProgressTracker()
    while not done.wait(0.5):
        found = tracker.sessions(lib.catalog.conn, session_ids=[session_id])
        if not found:
            continue
        p = found[0]
        parts = [f"processed {p.finished:,} of {p.total:,}"]
        if p.rate > 0:
            parts.append(format_rate(p.rate))
        if eta := format_eta(p.eta_s):
            parts.append(eta)
        if p.failed or p.dead:
            parts.append(f"{p.failed + p.dead} failed")
        print("\r" + " · ".join(parts) + "\033[K", end="", file=sys.stderr, flush=True)


def cmd_status(args: argparse.Namespace) -> int:
    lib = _open(args)
    data = lib.status()
    data["queue"] = lib.progress()
    if args.json:
        _emit(data)
    else:
        print(f"{data['items']} items ({data['missing_items']} missing)")
        for lane, counts in data["lanes"].items():
            flag = " (paused)" if counts.pop("paused") else ""
            quiet = ("cancelled", "skipped", "waiting")
            shown = {s: n for s, n in counts.items() if n or s not in quiet}
            print(f"  {lane:<12}{flag} " + ", ".join(f"{s} {n}" for s, n in shown.items()))
    lib.close()
    return 0


def cmd_items(args: argparse.Namespace) -> int:
    lib = _open(args)
    data = lib.items(args.ids or None)
    if args.json:
        _emit(data)
    else:
        for item in data:
            states = " ".join(f"{k}:{v['state']}" for k, v in item["stages"].items())
            first = item["paths"][0] if item["paths"] else "(missing)"
            print(f"{item['id']:>6} {item['kind']:<8} {states:<32} {first}")
    lib.close()
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    lib = _open(args)
    data = lib.sessions()
    if args.json:
        _emit(data)
    else:
        for s in data:
            print(
                f"{s['id']:>4} {s['state']:<11} {s['jobs_finished']}/{s['jobs_total']} "
                f"{', '.join(s['roots'])}"
            )
    lib.close()
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    from engine.diskspace import DiskFullError
    from engine.errors import LibraryLockedError
    from engine.jobs.host import WorkerHost
    from engine.jobs.supervisor import EXIT_DISK_FULL, EXIT_LOCKED

    lib = _open(args)
    lib.setup_logging()
    from engine.jobs.throttle import lower_priority

    priority: dict[str, Any] = {}
    if not args.until_idle:
        # The background host (the app's, a terminal's): below the app and the user's
        # programs, for CPU and disk (engine/jobs/throttle.py). `--until-idle` is a run the
        # user waits for, in the foreground: it keeps its priority.
        priority = lower_priority(lib.settings.background.nice)
        __import__("logging").getLogger("shoebox.throttle").info("priority: %s", priority)
    disk_full: str | None = None
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, follow_settings=True)
    host.priority = priority
    metrics_server = None
    if args.metrics_port:
        from engine.jobs.metrics import serve_library_metrics

        try:
            metrics_server = serve_library_metrics(lib.root, args.metrics_port)
        except OSError as exc:
            print(f"shoebox: cannot serve metrics on 127.0.0.1:{args.metrics_port}: {exc}",
                  file=sys.stderr)  # fmt: skip
            lib.close()
            return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if args.parent_pid:
        threading.Thread(
            target=_stop_when_orphaned, args=(args.parent_pid, stop), daemon=True
        ).start()
    try:
        try:
            host.start()
        except LibraryLockedError as exc:
            print(f"shoebox: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        from engine.backup import DailyBackups

        daily = DailyBackups(lib.root)  # the daily catalog backup, when one is due
        daily.tick()
        try:
            if args.until_idle:
                try:
                    host.wait_idle(args.session, stop, stop_when_disk_full=True)
                except DiskFullError as exc:
                    disk_full = str(exc)
            else:
                # A long-running host also watches the watched folders (the app runs this).
                from engine.watch import FolderWatcher

                with FolderWatcher(lib):
                    while not stop.wait(0.5):
                        daily.tick()
        finally:
            host.stop()
            daily.join(30.0)
            if metrics_server is not None:
                metrics_server.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if disk_full is not None:
        print(f"shoebox: {disk_full} Then run `shoebox work` again.", file=sys.stderr)
    if args.json:
        _emit(
            {
                "done": host.stats.done,
                "failed": host.stats.failed,
                "dead": host.stats.dead,
                "retried": host.stats.retried,
                "recovered": host.stats.recovered,
                "max_queue_messages": host.stats.max_queue_messages,
                "disk_full": disk_full,
            }
        )
    lib.close()
    return EXIT_DISK_FULL if disk_full is not None else 0


def _stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    """The process that started us died (we were re-parented): stop gracefully."""
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            stop.set()


def cmd_retry(args: argparse.Namespace) -> int:
    lib = _open(args)
    count = lib.retry(dead_only=args.dead, item_ids=args.items or None)
    if args.json:
        _emit({"retried": count})
    else:
        print(f"{count} jobs queued again")
    lib.close()
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    lib = _open(args)
    if args.command == "pause":
        lib.pause(args.lane)
    else:
        lib.resume(args.lane)
    if args.json:
        _emit(lib.lane_paused())
    lib.close()
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    lib = _open(args)
    count = lib.cancel_session(args.session)
    if args.json:
        _emit({"cancelled": count})
    else:
        print(f"{count} queued jobs cancelled")
    lib.close()
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from engine.watch import add_watch, list_watches, remove_watch

    lib = _open(args)
    try:
        if args.action == "list":
            data: Any = [w.as_dict() for w in list_watches(lib)]
            if not args.json:
                for w in data:
                    print(w["path"])
        elif not args.path:
            print(f"shoebox: watch {args.action} needs a PATH", file=sys.stderr)
            return 2
        elif args.action == "add":
            try:
                folder = add_watch(lib, args.path)
            except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
                print(f"shoebox: {exc}", file=sys.stderr)
                return 2
            data = folder.as_dict()
            if folder.session_id is not None:
                data["import"] = lib.session_summary(folder.session_id).as_dict()
            if not args.json:
                print(
                    f"Watching {folder.display}; new files are catalogued as they arrive "
                    "(while the app or `shoebox work` runs, they are processed too)."
                )
        else:
            removed = remove_watch(lib, args.path)
            data = {"removed": removed}
            if not args.json:
                print("No longer watched." if removed else "That folder was not watched.")
        if args.json:
            _emit(data)
        return 0
    finally:
        lib.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoebox",
        description="Shoebox: a local-first organizer for your photos and scanned documents. "
        "With no command, opens the app.",
    )
    parser.add_argument(
        "--library",
        metavar="DIR",
        help="library folder (default: %(default)s)",
        default=os.environ.get("SHOEBOX_LIBRARY"),
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="the job queue's broker for this run: a redis:// or rediss:// URL shared with "
        "worker hosts on other machines (default: the library's queue.broker, else the "
        "embedded queue)",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("import", parents=[json_flag], help="catalogue files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--wait", action="store_true", help="process the import before returning")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("status", parents=[json_flag], help="items and job counts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("items", parents=[json_flag], help="list items with their stages")
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.set_defaults(func=cmd_items)

    p = sub.add_parser("sessions", parents=[json_flag], help="list imports and their progress")
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("work", parents=[json_flag], help="run workers for queued jobs")
    p.add_argument("--until-idle", action="store_true", help="exit when no work is left")
    p.add_argument("--session", type=int, help="with --until-idle: wait for this import only")
    p.add_argument("--parent-pid", type=int, help="stop when this process (the app) is gone")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve the metrics as Prometheus text on 127.0.0.1:PORT/metrics "
                   "(default: off)")  # fmt: skip
    p.set_defaults(func=cmd_work)

    p = sub.add_parser("retry", parents=[json_flag], help="queue failed and dead jobs again")
    p.add_argument("--dead", action="store_true", help="only dead jobs")
    p.add_argument("items", nargs="*", type=int, metavar="ITEM")
    p.set_defaults(func=cmd_retry)

    for name, text in (("pause", "stop starting new jobs"), ("resume", "start jobs again")):
        p = sub.add_parser(name, parents=[json_flag], help=f"{text} (one lane or all)")
        p.add_argument("lane", nargs="?", choices=LANES)
        p.set_defaults(func=cmd_pause)

    p = sub.add_parser("watch", parents=[json_flag], help="watch folders for new files")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("path", nargs="?", metavar="PATH")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("cancel", parents=[json_flag], help="cancel an import's queued jobs")
    p.add_argument("session", type=int)
    p.set_defaults(func=cmd_cancel)

    from engine.cli_labels import add_parsers as add_label_parsers
    from engine.cli_maintenance import add_parsers as add_maintenance_parsers
    from engine.cli_metrics import add_parsers as add_metrics_parsers
    from engine.cli_models import add_parsers
    from engine.cli_search import add_parsers as add_search_parsers
    from engine.cli_selftest import add_parsers as add_selftest_parsers
    from engine.cli_workers import add_parsers as add_worker_parsers

    add_parsers(sub, json_flag)
    add_search_parsers(sub, json_flag)
    add_label_parsers(sub, json_flag)
    add_maintenance_parsers(sub, json_flag)
    add_selftest_parsers(sub, json_flag)
    add_worker_parsers(sub, json_flag)
    add_metrics_parsers(sub, json_flag)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the app is opened by desktop.launcher, not here
        parser.print_help()
        return 0
    if args.broker:
        from engine.jobs.broker import BROKER_ENV, broker_ok

        if not broker_ok(args.broker):
            print(f"shoebox: --broker {args.broker!r} is not a redis:// URL", file=sys.stderr)
            return 2
        os.environ[BROKER_ENV] = args.broker  # and so for the worker hosts it starts
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"shoebox: {line}", file=sys.stderr)
        print(
            f"shoebox: edit {exc.path} to fix this, or delete it to go back to the defaults",
            file=sys.stderr,
        )
        return 2
    except DiskFullError as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return EXIT_DISK_FULL
    except ShoeboxError as exc:  # said on purpose, for a person: no traceback
        print(f"shoebox: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
