"""Start-up: the Qt application on a qasync event loop, and the main window."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from desktop.operations import library as library_ops
from desktop.qt import (
    QApplication,
    QDesktopServices,
    QIcon,
    QMessageBox,
    QSettings,
    QStyleFactory,
    QUrl,
    QWidget,
)

if TYPE_CHECKING:
    from desktop.mainwindow import MainWindow
from engine.config import default_library_dir
from engine.errors import SettingsError

log = logging.getLogger("shoebox.desktop")

ORG = "Shoebox"
APP = "Shoebox"


def make_app(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QApplication.setOrganizationName(ORG)
    QApplication.setApplicationName(APP)
    QApplication.setApplicationDisplayName(APP)
    QApplication.setDesktopFileName("shoebox")
    app = QApplication(argv if argv is not None else sys.argv[:1])
    styles = [k.lower() for k in QStyleFactory.keys()]  # noqa: SIM118 (a QStringList)
    if sys.platform.startswith("linux") and "fusion" in styles:
        # Fusion follows the system colour scheme (light/dark) on every Linux desktop.
        app.setStyle("Fusion")
    app.setWindowIcon(app_icon())
    return app


def app_icon() -> QIcon:
    """Shoebox's own icon (desktop/resources/, beside this file from source and in the
    bundle); the theme's picture icon if it is missing."""
    path = Path(__file__).resolve().parent / "resources" / "shoebox.svg"
    return QIcon(str(path)) if path.is_file() else QIcon.fromTheme("image-x-generic")


def choose_library(library: str | None, state: QSettings) -> Path:
    """--library wins; else the library open last time; else the platform default."""
    if library:
        return Path(library).expanduser()
    last = state.value("library/last")
    if isinstance(last, str) and last and Path(last, "catalog.db").is_file():
        return Path(last)
    return default_library_dir()


SettingsChoice = Literal["open_folder", "retry", "skip"]


def settings_error_box(error: SettingsError, parent: QWidget | None = None) -> QMessageBox:
    """A message box naming the settings file and each problem, one per line."""
    path = Path(error.path)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("Library Settings")
    box.setText(f"The library's settings file cannot be used:\n{path}")
    box.setInformativeText(
        "\n".join(error.problems)
        + "\n\nEdit the file to fix this, or delete it to go back to the defaults, "
        "then choose Try Again."
    )
    box.setDetailedText(str(error))
    box.addButton("Open Settings File's Folder", QMessageBox.ButtonRole.ActionRole)
    box.addButton("Try Again", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Continue Without Library", QMessageBox.ButtonRole.RejectRole)
    return box


def ask_settings_error(error: SettingsError, parent: QWidget | None = None) -> SettingsChoice:
    """Show the settings error (modal) and return what the user chose."""
    box = settings_error_box(error, parent)
    box.exec()
    role = box.buttonRole(box.clickedButton()) if box.clickedButton() else None
    if role == QMessageBox.ButtonRole.ActionRole:
        return "open_folder"
    if role == QMessageBox.ButtonRole.AcceptRole:
        return "retry"
    return "skip"


def check_library_settings(
    folder: Path,
    ask: Callable[[SettingsError], SettingsChoice] = ask_settings_error,
) -> Path | None:
    """`folder` once its settings file can be used; None if the user gives up.

    A bad `settings.toml` would stop the library from opening: say which key is wrong
    (no traceback) and let the user fix or delete the file and try again.
    """
    while (error := library_ops.settings_problem(folder)) is not None:
        log.warning("%s", error)
        choice = ask(error)
        if choice == "open_folder":
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(error.path).parent)))
        elif choice == "skip":
            return None
    return folder


def open_window(
    folder: Path | None, state: QSettings, open_paths: Sequence[str] = (), **kw: Any
) -> MainWindow:
    """The main window, shown; `open_paths` imported as if dropped on it."""
    from desktop.mainwindow import MainWindow

    window = MainWindow(folder, state=state, **kw)
    window.show()
    if open_paths:
        window.import_paths(list(open_paths))
    return window


def run_app(library: str | None, open_paths: Sequence[str] = ()) -> int:
    """Open the main window on `library` (or the default one) and run until it closes;
    `open_paths` (given on the command line, e.g. by the desktop entry) are imported
    as if dropped on the window."""
    # qasync binds to the first Qt it finds already imported: desktop.qt (PySide6) is.
    import qasync

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = make_app()
    state = QSettings()
    # Before the event loop: a bad settings.toml is explained here, not as a traceback.
    folder = check_library_settings(choose_library(library, state))

    def quit_on_signal(signum: int, frame: object) -> None:
        # Python runs this at the next tick of any Python timer (the poll runs 4×/s);
        # quitting closes the window, which stops the worker host gracefully.
        app.closeAllWindows()
        app.quit()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, quit_on_signal)

    async def main() -> int:
        closed = asyncio.Event()
        app.aboutToQuit.connect(closed.set)
        window = open_window(folder, state, open_paths)
        await closed.wait()
        window.close_library()
        return 0

    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        return runner.run(main())
