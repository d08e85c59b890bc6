"""The originals guard itself (tests/originals.py): it sees Shoebox's writes, lets the
test's own through, and notices changes made where no hook can see them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import originals
from tests.engine.helpers import jpeg


def test_shoebox_writing_under_a_source_root_is_stopped_before_it_happens(
    tmp_path: Path, sources: Callable[..., Path], _originals_guard: originals._Guard
) -> None:
    from engine.backup import BackupError, backup_catalog

    src = sources(tmp_path / "src")
    jpeg(src / "a.jpg", 1)  # the test's own write: allowed
    catalog = tmp_path / "catalog.db"
    sqlite3.connect(catalog).execute("CREATE TABLE meta (key, value)").connection.close()
    with pytest.raises(BackupError) as caught:
        backup_catalog(catalog, src, "manual")  # Shoebox's code writing into a source tree
    assert isinstance(caught.value.__cause__, originals.OriginalsWriteError)
    assert [f.name for f in src.iterdir()] == ["a.jpg"]  # nothing was created
    assert len(_originals_guard.violations) == 1
    assert "Shoebox tried to change an original" in _originals_guard.violations[0]
    _originals_guard.violations.clear()  # seen: let this test pass


def test_the_tests_own_changes_are_allowed_and_left_out(
    tmp_path: Path, sources: Callable[..., Path], _originals_guard: originals._Guard
) -> None:
    jpeg(tmp_path / "src" / "a.jpg", 1)
    jpeg(tmp_path / "src" / "b.jpg", 2)
    src = sources(tmp_path / "src")
    (src / "a.jpg").write_bytes(b"changed by the test")
    os.rename(src / "b.jpg", src / "c.jpg")
    assert _originals_guard.violations == []
    assert {Path(p).name for p in _originals_guard.touched} == {"a.jpg", "b.jpg", "c.jpg"}
    assert originals._changes(_originals_guard) == []


@pytest.mark.originals_mutable
def test_a_change_no_hook_sees_is_found_by_the_snapshot(
    tmp_path: Path, sources: Callable[..., Path], _originals_guard: originals._Guard
) -> None:
    jpeg(tmp_path / "src" / "a.jpg", 1)
    jpeg(tmp_path / "src" / "b.jpg", 2)
    jpeg(tmp_path / "src" / "c.jpg", 3)
    src = sources(tmp_path / "src")
    st = os.stat(src / "c.jpg")
    script = (
        "import os, sys; open(sys.argv[1], 'ab').write(b'x'); os.remove(sys.argv[2]);"
        "os.utime(sys.argv[3], ns=(0, 12345))"
    )
    subprocess.run([sys.executable, "-c", script, str(src / "a.jpg"), str(src / "b.jpg"),
                    str(src / "c.jpg")], check=True)  # fmt: skip
    assert os.stat(src / "c.jpg").st_size == st.st_size
    assert originals._changes(_originals_guard) == [
        f"{src / 'a.jpg'}: content changed",
        f"{src / 'b.jpg'}: gone",
        f"{src / 'c.jpg'}: size/mtime/type changed",
    ]


def test_every_imported_root_is_guarded_without_asking(
    tmp_path: Path, _originals_guard: originals._Guard
) -> None:
    from engine.library import Library

    jpeg(tmp_path / "photos" / "a.jpg", 1)
    os.mkfifo(tmp_path / "photos" / "pipe")  # only stat'ed: a FIFO would hang an open
    os.symlink("a.jpg", tmp_path / "photos" / "link.jpg")
    # The library inside the imported folder: its own writes are not the originals'.
    with Library(tmp_path / "lib") as lib:
        summary = lib.import_paths([tmp_path])
        assert summary.items_new == 1
    assert str(tmp_path) in _originals_guard.roots
    names = {Path(p).relative_to(tmp_path).as_posix() for p in _originals_guard.baseline}
    assert names == {"photos/a.jpg", "photos/pipe", "photos/link.jpg"}
    assert _originals_guard.violations == []


def test_register_outside_a_test_is_inert(tmp_path: Path) -> None:
    guard, originals._guard = originals._guard, None
    try:
        assert originals.register(tmp_path) == tmp_path
    finally:
        originals._guard = guard
