"""Start-up: the Qt application on a qasync event loop, and the main window."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from desktop.qt import QApplication, QIcon, QSettings, QStyleFactory
from engine.config import default_library_dir

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
    app.setWindowIcon(QIcon.fromTheme("image-x-generic"))
    return app


def choose_library(library: str | None, state: QSettings) -> Path:
    """--library wins; else the library open last time; else the platform default."""
    if library:
        return Path(library).expanduser()
    last = state.value("library/last")
    if isinstance(last, str) and last and Path(last, "catalog.db").is_file():
        return Path(last)
    return default_library_dir()


def run_app(library: str | None) -> int:
    """Open the main window on `library` (or the default one) and run until it closes."""
    # qasync binds to the first Qt it finds already imported: desktop.qt (PySide6) is.
    import qasync

    from desktop.mainwindow import MainWindow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = make_app()
    state = QSettings()
    folder = choose_library(library, state)

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
        window = MainWindow(folder, state=state)
        window.show()
        await closed.wait()
        window.close_library()
        return 0

    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        return runner.run(main())
