"""`shoebox workers add|remove|list`: enrolling worker hosts on other machines."""

from __future__ import annotations

import argparse
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
