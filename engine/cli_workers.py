"""`shoebox workers add|remove|list`: enrolling worker hosts on other machines."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from engine.cli_models import _emit, _err, _open
from engine.remote.enrol import WorkerError, add_worker, list_workers, remove_worker


def cmd_workers(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        try:
            return _workers(lib, args)
        except WorkerError as exc:
            return _err(str(exc))
    finally:
        lib.close()


def _workers(lib: Any, args: argparse.Namespace) -> int:
    if args.action == "add":
        with lib.catalog.write() as conn:
            token = add_worker(conn, args.name)
        if args.json:
            _emit({"name": args.name, "key_id": token.worker.key_id, "token": token.encode()})
        else:
            print(token.encode())  # one line, the whole output: easy to copy or pipe
        return 0
    if args.action == "remove":
        with lib.catalog.write() as conn:
            remove_worker(conn, args.name)
        if args.json:
            _emit({"name": args.name, "removed": True})
        else:
            print(f"Removed worker {args.name}: its key is revoked, and what it sends is refused.")
        return 0
    workers = list_workers(lib.catalog.conn)
    if args.json:
        _emit([w.to_json() for w in workers])
        return 0
    if not workers:
        print("No workers enrolled. Enrol one: shoebox workers add NAME")
    for w in workers:
        state = "removed" if w.revoked_at is not None else "enrolled"
        seen = (
            f"last seen {time.strftime('%Y-%m-%d %H:%M', time.localtime(w.last_seen_at))}"
            if w.last_seen_at
            else "never seen"
        )
        print(f"{w.name}: {state}, {seen}, {w.jobs_done} jobs done, {w.errors} errors")
    return 0


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "workers",
        parents=[json_flag],
        help="enrol or remove worker hosts on other machines",
        description="`workers add NAME` prints one line, the token the worker host on that "
        "machine starts with; `workers remove NAME` revokes it.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[json_flag], help="enrol a worker; prints its token")
    add.add_argument("name", metavar="NAME")
    remove = actions.add_parser("remove", parents=[json_flag], help="revoke a worker's key")
    remove.add_argument("name", metavar="NAME")
    actions.add_parser("list", parents=[json_flag], help="the enrolled workers")
    p.set_defaults(func=cmd_workers)
    add_worker_parser(sub)


def cmd_worker(args: argparse.Namespace) -> int:
    """`shoebox worker`: serve a library's owner from this machine (engine/remote/worker.py)."""
    import logging
    import signal
    import threading

    from engine.jobs.broker import BROKER_ENV, is_redis, redacted
    from engine.remote.protocol import REMOTE_LANES, parse_lanes, parse_map
    from engine.remote.signing import TokenError, WorkerToken
    from engine.remote.worker import RemoteWorker, run_worker_forever

    broker = os.environ.get(BROKER_ENV, "")
    if not is_redis(broker):
        return _err("worker: name the library's Redis broker: shoebox --broker redis://… worker")
    text = args.token or os.environ.get("SHOEBOX_WORKER_TOKEN", "")
    if not text:
        return _err("worker: give the token `shoebox workers add NAME` printed (--token or "
                    "SHOEBOX_WORKER_TOKEN)")  # fmt: skip
    try:
        token = WorkerToken.decode(text)
        path_map = [parse_map(m) for m in args.map or []]
        lanes = parse_lanes(args.lanes) if args.lanes else REMOTE_LANES
    except (TokenError, ValueError) as exc:
        return _err(f"worker: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    from engine.jobs.throttle import lower_priority

    # A machine lent to the library is still someone's: yield to its other programs.
    log = logging.getLogger("shoebox.worker")
    log.info("priority: %s", lower_priority(args.nice))
    worker = RemoteWorker(broker, token, slots=args.workers, lanes=lanes, path_map=path_map,
                          device=args.device)  # fmt: skip
    if args.metrics_port:
        from engine.jobs.metrics import prometheus, serve_prometheus

        def render() -> str:
            return prometheus(worker.metrics.summary())

        try:
            server = serve_prometheus(args.metrics_port, render)
        except OSError as exc:
            return _err(f"worker: cannot serve metrics on 127.0.0.1:{args.metrics_port}: {exc}")
        stop_server = server.shutdown
    else:
        stop_server = None
    print(f"Worker {token.worker.name} serving {token.library_id} on {redacted(broker)} "
          f"with {args.workers} slot(s), lanes {','.join(lanes)}; Ctrl-C stops it.",
          flush=True)  # fmt: skip
    try:
        return run_worker_forever(worker, stop)
    finally:
        if stop_server is not None:
            stop_server()


def add_worker_parser(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="a headless worker host for a library on another machine (through Redis)",
        description="Takes jobs from the library's queue on the broker (`shoebox --broker "
        "redis://… worker`), runs them here and sends the results back; stops gracefully "
        "on SIGTERM.",
    )
    p.add_argument("--token", help="the line `shoebox workers add NAME` printed "
                   "(default: SHOEBOX_WORKER_TOKEN)")  # fmt: skip
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   metavar="N", help="jobs at a time (default: one per core)")  # fmt: skip
    p.add_argument("--lanes", metavar="LANE,…",
                   help="lanes to serve: import, batch, learning (default: all)")  # fmt: skip
    p.add_argument("--device", default="auto", help="compute device for models (auto, cpu, cuda)")
    p.add_argument("--map", action="append", metavar="REMOTE=LOCAL",
                   help="the owner's folder REMOTE is LOCAL here (repeatable)")  # fmt: skip
    p.add_argument("--nice", type=int, default=10, metavar="N",
                   help="CPU niceness, 0-19 (default 10: other programs first; disk I/O "
                   "is idle-class)")  # fmt: skip
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve this worker's figures as Prometheus text on "
                   "127.0.0.1:PORT/metrics (default: off)")  # fmt: skip
    p.set_defaults(func=cmd_worker)
