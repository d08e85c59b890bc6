"""Permission denied and a read-only library (issue 16), run as a user without root's
powers: CI runs as root, whom file permissions do not stop, so the CLI runs under
`setpriv` with every capability dropped (root's uid, none of its overrides)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg
from tests.reliability.harness import write_record

SETPRIV = shutil.which("setpriv")
UNPRIVILEGED = [SETPRIV or "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]


def _powerless() -> bool:
    """Whether a command under UNPRIVILEGED is really stopped by file permissions."""
    if SETPRIV is None:
        return False
    probe = Path(f"/tmp/shoebox-perm-probe-{os.getpid()}")
    probe.write_text("x")
    probe.chmod(0)
    try:
        return (
            subprocess.run([*UNPRIVILEGED, "cat", str(probe)], capture_output=True).returncode != 0
        )
    finally:
        probe.unlink()


pytestmark = pytest.mark.skipif(
    not _powerless(), reason="needs setpriv and a kernel that lets it drop capabilities"
)


def shoebox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-m", "engine.cli", *args],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The test's record for the report (suite "permissions"): ok only if it got to its end."""
    rec: dict[str, Any] = {"suite": "permissions", "kind": request.node.originalname[5:]}
    rec.update(seed=0, ok=False)
    yield rec
    write_record(rec)


def test_unreadable_files_and_folders_get_a_reason_and_nothing_else_stops(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    src = tmp_path / "src"
    for i in range(3):
        jpeg(src / f"p{i}.jpg", i)
    jpeg(src / "locked" / "inside.jpg", 7)
    jpeg(src / "secret.jpg", 8)
    (src / "secret.jpg").chmod(0)
    (src / "locked").chmod(0)
    lib = tmp_path / "lib"
    try:
        run = shoebox("--library", str(lib), "import", str(src), "--wait")
    finally:
        (src / "locked").chmod(stat.S_IRWXU)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"not read: {src / 'secret.jpg'}: " in run.stderr and "permission denied" in run.stderr
    assert f"not read: {src / 'locked'}: " in run.stderr
    from engine.library import Library

    with Library(lib) as library:
        items = library.catalog.read("SELECT COUNT(*) FROM items")[0][0]
        states = dict(library.catalog.read("SELECT state, COUNT(*) FROM jobs GROUP BY state"))
        problems = library.catalog.read("SELECT reason FROM scan_problems")
    assert items == 3 and set(states) == {"done"}, states
    assert len(problems) == 2 and all("ermission" in str(r[0]) for r in problems)
    record.update(denied=2, denied_with_reason=len(problems), items=items, ok=True)


def test_a_read_only_library_is_one_clear_message(tmp_path: Path, record: dict[str, Any]) -> None:
    src = tmp_path / "src"
    jpeg(src / "p.jpg", 1)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    fresh.chmod(stat.S_IRUSR | stat.S_IXUSR)
    run = shoebox("--library", str(fresh), "import", str(src))
    assert run.returncode == 2
    assert "cannot write to the library folder" in run.stderr and "Traceback" not in run.stderr

    lib = tmp_path / "lib"
    assert shoebox("--library", str(lib), "import", str(src), "--wait").returncode == 0
    for path in [lib, *lib.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        run = shoebox("--library", str(lib), "status")
        assert run.returncode == 2, run.stdout
        assert "cannot write to the library folder" in run.stderr
        assert "Traceback" not in run.stderr
    finally:
        for path in [lib, *lib.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert shoebox("--library", str(lib), "status").returncode == 0, "writable again: it opens"
    record.update(refused_with_message=2, ok=True)
