"""A bad settings.toml: the app says which key is wrong instead of failing to start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.app import SettingsChoice, check_library_settings, settings_error_box
from desktop.operations import library as library_ops
from engine.config import SETTINGS_FILE, WorkerSettings, load_settings
from engine.errors import SettingsError
from engine.library import Library


def bad_library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir(parents=True)
    (folder / SETTINGS_FILE).write_text('[general]\nqueue_depth_per_worker = "4"\n', "utf-8")
    return folder


def test_settings_problem(tmp_path: Path) -> None:
    folder = bad_library(tmp_path)
    error = library_ops.settings_problem(folder)
    assert isinstance(error, SettingsError)
    assert "queue_depth_per_worker" in str(error)
    assert library_ops.settings_problem(tmp_path / "new") is None
    assert not (tmp_path / "new").exists()


def test_box_names_file_and_problem(qtbot: Any, tmp_path: Path) -> None:
    error = library_ops.settings_problem(bad_library(tmp_path))
    assert error is not None
    box = settings_error_box(error)
    qtbot.addWidget(box)
    assert str(tmp_path / "lib" / SETTINGS_FILE) in box.text()
    assert (
        '[general] queue_depth_per_worker must be a whole number ≥ 1, not the text "4"'
        in box.informativeText()
    )
    assert "Open Settings File's Folder" in [b.text() for b in box.buttons()]


def test_retry_after_fixing_then_skip(qtbot: Any, tmp_path: Path) -> None:
    folder = bad_library(tmp_path)
    asked: list[str] = []

    def fix_then_retry(error: SettingsError) -> SettingsChoice:
        asked.append(str(error))
        (folder / SETTINGS_FILE).unlink()
        return "retry"

    assert check_library_settings(folder, ask=fix_then_retry) == folder
    assert len(asked) == 1

    folder2 = bad_library(tmp_path / "two")
    assert check_library_settings(folder2, ask=lambda e: "skip") is None


def test_apply_settings_keeps_pool_and_validates(tmp_path: Path) -> None:
    with Library(tmp_path / "lib") as lib:
        lib.settings.workers.pool = 7
        lib.save_settings()
        settings = lib.settings
        library_ops.apply_settings(
            lib, workers=WorkerSettings(interactive=2, import_=3, batch=1, learning=1), device="cpu"
        )
        assert lib.settings is settings
        assert (settings.workers.pool, settings.workers.import_, settings.device) == (7, 3, "cpu")
        assert load_settings(lib.root) == settings
        with pytest.raises(SettingsError, match=r"\[workers\] batch"):
            library_ops.apply_settings(lib, workers=WorkerSettings(batch=0), device="cpu")
        assert settings.workers.batch == 1
        assert load_settings(lib.root).workers.batch == 1
