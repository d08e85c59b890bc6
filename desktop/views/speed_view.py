"""The jobs panel's Speed tab: items done a minute over the last hour as a small bar
chart, each stage's timings (p50, p95, items a minute, failures), and each worker host's
utilisation — the figures of `shoebox metrics` (engine/jobs/metrics.py), and what the
background mode is doing now (engine/jobs/throttle.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop.qt import (
    QColor,
    QHeaderView,
    QLabel,
    QPainter,
    QPaintEvent,
    QRectF,
    QSize,
    QSizePolicy,
    Qt,
    QVBoxLayout,
    QWidget,
)
from engine.jobs.metrics import summary

REFRESH_S = 5.0  # the figures are per minute: more often shows nothing new
BAR = QColor("#2563eb")


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    if value < 60.0:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


class ThroughputChart(QWidget):
    """One bar per minute: jobs done in it. Hover shows the minute and its count."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("throughputChart")
        self.setAccessibleName("Jobs done per minute over the last hour")
        self.setMinimumHeight(72)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.points: list[tuple[int, int]] = []  # (minute start, done)

    def sizeHint(self) -> QSize:
        return QSize(360, 84)

    def set_points(self, points: list[tuple[int, int]]) -> None:
        if points != self.points:
            self.points = points
            peak = max((n for _, n in points), default=0)
            self.setToolTip(f"Busiest minute: {peak} jobs" if peak else "Nothing done yet")
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(1, 4, -1, -16)
        muted = self.palette().placeholderText().color()
        painter.setPen(muted)
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        peak = max((n for _, n in self.points), default=0)
        n = len(self.points)
        if n:
            step = rect.width() / n
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(BAR)
            for i, (_, done) in enumerate(self.points):
                if done <= 0 or peak <= 0:
                    continue
                h = max(1.0, rect.height() * done / peak)
                painter.drawRect(
                    QRectF(rect.left() + i * step + 0.5, rect.bottom() - h, max(1.0, step - 1), h)
                )
        painter.setPen(muted)
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        baseline = QRectF(rect.left(), rect.bottom() + 2, rect.width(), 14)
        painter.drawText(baseline, Qt.AlignmentFlag.AlignLeft, "1 h ago")
        painter.drawText(baseline, Qt.AlignmentFlag.AlignRight, "now")
        painter.drawText(
            baseline, Qt.AlignmentFlag.AlignHCenter, f"peak {peak}/min" if peak else "idle"
        )
        painter.end()


@dataclass(frozen=True)
class StageRow:
    stage: str
    done: int
    failed: int
    p50_s: float | None
    p95_s: float | None
    per_minute: float


def stage_rows(data: dict[str, Any]) -> list[StageRow]:
    return [
        StageRow(
            name,
            int(s["done"]),
            int(s["failed"]),
            s["p50_s"],
            s["p95_s"],
            round(float(s["items_per_s"]) * 60.0, 1),
        )
        for name, s in data["stages"].items()
    ]


class SpeedView(QWidget):
    """Built by the jobs panel; `refresh(conn, background)` re-reads at most every
    `REFRESH_S` (`force` for a first show)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        from desktop.views.jobs_panel import Column, RowsModel, _table

        super().__init__(parent)
        self.setObjectName("speedView")
        self.throttle_label = QLabel("", self)
        self.throttle_label.setObjectName("throttleNote")
        self.throttle_label.setWordWrap(True)
        self.chart = ThroughputChart(self)
        columns: list[Column[StageRow]] = [
            Column("Stage", lambda r: r.stage),
            Column("Done", lambda r: f"{r.done:,}", align=Qt.AlignmentFlag.AlignRight),
            Column(
                "Failed",
                lambda r: f"{r.failed:,}" if r.failed else "",
                align=Qt.AlignmentFlag.AlignRight,
            ),
            Column(
                "Typical",
                lambda r: format_seconds(r.p50_s),
                align=Qt.AlignmentFlag.AlignRight,
                tooltip=lambda r: "Median time a job of the stage took (p50)",
            ),
            Column(
                "Slow",
                lambda r: format_seconds(r.p95_s),
                align=Qt.AlignmentFlag.AlignRight,
                tooltip=lambda r: "19 jobs in 20 took less than this (p95)",
            ),
            Column("Per minute", lambda r: f"{r.per_minute:g}", align=Qt.AlignmentFlag.AlignRight),
        ]
        self.stage_model: RowsModel[StageRow] = RowsModel(columns, lambda r: hash(r.stage), self)
        self.stage_view = _table(self.stage_model, "stageTimings", self)
        self.stage_view.setAccessibleName("Each stage's timings over the last hour")
        header = self.stage_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.hosts_label = QLabel("", self)
        self.hosts_label.setObjectName("hostUtilisation")
        self.hosts_label.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.throttle_label)
        layout.addWidget(QLabel("Jobs done per minute, last hour", self))
        layout.addWidget(self.chart)
        layout.addWidget(self.stage_view, 1)
        layout.addWidget(self.hosts_label)
        self._at = 0.0
        self.data: dict[str, Any] | None = None

    def refresh(self, conn: Any, background: dict[str, Any] | None, force: bool = False) -> None:
        self.show_background(background)
        now = time.monotonic()
        if not force and now - self._at < REFRESH_S:
            return
        self._at = now
        self.show_data(summary(conn, 3600.0))

    def show_background(self, background: dict[str, Any] | None) -> None:
        self.throttle_label.setText(background_text(background))

    def show_data(self, data: dict[str, Any]) -> None:
        self.data = data
        self.chart.set_points([(int(p["minute"]), int(p["done"])) for p in data["throughput"]])
        self.stage_model.set_rows(stage_rows(data))
        parts = []
        for name, h in data["hosts"].items():
            if h["utilisation"] is not None:
                title = "This computer" if name == "local" else name
                parts.append(f"{title}: busy {round(100 * h['utilisation'])}% of its capacity")
        self.hosts_label.setText("; ".join(parts))
        if data["throughput"]:
            last = datetime.fromtimestamp(data["throughput"][-1]["minute"])
            self.chart.setToolTip(f"{self.chart.toolTip()} (to {last:%H:%M})")


MODE_TITLES = {"full": "Full speed", "balanced": "Balanced", "idle": "Only when idle"}


def background_text(background: dict[str, Any] | None) -> str:
    """ "Background work: Balanced — 2 of 4 workers (other programs are using 80% of the
    CPU)", from the host's heartbeat (`status --json` `background`)."""
    if not background:
        return "Background work: not running"
    mode = MODE_TITLES.get(str(background.get("mode")), str(background.get("mode")))
    text = f"Background work: {mode}"
    if background.get("throttled"):
        text += f" — {background['workers']} of {background['of']} workers"
        if background.get("why"):
            text += f" ({background['why']})"
    else:
        text += f" — all {background.get('of', '?')} workers"
    limits = background.get("rate_limited") or []
    if limits:
        text += f"; held to your limit: {'; '.join(str(x) for x in limits)}"
    return text
