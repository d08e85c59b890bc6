"""Fixtures for the GUI tests: a main window on a fresh library, its host a real child."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env


@pytest.fixture
def photos(tmp_path: Path) -> Callable[..., Path]:
    """photos(n, size=(640, 480), folder="photos") -> a folder of n distinct JPEGs."""
    from tests.corpus import write_jpeg

    def make(n: int, size: tuple[int, int] = (640, 480), folder: str = "photos") -> Path:
        root = tmp_path / folder
        for i in range(n):
            write_jpeg(root / f"photo-{i:03d}.jpg", size, seed=i + 1000 * len(folder))
        return root

    return make


@pytest.fixture
def make_window(qtbot: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from desktop.mainwindow import MainWindow
    from desktop.qt import QSettings

    windows: list[MainWindow] = []

    def make(
        library: Path | None = None,
        *,
        start_host: bool = True,
        size: tuple[int, int] | None = (1200, 800),
        **kw: Any,
    ) -> MainWindow:
        state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            library or tmp_path / "library",
            state=state,
            host_env=cli_env(),
            start_host=start_host,
            **kw,
        )
        qtbot.addWidget(window)
        if size is not None:
            window.resize(*size)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
