"""Help ▸ Run Self-Test…: the engine's self-test (engine/selftest) with a report window.

The test runs in a worker thread (tens of seconds: it imports samples into a temporary
library and runs OCR and models); its progress lines come back through a signal.
The window only shows: `engine.selftest.run_self_test` does the work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.qt import (
    QApplication,
    QCloseEvent,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QObject,
    QProgressBar,
    QPushButton,
    QStyle,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.threads import run_in_thread

if TYPE_CHECKING:
    from engine.selftest import CheckResult, SelfTestReport

RunSelfTest = Callable[..., "SelfTestReport"]

_ICONS = {
    "pass": QStyle.StandardPixmap.SP_DialogApplyButton,
    "fail": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "skip": QStyle.StandardPixmap.SP_MessageBoxInformation,
}


class _Progress(QObject):
    """Lives on the GUI thread; the worker's progress lines arrive here (queued)."""

    line = Signal(str)


def summary(report: SelfTestReport) -> str:
    checks = report.checks
    failed = [c for c in checks if c.status == "fail"]
    passed = [c for c in checks if c.status == "pass"]
    seconds = f"{report.seconds:.0f} s"
    if report.environment.get("cancelled") == "true":
        n = len(checks)
        return f"Cancelled after {n} check{'' if n == 1 else 's'} ({seconds})"
    if failed:
        n = len(failed)
        return f"{n} check{'' if n == 1 else 's'} failed, {len(passed)} passed ({seconds})"
    return f"All {len(passed)} checks passed in {seconds}"


def check_text(check: CheckResult) -> str:
    word = {"pass": "Passed", "fail": "FAILED", "skip": "Skipped"}.get(check.status, check.status)
    text = f"{check.name} — {word}\n{check.detail}"
    if check.status == "fail" and check.fix:
        text += f"\nWhat to do: {check.fix}"
    return text


class SelfTestWindow(QDialog):
    """Runs the self-test when shown; non-modal, one at a time (the action raises it)."""

    def __init__(self, parent: QWidget | None = None, run: RunSelfTest | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("selfTestWindow")
        self.setWindowTitle("Shoebox Self-Test")
        self.setModal(False)
        self.resize(720, 520)
        self._run = run
        self.cancel_event = threading.Event()
        self.report: SelfTestReport | None = None
        self.running = False

        self.heading = QLabel("Checking that Shoebox works on this computer…")
        self.heading.setObjectName("selfTestSummary")
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        self.heading.setWordWrap(True)
        self.step = QLabel("")
        self.step.setObjectName("selfTestStep")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # busy: the test does not know its length in advance
        self.busy.setTextVisible(False)
        self.results = QListWidget()
        self.results.setObjectName("selfTestResults")
        self.results.setWordWrap(True)
        self.results.setAlternatingRowColors(True)
        self.results.setSelectionMode(QListWidget.SelectionMode.NoSelection)

        self.copy_button = QPushButton("&Copy Report")
        self.copy_button.clicked.connect(self.copy_report)
        self.save_button = QPushButton("&Save Report…")
        self.save_button.clicked.connect(self.save_report)
        self.again_button = QPushButton("Run &Again")
        self.again_button.clicked.connect(self.start)
        self.close_button = QPushButton("Cancel")
        self.close_button.clicked.connect(self.cancel_or_close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        buttons.addWidget(self.again_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.step)
        layout.addWidget(self.busy)
        layout.addWidget(self.results, 1)
        layout.addLayout(buttons)

        self._progress = _Progress(self)
        self._progress.line.connect(self._on_progress)
        self._set_running(False)

    # -- running -----------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self.cancel_event = threading.Event()
        self.report = None
        self.results.clear()
        self.heading.setText("Checking that Shoebox works on this computer…")
        self.step.setText("Starting…")
        self._set_running(True)
        run = self._run
        if run is None:
            from engine.selftest import run_self_test

            run = run_self_test
        cancel, emit = self.cancel_event, self._progress.line.emit
        run_in_thread(lambda: run(progress=emit, cancel=cancel), self._on_done, self._on_error)

    def cancel_or_close(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.step.setText("Cancelling…")
            self.close_button.setEnabled(False)
        else:
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_event.set()  # a run still going stops; its report is dropped
        super().closeEvent(event)

    def _on_progress(self, line: str) -> None:
        if self.running:
            self.step.setText(line)

    def _on_done(self, report: SelfTestReport) -> None:
        self.report = report
        self._set_running(False)
        self.heading.setText(summary(report))
        self.step.setText(
            "Shoebox {version} · Python {python} · {platform}".format_map(
                {k: report.environment.get(k, "?") for k in ("version", "python", "platform")}
            )
        )
        style = self.style()
        for check in report.checks:
            item = QListWidgetItem(style.standardIcon(_ICONS.get(check.status, _ICONS["skip"])), "")
            item.setText(check_text(check))
            item.setData(Qt.ItemDataRole.UserRole, check.status)
            item.setToolTip(check.fix or check.detail)
            self.results.addItem(item)

    def _on_error(self, exc: BaseException) -> None:
        self._set_running(False)
        self.heading.setText("The self-test could not run")
        self.step.setText(f"{type(exc).__name__}: {exc}")

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.busy.setVisible(running)
        self.again_button.setEnabled(not running)
        self.copy_button.setEnabled(not running and self.report is not None)
        self.save_button.setEnabled(not running and self.report is not None)
        self.close_button.setEnabled(True)
        self.close_button.setText("Cancel" if running else "Close")

    # -- the report --------------------------------------------------------------------

    def copy_report(self) -> None:
        if self.report is not None:
            QApplication.clipboard().setText(self.report.to_text())

    def save_report(self, path: str | None = None) -> Path | None:
        """Save the report as JSON (asks where, unless `path` is given)."""
        if self.report is None:
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save Self-Test Report", "shoebox-self-test.json", "JSON (*.json)"
            )
        if not path:
            return None
        target = Path(path)
        target.write_text(json.dumps(self.report.to_json(), indent=2) + "\n", encoding="utf-8")
        return target
