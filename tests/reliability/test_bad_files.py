"""The bad-input corpus through the real importer and worker host (issue 16, fast slice).

Every case of tests/reliability/badfiles.py ends as it says — done, failed with a
reason a person can read, or never catalogued — with nothing left queued or running
(nothing hangs), no host crash, and the originals untouched. The special tree (FIFO,
socket, 4 GB sparse file) is the acceptance's own test; the bombs run in a process of
their own so their peak memory can be measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.library import Library
from tests.conftest import REPO, cli_env, import_in_child
from tests.reliability.badfiles import BadCorpus, Case, make_bad_corpus, make_special_tree
from tests.reliability.harness import write_record

TERMINAL = {"done", "failed", "dead", "skipped", "cancelled"}
HAS_TESSERACT = shutil.which("tesseract") is not None
# What a reason must never look like: a traceback, an object's repr, Pillow's own words.
UNREADABLE = ("traceback", "<_io", "object at 0x", "cannot identify image file", "error:", "\n")


def _snapshot(paths: list[Path]) -> dict[Path, tuple[str, int]]:
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def _library_dir(base: Path, *, photos: str = "auto") -> Path:
    lib = base / "lib"
    lib.mkdir(parents=True)
    if HAS_TESSERACT:  # the OCR stage too (SHOEBOX_NO_MODELS leaves it off otherwise)
        (lib / "settings.toml").write_text(f'[ocr]\nenabled = true\nphotos = "{photos}"\n')
    return lib


def _import(lib: Path, root: Path, timeout: float) -> dict[str, Any]:
    """`shoebox import --wait --json`: the worker host in a child process, restarted by
    its supervisor if a file crashes it (so a crash is counted, not fatal here)."""
    return import_in_child(lib, root, timeout)


def _jobs_by_path(lib: Path) -> dict[bytes, list[tuple[str, str, str | None, int]]]:
    """raw path → [(stage, state, error, crashes)]."""
    with sqlite3.connect(f"file:{lib / 'catalog.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            """SELECT p.raw, j.stage, j.state, j.error, j.crashes
               FROM paths p JOIN jobs j ON j.item_id = p.item_id ORDER BY p.raw, j.stage"""
        ).fetchall()
    out: dict[bytes, list[tuple[str, str, str | None, int]]] = {}
    for raw, stage, state, error, crashes in rows:
        out.setdefault(bytes(raw), []).append((stage, state, error, crashes))
    return out


def _problems(lib: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{lib / 'catalog.db'}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT display, reason FROM scan_problems").fetchall())


def assert_readable(reason: str | None, case: Case) -> None:
    assert reason, f"{case.path.name}: failed without a reason"
    lowered = reason.lower()
    assert not any(bad in lowered for bad in UNREADABLE), f"{case.path.name}: {reason!r}"
    assert len(reason) < 300 and reason.endswith((".", ")")), f"{case.path.name}: {reason!r}"
    if case.reason:
        assert any(word in lowered for word in case.reason), (
            f"{case.path.name}: {reason!r} says none of {case.reason}"
        )


def record_case(
    case: Case,
    jobs: list[tuple[str, str, str | None, int]] | None,
    problem: str | None = None,
    *,
    seconds: float | None = None,
) -> None:
    """The case's outcome for the report, written before it is asserted (so a failing
    case is counted as what it did, not lost)."""
    jobs = jobs or []
    hung = [j for j in jobs if j[1] not in TERMINAL]
    failed = [j for j in jobs if j[1] in ("failed", "dead")]
    if not jobs:
        outcome = "not catalogued"
    elif hung:
        outcome = "hung"
    elif failed:
        outcome = "failed"
    else:
        outcome = "done"
    reason = next((j[2] for j in failed if j[2]), None) or problem
    write_record(
        {
            "suite": "bad_files",
            "kind": case.group,
            "seed": 0,
            "file": case.path.name,
            "note": case.note,
            "expected": case.expect,
            "outcome": outcome,
            "reason": reason,
            "hung": bool(hung),
            "host_crashes": sum(1 for j in jobs if j[3]),
            "seconds": seconds,
            "ok": not hung and not any(j[3] for j in jobs),
        }
    )


def check_case(case: Case, jobs: list[tuple[str, str, str | None, int]] | None) -> str:
    """Assert the case's outcome; returns what happened (done | failed | skipped)."""
    name = case.path.name
    if case.expect in ("skipped", "problem"):
        assert jobs is None, f"{name} was catalogued: {jobs}"
        return "skipped"
    assert jobs, f"{name} was not catalogued"
    stuck = [j for j in jobs if j[1] not in TERMINAL]
    assert not stuck, f"{name}: jobs left unfinished {stuck}"
    crashed = [j for j in jobs if j[3]]
    assert not crashed, f"{name} crashed the worker host: {crashed}"
    failed = [j for j in jobs if j[1] in ("failed", "dead")]
    if not failed:
        assert case.expect in ("done", "either"), f"{name} should have failed: {jobs}"
        assert all(j[1] == "done" for j in jobs), f"{name}: {jobs}"
        return "done"
    assert case.expect in ("failed", "either"), f"{name} should be done: {failed}"
    for _, _, error, _ in failed:
        assert_readable(error, case)
    return "failed"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[BadCorpus, Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("badfiles")
    corpus = make_bad_corpus(base / "files")
    before = _snapshot(corpus.regular())
    lib = _library_dir(base)
    started = time.monotonic()
    summary = _import(lib, corpus.root, timeout=180)
    summary["elapsed_s"] = round(time.monotonic() - started, 2)  # the whole corpus's import
    assert _snapshot(corpus.regular()) == before, "an original was modified"
    return corpus, lib, summary


def test_every_bad_file_ends_done_or_failed_with_a_readable_reason(
    imported: tuple[BadCorpus, Path, dict[str, Any]],
) -> None:
    corpus, lib, summary = imported
    jobs = _jobs_by_path(lib)
    seen: dict[str, dict[str, int]] = {}
    for case in corpus.cases:
        record_case(case, jobs.get(os.fsencode(case.path)), seconds=summary["elapsed_s"])
    for case in corpus.cases:
        outcome = check_case(case, jobs.get(os.fsencode(case.path)))
        seen.setdefault(case.group, {}).setdefault(outcome, 0)
        seen[case.group][outcome] += 1
    assert summary["files_seen"] == len(corpus.cases)
    assert summary["unreadable"] == 0
    # Every group was tried (the corpus did not silently lose a kind of damage).
    assert set(seen) >= {"truncated", "corrupted", "bomb", "mode", "pdf", "empty", "name"}, seen


def test_bombs_are_refused_before_decoding(
    imported: tuple[BadCorpus, Path, dict[str, Any]],
) -> None:
    corpus, lib, _ = imported
    jobs = _jobs_by_path(lib)
    for case in corpus.cases:
        if case.group == "bomb" and case.expect == "failed":
            errors = [j[2] or "" for j in jobs[os.fsencode(case.path)] if j[1] == "failed"]
            assert errors and all("too large" in e or "damaged" in e for e in errors), errors


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and Unix sockets")
def test_a_tree_with_a_fifo_a_socket_and_a_4gb_sparse_file_imports_without_hanging(
    tmp_path: Path,
) -> None:
    """Issue 16's acceptance: none of them is opened for reading (a FIFO would block,
    4 GB of holes would take ~11 s to hash); the good photo beside them is done."""
    tree = make_special_tree(tmp_path / "tree")
    lib = _library_dir(tmp_path)
    started = time.monotonic()
    summary = _import(lib, tree.root, timeout=60)
    elapsed = time.monotonic() - started
    jobs = _jobs_by_path(lib)
    problems = _problems(lib)
    for case in tree.cases:
        record_case(
            case, jobs.get(os.fsencode(case.path)), problems.get(str(case.path)), seconds=elapsed
        )
    for case in tree.cases:
        check_case(case, jobs.get(os.fsencode(case.path)))
        if case.expect == "problem":
            reason = problems[str(case.path)]
            assert_readable(reason, case)
    assert summary["items_new"] == 1 and summary["failed"] == 2, summary  # 2 scan problems
    assert summary["skipped"] >= 3, summary  # the FIFO, the socket, the loop
    assert elapsed < 30, f"took {elapsed:.1f} s"


_MEMORY_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from engine.library import Library
from tests.engine.jobstages import run_until_idle
from tests.reliability.badfiles import make_bomb_tree

base = Path(sys.argv[2])
corpus = make_bomb_tree(base / "bombs")
lib = Library(base / "lib")
import PIL.Image, PIL.PngImagePlugin, PIL.JpegImagePlugin  # loaded before the baseline
lib.import_paths([corpus.root])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run_until_idle(lib, timeout=120)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
states = {
    os.path.basename(raw.decode()): [s, e]
    for raw, s, e in lib.catalog.read(
        "SELECT p.raw, j.state, j.error FROM paths p JOIN jobs j ON j.item_id = p.item_id"
        " WHERE j.stage = 'thumbnail'"
    )
}
lib.close()
print(json.dumps({"growth_mb": (after - before) / 1024, "states": states}))
"""


def test_bombs_and_a_144_mp_image_stay_within_a_memory_bound(tmp_path: Path) -> None:
    """Peak RSS growth of a host working through the bombs and one large (144-MP)
    greyscale PNG of zeros. Decoded the old way (copy, RGB conversion, preview copy)
    that PNG alone took ~1.4 GB; refused bombs take nothing."""
    lib = _library_dir(tmp_path, photos="always")  # OCR decodes the original too
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(REPO), str(tmp_path)],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    states = report["states"]
    write_record(
        {
            "suite": "limits",
            "kind": "decode_memory",
            "seed": 0,
            "growth_mb": round(report["growth_mb"], 1),
            "bound_mb": 400,
            "ok": report["growth_mb"] < 400,
        }
    )
    assert states["zeros-12k.png"][0] == "done", states
    for name in ("png-100k.png", "zeros-16k.png", "jpeg-65000.jpg"):
        assert states[name][0] == "failed" and "too large" in states[name][1], states
    assert lib.exists()
    assert report["growth_mb"] < 400, report


def test_a_stage_that_hangs_is_failed_as_timed_out_and_the_host_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode that never checks its deadline (SHOEBOX_FAULT_SLOW_PATH stalls in the
    job, like a decoder stuck in C) is abandoned: its job fails "Timed out", the other
    file is done, and the host stops."""
    import engine.jobs.host as host_module
    from tests.engine.helpers import jpeg
    from tests.engine.jobstages import run_until_idle

    jpeg(tmp_path / "src" / "fine.jpg", 1)
    jpeg(tmp_path / "src" / "stuck.jpg", 2)
    monkeypatch.setenv("SHOEBOX_FAULT_SLOW_PATH", "stuck.jpg")
    monkeypatch.setenv("SHOEBOX_FAULT_SLOW_S", "3")
    monkeypatch.setattr(host_module, "TIMEOUT_GRACE_S", 0.2)
    lib = Library(tmp_path / "lib")
    try:
        for stage in ("metadata", "thumbnail"):
            assert lib.registry.get(stage).timeout_s is not None  # the shipped limits
            lib.registry.get(stage).timeout_s = 0.3  # type: ignore[misc]
        lib.import_paths([tmp_path / "src"])
        host = run_until_idle(lib, timeout=30)
        rows = lib.catalog.read(
            "SELECT p.display, j.stage, j.state, j.error FROM paths p"
            " JOIN jobs j ON j.item_id = p.item_id"
        )
    finally:
        lib.close()
    by_name = {(Path(d).name, s): (st, e) for d, s, st, e in rows}
    write_record(
        {
            "suite": "limits",
            "kind": "hung_stage_timeout",
            "seed": 0,
            "timed_out": host.stats.timed_out,
            "ok": host.stats.timed_out >= 2 and by_name[("fine.jpg", "thumbnail")][0] == "done",
        }
    )
    assert by_name[("fine.jpg", "metadata")][0] == "done"
    assert by_name[("fine.jpg", "thumbnail")][0] == "done"
    for stage in ("metadata", "thumbnail"):
        state, error = by_name[("stuck.jpg", stage)]
        assert state == "failed" and error == "Timed out after 0.3 s.", (stage, state, error)
    assert host.stats.timed_out >= 2
