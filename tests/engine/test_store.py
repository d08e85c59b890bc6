from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.db import Catalog, current_seq, next_seq
from engine.store.schema import MIGRATIONS, schema_version
from tests.conftest import REPO


def test_migrations_apply_once_and_record_version(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    assert schema_version(cat.conn) == len(MIGRATIONS)
    cat.close()
    cat = Catalog(tmp_path / "c.db")  # reopening applies nothing twice
    tables = {r[0] for r in cat.read("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"items", "paths", "jobs", "results", "sessions", "thumbnails", "lanes"} <= tables
    assert cat.read("PRAGMA journal_mode")[0][0] == "wal"
    cat.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer Shoebox"):
        Catalog(tmp_path / "c.db")


def test_seq_is_monotonic_and_rolled_back_with_its_transaction(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    with cat.write() as conn:
        a = next_seq(conn)
        b = next_seq(conn)
    assert b == a + 1
    with pytest.raises(ZeroDivisionError), cat.write() as conn:
        next_seq(conn)
        _ = 1 / 0
    assert current_seq(cat.conn) == b
    cat.close()


def test_engine_never_imports_qt_and_status_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, engine.cli as c;"
        f"c.main(['--library', {str(tmp_path / 'lib')!r}, 'status', '--json']);"
        "import engine.library, engine.jobs.host, engine.pipeline.registry;"
        "import engine.importing.importer;"
        "bad = [m for m in ('PySide6', 'desktop', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
    # `status` itself must not pull in Pillow, Huey or sqlite-utils (start-up time).
    code = (
        "import sys, engine.cli as c;"
        f"c.main(['--library', {str(tmp_path / 'lib')!r}, 'status', '--json']);"
        "heavy = [m for m in ('PIL', 'huey', 'sqlite_utils', 'PySide6') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
