"""The CLI's names and JSON keys are an interface: scripts and other tools depend on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from tests.engine.helpers import jpeg


def run(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_import_status_items_retry_pause_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "lib")
    for i in range(3):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    (tmp_path / "src" / "empty.jpg").write_bytes(b"")
    summary = run(capsys, "--library", lib, "import", str(tmp_path / "src"), "--json")
    assert isinstance(summary, dict)
    assert {"files_seen", "items_new", "duplicates", "skipped", "failed"} <= summary.keys()
    assert (summary["files_seen"], summary["items_new"], summary["jobs_queued"]) == (4, 4, 8)

    status = run(capsys, "--library", lib, "status", "--json")
    assert isinstance(status, dict)
    assert status["items"] == 4
    assert status["stages"]["metadata"]["queued"] == 4
    assert set(status["lanes"]) == {"interactive", "import", "batch", "learning"}
    assert status["lanes"]["import"]["queued"] == 8
    assert set(status["stages"]["thumbnail"]) == {
        "queued",
        "running",
        "waiting",
        "done",
        "failed",
        "dead",
        "cancelled",
        "skipped",
    }

    assert run(capsys, "--library", lib, "work", "--until-idle", "--json")["done"] == 6  # type: ignore[index]
    items = run(capsys, "--library", lib, "items", "--json")
    assert isinstance(items, list) and len(items) == 4
    for item in items:
        assert {"id", "hash", "kind", "paths", "metadata", "stages"} <= item.keys()
        for stage in item["stages"].values():
            assert {"state", "error"} <= stage.keys()
    empty = next(i for i in items if i["paths"][0].endswith("empty.jpg"))
    assert empty["stages"]["metadata"] == {
        "state": "failed",
        "error": "The file is empty (0 bytes).",
        "attempts": 1,
        "version": "2",
    }

    assert run(capsys, "--library", lib, "retry", "--json") == {"retried": 2}
    assert run(capsys, "--library", lib, "pause", "import", "--json")["import"] is True  # type: ignore[index]
    status = run(capsys, "--library", lib, "status", "--json")
    assert status["lanes"]["import"]["paused"] is True  # type: ignore[index]
    assert run(capsys, "--library", lib, "resume", "--json")["import"] is False  # type: ignore[index]


def test_import_of_a_missing_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--library", str(tmp_path / "lib"), "import", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_watch_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = str(tmp_path / "lib")
    folder = tmp_path / "inbox"
    jpeg(folder / "a.jpg", 1)
    added = run(capsys, "--library", lib, "watch", "add", str(folder), "--json")
    assert isinstance(added, dict)
    assert added["import"]["items_new"] == 1
    listed = run(capsys, "--library", lib, "watch", "list", "--json")
    assert [w["path"] for w in listed] == [str(folder)]  # type: ignore[union-attr]
    assert run(capsys, "--library", lib, "watch", "remove", str(folder), "--json") == {
        "removed": True
    }
    assert run(capsys, "--library", lib, "watch", "list", "--json") == []


def test_shoebox_command_passes_commands_to_the_engine_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from desktop.launcher import main as launcher_main

    assert launcher_main(["--library", str(tmp_path / "lib"), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 0
