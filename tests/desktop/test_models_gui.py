"""The model stages in the GUI: tags and object boxes in the detail pane, "More like
this", the waiting badge, the jobs panel's waiting row, the settings' model status.

The library is built once (five photos catalogued and thumbnailed by an in-process
worker host), then tags, detections, vectors and model jobs are written straight
into the catalog; each test works on its own copy of it, with no worker running.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desktop import actions
from desktop.dialogs.settings import SettingsDialog
from desktop.itemmodels.grid import RowRole, state_text
from desktop.mainwindow import MainWindow
from desktop.qt import QApplication, QGuiApplication, QImage, QKeySequence, QLabel, QRectF, Qt
from desktop.views.grid import BADGE_COLOURS, badge_for
from desktop.views.preview import PreviewView
from engine.browse import GridRow
from engine.config import load_settings
from engine.enrichment_view import Detection
from engine.library import Library
from engine.store.db import next_seq
from tests.corpus import write_jpeg
from tests.engine.jobstages import run_until_idle

# Photo 0 is stored 1000 × 2000 with EXIF orientation 6: upright it is 2000 × 1000, which
# is what its boxes are measured in (its preview is 1280 × 640). (`write_jpeg` takes the
# upright size and stores the pixels turned.)
UPRIGHT = (2000, 1000)
BOXES = {  # label, score, box in upright-original pixels
    "dog": [(0.92, (100.0, 200.0, 900.0, 800.0)), (0.55, (1500.0, 600.0, 1900.0, 950.0))],
    "person": [(0.81, (1000.0, 50.0, 1400.0, 990.0))],
}
TAGS = [  # tag, source, score
    ("dog", "detect", 0.92),
    ("person", "detect", 0.81),
    ("beach", "zero-shot", 0.31),
    ("sunset", "zero-shot", 0.12),
    ("holiday", "classifier", 0.77),
]
EMBED_SPEC = "open_clip:ViT-B-32:laion2b_s34b_b79k"
DETECT_SPEC = "transformers:PekingU/rtdetr_v2_r18vd"
COMMAND = f"shoebox models import FILE --as {EMBED_SPEC}"
REASON = (
    "Model ViT-B-32 (laion2b_s34b_b79k) is not available offline: connect to the "
    f"internet, or run `{COMMAND}`"
)
VECTORS = {  # photo index -> direction: photo 1 is nearest photo 0, then 2, then 3
    0: (1.0, 0.0, 0.0, 0.0),
    1: (0.95, 0.3, 0.0, 0.0),
    2: (0.6, 0.8, 0.0, 0.0),
    3: (0.0, 0.2, 1.0, 0.0),
}
NAMES = [f"photo-{i:03d}.jpg" for i in range(5)]  # photo 4 waits for its model


def _vector(direction: tuple[float, ...]) -> bytes:
    v = np.asarray(direction, dtype=np.float32)
    return (v / np.linalg.norm(v)).astype("<f2").tobytes()


def _ids(lib: Library) -> dict[str, int]:
    rows = lib.catalog.read("SELECT item_id, display FROM paths")
    return {Path(r[1]).name: int(r[0]) for r in rows}


def _add_job(conn: Any, item_id: int, stage: str, state: str, seq: int, error: str | None) -> None:
    conn.execute(
        """INSERT INTO jobs (item_id, stage, version, lane, state, max_attempts, created_at,
                             seq, error, result_version)
           VALUES (?, ?, '1', 'import', ?, 3, ?, ?, ?, ?)""",
        (item_id, stage, state, time.time(), seq, error, "1" if state == "done" else None),
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models-gui")
    folder = root / "photos"
    write_jpeg(folder / NAMES[0], UPRIGHT, orientation=6, seed=1)
    for i in range(1, 5):
        write_jpeg(folder / NAMES[i], (640, 480), seed=i + 1)
    library_dir = root / "library"
    with Library(library_dir) as lib:
        lib.import_paths([folder])
        run_until_idle(lib, timeout=60)
        ids = _ids(lib)
        first = ids[NAMES[0]]
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            conn.executemany(
                "INSERT INTO item_tags (item_id, tag, source, score, model)"
                " VALUES (?, ?, ?, ?, 'm')",
                [(first, tag, source, score) for tag, source, score in TAGS],
            )
            conn.executemany(
                """INSERT INTO detections (item_id, model, label, score, x0, y0, x1, y1)
                   VALUES (?, 'detr', ?, ?, ?, ?, ?, ?)""",
                [
                    (first, label, score, *box)
                    for label, found in BOXES.items()
                    for score, box in found
                ],
            )
            for i, direction in VECTORS.items():
                conn.execute(
                    "INSERT INTO vectors (item_id, model, dim, vector, digest, seq)"
                    " VALUES (?, 'test:model', 4, ?, 'd', ?)",
                    (ids[NAMES[i]], _vector(direction), seq),
                )
                _add_job(conn, ids[NAMES[i]], "embed", "done", seq, None)
            waiting = ids[NAMES[4]]
            _add_job(conn, waiting, "embed", "waiting", seq, REASON)
            _add_job(conn, waiting, "tags", "waiting", seq, f"Waits for embed: {REASON}")
    return library_dir


@pytest.fixture
def library_dir(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "library"
    shutil.copytree(template, copy)
    return copy


@pytest.fixture
def window(make_window: Callable[..., MainWindow], library_dir: Path) -> Iterator[MainWindow]:
    yield make_window(library_dir, start_host=False)


def _row_of(window: MainWindow, name: str) -> int:
    model = window.grid_model
    for row in range(model.rowCount()):
        data = model.index(row, 0).data(RowRole)
        if isinstance(data, GridRow) and data.name == name:
            return row
    raise AssertionError(f"{name} is not in the grid")


def _id_of(window: MainWindow, name: str) -> int:
    return window.grid_model.item_id(_row_of(window, name))


def _select(window: MainWindow, name: str) -> None:
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.grid_model.index(_row_of(window, name), 0))


def _open(qtbot: Any, window: MainWindow, name: str) -> None:
    _select(window, name)
    window.open_detail()
    qtbot.waitUntil(window.detail.preview.has_image, timeout=5000)


# -- the detail pane --------------------------------------------------------------------


def test_detail_pane_lists_tags_by_source_and_draws_the_boxes_scaled(
    qtbot: Any, window: MainWindow
) -> None:
    _open(qtbot, window, NAMES[0])
    pane = window.detail
    assert pane.tags_view is not None
    assert pane.tags_view.texts() == [
        ("holiday", "classifier"),
        ("dog", "detect"),
        ("person", "detect"),
        ("beach", "zero-shot"),
        ("sunset", "zero-shot"),
    ]
    assert "92%" in pane.tags_view.chips[1].toolTip()
    assert pane.objects_view is not None and pane.objects_view.labels == ["dog", "person"]
    assert pane.show_objects.isVisible() and pane.show_objects.isChecked()

    area = pane.preview.image_rect()
    assert area.width() > 100 and abs(area.width() / area.height() - 2.0) < 0.02
    scale = area.width() / UPRIGHT[0]  # original pixels -> displayed pixels
    expected = sorted(
        (label, x0 * scale + area.x(), y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
        for label, found in BOXES.items()
        for _, (x0, y0, x1, y1) in found
    )
    shown = sorted(
        (b.label, b.rect.x(), b.rect.y(), b.rect.width(), b.rect.height())
        for b in pane.preview.shown_boxes()
    )
    assert len(shown) == 3
    for got, want in zip(shown, expected, strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], abs=0.01)
    assert all(area.contains(b.rect) for b in pane.preview.shown_boxes())
    assert not window.grab().isNull()  # paints boxes and labels


def test_show_objects_toggles_with_o_and_the_checkbox_and_is_remembered(
    qtbot: Any, window: MainWindow
) -> None:
    _open(qtbot, window, NAMES[0])
    pane = window.detail
    assert len(pane.preview.shown_boxes()) == 3
    window.grid.setFocus()
    qtbot.keyClick(window.grid, Qt.Key.Key_O)
    assert pane.preview.shown_boxes() == []
    assert not pane.show_objects.isChecked() and not window.objects_action.isChecked()
    assert window.state.value("detail/show_objects", True, bool) is False
    pane.show_objects.click()
    assert len(pane.preview.shown_boxes()) == 3
    assert window.objects_action.isChecked()
    assert window.objects_action.shortcut() == QKeySequence("O")

    _select(window, NAMES[1])  # the pane follows the selection: nothing found there
    assert pane.item_id == _id_of(window, NAMES[1])
    assert not pane.show_objects.isVisible()
    assert pane.tags_view is None and pane.objects_view is None
    assert pane.preview.shown_boxes() == []


def test_boxes_of_an_item_without_a_known_size_are_in_preview_pixels(qtbot: Any) -> None:
    view = PreviewView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    image = QImage(800, 400, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkGreen)
    view.set_image(image)
    view.fit(400)
    view.set_detections([Detection("cat", 0.7, (80.0, 40.0, 480.0, 240.0))], None)
    (box,) = view.shown_boxes()
    assert box.rect == QRectF(40, 20, 200, 100)
    view.set_show_boxes(False)
    assert view.shown_boxes() == []


# -- more like this ---------------------------------------------------------------------


def test_more_like_this_shows_the_similar_items_in_order_and_esc_goes_back(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.vectors

    before = window.grid_model.ids()
    ids = {name: _id_of(window, name) for name in NAMES}
    answer = [ids[NAMES[3]], ids[NAMES[1]], ids[NAMES[2]]]
    calls: list[tuple[int, bool]] = []

    def fake_similar(conn: Any, indexes: Any, item_id: int, **kw: Any) -> list[dict[str, Any]]:
        calls.append((item_id, threading.current_thread() is threading.main_thread()))
        return [{"id": i, "paths": [], "kind": "photo", "score": 0.5} for i in answer]

    monkeypatch.setattr(engine.vectors, "similar", fake_similar)
    _select(window, NAMES[0])
    qtbot.keyClick(window.grid, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.grid_model.ids() == answer, timeout=5000)
    assert calls == [(ids[NAMES[0]], False)]  # asked once, off the GUI thread
    assert window.similar_bar.isVisible()
    assert window.similar_bar.text() == f"Similar to {NAMES[0]}"
    assert window.current_id() == answer[0]
    assert window.is_filtered()

    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.grid_model.ids() == before, timeout=5000)
    assert not window.similar_bar.isVisible()
    assert window.current_id() == ids[NAMES[0]]

    # The grid's context menu has it too; the bar's × goes back as Esc does.
    index = window.grid_model.index(_row_of(window, NAMES[0]), 0)
    menu = actions.grid_menu(window, index)
    assert window.more_like_this_action in menu.actions()
    window.more_like_this_action.trigger()
    qtbot.waitUntil(lambda: window.grid_model.ids() == answer, timeout=5000)
    window.similar_bar.close_button.click()
    qtbot.waitUntil(lambda: window.grid_model.ids() == before, timeout=5000)


def test_esc_closes_the_detail_pane_opened_after_the_similar_items_first(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_id_of(window, n) for n in NAMES[1:3]]
    _select(window, NAMES[0])
    actions.show_similar(window, _id_of(window, NAMES[0]), NAMES[0], ids)
    assert window.grid_model.ids() == ids
    window.open_detail()
    assert window.detail.isVisible()
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    assert not window.detail.isVisible() and window.similar_bar.active
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    assert not window.similar_bar.active
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == len(NAMES), timeout=5000)


def test_more_like_this_with_the_real_vector_index(qtbot: Any, window: MainWindow) -> None:
    vectors = pytest.importorskip("engine.vectors")
    if not hasattr(vectors, "similar"):
        pytest.skip("engine.vectors.similar is not there yet")
    _select(window, NAMES[0])
    window.more_like_this_action.trigger()
    want = [_id_of(window, NAMES[i]) for i in (1, 2, 3)]
    qtbot.waitUntil(lambda: window.grid_model.ids() == want, timeout=10_000)


def test_more_like_this_without_an_embedding_says_why(qtbot: Any, window: MainWindow) -> None:
    before = window.grid_model.ids()
    _select(window, NAMES[4])
    window.more_like_this_action.trigger()
    message = window.statusBar().currentMessage()
    assert message.startswith(
        f"No embedding yet for {NAMES[4]}: its embed job is waiting for the model — Model ViT-B-32"
    )
    assert COMMAND in message
    assert window.grid_model.ids() == before and not window.similar_bar.active


# -- waiting for a model ----------------------------------------------------------------


def test_a_job_waiting_for_its_model_has_its_own_badge(qtbot: Any, window: MainWindow) -> None:
    model = window.grid_model
    waiting = model.index(_row_of(window, NAMES[4]), 0).data(RowRole)
    done = model.index(_row_of(window, NAMES[1]), 0).data(RowRole)
    assert badge_for(done) == ("done", "")
    kind, text = badge_for(waiting)
    assert (kind, text) == ("waiting", "Needs model")
    assert BADGE_COLOURS[kind] not in (BADGE_COLOURS["failed"], BADGE_COLOURS["working"])
    assert state_text(waiting).startswith("Waiting for a model (embed, tags)")
    # The grid paints it (the sprite is made with its hourglass).
    assert not window.grid.grab().isNull()

    _open_without_preview(window, NAMES[4])
    states = window.detail.content.findChildren(QLabel)
    texts = [label.text() for label in states]
    assert any("Waiting for model" in t for t in texts)
    assert any(COMMAND in t for t in texts)


def _open_without_preview(window: MainWindow, name: str) -> None:
    _select(window, name)
    window.open_detail()


def test_jobs_panel_shows_what_waits_and_the_command_to_run(qtbot: Any, window: MainWindow) -> None:
    window.jobs_dock.show()
    panel = window.jobs_panel
    assert panel is not None
    panel.refresh(None)
    banner = panel.waiting
    assert banner.isVisible()
    assert banner.texts() == [
        f"Embed: 1 waiting — {REASON}",
        "Tags: 1 waiting — they need Embed first (see its row)",
    ]
    embed = banner.rows["embed"]
    assert embed.command == COMMAND and embed.copy_button.isVisible()
    assert f"<code>{COMMAND}</code>" in embed.label.text()
    assert embed.label.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    embed.copy_button.click()
    assert QGuiApplication.clipboard().text() == COMMAND
    assert not banner.rows["tags"].copy_button.isVisible()
    assert panel.lanes.count_labels["import"]["waiting"].text() == "2"

    assert window.library is not None
    with window.library.catalog.write() as conn:  # the model arrived: nothing waits
        conn.execute("UPDATE jobs SET state = 'done', error = NULL WHERE state = 'waiting'")
    panel.refresh(None)
    assert not banner.isVisible() and banner.texts() == []


# -- settings ---------------------------------------------------------------------------


def _host(lib: Library, resources: list[dict[str, Any]], heartbeat: float) -> None:
    with lib.catalog.write() as conn:
        conn.execute(
            "INSERT INTO hosts (owner, pid, started_at, heartbeat_at, info) VALUES (?, 1, ?, ?, ?)",
            ("test-host", heartbeat, heartbeat, json.dumps({"resources": resources})),
        )


def test_settings_dialog_shows_each_models_status(qtbot: Any, window: MainWindow) -> None:
    lib = window.library
    assert lib is not None
    lib.settings.models.embed = EMBED_SPEC
    lib.settings.models.detect = DETECT_SPEC
    loaded = {"model": EMBED_SPEC, "device": "cuda", "state": "loaded", "load_s": 2.4}
    _host(lib, [loaded], time.time())
    dialog = SettingsDialog(lib, window)
    qtbot.addWidget(dialog)
    status = dialog.status_texts()
    assert status["embed"] == "Loaded on NVIDIA GPU (CUDA) (loading took 2.4 s)."
    assert status["detect"] == "Not loaded: it loads when a job needs it."
    assert dialog.model_specs["embed"].text() == EMBED_SPEC

    with lib.catalog.write() as conn:  # the host went away: its word no longer counts
        conn.execute("UPDATE hosts SET heartbeat_at = ?", (time.time() - 60,))
    dialog.refresh_status()
    status = dialog.status_texts()
    assert status["embed"] == f"Waiting for weights (1 job): {REASON}"
    assert f"<code>{COMMAND}</code>" in dialog.model_status["embed"].text()


def test_saving_a_new_model_spec_saves_reindexes_and_restarts_the_host(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = window.library
    assert lib is not None
    reindexed: list[str] = []
    monkeypatch.setattr(lib, "apply_settings", lambda: reindexed.append(lib.settings.models.detect))

    class Host:
        restarts = 0

        def restart(self) -> None:
            Host.restarts += 1

        def stop(self) -> None:
            pass

        def deleteLater(self) -> None:
            pass

    monkeypatch.setattr(window, "host", Host())
    monkeypatch.setattr(window, "start_host", True)
    monkeypatch.setattr(window.host_banner, "refresh", lambda: None)

    dialog = SettingsDialog(lib, window)
    qtbot.addWidget(dialog)
    dialog.model_specs["detect"].setText("not a spec")
    dialog.accept()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert dialog.error.isVisibleTo(dialog) and "models" in dialog.error.text()

    dialog.model_specs["detect"].setText(DETECT_SPEC)
    dialog.detect_min.setValue(0.6)
    window.apply_settings(dialog)
    saved = load_settings(lib.root)
    assert saved.models.detect == DETECT_SPEC and saved.detect.min_score == 0.6
    assert saved.tags.min_score == load_settings(lib.root).tags.min_score
    assert reindexed == [DETECT_SPEC] and Host.restarts == 1
    assert "re-processed" in window.statusBar().currentMessage()

    again = SettingsDialog(lib, window)  # nothing changed: no re-index
    qtbot.addWidget(again)
    window.apply_settings(again)
    assert reindexed == [DETECT_SPEC] and Host.restarts == 2
    QApplication.processEvents()


def test_a_job_waiting_for_its_unplugged_folder_says_so_not_needs_model() -> None:
    """A source-offline wait (engine/jobs/offline.py) reaches the row through
    `item_state`, and the badge and the tooltip name the folder, not a model."""
    from engine.browse import item_state
    from engine.errors import SourceOfflineError

    reason = str(SourceOfflineError("/media/usb/Photos"))
    stages = {"metadata": ("done", None), "thumbnail": ("waiting", reason)}
    state, stage, error = item_state(stages)
    assert (state, stage, error) == ("done", "thumbnail", reason)
    row = GridRow(
        id=1, name="a.jpg", kind="photo", format="JPEG", missing=False, state=state,
        stage=stage, error=error, thumb=None, taken_at=None, width=None, height=None,
        stages={k: v[0] for k, v in stages.items()},
    )  # fmt: skip
    assert badge_for(row) == ("waiting", "Drive away")
    assert state_text(row) == f"Waiting: {reason}"
    # A model wait is still a model wait.
    model_wait = {"embed": ("waiting", "Model ViT-B-32 is not available offline: …")}
    assert item_state(model_wait) == ("done", None, None)
