"""What the user sees of background work: the jobs panel's Speed tab (throughput over
the last hour, each stage's timings), the status bar when work is slowed, and the
Background work choice in Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.dialogs.settings import SettingsDialog
from desktop.operations import library as library_ops
from desktop.views.host_banner import throttled_text
from desktop.views.jobs_panel import JobsPanel
from engine.jobs.host import WorkerHost
from engine.library import Library
from tests.engine.jobstages import Recorder, add_items, fast_settings, library_with

pytestmark = pytest.mark.timeout(120)


def test_the_speed_tab_charts_the_last_hour_and_times_each_stage(
    qtbot: Any, tmp_path: Path
) -> None:
    lib = library_with(tmp_path / "lib", Recorder("noop"), Recorder("other"))
    fast_settings(lib, pool=2, import_=2)
    add_items(lib, 30)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle(timeout=30)
        panel = JobsPanel(lib)
        qtbot.addWidget(panel)
        panel.resize(900, 700)
        panel.show()
        panel.tabs.setCurrentIndex(panel.speed_tab)
        panel.show_background(host.background())
    finally:
        host.stop()
    view = panel.speed_view
    view.refresh(lib.catalog.conn, host.background(), force=True)
    assert len(view.chart.points) == 60
    assert sum(n for _, n in view.chart.points) == 60  # 30 items × 2 stages
    model = view.stage_model
    rows = [[model.data(model.index(r, c)) for c in range(3)] for r in range(model.rowCount())]
    assert rows == [["noop", "30", ""], ["other", "30", ""]]
    assert view.throttle_label.text() == "Background work: Full speed — all 2 workers"
    assert "This computer: busy" in view.hosts_label.text()
    image = view.chart.grab().toImage()
    assert image.width() > 100  # it paints (a chart, not a blank)
    lib.close()


def test_the_status_bar_says_why_work_is_slowed() -> None:
    assert throttled_text(None) == ""
    assert throttled_text({"throttled": False, "workers": 4, "of": 4}) == ""
    slowed = {"throttled": True, "workers": 1, "of": 4, "why": "on battery: one worker"}
    assert throttled_text(slowed) == "Background work slowed: on battery: one worker"
    waiting = {"throttled": True, "workers": 0, "of": 4,
               "why": "waiting until the computer is idle (used 5 s ago)"}  # fmt: skip
    assert throttled_text(waiting).startswith("Background work paused: waiting until")
    limited = {"throttled": False, "workers": 4, "of": 4,
               "rate_limited": ["nas: at most 5 files a second"]}  # fmt: skip
    assert throttled_text(limited) == (
        "Background work slowed by your limit: nas: at most 5 files a second"
    )
    both = {**slowed, "rate_limited": ["ocr: at most 2 a second"]}
    assert throttled_text(both) == (
        "Background work slowed: on battery: one worker; your limit: ocr: at most 2 a second"
    )


def test_settings_saves_the_background_mode_and_a_folder_limit(qtbot: Any, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    dialog = SettingsDialog(lib)
    qtbot.addWidget(dialog)
    assert dialog.background.currentData() == lib.settings.background.mode
    dialog.background.setCurrentIndex(dialog.background.findData("idle"))
    dialog.folder_limits.setText("/mnt/nas=5")
    library_ops.apply_settings(
        lib, workers=dialog.worker_settings(), device=dialog.device_choice(),
        values=dialog.model_values(),
    )  # fmt: skip
    assert lib.settings.background.mode == "idle"
    lib.close()
    again = Library(tmp_path / "lib")
    assert again.settings.background.mode == "idle"
    assert again.settings.background.folder_limits == "/mnt/nas=5"
    dialog.folder_limits.setText("nas=fast")
    assert dialog.problem() is not None  # refused on Save, the dialog stays open
    again.close()
