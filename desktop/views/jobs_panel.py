"""The jobs panel: work waiting for a model (and what to do), lanes with their counts and
a pause switch, the imports under way, the items being worked on now, and the failed and
dead jobs with their reasons.

Everything shown is pulled from the ledger through `engine.progress` when the main
window's poll tick calls `refresh(changes)`; actions are the small functions in
`desktop.operations.jobs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from desktop.operations import jobs as ops
from desktop.qt import (
    QAbstractItemView,
    QAbstractTableModel,
    QColor,
    QComboBox,
    QFont,
    QFrame,
    QGridLayout,
    QGuiApplication,
    QHBoxLayout,
    QHeaderView,
    QItemSelectionModel,
    QKeySequence,
    QLabel,
    QMenu,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QPushButton,
    QShortcut,
    QShowEvent,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    Qt,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.views.grid import BADGE_COLOURS
from desktop.views.imports_panel import Confirm, ImportsPanel, StatusSummary, ask
from desktop.views.speed_view import SpeedView
from desktop.views.waiting_banner import WaitingBanner
from engine import progress
from engine.config import LANES
from engine.jobs.ledger import STATES, waiting_stages
from engine.library import Changes, Library
from engine.progress import LaneCounts, ProblemJob, RunningJob
from engine.queries import remote_workers

LANE_TITLES = {
    "interactive": "Interactive",
    "import": "Import",
    "batch": "Batch",
    "learning": "Learning",
}
LANE_HINTS = {
    "interactive": "The item you are looking at, first",
    "import": "Thumbnails and metadata for new files",
    "batch": "Re-indexing after a model change",
    "learning": "Training your labels (one at a time)",
}
# Every state the ledger knows but cancelled (which only shows in the imports panel).
COUNT_COLUMNS = tuple(s for s in STATES if s != "cancelled")
# The problem list: failures, and the jobs skipped because of them (retried with them).
ALL_PROBLEMS = tuple(dict.fromkeys((*progress.PROBLEM_STATES, "skipped")))
PROBLEM_FILTERS = (
    ("All problems", ALL_PROBLEMS),
    ("Failed only", ("failed",)),
    ("Dead only", ("dead",)),
    ("Skipped only", ("skipped",)),
)
PROBLEMS_PAGE = 500
IDLE_REFRESH_S = 1.0
PROBLEMS_REFRESH_S = 2.0  # a busy ledger re-reads the problem list at most this often

# The grid's badge colours (desktop/views/grid.py), so a state looks the same everywhere.
RED = QColor("#dc2626")
AMBER = QColor("#d97706")
GREEN = QColor("#16a34a")
BLUE = QColor("#2563eb")
GREY = QColor("#78716c")
VIOLET = QColor(BADGE_COLOURS["waiting"])

R = TypeVar("R")


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    value: Callable[[R], Any]
    tooltip: Callable[[R], str] | None = None
    color: Callable[[R], QColor | None] | None = None
    align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft


class RowsModel(QAbstractTableModel, Generic[R]):
    """Rows of frozen dataclasses keyed by `key`; an unchanged key list updates in place,
    so selection and scroll position survive a refresh."""

    def __init__(
        self, columns: Sequence[Column[R]], key: Callable[[R], int], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.key = key
        self.rows: list[R] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row, column = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.value(row)
        if role == Qt.ItemDataRole.ToolTipRole and column.tooltip is not None:
            return column.tooltip(row)
        if role == Qt.ItemDataRole.ForegroundRole and column.color is not None:
            return column.color(row)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(column.align | Qt.AlignmentFlag.AlignVCenter)
        return None

    def set_rows(self, rows: Sequence[R]) -> None:
        new = list(rows)
        if [self.key(r) for r in new] == [self.key(r) for r in self.rows]:
            self.rows = new
            if new:
                self.dataChanged.emit(
                    self.index(0, 0), self.index(len(new) - 1, len(self.columns) - 1)
                )
            return
        self.beginResetModel()
        self.rows = new
        self.endResetModel()

    def keys_at(self, rows: Sequence[int]) -> list[int]:
        return [self.key(self.rows[r]) for r in rows if 0 <= r < len(self.rows)]


def section(title: str, parent: QWidget) -> QLabel:
    label = QLabel(title, parent)
    font = QFont(label.font())
    font.setWeight(QFont.Weight.DemiBold)
    label.setFont(font)
    return label


def _table(model: QAbstractTableModel, name: str, parent: QWidget) -> QTableView:
    view = QTableView(parent)
    view.setObjectName(name)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    view.horizontalHeader().setHighlightSections(False)
    view.horizontalHeader().setDefaultAlignment(
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    )
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    return view


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    seconds = max(0.0, now - ts)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


PROBLEM_TITLES = {"dead": "Dead", "failed": "Failed", "skipped": "Skipped"}
PROBLEM_HINTS = {
    "dead": "Gave up after repeated errors",
    "failed": "Cannot be processed as it is (not retried automatically)",
    "skipped": "Not run: a step it needs failed (retrying that step brings it back)",
}


def _state_color(p: ProblemJob) -> QColor:
    return {"dead": RED, "skipped": GREY}.get(p.state, AMBER)


def _problem_count(counts: LaneCounts) -> int:
    return sum(int(getattr(counts, state, 0)) for state in ALL_PROBLEMS)


def _subject(job: RunningJob | ProblemJob) -> str:
    """A job's file, or for a task job what it is about ("label:7")."""
    task_key = getattr(job, "task_key", None)
    if job.item_id is None:
        return task_key or "(task)"
    return job.file_name or f"item {job.item_id}"


def _progress(job: RunningJob) -> str:
    """ "37 / 300" and the job's own note, when a long job reports progress."""
    if job.progress_done is None:
        return ""
    count = (
        f"{job.progress_done} / {job.progress_total}"
        if job.progress_total
        else str(job.progress_done)
    )
    return f"{count} · {job.progress_note}" if job.progress_note else count


def running_columns() -> list[Column[RunningJob]]:
    return [
        Column("File", _subject, lambda r: r.path),
        Column("Stage", lambda r: r.stage),
        Column("Progress", _progress, lambda r: r.progress_note or ""),
        Column("Lane", lambda r: LANE_TITLES.get(r.lane, r.lane)),
        Column(
            "Running for",
            lambda r: _duration(time.time() - r.started_at),
            align=Qt.AlignmentFlag.AlignRight,
        ),
        Column(
            "Attempt",
            lambda r: str(r.attempts),
            lambda r: "A first attempt" if r.attempts == 1 else "Retrying after a failure",
            align=Qt.AlignmentFlag.AlignRight,
        ),
    ]


@dataclass(frozen=True)
class WorkerRow:
    """One enrolled worker host on another machine (engine.queries.remote_workers)."""

    key: int
    name: str
    host: str
    device: str
    slots: int
    current_jobs: int
    last_heartbeat: float | None
    jobs_done: int
    errors: int

    @classmethod
    def of(cls, i: int, w: dict[str, Any]) -> WorkerRow:
        return cls(i, str(w["name"]), str(w.get("host") or "—"), str(w.get("device") or "—"),
                   int(w.get("slots") or 0), int(w.get("current_jobs") or 0),
                   w.get("last_heartbeat"), int(w.get("jobs_done") or 0),
                   int(w.get("errors") or 0))  # fmt: skip


def worker_columns() -> list[Column[WorkerRow]]:
    right = Qt.AlignmentFlag.AlignRight
    return [
        Column("Worker", lambda w: w.name, lambda w: f"{w.name} on {w.host}"),
        Column("Machine", lambda w: w.host),
        Column("Device", lambda w: w.device),
        Column("Jobs now", lambda w: f"{w.current_jobs} of {w.slots}", align=right),
        Column("Last heard", lambda w: _ago(w.last_heartbeat, time.time()) or "never"),
        Column("Done", lambda w: progress.format_count(w.jobs_done), align=right),
        Column("Errors", lambda w: str(w.errors), align=right),
    ]


def problem_columns() -> list[Column[ProblemJob]]:
    return [
        Column("File", _subject, lambda p: p.path),
        Column("Stage", lambda p: p.stage),
        Column(
            "State",
            lambda p: PROBLEM_TITLES.get(p.state) or p.state.capitalize(),
            lambda p: PROBLEM_HINTS.get(p.state, ""),
            _state_color,
        ),
        Column("Reason", lambda p: p.error, lambda p: f"{p.path}\n\n{p.error}"),
        Column(
            "Attempts",
            lambda p: f"{p.attempts}/{p.max_attempts}",
            align=Qt.AlignmentFlag.AlignRight,
        ),
        Column("When", lambda p: _ago(p.finished_at, time.time())),
    ]


class LanesView(QFrame):
    """One row per lane: name, counts, and a pause/resume switch."""

    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setObjectName("lanes")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "QFrame#lanes { background: palette(base); border: 1px solid palette(mid);"
            " border-radius: 8px; }"
        )
        grid = QGridLayout(self)
        grid.setContentsMargins(14, 10, 14, 10)
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(6)
        header_font = QFont(self.font())
        header_font.setBold(True)
        for col, title in enumerate(("Lane", *(c.capitalize() for c in COUNT_COLUMNS), "")):
            label = QLabel(title, self)
            label.setFont(header_font)
            label.setStyleSheet("color: palette(placeholder-text);")
            if col > 0:
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(label, 0, col)
        self.count_labels: dict[str, dict[str, QLabel]] = {}
        self.pause_buttons: dict[str, QPushButton] = {}
        self.name_labels: dict[str, QLabel] = {}
        for row, lane in enumerate(LANES, start=1):
            name = QLabel(LANE_TITLES.get(lane, lane), self)
            name.setToolTip(LANE_HINTS.get(lane, ""))
            grid.addWidget(name, row, 0)
            self.name_labels[lane] = name
            labels: dict[str, QLabel] = {}
            for col, state in enumerate(COUNT_COLUMNS, start=1):
                label = QLabel("0", self)
                label.setObjectName(f"{lane}-{state}")
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                label.setMinimumWidth(label.fontMetrics().horizontalAdvance("000,000"))
                grid.addWidget(label, row, col)
                labels[state] = label
            self.count_labels[lane] = labels
            button = QPushButton("Pause", self)
            button.setObjectName(f"pause-{lane}")
            button.setCheckable(True)
            button.setToolTip(f"Pause the {LANE_TITLES.get(lane, lane).lower()} lane")
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance("Resume") + 28)
            button.toggled.connect(lambda checked, lane=lane: self._toggle(lane, checked))
            grid.addWidget(button, row, len(COUNT_COLUMNS) + 1)
            self.pause_buttons[lane] = button
        grid.setColumnStretch(0, 1)
        self.counts: dict[str, LaneCounts] = {}
        self._icons = {
            False: self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPause),
            True: self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
        }
        for button in self.pause_buttons.values():
            button.setIcon(self._icons[False])

    def _toggle(self, lane: str, paused: bool) -> None:
        current = self.counts.get(lane)
        if current is not None and current.paused == paused:
            return  # set by show(), not by the user
        ops.set_lane_paused(self.library, lane, paused)
        self.show_counts(progress.lane_counts(self.library.catalog.conn))

    def show_counts(self, counts: dict[str, LaneCounts]) -> None:
        self.counts = counts
        for lane, c in counts.items():
            labels = self.count_labels.get(lane)
            if labels is None:
                continue
            for state, label in labels.items():
                n = int(getattr(c, state, 0))
                label.setText(progress.format_count(n))
                color = None
                if n and state == "failed":
                    color = AMBER
                elif n and state == "dead":
                    color = RED
                elif n and state == "running":
                    color = BLUE
                elif n and state == "waiting":
                    color = VIOLET
                label.setStyleSheet(f"color: {color.name()};" if color is not None else "")
            button = self.pause_buttons[lane]
            if button.isChecked() != c.paused:
                button.blockSignals(True)
                button.setChecked(c.paused)
                button.blockSignals(False)
            button.setText("Resume" if c.paused else "Pause")
            button.setIcon(self._icons[c.paused])
            name = self.name_labels[lane]
            title = LANE_TITLES.get(lane, lane)
            name.setText(f"{title}  (paused)" if c.paused else title)


class JobsPanel(QWidget):
    """Lanes, imports, the items being worked on now, and the failed and dead jobs.

    `openItemRequested(item_id)` fires when the user asks to see a job's item (double
    click or "Show in library"); the main window decides what that opens.
    """

    openItemRequested = Signal(int)

    def __init__(
        self, library: Library, parent: QWidget | None = None, *, confirm: Confirm = ask
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.confirm = confirm
        self.summary = StatusSummary(library)
        self._seq = -1
        self._refreshed_at = 0.0
        self._problems_at = 0.0
        self._problem_total = -1
        self._dirty = True
        self.setObjectName("jobsPanel")

        title = QLabel("Jobs", self)
        title_font = QFont(self.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.35)
        title_font.setBold(True)
        title.setFont(title_font)
        self.summary_label = QLabel("", self)
        self.summary_label.setObjectName("jobsSummary")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pause_all = QPushButton("Pause all", self)
        self.pause_all.setObjectName("pauseAll")
        self.pause_all.setToolTip("Stop starting new jobs in every lane (running ones finish)")
        self.pause_all.clicked.connect(self._toggle_all)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addSpacing(12)
        head.addWidget(self.summary_label, 1)
        head.addWidget(self.pause_all)

        self.waiting = WaitingBanner(self)
        self.lanes = LanesView(library, self)
        self.imports = ImportsPanel(library, self, active_only=True, confirm=confirm)

        # Working now
        self.running_model: RowsModel[RunningJob] = RowsModel(
            running_columns(), lambda r: r.job_id, self
        )
        self.running_view = _table(self.running_model, "runningTable", self)
        self.running_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.running_view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, 5):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)

        # Problems
        self.problem_model: RowsModel[ProblemJob] = RowsModel(
            problem_columns(), lambda p: p.job_id, self
        )
        self.problem_view = _table(self.problem_model, "problemTable", self)
        header = self.problem_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(0, 200)
        for col in (1, 2, 4, 5):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.problem_filter = QComboBox(self)
        self.problem_filter.setObjectName("problemFilter")
        for filter_text, filter_states in PROBLEM_FILTERS:
            self.problem_filter.addItem(filter_text, filter_states)
        self.problem_filter.currentIndexChanged.connect(lambda _i: self._refresh_problems())
        self.problem_note = QLabel("", self)
        self.problem_note.setEnabled(False)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setObjectName("retrySelected")
        self.retry_button.setToolTip("Queue the selected jobs again")
        self.retry_button.setEnabled(False)
        self.retry_all_button = QPushButton("Retry all", self)
        self.retry_all_button.setObjectName("retryAll")
        self.retry_all_button.setToolTip("Queue every failed, dead and skipped job again")
        self.retry_button.clicked.connect(self.retry_selected)
        self.retry_all_button.clicked.connect(self.retry_all)
        self.problem_view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.problem_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.problem_view.customContextMenuRequested.connect(self._problem_menu)
        self.problem_view.doubleClicked.connect(self._open_problem)
        self.problem_view.setAccessibleName("Failed and dead jobs")
        self.running_view.doubleClicked.connect(self._open_running)
        self.running_view.setAccessibleName("Jobs running now")
        retry_shortcut = QShortcut(QKeySequence("Ctrl+R"), self.problem_view)
        retry_shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        retry_shortcut.activated.connect(self.retry_selected)
        problem_bar = QHBoxLayout()
        problem_bar.addWidget(self.problem_filter)
        problem_bar.addWidget(self.problem_note, 1)
        problem_bar.addWidget(self.retry_button)
        problem_bar.addWidget(self.retry_all_button)
        problems = QWidget(self)
        pl = QVBoxLayout(problems)
        pl.setContentsMargins(0, 6, 0, 0)
        pl.addLayout(problem_bar)
        pl.addWidget(self.problem_view, 1)

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.running_empty = QLabel("Nothing is being worked on right now.", self)
        self.running_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.running_empty.setStyleSheet("color: palette(placeholder-text);")
        self.running_stack = QStackedWidget(self)
        self.running_stack.addWidget(self.running_view)
        self.running_stack.addWidget(self.running_empty)
        self.tabs.addTab(self.running_stack, "Working now")
        self.tabs.addTab(problems, "Problems")
        # Worker hosts on other machines (docs/scale-out.md); the tab shows once enrolled.
        self.worker_model: RowsModel[WorkerRow] = RowsModel(worker_columns(), lambda w: w.key, self)
        self.worker_view = _table(self.worker_model, "workerTable", self)
        self.worker_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.worker_view.setAccessibleName("Worker hosts on other machines")
        header = self.worker_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.worker_tab = self.tabs.addTab(self.worker_view, "Workers")
        self.tabs.setTabVisible(self.worker_tab, False)
        # Throughput over the last hour and each stage's timings (engine/jobs/metrics.py).
        self.speed_view = SpeedView(self)
        self.speed_tab = self.tabs.addTab(self.speed_view, "Speed")
        self.tabs.currentChanged.connect(lambda _i: self._refresh_speed(force=True))
        self._background: dict[str, Any] | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(10)
        layout.addLayout(head)
        layout.addWidget(self.waiting)
        layout.addWidget(self.lanes)
        layout.addWidget(section("Imports under way", self))
        layout.addWidget(self.imports)
        layout.addWidget(self.tabs, 1)
        self._first = True
        self.refresh(None)  # deferred to the first show when created hidden

    # -- pulling ---------------------------------------------------------------------------

    def refresh(self, changes: Changes | None) -> None:
        """Pull counts and lists; cheap when nothing changed, skipped while hidden."""
        if not self.isVisible():  # hidden (a closed dock, a collapsed sidebar): on show
            self._dirty = True
            return
        now = time.monotonic()
        moved = changes is None or self._dirty or changes.seq != self._seq
        if not moved and now - self._refreshed_at < IDLE_REFRESH_S:
            return
        self._dirty = False
        self._refreshed_at = now
        self._seq = changes.seq if changes is not None else self.library.seq()
        conn = self.library.catalog.conn
        lanes = progress.lane_counts(conn)
        self.lanes.show_counts(lanes)
        waiting = sum(int(getattr(c, "waiting", 0)) for c in lanes.values())
        self.waiting.show_waiting(waiting_stages(conn) if waiting else {})
        all_paused = all(c.paused for c in lanes.values())
        self.pause_all.setText("Resume all" if all_paused else "Pause all")
        self.summary_label.setText(self.summary.text())
        self.imports.refresh(changes)
        running = progress.running_jobs(conn, limit=200)
        self.running_model.set_rows(running)
        self.running_stack.setCurrentWidget(self.running_view if running else self.running_empty)
        workers = [WorkerRow.of(i, w) for i, w in enumerate(remote_workers(conn))]
        self.worker_model.set_rows(workers)
        self.tabs.setTabVisible(self.worker_tab, bool(workers))
        live = sum(1 for w in workers if w.last_heartbeat and time.time() - w.last_heartbeat < 15)
        self.tabs.setTabText(self.worker_tab, f"Workers  {live}/{len(workers)}")
        total_problems = sum(_problem_count(c) for c in lanes.values())
        self.tabs.setTabText(0, f"Working now  {len(running)}" if running else "Working now")
        self.tabs.setTabText(
            1,
            f"Problems  {progress.format_count(total_problems)}" if total_problems else "Problems",
        )
        if (
            changes is None
            or total_problems != self._problem_total
            or (moved and now - self._problems_at >= PROBLEMS_REFRESH_S)
        ):
            self._problem_total = total_problems
            self._refresh_problems()
        self._refresh_speed()
        if self._first:
            self._first = False
            if total_problems and not running:
                self.tabs.setCurrentIndex(1)  # opened after the work: what needs attention

    def show_background(self, background: dict[str, Any] | None) -> None:
        """The host's background mode (the main window reads it for the status bar)."""
        self._background = background
        if self.tabs.currentWidget() is self.speed_view:
            self.speed_view.show_background(background)

    def _refresh_speed(self, force: bool = False) -> None:
        if self.isVisible() and self.tabs.currentWidget() is self.speed_view:
            self.speed_view.refresh(self.library.catalog.conn, self._background, force=force)

    def _refresh_problems(self) -> None:
        self._problems_at = time.monotonic()
        states = self.problem_states()
        conn = self.library.catalog.conn
        rows = progress.problem_jobs(conn, states=states, limit=PROBLEMS_PAGE)
        total = progress.problem_count(conn, states=states)
        selected = self.selected_job_ids()
        self.problem_model.set_rows(rows)
        self._select_jobs(selected)
        if total == 0:
            self.problem_note.setText("Nothing has failed.")
        elif total > len(rows):
            self.problem_note.setText(
                f"Showing the latest {progress.format_count(len(rows))} "
                f"of {progress.format_count(total)}"
            )
        else:
            self.problem_note.setText(
                f"{progress.format_count(total)} {'job' if total == 1 else 'jobs'}"
            )
        self.retry_all_button.setEnabled(
            progress.problem_count(conn, states=ALL_PROBLEMS) > 0
            if states != ALL_PROBLEMS
            else total > 0
        )
        self._update_buttons()

    def problem_states(self) -> tuple[str, ...]:
        states = self.problem_filter.currentData()
        return tuple(states) if states else ALL_PROBLEMS

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._dirty:
            self.refresh(None)

    # -- selection and actions -------------------------------------------------------------

    def selected_job_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.problem_view.selectionModel().selectedRows()})
        return self.problem_model.keys_at(rows)

    def _select_jobs(self, job_ids: Sequence[int]) -> None:
        if not job_ids:
            return
        wanted = set(job_ids)
        selection = self.problem_view.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for row, p in enumerate(self.problem_model.rows):
            if p.job_id in wanted and not selection.isRowSelected(row, QModelIndex()):
                selection.select(self.problem_model.index(row, 0), flags)

    def select_jobs(self, job_ids: Sequence[int]) -> None:
        """Select these rows of the problem list (replacing the selection)."""
        self.problem_view.clearSelection()
        self._select_jobs(job_ids)

    def _update_buttons(self, *args: object) -> None:
        self.retry_button.setEnabled(bool(self.selected_job_ids()))

    def _open_problem(self, index: QModelIndex) -> None:
        if 0 <= index.row() < len(self.problem_model.rows):
            self.openItemRequested.emit(self.problem_model.rows[index.row()].item_id)

    def _open_running(self, index: QModelIndex) -> None:
        if 0 <= index.row() < len(self.running_model.rows):
            self.openItemRequested.emit(self.running_model.rows[index.row()].item_id)

    def _problem_menu(self, pos: QPoint) -> None:
        index = self.problem_view.indexAt(pos)
        if not index.isValid():
            return
        if not self.problem_view.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.select_jobs([self.problem_model.rows[index.row()].job_id])
        problem = self.problem_model.rows[index.row()]
        menu = QMenu(self)
        count = len(self.selected_job_ids())
        menu.addAction("Retry" if count == 1 else f"Retry {count} jobs", self.retry_selected)
        menu.addAction("Show in library", lambda: self.openItemRequested.emit(problem.item_id))
        menu.addAction(
            "Copy reason",
            lambda: QGuiApplication.clipboard().setText(f"{problem.path}: {problem.error}"),
        )
        menu.exec(self.problem_view.viewport().mapToGlobal(pos))

    def retry_selected(self) -> int:
        count = ops.retry_jobs(self.library, self.selected_job_ids())
        self.refresh(None)
        return count

    def retry_all(self) -> int:
        states = self.problem_states()
        count = ops.retry_all(self.library, dead_only=states == ("dead",))
        self.refresh(None)
        return count

    def _toggle_all(self) -> None:
        lanes = progress.lane_counts(self.library.catalog.conn)
        all_paused = all(c.paused for c in lanes.values())
        ops.set_lane_paused(self.library, None, not all_paused)
        self.refresh(None)

    def set_lane_paused(self, lane: str, paused: bool) -> None:
        """What the lane's switch does (for keyboard actions and tests)."""
        self.lanes.pause_buttons[lane].setChecked(paused)
