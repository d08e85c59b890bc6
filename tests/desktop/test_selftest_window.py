"""Help ▸ Run Self-Test…: the report window, with a stand-in for the engine's test.

The stand-in follows `engine.selftest.run_self_test`'s contract (progress lines, a
cancel event, a `SelfTestReport`) and is held at a gate, so the test decides when the
run ends. The engine's own self-test is tested in tests/engine/test_selftest.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop.dialogs.selftest import SelfTestWindow
from desktop.qt import QApplication, Qt
from engine.selftest import CheckResult, SelfTestReport

ENV = {"version": "0.1.0", "python": "3.11", "platform": "Linux", "gpu": "none"}
FIX = "Install it with `sudo apt install tesseract-ocr`."


def report(*checks: CheckResult, cancelled: bool = False) -> SelfTestReport:
    env = dict(ENV, cancelled="true") if cancelled else dict(ENV)
    return SelfTestReport(checks=checks, seconds=12.4, environment=env)


PASSING = report(
    CheckResult("Sample files made", "pass", "7 files"),
    CheckResult("Thumbnails keep orientation", "pass", "6 thumbnails upright"),
    CheckResult("GPU", "skip", "no GPU; work runs on the CPU"),
)
FAILING = report(
    CheckResult("Sample files made", "pass", "7 files"),
    CheckResult("OCR reads documents", "fail", "ocr waiting: tesseract is missing", FIX),
    CheckResult("Text search finds documents", "skip", "needs OCR"),
)


class FakeRun:
    """Emits progress, then waits at `gate` (or for cancel) and returns `result`."""

    def __init__(self, result: SelfTestReport) -> None:
        self.result = result
        self.gate = threading.Event()
        self.cancel: threading.Event | None = None
        self.calls = 0

    def __call__(
        self,
        progress: Callable[[str], None] | None = None,
        *,
        cancel: threading.Event | None = None,
        **_kw: Any,
    ) -> SelfTestReport:
        self.calls += 1
        self.cancel = cancel
        assert progress is not None
        progress("Importing 7 sample files…")
        while not self.gate.wait(0.01):
            if cancel is not None and cancel.is_set():
                return report(*self.result.checks[:1], cancelled=True)
        progress("Checking thumbnails…")
        return self.result


def rows(window: SelfTestWindow) -> list[tuple[str, str]]:
    out = []
    for i in range(window.results.count()):
        item = window.results.item(i)
        out.append((item.data(Qt.ItemDataRole.UserRole), item.text()))
    return out


def test_progress_shows_while_it_runs_then_every_check_with_its_fix(qtbot: Any) -> None:
    fake = FakeRun(FAILING)
    window = SelfTestWindow(run=fake)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.step.text() == "Importing 7 sample files…")
    assert window.running and window.busy.isVisible()
    assert window.close_button.text() == "Cancel"
    assert not window.copy_button.isEnabled() and not window.again_button.isEnabled()
    fake.gate.set()
    qtbot.waitUntil(lambda: not window.running)
    assert window.heading.text() == "1 check failed, 1 passed (12 s)"
    got = rows(window)
    assert [status for status, _ in got] == ["pass", "fail", "skip"]
    failed_text = got[1][1]
    assert "OCR reads documents — FAILED" in failed_text
    assert f"What to do: {FIX}" in failed_text
    assert "What to do" not in got[2][1]  # a skipped check has no fix to show
    assert not window.busy.isVisible() and window.close_button.text() == "Close"


def test_a_passing_run_says_so_and_copy_puts_the_report_on_the_clipboard(qtbot: Any) -> None:
    fake = FakeRun(PASSING)
    fake.gate.set()
    window = SelfTestWindow(run=fake)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.report is not None)
    assert window.heading.text() == "All 2 checks passed in 12 s"
    assert len(rows(window)) == 3
    assert window.copy_button.isEnabled()
    window.copy_button.click()
    assert QApplication.clipboard().text() == PASSING.to_text()


def test_cancel_sets_the_event_and_the_window_says_it_was_cancelled(qtbot: Any) -> None:
    fake = FakeRun(PASSING)
    window = SelfTestWindow(run=fake)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: fake.cancel is not None)
    window.close_button.click()  # "Cancel" while running
    assert fake.cancel is not None and fake.cancel.is_set()
    qtbot.waitUntil(lambda: not window.running)
    assert window.heading.text().startswith("Cancelled after 1 check (")
    assert window.isVisible()  # cancelling does not close the window; Close does
    window.close_button.click()
    assert not window.isVisible()


def test_save_writes_the_json_report(qtbot: Any, tmp_path: Path) -> None:
    fake = FakeRun(FAILING)
    fake.gate.set()
    window = SelfTestWindow(run=fake)
    qtbot.addWidget(window)
    window.start()
    qtbot.waitUntil(lambda: window.report is not None)
    saved = window.save_report(str(tmp_path / "report.json"))
    assert saved is not None
    data = json.loads(saved.read_text())
    assert data["ok"] is False
    assert [c["status"] for c in data["checks"]] == ["pass", "fail", "skip"]


def test_the_help_menu_opens_one_window_and_raises_it_again(
    make_window: Callable[..., Any], qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.selftest

    fake = FakeRun(PASSING)
    monkeypatch.setattr(engine.selftest, "run_self_test", fake)
    window = make_window(start_host=False)
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert window.self_test_action in help_menu.actions()
    window.self_test_action.trigger()
    dialog = window.findChild(SelfTestWindow, "selfTestWindow")
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: fake.calls == 1)
    window.self_test_action.trigger()  # while it runs: the same window, no second run
    assert window.findChildren(SelfTestWindow) == [dialog]
    fake.gate.set()
    qtbot.waitUntil(lambda: not dialog.running)
    window.self_test_action.trigger()  # still open with its report: only raised
    assert fake.calls == 1
    dialog.close()
    window.self_test_action.trigger()  # closed, then asked again: a new run
    qtbot.waitUntil(lambda: fake.calls == 2)
    qtbot.waitUntil(lambda: not dialog.running)
