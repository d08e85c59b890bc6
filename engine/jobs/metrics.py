"""Per-stage and per-host figures over a rolling window, kept in the catalog.

The worker host counts, in memory, each job's outcome (done or failed) and duration per
(minute, host, stage), and its own capacity (workers × seconds) per minute; every few
seconds it folds them into `metrics` (migration m009), one row per minute, host and
stage, and drops minutes older than `WINDOW_S`. Durations are kept as up to
`SAMPLES_PER_ROW` samples a row (a uniform subsample past that), from which p50 and p95
are read: exact for small counts, a fair estimate for large ones, and bounded in size.

`summary()` is what `shoebox metrics`, `status` and the jobs panel show; `prometheus()`
renders the same figures as Prometheus text.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("shoebox.metrics")

WINDOW_S = 24 * 3600  # what the catalog keeps
SAMPLES_PER_ROW = 64
LOCAL = "local"  # the library's own worker host; remote workers go by their names


@dataclass
class _Acc:
    done: int = 0
    failed: int = 0
    busy_s: float = 0.0
    capacity_s: float = 0.0
    samples: list[float] = field(default_factory=list)


class MetricsRecorder:
    def __init__(self) -> None:
        self._acc: dict[tuple[int, str, str], _Acc] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(0)

    def _get(self, host: str, stage: str, now: float | None) -> _Acc:
        key = (int((time.time() if now is None else now) // 60), host, stage)
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = _Acc()
        return acc

    def outcome(self, stage: str, ok: bool, host: str = LOCAL, now: float | None = None) -> None:
        with self._lock:
            acc = self._get(host, stage, now)
            if ok:
                acc.done += 1
            else:
                acc.failed += 1

    def duration(
        self, stage: str, seconds: float, n: int = 1, host: str = LOCAL, now: float | None = None
    ) -> None:
        """`n` jobs that took `seconds` each (a batch's share)."""
        with self._lock:
            acc = self._get(host, stage, now)
            acc.busy_s += seconds * n
            for _ in range(n):
                _keep(acc.samples, seconds, self._rng)

    def capacity(self, seconds: float, host: str = LOCAL, now: float | None = None) -> None:
        with self._lock:
            self._get(host, "", now).capacity_s += seconds

    def flush(self, conn: sqlite3.Connection, now: float | None = None) -> int:
        """Fold what was counted into the catalog (inside the caller's transaction)."""
        with self._lock:
            acc, self._acc = self._acc, {}
        for (minute, host, stage), a in acc.items():
            row = conn.execute(
                """SELECT done, failed, busy_s, capacity_s, samples FROM metrics
                   WHERE minute = ? AND host = ? AND stage = ?""",
                (minute, host, stage),
            ).fetchone()
            samples = list(a.samples)
            if row is not None:
                old = [float(x) for x in json.loads(row[4] or "[]")]
                samples = _merge(old, int(row[0]) + int(row[1]), samples, self._rng)
                a.done += int(row[0])
                a.failed += int(row[1])
                a.busy_s += float(row[2])
                a.capacity_s += float(row[3])
            conn.execute(
                """INSERT OR REPLACE INTO metrics
                   (minute, host, stage, done, failed, busy_s, capacity_s, samples)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (minute, host, stage, a.done, a.failed, a.busy_s, a.capacity_s,
                 json.dumps([round(s, 4) for s in samples])),
            )  # fmt: skip
        cutoff = int(((time.time() if now is None else now) - WINDOW_S) // 60)
        conn.execute("DELETE FROM metrics WHERE minute < ?", (cutoff,))
        return len(acc)


def _keep(samples: list[float], value: float, rng: random.Random) -> None:
    if len(samples) < SAMPLES_PER_ROW:
        samples.append(value)
    else:
        samples[rng.randrange(SAMPLES_PER_ROW)] = value


def _merge(old: list[float], old_n: int, new: list[float], rng: random.Random) -> list[float]:
    """Two samples as one of at most SAMPLES_PER_ROW, each side weighted by its count."""
    if len(old) + len(new) <= SAMPLES_PER_ROW:
        return old + new
    total = max(old_n, len(old)) + len(new)
    take_old = round(SAMPLES_PER_ROW * max(old_n, len(old)) / total)
    take_old = min(len(old), max(0, take_old))
    take_new = min(len(new), SAMPLES_PER_ROW - take_old)
    return rng.sample(old, take_old) + rng.sample(new, take_new)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[i], 4)


def summary(
    conn: sqlite3.Connection, window_s: float = 3600.0, now: float | None = None
) -> dict[str, Any]:
    """The window's figures: per stage, per host, per lane, and throughput a minute."""
    now = time.time() if now is None else now
    first = int((now - window_s) // 60) + 1
    last = int(now // 60)
    stages: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {}
    hosts: dict[str, dict[str, float]] = {}
    per_minute: dict[int, int] = {}
    for minute, host, stage, done, failed, busy, capacity, raw in conn.execute(
        """SELECT minute, host, stage, done, failed, busy_s, capacity_s, samples FROM metrics
           WHERE minute >= ? ORDER BY minute""",
        (first,),
    ):
        h = hosts.setdefault(str(host), {"busy_s": 0.0, "capacity_s": 0.0, "done": 0})
        h["capacity_s"] += float(capacity)
        if stage == "":
            continue
        h["busy_s"] += float(busy)
        h["done"] += int(done)
        s = stages.setdefault(str(stage), {"done": 0, "failed": 0, "busy_s": 0.0})
        s["done"] += int(done)
        s["failed"] += int(failed)
        s["busy_s"] += float(busy)
        samples.setdefault(str(stage), []).extend(float(x) for x in json.loads(raw or "[]"))
        per_minute[int(minute)] = per_minute.get(int(minute), 0) + int(done)
    for name, s in stages.items():
        s["p50_s"] = _quantile(samples[name], 0.5)
        s["p95_s"] = _quantile(samples[name], 0.95)
        s["items_per_s"] = round(s["done"] / window_s, 4)
        s["busy_s"] = round(s["busy_s"], 3)
    host_out = {
        name: {
            "done": int(h["done"]),
            "busy_s": round(h["busy_s"], 3),
            "utilisation": None
            if h["capacity_s"] <= 0
            else round(min(1.0, h["busy_s"] / h["capacity_s"]), 4),
        }
        for name, h in sorted(hosts.items())
    }
    lanes: dict[str, dict[str, int]] = {}
    has_ledger = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_counts'"
    ).fetchone()
    for lane, state, n in conn.execute(
        "SELECT lane, state, sum(n) FROM job_counts WHERE state IN ('queued', 'running', "
        "'waiting') GROUP BY lane, state"
        if has_ledger
        else "SELECT 1, 2, 3 WHERE 0"  # a remote worker's figures: it has no queue of its own
    ):
        lanes.setdefault(str(lane), {"queued": 0, "running": 0, "waiting": 0})[str(state)] = int(n)
    return {
        "window_s": window_s,
        "stages": dict(sorted(stages.items())),
        "hosts": host_out,
        "lanes": lanes,
        "throughput": [
            {"minute": m * 60, "done": per_minute.get(m, 0)} for m in range(first, last + 1)
        ],
    }


def prometheus(data: dict[str, Any], extra: Iterable[tuple[str, str, float]] = ()) -> str:
    """The summary as Prometheus text exposition (version 0.0.4)."""
    lines = [
        "# HELP shoebox_jobs_total Jobs finished in the window, by stage and outcome.",
        "# TYPE shoebox_jobs_total gauge",
    ]
    for stage, s in data["stages"].items():
        for outcome in ("done", "failed"):
            lines.append(f'shoebox_jobs_total{{stage="{_esc(stage)}",outcome="{outcome}"}} '
                         f"{s[outcome]}")  # fmt: skip
    lines += [
        "# HELP shoebox_job_duration_seconds Job duration quantiles in the window.",
        "# TYPE shoebox_job_duration_seconds summary",
    ]
    for stage, s in data["stages"].items():
        for q, key in (("0.5", "p50_s"), ("0.95", "p95_s")):
            if s[key] is not None:
                lines.append(f'shoebox_job_duration_seconds{{stage="{_esc(stage)}",'
                             f'quantile="{q}"}} {s[key]}')  # fmt: skip
    lines += [
        "# HELP shoebox_items_per_second Jobs done a second over the window, by stage.",
        "# TYPE shoebox_items_per_second gauge",
    ]
    for stage, s in data["stages"].items():
        lines.append(f'shoebox_items_per_second{{stage="{_esc(stage)}"}} {s["items_per_s"]}')
    lines += [
        "# HELP shoebox_queue_jobs Jobs per lane and state, now.",
        "# TYPE shoebox_queue_jobs gauge",
    ]
    for lane, states in data["lanes"].items():
        for state, n in states.items():
            lines.append(f'shoebox_queue_jobs{{lane="{_esc(lane)}",state="{state}"}} {n}')
    lines += [
        "# HELP shoebox_host_utilisation Busy share of a worker host's capacity.",
        "# TYPE shoebox_host_utilisation gauge",
    ]
    for host, h in data["hosts"].items():
        if h["utilisation"] is not None:
            lines.append(f'shoebox_host_utilisation{{host="{_esc(host)}"}} {h["utilisation"]}')
    for name, labels, value in extra:
        lines.append(f"{name}{labels} {value}")
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- where no catalog is: a remote worker keeps its figures in memory ------------------------

METRICS_TABLE = """CREATE TABLE metrics (
    minute INTEGER NOT NULL, host TEXT NOT NULL, stage TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    busy_s REAL NOT NULL DEFAULT 0, capacity_s REAL NOT NULL DEFAULT 0,
    samples TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (minute, host, stage))"""


class MemoryMetrics:
    """A recorder and its own in-memory `metrics` table (the catalog's shape), so a
    worker host with no catalog reports the same summary."""

    def __init__(self) -> None:
        self.recorder = MetricsRecorder()
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(METRICS_TABLE)
        self._lock = threading.Lock()

    def summary(self, window_s: float = 3600.0) -> dict[str, Any]:
        with self._lock:
            self.recorder.flush(self._conn)
            return summary(self._conn, window_s)


# -- Prometheus text on a loopback port ---------------------------------------------------


def serve_prometheus(port: int, render: Callable[[], str]) -> ThreadingHTTPServer:
    """`GET /metrics` on 127.0.0.1:`port` only — the figures name stages and hosts, so
    they are not offered to the network; a scraper elsewhere goes through a tunnel or
    a local agent. Runs on a daemon thread; `.shutdown()` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "see /metrics")
                return
            try:
                body = render().encode()
            except Exception as exc:
                log.exception("rendering the metrics failed")
                self.send_error(500, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics on http://127.0.0.1:%d/metrics", server.server_address[1])
    return server


def library_summary(root: Path, window_s: float = 3600.0) -> dict[str, Any]:
    """The summary from a library's catalog, read-only, plus the host's background mode."""
    from engine.queries import host_background

    conn = sqlite3.connect(f"file:{root / 'catalog.db'}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        data = summary(conn, window_s)
        data["background"] = host_background(conn)
        return data
    finally:
        conn.close()


def background_gauges(background: dict[str, Any] | None) -> list[tuple[str, str, float]]:
    if not background:
        return []
    return [
        ("shoebox_background_workers", "", float(background.get("workers", 0))),
        ("shoebox_background_throttled", "", 1.0 if background.get("throttled") else 0.0),
    ]


def serve_library_metrics(root: Path, port: int) -> ThreadingHTTPServer:
    def render() -> str:
        data = library_summary(root)
        return prometheus(data, background_gauges(data.get("background")))

    return serve_prometheus(port, render)
