"""What travels between the owner and its remote workers, and on which queues.

Huey queues per library on the Redis broker, all carrying only signed JSON
(engine/remote/signing.py) as the one argument of one task:

- `compute-<lane>` (owner → workers; a worker consumes the lanes it serves), signed
  with the library's dispatch key: one message a batch — a per-item stage's batch is
  one job — `{"lib", "stage", "version", "lane", "settings": the library's settings
  (TOML tables), "lease_s", "jobs": [{"job", "token", "attempt", "item": ItemRef,
  "files": {relpath: base64}, "payload": {…}}, …]}` (engine/remote/codec.py says what
  a stage attaches).
- `ingest` (workers → owner, consumed only by the owner), signed with the worker's key:
  `lease` (`{"lib", "worker", "jobs": [[job, token], …]}`: started or still running),
  `result` (`{"lib", "worker", "results": [{"job", "token", "ok", "output" | "error",
  "permanent"}, …]}`: one message for a batch), `refusal` (`{"lib", "worker", "jobs":
  [[job, token], …], "why", "need"}`: this worker cannot do them — `need` is
  "original" when it cannot read the file, "elsewhere" when it lacks the model or
  tesseract) and `heartbeat` (`{"lib", "worker", "host", "device", "slots", "lanes",
  "current", "done", "errors", "batch": {stage: n}, "unavailable": {stage: why}}`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from huey import Huey

from engine.jobs.broker import redis_huey
from engine.pipeline.types import ItemRef

INGEST_KINDS = ("lease", "result", "refusal", "heartbeat")
# The lanes remote workers may serve: the interactive lane (what the user is looking
# at now) stays on the owner, where it starts without a round trip.
REMOTE_LANES = ("import", "batch", "learning")
JOB_TASK = "shoebox_remote_job"
INGEST_TASK = "shoebox_ingest"
# A remote job's lease; the worker renews it every LEASE_RENEW_S (as BullMQ: 30 s, /3).
# SHOEBOX_REMOTE_LEASE_S shortens it for tests that wait for one to run out.
LEASE_S = float(os.environ.get("SHOEBOX_REMOTE_LEASE_S", "30"))
LEASE_RENEW_S = LEASE_S / 3
HEARTBEAT_S = 5.0
LIVE_S = 3 * HEARTBEAT_S  # a worker not heard from for this long is not counted on
JOB_TTL_S = 24 * 3600.0  # a job message waits in the broker at most this long
WORKER_TTL_S = 3 * 24 * 3600.0  # what a worker sends waits this long (the laptop sleeps)


def task_function(handler: Callable[[str], None]) -> Callable[[str], None]:
    """A Huey task body calling `handler`. Huey names a task after its function's module
    and name, so the sender's and the consumer's must agree whatever module defines
    them: every side registers one of these, named `JOB_TASK` or `INGEST_TASK`."""

    def task(message: str) -> None:
        handler(message)

    task.__module__ = "shoebox.remote"
    return task


def remote_huey(url: str, library_id: str, queue: str) -> Huey:
    """`compute-<lane>` or `ingest` of a library, on its Redis broker; consumers wait on
    the server (a blocking pop), not on a timer."""
    return redis_huey(url, f"shoebox_{library_id}_{queue}", blocking=True)


def item_to_json(item: ItemRef) -> dict[str, Any]:
    return {
        "id": item.id,
        "hash": item.hash,
        "kind": item.kind,
        "format": item.format,
        "size": item.size,
        "paths": list(item.paths),
        "mtime_ns": item.mtime_ns,
        "path_stats": [list(s) for s in item.path_stats],
    }


def item_from_json(data: dict[str, Any], path_map: list[tuple[str, str]] | None = None) -> ItemRef:
    paths = tuple(map_path(str(p), path_map or []) for p in data["paths"])
    return ItemRef(
        id=int(data["id"]),
        hash=str(data["hash"]),
        kind=str(data["kind"]),
        format=str(data["format"]),
        size=int(data["size"]),
        paths=paths,
        mtime_ns=None if data.get("mtime_ns") is None else int(data["mtime_ns"]),
        path_stats=tuple((int(s[0]), int(s[1])) for s in data.get("path_stats", [])),
    )


def compute_queue(lane: str) -> str:
    return f"compute-{lane}"


def parse_lanes(text: str) -> tuple[str, ...]:
    """`--lanes import,batch`: the lanes this worker serves."""
    lanes = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [lane for lane in lanes if lane not in REMOTE_LANES]
    if unknown or not lanes:
        raise ValueError(
            f"--lanes {text!r}: name some of {', '.join(REMOTE_LANES)} "
            "(the interactive lane always runs on the library's own machine)"
        )
    return lanes


def parse_map(text: str) -> tuple[str, str]:
    """`--map REMOTE=LOCAL`: the owner's folder REMOTE is LOCAL on this machine."""
    remote, sep, local = text.partition("=")
    if not sep or not remote or not local:
        raise ValueError(f"--map {text!r}: write it as OWNER_FOLDER=THIS_MACHINE_FOLDER")
    return remote.rstrip("/") or "/", local.rstrip("/") or "/"


def map_path(path: str, path_map: list[tuple[str, str]]) -> str:
    """The owner's path as this machine sees it (the longest matching prefix wins)."""
    for remote, local in sorted(path_map, key=lambda m: -len(m[0])):
        if path == remote or path.startswith(remote.rstrip("/") + "/"):
            return local + path[len(remote) :]
    return path
