"""`shoebox [--library DIR] PATH...` opens the app and imports PATH (the desktop entry's
`Exec=shoebox %F`, a folder dropped on the icon, "Open with Shoebox")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop import launcher
from engine.cli import build_parser

COMMANDS = launcher.command_names(build_parser())


def test_the_commands_are_known() -> None:
    assert {"import", "status", "work", "self-test"} <= COMMANDS


def test_paths_after_the_options_are_opened_and_commands_are_left_alone(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "Holidays"
    folder.mkdir()
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    split = launcher.split_open_paths
    assert split([str(folder)], COMMANDS) == ([], [str(folder)])
    assert split(["--library", "L", str(folder), str(photo)], COMMANDS) == (
        ["--library", "L"],
        [str(folder), str(photo)],
    )
    assert split(["--library=L", str(folder)], COMMANDS) == (["--library=L"], [str(folder)])
    # a command, an option, nothing, or a path that does not exist: argparse decides
    for argv in (["import", str(folder)], ["--help"], [], [str(tmp_path / "nope")]):
        assert split(argv, COMMANDS) == (argv, [])


def test_a_folder_named_like_a_command_is_still_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "status").mkdir()
    assert launcher.split_open_paths(["status"], COMMANDS) == (["status"], [])


def test_main_opens_the_app_with_the_paths_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import desktop.app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans").mkdir()
    calls: list[tuple[Any, list[str]]] = []
    monkeypatch.setattr(
        desktop.app, "run_app", lambda library, open_paths=(): calls.append((library, open_paths))
    )
    launcher.main(["--library", str(tmp_path / "lib"), "scans"])
    assert calls == [(str(tmp_path / "lib"), [str(tmp_path / "scans")])]


def test_the_window_started_with_paths_imports_them(
    qtbot: Any, tmp_path: Path, photos: Callable[..., Path]
) -> None:
    from desktop.app import open_window
    from desktop.qt import QSettings
    from tests.conftest import cli_env

    folder = photos(5)
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    window = open_window(
        tmp_path / "library", state, [str(folder)], host_env=cli_env(), start_host=False
    )
    qtbot.addWidget(window)
    try:
        assert window.isVisible()
        assert len(window.imports) == 1
        qtbot.waitUntil(lambda: window.grid_model.rowCount() == 5, timeout=10_000)
    finally:
        window.close_library()
        window.close()
