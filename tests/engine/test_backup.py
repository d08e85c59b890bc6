"""Backups of the catalog (daily, before migrations, on demand) and restoring one."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from engine import backup
from engine.backup import BackupError, LibraryBusyError
from engine.library import Library
from engine.store.db import Catalog, next_seq
from engine.store.schema import MIGRATIONS
from tests.engine.helpers import jpeg
from tests.engine.test_cli import run

DAY = 24 * 3600.0


def _library(tmp_path: Path, n: int = 2) -> Library:
    for i in range(n):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    lib = Library(tmp_path / "lib")
    lib.import_paths([tmp_path / "src"])
    return lib


def _count(path: str | Path, table: str = "items") -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def _check(path: str | Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_backup_is_one_consistent_file_while_another_thread_writes(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set() or writes < 50:
            with lib.catalog.write() as conn:
                next_seq(conn)
                conn.execute("INSERT INTO scan_problems (session_id, display, reason) "
                             "VALUES (1, 'x', 'y')")  # fmt: skip
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        infos = [backup.backup_library(lib.root, now=1000.0 + i) for i in range(3)]
    finally:
        stop.set()
        thread.join()
    for info in infos:
        assert _check(info.path) == "ok"
        assert Path(info.path).parent == lib.root / "backups"
        assert not Path(info.path + "-wal").exists()  # self-contained
        conn = sqlite3.connect(info.path)
        seq = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]
        problems = conn.execute("SELECT count(*) FROM scan_problems").fetchone()[0]
        conn.close()
        assert info.seq == seq  # the name's seq is the copy's: one snapshot
        assert (info.kind, info.schema, _count(info.path)) == ("manual", len(MIGRATIONS), 2)
        assert 0 <= problems <= writes
    assert [p.name for p in (lib.root / "backups").iterdir() if p.name.startswith(".tmp")] == []
    lib.close()


def test_each_kind_keeps_its_newest(tmp_path: Path) -> None:
    lib = _library(tmp_path, 1)
    made = [backup.backup_library(lib.root, "daily", now=DAY * i) for i in range(1, 10)]
    manual = backup.backup_library(lib.root, "manual", now=DAY)
    daily = backup.list_backups(lib.root, "daily")
    assert [b.path for b in daily] == [b.path for b in reversed(made[-7:])]
    assert backup.list_backups(lib.root, "manual") == [manual]
    assert daily[0].created_at == DAY * 9
    lib.close()


def test_the_daily_backup_is_made_when_due_and_only_when_something_changed(
    tmp_path: Path,
) -> None:
    lib = _library(tmp_path, 1)
    t0 = 1_700_000_000.0
    first = backup.ensure_daily(lib.root, now=t0)
    assert first is not None and first.kind == "daily"
    assert backup.ensure_daily(lib.root, now=t0 + DAY - 1) is None  # not a day old
    assert backup.ensure_daily(lib.root, now=t0 + 3 * DAY) is None  # nothing changed
    jpeg(tmp_path / "src" / "new.jpg", 9)
    lib.import_paths([tmp_path / "src"])
    second = backup.ensure_daily(lib.root, now=t0 + 3 * DAY)
    assert second is not None and second.seq > first.seq
    assert len(backup.list_backups(lib.root, "daily")) == 2
    lib.close()


def test_daily_backups_tick_checks_at_most_every_interval_off_the_caller(
    tmp_path: Path,
) -> None:
    lib = _library(tmp_path, 1)
    daily = backup.DailyBackups(lib.root, check_every_s=600)
    assert daily.tick(mono=0.0)
    daily.join(30)
    assert daily.last is not None and daily.last_error is None
    assert not daily.tick(mono=599.0)
    assert daily.tick(mono=600.0)  # checks again; nothing is due: no second backup
    daily.join(30)
    assert len(backup.list_backups(lib.root, "daily")) == 1
    lib.close()


def _old_catalog(path: Path, version: int) -> None:
    """A catalog as an older Shoebox left it: the first `version` migrations."""
    import sqlite_utils

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for fn in MIGRATIONS[:version]:
        fn(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        "INSERT INTO items (hash, kind, format, size, added_at, seq) "
        "VALUES ('h', 'photo', 'jpeg', 1, 0, 1)"
    )
    conn.execute("COMMIT")
    conn.close()


def test_a_migration_is_preceded_by_a_backup_of_the_old_catalog(tmp_path: Path) -> None:
    _old_catalog(tmp_path / "catalog.db", 3)
    cat = Catalog(tmp_path / "catalog.db")
    cat.close()
    found = backup.list_backups(tmp_path, "migration")
    assert len(found) == 1 and found[0].schema == 3
    conn = sqlite3.connect(found[0].path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert conn.execute("SELECT hash FROM items").fetchall() == [("h",)]
    conn.close()
    # Up to date: opening again backs nothing up; a new catalog has nothing to keep.
    Catalog(tmp_path / "catalog.db").close()
    Catalog(tmp_path / "fresh.db").close()
    assert len(backup.list_backups(tmp_path, "migration")) == 1


def test_a_migration_that_cannot_be_backed_up_does_not_run(tmp_path: Path) -> None:
    _old_catalog(tmp_path / "catalog.db", 3)
    (tmp_path / "backups").write_text("not a folder")
    with pytest.raises(BackupError, match="did not upgrade it"):
        Catalog(tmp_path / "catalog.db")
    conn = sqlite3.connect(tmp_path / "catalog.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()


def test_migration_backups_rotate(tmp_path: Path) -> None:
    for i in range(5):
        _old_catalog(tmp_path / f"c{i}.db", 3)
        (tmp_path / f"c{i}.db").rename(tmp_path / "catalog.db")
        Catalog(tmp_path / "catalog.db").close()
        for side in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
            (tmp_path / side).unlink(missing_ok=True)
    assert len(backup.list_backups(tmp_path, "migration")) == backup.KEEP["migration"]


def test_restore_puts_the_backup_back_and_keeps_what_it_replaced(tmp_path: Path) -> None:
    lib = _library(tmp_path, 2)
    saved = backup.backup_library(lib.root)
    jpeg(tmp_path / "src" / "later.jpg", 7)
    lib.import_paths([tmp_path / "src"])
    assert _count(lib.root / "catalog.db") == 3
    result = backup.restore(lib.root, Path(saved.path))
    # The library still open in this process sees the restored catalog at once.
    assert lib.catalog.read("SELECT count(*) FROM items")[0][0] == 2
    assert lib.catalog.read("PRAGMA integrity_check")[0][0] == "ok"
    assert not result.replaced_file and result.previous is not None
    assert _count(result.previous) == 3
    assert backup.list_backups(lib.root, "restore")[0].path == result.previous
    lib.close()
    with Library(tmp_path / "lib") as again:
        assert again.catalog.read("SELECT count(*) FROM items")[0][0] == 2


def test_restore_refuses_while_a_worker_host_holds_the_library(tmp_path: Path) -> None:
    from engine.jobs.host import WorkerHost

    lib = _library(tmp_path, 1)
    saved = backup.backup_library(lib.root)
    jpeg(tmp_path / "src" / "later.jpg", 7)
    lib.import_paths([tmp_path / "src"])
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    lib.pause()  # the host must not change anything meanwhile
    host.start()
    try:
        with pytest.raises(LibraryBusyError, match="close it first"):
            backup.restore(lib.root, Path(saved.path))
    finally:
        host.stop()
    assert _count(lib.root / "catalog.db") == 2
    assert backup.list_backups(lib.root, "restore") == []
    assert backup.restore(lib.root, Path(saved.path)).seq == saved.seq  # host gone: it may
    lib.close()


def test_restore_refuses_bad_files(tmp_path: Path) -> None:
    lib = _library(tmp_path, 1)
    saved = Path(backup.backup_library(lib.root).path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a readable catalog"):
        backup.restore(lib.root, junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupError, match="not a Shoebox catalog"):
        backup.restore(lib.root, other)
    newer = tmp_path / "newer.db"
    newer.write_bytes(saved.read_bytes())
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(BackupError, match="newer Shoebox"):
        backup.restore(lib.root, newer)
    damaged = tmp_path / "damaged.db"
    data = bytearray(saved.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xff" * 4096  # a page of garbage
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError):
        backup.restore(lib.root, damaged)
    with pytest.raises(BackupError, match="No such backup"):
        backup.restore(lib.root, tmp_path / "nothing.db")
    assert backup.list_backups(lib.root, "restore") == []  # nothing was touched
    assert _count(lib.root / "catalog.db") == 1
    lib.close()


def test_restore_replaces_a_catalog_sqlite_cannot_open(tmp_path: Path) -> None:
    lib = _library(tmp_path, 2)
    saved = backup.backup_library(lib.root)
    lib.close()
    catalog = lib.root / "catalog.db"
    for side in ("catalog.db-wal", "catalog.db-shm"):
        (lib.root / side).unlink(missing_ok=True)
    catalog.write_bytes(b"garbage" * 1000)
    result = backup.restore(lib.root, Path(saved.path))
    assert result.replaced_file and result.previous is not None
    assert Path(result.previous).read_bytes() == b"garbage" * 1000  # kept as it was
    assert _check(catalog) == "ok" and _count(catalog) == 2


def test_backup_and_restore_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = _library(tmp_path, 2)
    lib.close()
    where = str(tmp_path / "lib")
    made = run(capsys, "--library", where, "backup", "--to", str(tmp_path / "out"), "--json")
    assert isinstance(made, dict)
    assert Path(made["path"]).parent == tmp_path / "out"
    assert (made["kind"], made["schema"]) == ("manual", len(MIGRATIONS))
    restored = run(capsys, "--library", where, "restore", made["path"], "--json")
    assert isinstance(restored, dict)
    assert restored["restored"] == made["path"] and restored["seq"] == made["seq"]
    from engine.cli import main

    assert main(["--library", where, "restore", str(tmp_path / "none.db")]) == 2
    assert "No such backup" in capsys.readouterr().err
    assert main(["--library", str(tmp_path / "nolib"), "backup"]) == 2


def test_the_worker_host_makes_the_daily_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = _library(tmp_path, 1)
    lib.close()
    where = str(tmp_path / "lib")
    run(capsys, "--library", where, "work", "--until-idle", "--json")
    [made] = backup.list_backups(tmp_path / "lib", "daily")
    assert _check(made.path) == "ok" and _count(made.path) == 1
    run(capsys, "--library", where, "work", "--until-idle", "--json")
    assert len(backup.list_backups(tmp_path / "lib", "daily")) == 1  # not due again


def test_a_copy_cut_short_is_swept_by_the_next_backup(tmp_path: Path) -> None:
    import os

    lib = _library(tmp_path, 1)
    folder = lib.root / "backups"
    folder.mkdir()
    old, recent = folder / ".tmp-catalog-old.db", folder / ".tmp-catalog-new.db"
    for path in (old, recent):
        path.write_bytes(b"half a copy")
    os.utime(old, (1000.0, 1000.0))
    backup.backup_library(lib.root)
    assert (old.exists(), recent.exists()) == (False, True)
    lib.close()
