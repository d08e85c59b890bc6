"""The jobs panel and the imports panel, driven with pytest-qt against real imports.

Workers run in an in-process `WorkerHost` (threads) while the panel is polled on
the GUI thread, as the main window does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.qt import Qt
from desktop.views.imports_panel import ImportsPanel, StatusSummary
from desktop.views.jobs_panel import JobsPanel
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.registry import StageRegistry, default_registry
from engine.pipeline.types import ItemRef, StageContext, StageOutput
from engine.progress import LaneCounts
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg, run_host_until_idle

pytestmark = pytest.mark.timeout(120)


def _folder(tmp_path: Path, good: int) -> Path:
    src = tmp_path / "photos"
    for i in range(good):
        jpeg(src / f"p{i:03d}.jpg", i)
    (src / "bad.jpg").write_bytes(b"")  # zero bytes: fails with a reason, never retried
    return src


def _cli_lanes(library_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(library_dir), "status", "--json"],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lanes: dict[str, Any] = json.loads(out.stdout)["lanes"]
    return lanes


def _panel_lanes(panel: JobsPanel) -> dict[str, Any]:
    """What the panel shows: its labels' numbers and each switch's state."""
    shown: dict[str, Any] = {}
    for lane, labels in panel.lanes.count_labels.items():
        shown[lane] = {state: int(label.text().replace(",", "")) for state, label in labels.items()}
        shown[lane]["paused"] = panel.lanes.pause_buttons[lane].isChecked()
    return shown


def _without_cancelled(lanes: dict[str, Any]) -> dict[str, Any]:
    return {lane: {k: v for k, v in c.items() if k != "cancelled"} for lane, c in lanes.items()}


def _cell(panel: JobsPanel, row: int, column: str) -> str:
    model = panel.problem_model
    col = [c.title for c in model.columns].index(column)
    return str(model.data(model.index(row, col), Qt.ItemDataRole.DisplayRole))


@pytest.fixture
def panel(qtbot: Any, library: Library) -> Iterator[JobsPanel]:
    widget = JobsPanel(library, confirm=lambda *_: True)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    yield widget


def test_lane_counts_equal_shoebox_status(
    panel: JobsPanel, library: Library, library_dir: Path, tmp_path: Path
) -> None:
    library.import_paths([_folder(tmp_path, 6)])
    library.pause("batch")
    panel.refresh(library.changes_since(0))
    cli = _cli_lanes(library_dir)
    assert {lane: c.as_dict() for lane, c in panel.lanes.counts.items()} == cli
    assert _panel_lanes(panel) == _without_cancelled(cli)
    assert _panel_lanes(panel)["import"]["queued"] == 14
    assert panel.lanes.pause_buttons["batch"].text() == "Resume"

    run_host_until_idle(library)
    panel.refresh(library.changes_since(0))
    cli = _cli_lanes(library_dir)
    assert {lane: c.as_dict() for lane, c in panel.lanes.counts.items()} == cli
    assert _panel_lanes(panel) == _without_cancelled(cli)
    assert (cli["import"]["done"], cli["import"]["failed"]) == (12, 2)


class _Slow:
    """A real stage that takes at least `delay` seconds: long enough to pause mid-import."""

    def __init__(self, stage: Any, delay: float) -> None:
        self.stage = stage
        self.name, self.version, self.lane, self.kinds = (
            stage.name,
            stage.version,
            stage.lane,
            stage.kinds,
        )
        self.delay = delay

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        time.sleep(self.delay)
        output: StageOutput = self.stage.run(item, ctx)
        return output

    def store(self, conn: Any, item: ItemRef, output: StageOutput, seq: int) -> None:
        self.stage.store(conn, item, output, seq)


def _polled(panel: JobsPanel, lib: Library) -> LaneCounts:
    """One poll tick, as the main window does it; the import lane's counts as shown."""
    panel.refresh(lib.changes_since(0))
    return panel.lanes.counts["import"]


def test_pause_from_the_panel_stops_new_jobs_within_1s_and_resume_finishes(
    qtbot: Any, library_dir: Path, tmp_path: Path
) -> None:
    registry = StageRegistry(_Slow(s, 0.08) for s in default_registry().for_kind("photo"))
    lib = Library(library_dir, registry=registry)
    panel = JobsPanel(lib, confirm=lambda *_: True)
    qtbot.addWidget(panel)
    panel.show()
    lib.import_paths([_folder(tmp_path, 30)])
    host = WorkerHost(lib.root, lib.catalog, registry, lib.settings)
    host.start()
    try:
        qtbot.waitUntil(lambda: _polled(panel, lib).done >= 4, timeout=10_000)
        assert panel.lanes.counts["import"].queued > 10
        qtbot.mouseClick(panel.lanes.pause_buttons["import"], Qt.MouseButton.LeftButton)
        paused_at = time.time()
        assert lib.lane_paused()["import"]
        assert panel.lanes.pause_buttons["import"].text() == "Resume"
        assert "(paused)" in panel.lanes.name_labels["import"].text()

        # Running jobs finish; nothing new starts.
        qtbot.waitUntil(lambda: _polled(panel, lib).running == 0, timeout=3_000)
        qtbot.wait(1500)
        last_start = lib.catalog.read("SELECT max(started_at) FROM jobs")[0][0]
        assert last_start <= paused_at + 1.0
        panel.refresh(lib.changes_since(0))
        queued = panel.lanes.counts["import"].queued
        assert queued > 0 and panel.lanes.counts["import"].running == 0
        assert panel.running_model.rowCount() == 0
        assert "Paused" in panel.summary_label.text()

        qtbot.mouseClick(panel.lanes.pause_buttons["import"], Qt.MouseButton.LeftButton)
        assert not lib.lane_paused()["import"]
        host.wait_idle(timeout=60)
    finally:
        host.stop()
    panel.refresh(lib.changes_since(0))
    counts = panel.lanes.counts["import"]
    assert (counts.queued, counts.running, counts.done, counts.failed) == (0, 0, 60, 2)
    assert panel.summary_label.text() == "All done · 31 items · 2 failed"
    lib.close()


def test_failed_list_shows_the_reason_and_retry_queues_it_again(
    qtbot: Any, panel: JobsPanel, library: Library, library_dir: Path, tmp_path: Path
) -> None:
    library.import_paths([_folder(tmp_path, 3)])
    run_host_until_idle(library)
    panel.refresh(library.changes_since(0))
    assert panel.problem_model.rowCount() == 2
    for row in range(2):
        assert _cell(panel, row, "File") == "bad.jpg"
        assert _cell(panel, row, "State") == "Failed"
        assert _cell(panel, row, "Reason") == "The file is empty (0 bytes)."
    assert panel.tabs.tabText(1) == "Problems  2"
    assert not panel.retry_button.isEnabled()
    bad_item = panel.problem_model.rows[0].item_id
    panel.tabs.setCurrentIndex(1)
    with qtbot.waitSignal(panel.openItemRequested, timeout=1000) as opened:
        index = panel.problem_model.index(0, 0)
        rect = panel.problem_view.visualRect(index)
        viewport = panel.problem_view.viewport()
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [bad_item]
    panel.problem_view.clearSelection()

    first = panel.problem_model.rows[0].job_id
    panel.select_jobs([first])
    assert panel.selected_job_ids() == [first] and panel.retry_button.isEnabled()
    qtbot.mouseClick(panel.retry_button, Qt.MouseButton.LeftButton)
    state = library.catalog.read("SELECT state, attempts FROM jobs WHERE id = ?", (first,))[0]
    assert tuple(state) == ("queued", 0)
    assert panel.problem_model.rowCount() == 1
    assert _cli_lanes(library_dir)["import"]["queued"] == 1
    assert panel.lanes.counts["import"].queued == 1

    qtbot.mouseClick(panel.retry_all_button, Qt.MouseButton.LeftButton)
    assert panel.problem_model.rowCount() == 0
    assert _cli_lanes(library_dir)["import"]["queued"] == 2
    assert panel.problem_note.text() == "Nothing has failed."

    run_host_until_idle(library)  # still empty: fails again, with the same reason
    panel.refresh(library.changes_since(0))
    assert panel.problem_model.rowCount() == 2
    assert _cell(panel, 0, "Reason") == "The file is empty (0 bytes)."


def test_cancel_an_import_from_the_panel(
    qtbot: Any, panel: JobsPanel, library: Library, tmp_path: Path
) -> None:
    summary = library.import_paths([_folder(tmp_path, 4)])
    panel.refresh(None)
    imports = panel.imports
    assert imports.model.rowCount() == 1
    assert imports.target_session() is not None
    assert imports.cancel_button.isEnabled()
    qtbot.mouseClick(imports.cancel_button, Qt.MouseButton.LeftButton)
    [session] = library.sessions()
    assert session["id"] == summary.session_id and session["state"] == "cancelled"
    assert session["jobs"]["cancelled"] == 10
    panel.refresh(library.changes_since(0))
    assert imports.model.rowCount() == 0  # the jobs panel lists imports under way only
    assert panel.lanes.counts["import"].cancelled == 10


def test_imports_panel_progress_pause_and_status_summary(
    qtbot: Any, library: Library, tmp_path: Path
) -> None:
    declined: list[str] = []
    imports = ImportsPanel(library, confirm=lambda _w, _t, text: declined.append(text) or False)
    qtbot.addWidget(imports)
    imports.show()
    summary = StatusSummary(library)
    assert summary.text() == "Library empty · drop a folder to import"
    assert imports.empty.isVisible() and not imports.view.isVisible()

    session_id = library.import_paths([_folder(tmp_path, 4)]).session_id
    imports.refresh(library.changes_since(0))
    assert imports.view.isVisible()
    s = imports.target_session()
    assert s is not None and (s.id, s.total, s.finished) == (session_id, 10, 0)
    assert summary.text() == "Processing 0 of 10"

    qtbot.mouseClick(imports.pause_button, Qt.MouseButton.LeftButton)
    assert library.sessions()[0]["paused"]
    assert imports.pause_button.text() == "Resume"
    assert summary.text() == "Paused · 0 of 10"
    qtbot.mouseClick(imports.cancel_button, Qt.MouseButton.LeftButton)
    assert declined and library.sessions()[0]["state"] == "processing"  # asked; said no
    qtbot.mouseClick(imports.pause_button, Qt.MouseButton.LeftButton)
    assert not library.sessions()[0]["paused"]

    run_host_until_idle(library)
    imports.refresh(library.changes_since(0))
    s = imports.model.sessions[0]
    assert (s.state, s.finished, s.failed) == ("done", 10, 2)
    assert not imports.pause_button.isEnabled()  # nothing left to pause
    assert summary.text() == "All done · 5 items · 2 failed"
    imports.grab()  # paints every row through the delegate without error


def test_an_import_slowed_by_a_folder_rate_limit_says_so(
    qtbot: Any, library: Library, tmp_path: Path
) -> None:
    from desktop.views.imports_panel import DETAIL_ROLE

    imports = ImportsPanel(library)
    qtbot.addWidget(imports)
    imports.show()
    src = _folder(tmp_path, 2)
    library.import_paths([src])
    imports.refresh(library.changes_since(0))
    row = imports.model.index(0)
    assert "limit" not in str(row.data(DETAIL_ROLE))

    library.settings.background.folder_limits = f"{tmp_path}=5; /elsewhere=1"
    imports.refresh(None)
    assert str(row.data(DETAIL_ROLE)).endswith(
        f" · at most 5 files/s from {tmp_path.name} (your limit)"
    )
    assert "(your limit)" in str(row.data(Qt.ItemDataRole.ToolTipRole))
    library.pause()  # paused: that is the reason it does not move, not the limit
    imports.refresh(None)
    assert "limit" not in str(row.data(DETAIL_ROLE))
    imports.grab()


def test_a_hidden_panel_defers_its_refresh_until_shown(
    qtbot: Any, library: Library, tmp_path: Path
) -> None:
    panel = JobsPanel(library)
    qtbot.addWidget(panel)
    library.import_paths([_folder(tmp_path, 2)])
    panel.refresh(library.changes_since(0))  # hidden (a closed dock): nothing is read
    panel.refresh(None)
    assert panel.lanes.counts == {}
    panel.show()
    qtbot.waitUntil(lambda: panel.lanes.counts["import"].queued == 6, timeout=2_000)


def test_running_list_shows_a_long_jobs_progress_and_a_task_jobs_subject() -> None:
    from desktop.views.jobs_panel import running_columns
    from engine.progress import RunningJob

    columns = {c.title: c for c in running_columns()}
    ocr = RunningJob(1, 5, "ocr", "import", "/x/scan.pdf", time.time(), 1, None, 37, 300, "page 37")
    train = RunningJob(2, None, "train", "learning", "", time.time(), 1, "label:7")
    assert columns["Progress"].value(ocr) == "37 / 300 · page 37"
    assert columns["Progress"].value(train) == ""
    assert columns["File"].value(ocr) == "scan.pdf"
    assert columns["File"].value(train) == "label:7"


def test_the_workers_tab_lists_enrolled_workers_from_their_heartbeats(
    qtbot: Any, tmp_path: Path
) -> None:
    from engine.remote import enrol

    library = Library(tmp_path / "lib")
    panel = JobsPanel(library)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.tabs.isTabVisible(panel.worker_tab)  # none enrolled: no tab
    now = time.time()
    with library.catalog.write() as conn:
        enrol.add_worker(conn, "closet-gpu")
        enrol.add_worker(conn, "old-laptop")
        enrol.add_worker(conn, "gone")
        enrol.remove_worker(conn, "gone")
        conn.execute(
            """UPDATE workers SET last_seen_at = ?, jobs_done = 1234, errors = 2,
                      info = '{"host": "closet", "device": "cuda", "slots": 4}'
               WHERE name = 'closet-gpu'""",
            (now - 3,),
        )
    panel.refresh(None)
    assert panel.tabs.isTabVisible(panel.worker_tab)
    assert panel.tabs.tabText(panel.worker_tab) == "Workers  1/2"  # live / enrolled
    model = panel.worker_model
    cells = [[model.data(model.index(r, c)) for c in range(6)] for r in range(model.rowCount())]
    assert cells == [
        ["closet-gpu", "closet", "cuda", "0 of 4", "just now", "1,234"],
        ["old-laptop", "—", "—", "0 of 0", "never", "0"],
    ]
    library.close()
