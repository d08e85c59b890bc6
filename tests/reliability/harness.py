"""The fault-injection harness: a library and a source tree, hosts run in child
processes with fault variables, and the invariants checked after recovery.

Every run has a seed; whatever is random (the kill points, which files are
duplicates) comes from `random.Random(seed)`, so a failing run is replayed with the
same seed (SHOEBOX_TEST_SEED in the tests). Each test writes one JSON record per
run under $SHOEBOX_RELIABILITY_OUT (see tests/reliability/README.md), which
`tests/reliability/run.py` turns into docs/reliability.md.

Reads of the catalog go through a plain read-only sqlite3 connection, never a
`Library` (which would migrate, recover or write), so what a dead host left is
seen as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg

RUN_TIMEOUT_S = 240.0
ENDED = ("done", "failed", "dead", "skipped", "cancelled")


def results_dir() -> Path | None:
    """Where records go ($SHOEBOX_RELIABILITY_OUT), or None: records are then not kept."""
    out = os.environ.get("SHOEBOX_RELIABILITY_OUT")
    return Path(out) if out else None


def write_record(record: dict[str, Any]) -> None:
    """One JSON file per record (format: tests/reliability/README.md)."""
    out = results_dir()
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    name = f"{record['suite']}-{record['kind']}-{record.get('seed', 0)}-{os.getpid()}-"
    name += f"{time.monotonic_ns()}.json"
    (out / name).write_text(json.dumps(record, indent=1, sort_keys=True))


def seeds(default: Iterable[int]) -> list[int]:
    """SHOEBOX_TEST_SEED=<n> replays one seed instead of the defaults."""
    fixed = os.environ.get("SHOEBOX_TEST_SEED")
    return [int(fixed)] if fixed else list(default)


@dataclass
class Snapshot:
    """What the catalog reported done at one moment."""

    done_jobs: set[tuple[int, str]] = field(default_factory=set)
    results: set[tuple[int, str]] = field(default_factory=set)
    thumbnails: set[tuple[int, str, str]] = field(default_factory=set)
    vectors: set[tuple[int, str]] = field(default_factory=set)
    items: set[str] = field(default_factory=set)


@dataclass
class Check:
    """The invariants after recovery; `problems` lists every one broken."""

    items: int = 0
    distinct_sources: int = 0
    jobs: int = 0
    items_lost: int = 0
    items_duplicated: int = 0
    jobs_lost: int = 0
    jobs_duplicated: int = 0
    jobs_unended: int = 0
    ended_without_reason: int = 0
    reported_done_lost: int = 0
    thumbnail_files_missing: int = 0
    originals_changed: int = 0
    integrity: str = ""
    problems: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.problems


class Harness:
    """A source tree and a library under `root`, with one seed."""

    def __init__(self, root: Path, seed: int, *, library: Path | None = None) -> None:
        self.root = root
        self.seed = seed
        self.rng = random.Random(seed)
        self.source = root / "src"
        self.library = library if library is not None else root / "lib"
        self.log = root / "hosts.log"
        self.runs = 0
        self.kills = 0
        self._originals: dict[str, tuple[str, int]] = {}

    @property
    def tag(self) -> str:
        """Put in every assertion message: the seed replays the run."""
        return f"[seed {self.seed}; SHOEBOX_TEST_SEED={self.seed} replays it; log {self.log}]"

    # -- building ------------------------------------------------------------------

    def build_source(self, n_files: int, *, duplicates: int = 3) -> int:
        """`n_files` distinct small JPEGs (content from the seed) in a few folders, plus
        `duplicates` byte-identical copies; returns the number of distinct contents."""
        for i in range(n_files):
            jpeg(self.source / f"d{i % 4}" / f"p{i:04d}.jpg", self.seed * 100_003 + i)
        for k in range(duplicates):
            i = self.rng.randrange(n_files)
            src = self.source / f"d{i % 4}" / f"p{i:04d}.jpg"
            dst = self.source / "copies" / f"copy{k}.jpg"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
        self._originals = self.checksums()
        return len({digest for digest, _ in self._originals.values()})

    def checksums(self) -> dict[str, tuple[str, int]]:
        """{relative path: (sha256, mtime_ns)} of every source file."""
        out: dict[str, tuple[str, int]] = {}
        for path in sorted(self.source.rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(self.source))] = (digest, path.stat().st_mtime_ns)
        return out

    # -- running -------------------------------------------------------------------

    def env(self, **faults: str) -> dict[str, str]:
        """A child's environment: no fault injection but the ones asked for."""
        env = {k: v for k, v in cli_env().items() if not k.startswith("SHOEBOX_FAULT_")}
        return {**env, **faults}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "engine.cli", "--library", str(self.library), *args]

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run `shoebox ARGS` to its end; a hang fails with what the log says."""
        self.runs += 1
        try:
            proc = subprocess.run(
                self.command(*args), cwd=REPO, env=env or self.env(), capture_output=True,
                text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"shoebox {' '.join(args)} hung ({timeout:g} s) {self.tag}"
            ) from exc
        with self.log.open("a") as log:
            log.write(f"--- shoebox {' '.join(args)} -> {proc.returncode}\n{proc.stderr}\n")
        if proc.returncode == -signal.SIGKILL:
            self.kills += 1
        return proc

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `shoebox ARGS` without waiting (stdout/stderr to pipes)."""
        self.runs += 1
        return subprocess.Popen(
            self.command(*args), cwd=REPO, env=env or self.env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def import_source(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Catalogue the source tree (jobs queued, none run)."""
        proc = self.cli("import", str(self.source), "--json", env=env)
        assert proc.returncode == 0, f"import failed: {proc.stderr[-2000:]} {self.tag}"
        return dict(json.loads(proc.stdout))

    def work(self, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("work", "--until-idle", "--json", env=env)

    def work_clean(self) -> dict[str, Any]:
        """`work --until-idle` without faults: must exit 0; returns its stats."""
        proc = self.work()
        assert proc.returncode == 0, (
            f"work failed ({proc.returncode}): {proc.stderr[-3000:]} {self.tag}"
        )
        return dict(json.loads(proc.stdout))

    # -- reading -------------------------------------------------------------------

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.library / 'catalog.db'}?mode=ro", uri=True, timeout=60)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def count(self, where: str = "1") -> int:
        return int(self.read(f"SELECT count(*) FROM jobs WHERE {where}")[0][0])

    def total_jobs(self) -> int:
        return self.count()

    def snapshot(self) -> Snapshot:
        """Everything reported done now (taken after a kill, before the next start)."""
        return Snapshot(
            done_jobs={
                (int(r[0]), str(r[1]))
                for r in self.read(
                    "SELECT item_id, stage FROM jobs WHERE state = 'done' AND item_id IS NOT NULL"
                )
            },
            results={
                (int(r[0]), str(r[1])) for r in self.read("SELECT item_id, stage FROM results")
            },
            thumbnails={
                (int(r[0]), str(r[1]), str(r[2]))
                for r in self.read("SELECT item_id, size, path FROM thumbnails")
            },
            vectors={
                (int(r[0]), str(r[1])) for r in self.read("SELECT item_id, model FROM vectors")
            },
            items={str(r[0]) for r in self.read("SELECT hash FROM items")},
        )

    # -- the invariants ------------------------------------------------------------

    def check(
        self,
        distinct: int,
        before: Iterable[Snapshot] = (),
        *,
        allow_failed: bool = False,
    ) -> Check:
        """After recovery and a clean `work --until-idle`: nothing lost or doubled."""
        c = Check(distinct_sources=distinct)
        p = c.problems
        c.integrity = ";".join(str(r[0]) for r in self.read("PRAGMA integrity_check"))
        if c.integrity != "ok":
            p.append(f"integrity_check: {c.integrity}")
        if fk := self.read("PRAGMA foreign_key_check"):
            p.append(f"foreign_key_check: {fk[:5]}")
        c.items = int(self.read("SELECT count(*) FROM items")[0][0])
        c.items_lost = max(0, distinct - c.items)
        c.items_duplicated = max(0, c.items - distinct)
        if c.items != distinct:
            p.append(f"{c.items} items for {distinct} distinct source files")
        paths = int(self.read("SELECT count(*) FROM paths")[0][0])
        files = len(self._originals) or len(self.checksums())
        if paths != files:
            p.append(f"{paths} catalogued paths for {files} source files")
        c.jobs = self.total_jobs()
        dup = self.read(
            """SELECT item_id, stage, count(*) FROM jobs WHERE item_id IS NOT NULL
               GROUP BY item_id, stage HAVING count(*) > 1"""
        )
        c.jobs_duplicated = sum(int(r[2]) - 1 for r in dup)
        if dup:
            p.append(f"duplicated jobs (item, stage, n): {dup[:5]}")
        # Every item has a job for every stage that items of its kind have.
        per_kind: dict[str, set[str]] = {}
        have: dict[int, set[str]] = {}
        for item_id, kind, stage in self.read(
            "SELECT i.id, i.kind, j.stage FROM items i LEFT JOIN jobs j ON j.item_id = i.id"
        ):
            have.setdefault(int(item_id), set())
            if stage is not None:
                per_kind.setdefault(str(kind), set()).add(str(stage))
                have[int(item_id)].add(str(stage))
        kinds = {int(r[0]): str(r[1]) for r in self.read("SELECT id, kind FROM items")}
        for item_id, stages in have.items():
            missing = per_kind.get(kinds[item_id], set()) - stages
            c.jobs_lost += len(missing)
        if c.jobs_lost:
            p.append(f"{c.jobs_lost} (item, stage) jobs missing")
        unended = self.read(
            f"SELECT id, stage, state FROM jobs WHERE state NOT IN ({','.join('?' * len(ENDED))})",
            ENDED,
        )
        c.jobs_unended = len(unended)
        if unended:
            p.append(f"jobs not ended: {unended[:5]}")
        no_reason = self.read(
            "SELECT id, stage, state FROM jobs WHERE state IN ('failed', 'dead', 'skipped')"
            " AND coalesce(error, '') = ''"
        )
        c.ended_without_reason = len(no_reason)
        if no_reason:
            p.append(f"jobs ended without a reason: {no_reason[:5]}")
        if not allow_failed:
            bad = self.read("SELECT id, stage, state, error FROM jobs WHERE state != 'done'")
            if bad:
                p.append(f"jobs not done: {bad[:5]}")
        now = self.snapshot()
        for snap in before:
            lost = (
                (snap.done_jobs - now.done_jobs)
                | {(i, s) for i, s in snap.results - now.results}
                | {(i, s) for i, s, _ in snap.thumbnails - now.thumbnails}
                | (snap.vectors - now.vectors)
            )
            lost_items = snap.items - now.items
            c.reported_done_lost += len(lost) + len(lost_items)
            if lost or lost_items:
                p.append(
                    f"reported done, then lost: {sorted(lost)[:5]} items {sorted(lost_items)[:3]}"
                )
        for _, _, rel in now.thumbnails:
            f = self.library / rel
            if not f.is_file() or f.stat().st_size == 0:
                c.thumbnail_files_missing += 1
        if c.thumbnail_files_missing:
            p.append(f"{c.thumbnail_files_missing} thumbnail files missing or empty")
        after = self.checksums()
        c.originals_changed = sum(
            1
            for rel, (digest, mtime) in self._originals.items()
            if after.get(rel) != (digest, mtime)
        )
        if c.originals_changed:
            p.append(f"{c.originals_changed} originals changed")
        return c

    def next_start_clean(self) -> dict[str, Any]:
        """One more host after everything finished: it must find nothing to recover
        and nothing to do."""
        stats = self.work_clean()
        assert not any(stats["recovered"].values()), f"unclean: {stats['recovered']} {self.tag}"
        assert stats["done"] == 0 and stats["failed"] == 0 and stats["dead"] == 0, (
            f"the next start did work again: {stats} {self.tag}"
        )
        return stats

    def record(self, kind: str, check: Check | None, *, faults: int, **extra: Any) -> None:
        """Write this run's record (see README.md)."""
        rec: dict[str, Any] = {
            "suite": "faults",
            "kind": kind,
            "seed": self.seed,
            "runs": self.runs,
            "faults": faults,
            "ok": bool(check is None or check.ok()),
            **extra,
        }
        if check is not None:
            rec.update(
                items=check.items,
                jobs=check.jobs,
                items_lost=check.items_lost,
                items_duplicated=check.items_duplicated,
                jobs_lost=check.jobs_lost + check.reported_done_lost,
                jobs_duplicated=check.jobs_duplicated,
                originals_changed=check.originals_changed,
                integrity=check.integrity,
                problems=check.problems,
            )
        write_record(rec)

    def assert_ok(self, check: Check) -> None:
        assert check.ok(), f"{check.problems} {self.tag}"


def asdict_check(check: Check) -> dict[str, Any]:
    return asdict(check)
