"""Labels in the GUI: the review window driven by the keyboard (accept, reject, skip,
next, undo, confirm a page), New Label from Selection, the sidebar's counts and its
filter, the detail pane's labels, `label:` in the search box.

The library (tests/desktop/labelled.py) is built once with a label trained by the real
`learn` task; each test works on its own copy with no worker host, so nothing trains
while it runs and the queue is exactly what the copy holds. What the window wrote is
read back from the catalog's `label_decisions`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop import actions
from desktop.mainwindow import MainWindow
from desktop.menus import MENUS
from desktop.operations import labels as label_ops
from desktop.qt import QItemSelectionModel, QKeySequence, Qt
from desktop.views.review_window import PAGE_SIZE, ReviewWindow
from engine.learning.labels import touch
from engine.library import Library
from tests.desktop import labelled
from tests.desktop.labelled import LABEL


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labels-gui")
    return labelled.build(root / "library", root / "files")


@pytest.fixture
def window(
    make_window: Callable[..., MainWindow], template: Path, tmp_path: Path
) -> Iterator[MainWindow]:
    copy = tmp_path / "library"
    shutil.copytree(template, copy)
    yield make_window(copy, start_host=False)


def _lib(window: MainWindow) -> Library:
    assert window.library is not None
    return window.library


def _label_id(lib: Library) -> int:
    return int(lib.catalog.read("SELECT id FROM labels WHERE name = ?", (LABEL,))[0][0])


def answers(lib: Library) -> dict[int, tuple[int, str]]:
    """The user's decisions on Receipts other than its first examples: item -> (verdict,
    origin)."""
    rows = lib.catalog.read(
        """SELECT item_id, verdict, origin FROM label_decisions
           WHERE label_id = ? AND origin != 'example'""",
        (_label_id(lib),),
    )
    return {int(r[0]): (int(r[1]), str(r[2])) for r in rows}


def suggested(lib: Library) -> set[int]:
    rows = lib.catalog.read(
        "SELECT item_id FROM label_suggestions WHERE label_id = ?", (_label_id(lib),)
    )
    return {int(r[0]) for r in rows}


def queue_ids(lib: Library) -> list[int]:
    return [int(r["id"]) for r in lib.review(LABEL, label_ops.REVIEW_LIMIT)]


def open_review(qtbot: Any, window: MainWindow) -> ReviewWindow:
    """Ctrl+Shift+L in the main window; wait until the queue is read and the window
    has the keyboard."""
    qtbot.keySequence(window, QKeySequence("Ctrl+Shift+L"))
    review = window.review_window
    assert review is not None
    qtbot.waitUntil(lambda: review.snapshot is not None and review.is_idle(), timeout=5000)
    qtbot.waitUntil(review.isActiveWindow, timeout=5000)
    return review


def press(qtbot: Any, review: ReviewWindow, *keys: Qt.Key) -> None:
    """Keys to the review window, then wait for what they asked to be written and read."""
    for key in keys:
        qtbot.keyClick(review, key)
    qtbot.waitUntil(review.is_idle, timeout=5000)


# -- one at a time ---------------------------------------------------------------------


def test_review_opens_by_key_on_the_first_suggestion_with_why_and_progress(
    qtbot: Any, window: MainWindow
) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    queue = lib.review(LABEL, label_ops.REVIEW_LIMIT)
    assert [s.id for s in review.queue] == [int(r["id"]) for r in queue]
    first = queue[0]
    assert review.shown_id() == first["id"]
    assert review.question.text() == f"Is this {LABEL}?"
    assert review.item_name.text() == labelled.name_of(first["id"])
    assert f"{first['score']:.2f}" in review.score.text()
    shown = [t.card.id for t in review.why if t.isVisible() and t.card is not None]
    assert shown == first["why"][:3] and len(shown) == 3
    assert review.why_names.text() == ", ".join(labelled.name_of(i) for i in shown)
    progress = review.progress.text()
    for words in ("0 decisions this session", f"{LABEL} model v1", "estimated precision"):
        assert words in progress
    assert "labelled automatically" in progress and "not audited yet" in progress
    qtbot.waitUntil(review.preview.has_image, timeout=5000)  # the large preview
    assert not review.grab().isNull()


def test_accept_reject_skip_next_by_keyboard(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    q = queue_ids(lib)
    press(qtbot, review, Qt.Key.Key_Y)  # q0: yes
    assert review.shown_id() == q[1]
    press(qtbot, review, Qt.Key.Key_N)  # q1: no
    press(qtbot, review, Qt.Key.Key_S)  # q2: later
    assert review.shown_id() == q[3]
    press(qtbot, review, Qt.Key.Key_J)  # on to q4, nothing decided
    assert review.shown_id() == q[4]
    press(qtbot, review, Qt.Key.Key_K)  # back to q3
    press(qtbot, review, Qt.Key.Key_A)  # q3: yes (A is Y's other key)
    assert answers(lib) == {q[0]: (1, "review"), q[1]: (-1, "review"), q[3]: (1, "review")}
    assert suggested(lib) == set(q) - {q[0], q[1], q[3]}
    assert [s.id for s in review.order()][-1] == q[2]  # the skipped one waits at the end
    assert review.shown_id() == q[4]
    assert review.progress.text().startswith("3 decisions this session")


def test_undo_by_keyboard_asks_again(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    q = queue_ids(lib)
    press(qtbot, review, Qt.Key.Key_Y, Qt.Key.Key_N)
    assert answers(lib) == {q[0]: (1, "review"), q[1]: (-1, "review")}
    assert "Undo: Reject 1 item as Receipts" in review.undo_label.text()
    press(qtbot, review, Qt.Key.Key_U)  # the no on q1
    assert answers(lib) == {q[0]: (1, "review")}
    assert review.shown_id() == q[1] and q[1] in suggested(lib)
    assert review.undo_label.text() == "Undone: Reject 1 item as Receipts"
    qtbot.keySequence(review, QKeySequence("Ctrl+Z"))  # the yes on q0
    qtbot.waitUntil(review.is_idle, timeout=5000)
    assert answers(lib) == {}
    assert suggested(lib) == set(q)
    assert review.shown_id() == q[0]
    assert review.progress.text().startswith("0 decisions")


def test_a_change_made_elsewhere_reaches_the_open_window(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    q = queue_ids(lib)
    lib.review_decide(LABEL, [q[0]], accept=True)  # e.g. `shoebox review` in a terminal
    window.poll()
    qtbot.waitUntil(lambda: review.is_idle() and review.shown_id() == q[1], timeout=5000)
    assert q[0] not in [s.id for s in review.queue]


# -- confirm a page --------------------------------------------------------------------


def test_confirm_a_page_by_keyboard_and_undo_the_whole_page(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    q = queue_ids(lib)
    press(qtbot, review, Qt.Key.Key_P)
    assert review.page_mode
    page = review.page_ids()
    assert page == q[: min(PAGE_SIZE, len(q))] and len(page) > 5
    assert review.ticked_ids() == page  # all ticked
    # Untick the 2nd and the 5th by their numbers (the mark follows), then the 3rd by
    # moving the mark back to it and Space.
    press(qtbot, review, Qt.Key.Key_2, Qt.Key.Key_5)
    assert review.page_current == 4
    press(qtbot, review, Qt.Key.Key_Left, Qt.Key.Key_Left, Qt.Key.Key_Space)
    unticked = [page[1], page[2], page[4]]
    assert review.ticked_ids() == [i for i in page if i not in unticked]
    assert "yes" in review.confirm_button.text()
    assert answers(lib) == {}  # nothing written before the page is confirmed
    press(qtbot, review, Qt.Key.Key_Return)
    assert answers(lib) == {i: ((-1 if i in unticked else 1), "page") for i in page}
    assert suggested(lib) == set(q) - set(page)
    assert review.page_ids() == [i for i in q if i not in page][:PAGE_SIZE]  # the next page
    assert review.progress.text().startswith(f"{len(page)} decisions")

    press(qtbot, review, Qt.Key.Key_U)  # one undo: the whole page
    assert answers(lib) == {}
    assert suggested(lib) == set(q)
    assert review.page_ids() == page  # asked again, as it was ticked
    assert review.ticked_ids() == [i for i in page if i not in unticked]


def test_skip_a_page_and_back_to_one_at_a_time(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    review = open_review(qtbot, window)
    q = queue_ids(lib)
    press(qtbot, review, Qt.Key.Key_P)
    first = review.page_ids()
    press(qtbot, review, Qt.Key.Key_S)
    # The next page: the rest of the queue, then the skipped ones again.
    assert review.page_ids() == ([i for i in q if i not in first] + first)[:PAGE_SIZE]
    press(qtbot, review, Qt.Key.Key_P)
    assert not review.page_mode and review.shown_id() is not None
    assert answers(lib) == {}


# -- the main window -------------------------------------------------------------------


def _select(window: MainWindow, ids: list[int]) -> None:
    model, grid = window.grid_model, window.grid
    grid.selectionModel().clearSelection()
    for n, item_id in enumerate(ids):
        row = model.row_of(item_id)
        assert row is not None
        index = model.index(row, 0)
        if n == 0:
            grid.setCurrentIndex(index)
        grid.selectionModel().select(index, QItemSelectionModel.SelectionFlag.Select)
    assert sorted(window.selected_ids()) == sorted(ids)


def _decisions(lib: Library, name: str) -> dict[int, tuple[int, str]]:
    rows = lib.catalog.read(
        """SELECT d.item_id, d.verdict, d.origin FROM label_decisions d
           JOIN labels l ON l.id = d.label_id WHERE l.name = ?""",
        (name,),
    )
    return {int(r[0]): (int(r[1]), str(r[2])) for r in rows}


def test_new_label_from_selection_and_add_to_an_existing_one(
    qtbot: Any, window: MainWindow
) -> None:
    lib = _lib(window)
    forests = [i for i in range(1, labelled.COUNT + 1) if labelled.kind_of(i) == "forest"][:3]
    _select(window, forests)
    window.grid.setFocus()
    qtbot.keySequence(window, QKeySequence("Ctrl+L"))
    dialog = window.label_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.labels == [LABEL]  # offered to add to
    qtbot.keyClicks(dialog.box.lineEdit(), "Forests")
    assert dialog.ok_button.text() == "Create Label" and "new label" in dialog.hint.text()
    qtbot.keyClick(dialog.box.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(_decisions(lib, "Forests")) == 3, timeout=5000)
    assert _decisions(lib, "Forests") == {i: (1, "example") for i in forests}
    panel = window.labels_panel
    assert panel is not None
    qtbot.waitUntil(lambda: "Forests\n3 yours" in panel.rows(), timeout=5000)
    assert "Forests" in window.statusBar().currentMessage()

    more = [i for i in labelled.receipts() if i not in labelled.examples()][:2]
    _select(window, more)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keySequence(window, QKeySequence("Ctrl+L"))
    dialog = window.label_dialog
    assert dialog is not None and dialog.labels == ["Forests", LABEL]
    qtbot.keyClicks(dialog.box.lineEdit(), "receipts")  # any spelling: the same label
    assert dialog.ok_button.text() == "Add to Label"
    assert dialog.hint.text() == f"The 2 items are added to {LABEL}."
    qtbot.keyClick(dialog.box.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: all(i in _decisions(lib, LABEL) for i in more), timeout=5000)
    assert {i: _decisions(lib, LABEL)[i] for i in more} == {i: (1, "example") for i in more}
    assert len(_decisions(lib, LABEL)) == labelled.EXAMPLES + 2


def test_grid_menu_offers_new_label_and_add_to_label(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    model = window.grid_model
    row = model.row_of(labelled.receipts()[-1])
    assert row is not None
    menu = actions.grid_menu(window, model.index(row, 0))
    texts = [a.text() for a in menu.actions()]
    assert window.new_label_action.text() in texts
    add = next(a.menu() for a in menu.actions() if a.text() == "Add to Label")
    assert add is not None and [a.text() for a in add.actions()] == [LABEL]
    add.actions()[0].trigger()
    item = labelled.receipts()[-1]
    qtbot.waitUntil(lambda: item in _decisions(lib, LABEL), timeout=5000)
    assert _decisions(lib, LABEL)[item] == (1, "example")


def test_shortcuts_are_unique_and_review_is_in_the_view_menu(window: MainWindow) -> None:
    keys: dict[str, str] = {}
    for _title, entries in MENUS:
        for spec in entries:
            if spec is None or not isinstance(spec.shortcut, str):
                continue
            assert spec.shortcut not in keys, (spec.name, keys.get(spec.shortcut))
            keys[spec.shortcut] = spec.name
    bound = [
        (name, s.toString())
        for name, action in window.actions_by_name.items()
        for s in action.shortcuts()
    ]
    assert len({s for _n, s in bound}) == len(bound), bound
    assert keys["Ctrl+Shift+L"] == "review_action" and keys["Ctrl+L"] == "new_label_action"
    view = next(entries for title, entries in MENUS if title == "&View")
    assert any(spec is not None and spec.name == "review_action" for spec in view)


def _auto_label(lib: Library, item_id: int, score: float) -> None:
    """An automatic label, as a training would apply it."""
    label_id = _label_id(lib)
    with lib.catalog.write() as conn:
        conn.execute(
            "DELETE FROM label_suggestions WHERE label_id = ? AND item_id = ?",
            (label_id, item_id),
        )
        conn.execute(
            "INSERT INTO item_labels (label_id, item_id, score, version) VALUES (?, ?, ?, 1)",
            (label_id, item_id, score),
        )
        touch(conn, label_id)


def test_sidebar_counts_follow_and_a_click_shows_the_label(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    panel = window.labels_panel
    assert panel is not None
    qtbot.waitUntil(lambda: panel.reads > 0 and panel.is_idle(), timeout=5000)
    review = len(suggested(lib))
    assert panel.rows() == [f"{LABEL}\n{labelled.EXAMPLES} yours · {review} to review"]
    auto = queue_ids(lib)[0]
    _auto_label(lib, auto, 0.97)
    window.poll()
    expected = f"{LABEL}\n{labelled.EXAMPLES} yours · 1 auto · {review - 1} to review"
    qtbot.waitUntil(lambda: panel.rows() == [expected], timeout=5000)

    item = panel.view.item(0)
    rect = panel.view.visualItemRect(item)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.search.text() == f"label:{LABEL}"
    assert window.search_bar.chip_texts() == [f"label: {LABEL}"]
    state = window.search_state
    qtbot.waitUntil(lambda: state.shown is not None, timeout=5000)
    assert sorted(window.grid_model.ids()) == sorted([*labelled.examples(), auto])


def test_label_filter_typed_in_the_search_box(qtbot: Any, window: MainWindow) -> None:
    box = window.search
    assert "label:" in window.toolbar.filter_button.menu_actions()
    qtbot.keyClicks(box, f"label:{LABEL.lower()} receipt")
    assert window.search_bar.chip_texts() == [f"label: {LABEL.lower()}"]
    qtbot.keyClick(box, Qt.Key.Key_Return)
    state = window.search_state
    qtbot.waitUntil(lambda: state.shown is not None, timeout=5000)
    assert sorted(window.grid_model.ids()) == labelled.examples()
    chip = window.search_bar.chips[0]
    qtbot.mouseClick(chip.close_button, Qt.MouseButton.LeftButton)
    assert window.search.text() == "receipt"


def test_detail_pane_shows_whose_label_and_removes_it(qtbot: Any, window: MainWindow) -> None:
    lib = _lib(window)
    example = labelled.examples()[0]
    auto = queue_ids(lib)[0]
    _auto_label(lib, auto, 0.93)
    window.poll()
    model = window.grid_model
    row = model.row_of(auto)
    assert row is not None
    window.open_detail(model.index(row, 0))
    view = window.detail.labels_view
    assert view is not None and view.texts() == [f"{LABEL} · auto 0.93"]
    row = model.row_of(example)
    assert row is not None
    window.grid.setCurrentIndex(model.index(row, 0))  # the pane follows
    view = window.detail.labels_view
    assert view is not None and view.texts() == [f"{LABEL} · yours"]

    chip = view.chip(LABEL)
    assert chip is not None
    qtbot.mouseClick(chip.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _decisions(lib, LABEL).get(example) == (-1, "removed"), timeout=5000)
    qtbot.waitUntil(lambda: window.detail.labels_view is None, timeout=5000)
    assert "Removed Receipts" in window.statusBar().currentMessage()
    assert lib.undo_text(LABEL) == "Remove Receipts from 1 item"

    # Ctrl+Z in the main window takes it back: the example is yours again.
    window.activateWindow()
    qtbot.keyClick(window.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _decisions(lib, LABEL).get(example) == (1, "example"), timeout=5000)
    qtbot.waitUntil(
        lambda: "Undid: Remove Receipts" in window.statusBar().currentMessage(), timeout=5000
    )


def test_closing_the_library_closes_the_review_window(qtbot: Any, window: MainWindow) -> None:
    review = open_review(qtbot, window)
    window.close_library()
    assert window.review_window is None and not review.isVisible()
