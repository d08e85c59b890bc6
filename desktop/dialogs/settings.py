"""Settings: library location, worker counts per lane, the models and their status,
compute device, and the score thresholds of the model stages.

Each model shows what is known about it: loaded (on which device, how long loading
took) as a live worker host reports it, waiting for its weights (the reason says what
to do), or not loaded yet. The status is read again every few seconds while the
dialog is open. Values are checked on Save; an invalid one keeps the dialog open.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from desktop.operations import library as library_ops
from desktop.qt import (
    QCheckBox,
    QComboBox,
    QDesktopServices,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPalette,
    QPushButton,
    QSpinBox,
    Qt,
    QTimer,
    QUrl,
    QVBoxLayout,
    QWidget,
)
from desktop.views.grid import BADGE_COLOURS
from desktop.views.waiting_banner import reason_html
from engine.config import LANES, WorkerSettings
from engine.enrichment_view import ModelStatus, model_statuses
from engine.errors import SettingsError
from engine.library import Library

DEVICES = {"auto": "Automatic", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)"}
LANE_HELP = {
    "interactive": "Items you are looking at now",
    "import": "New imports",
    "batch": "Re-processing after a model change",
    "learning": "Training your categories",
}
# (stage, setting, label, what it does)
MODEL_FIELDS = (
    (
        "embed",
        "models.embed",
        "Embedding model:",
        "Finds similar items and zero-shot tags. Changing it re-indexes every item.",
    ),
    (
        "detect",
        "models.detect",
        "Object detector:",
        "Finds objects (people, animals, things) and their boxes. Changing it re-indexes "
        "every photo.",
    ),
)
SPEC_HINT = "open_clip:ARCH:PRETRAINED, transformers:HUB_ID_OR_DIR, torchvision:… — empty: off"
STATUS_COLOURS = {
    "loaded": BADGE_COLOURS["done"],
    "loading": BADGE_COLOURS["working"],
    "waiting": BADGE_COLOURS["waiting"],
    "failed": BADGE_COLOURS["failed"],
}
STATUS_REFRESH_MS = 2000
BACKGROUND_MODES = (
    ("full", "Full speed", "Every worker runs, whatever else the computer is doing"),
    (
        "balanced",
        "Balanced",
        "Fewer workers while other programs keep the CPU busy, and one on battery",
    ),
    ("idle", "Only when idle", "Work runs only when the computer has not been used for a while"),
)


def device_name(device: str | None) -> str:
    base = (device or "").split(":")[0]
    return DEVICES.get(base, device or "an unknown device") if base != "auto" else "auto"


def status_text(status: ModelStatus) -> str:
    """A model's status in one plain sentence."""
    if status.state == "off":
        return "Off: this stage does not run."
    if status.state == "loaded":
        took = f" (loading took {status.load_s:.1f} s)" if status.load_s is not None else ""
        return f"Loaded on {device_name(status.device)}{took}."
    if status.state == "loading":
        return f"Loading on {device_name(status.device)}…"
    if status.state == "waiting":
        jobs = "job" if status.waiting == 1 else "jobs"
        return f"Waiting for weights ({status.waiting:,} {jobs}): {status.reason}"
    if status.state == "failed":
        return f"Could not load: {status.reason}"
    return "Not loaded: it loads when a job needs it."


def status_html(status: ModelStatus, muted: str) -> str:
    colour = STATUS_COLOURS.get(status.state, muted)
    text = status_text(status)
    head, sep, rest = text.partition(": ") if status.state == "waiting" else (text, "", "")
    body = html.escape(head) + (html.escape(sep) + reason_html(rest) if sep else "")
    return f'<span style="color:{colour}; font-weight:600">●</span> {body}'


def _fraction_text(spin: QDoubleSpinBox, saved: float) -> str:
    """The spin box's value as text; the saved value itself while the box shows it
    rounded (saving must not change a setting the user did not touch)."""
    if round(spin.value(), spin.decimals()) == round(saved, spin.decimals()):
        return repr(float(saved))
    return f"{spin.value():.{spin.decimals()}f}"


class SettingsDialog(QDialog):
    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.library = library
        settings = library.settings
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        location = QHBoxLayout()
        path = QLabel(str(library.root))
        path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        path.setWordWrap(True)
        show = QPushButton("Show")
        show.setToolTip("Open the library folder")
        show.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(library.root)))
        )
        location.addWidget(path, 1)
        location.addWidget(show)
        form.addRow("Library:", location)

        self.workers: dict[str, QSpinBox] = {}
        for lane in LANES:
            spin = QSpinBox()
            spin.setRange(1, 1 if lane == "learning" else 32)
            spin.setValue(settings.workers.for_lane(lane))
            spin.setToolTip(LANE_HELP[lane])
            spin.setAccessibleName(f"{lane} workers")
            self.workers[lane] = spin
            form.addRow(f"{lane.capitalize()} workers:", spin)
        self.background = QComboBox()
        self.background.setObjectName("backgroundMode")
        for key, text, tip in BACKGROUND_MODES:
            self.background.addItem(text, key)
            self.background.setItemData(
                self.background.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.background.setCurrentIndex(max(0, self.background.findData(settings.background.mode)))
        self.background.setAccessibleName("Background work")
        form.addRow("Background work:", self.background)
        self.folder_limits = QLineEdit(settings.background.folder_limits)
        self.folder_limits.setObjectName("folderLimits")
        self.folder_limits.setPlaceholderText("none — e.g. /mnt/nas=5")
        self.folder_limits.setToolTip(
            "At most this many files a second are read from a folder (a network share, a "
            "slow drive): FOLDER=FILES_PER_SECOND, several separated by ';'"
        )
        self.folder_limits.setAccessibleName("Folder read limits")
        form.addRow("Read at most (files/s):", self.folder_limits)
        layout.addLayout(form)
        layout.addWidget(self._models_box())

        self.error = QLabel()
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {BADGE_COLOURS['failed']};")
        self.error.hide()
        layout.addWidget(self.error)
        note = QLabel(
            "Saving restarts the background worker; work in progress is kept. A new model "
            "re-indexes the library in the background."
        )
        note.setWordWrap(True)
        note.setEnabled(False)
        layout.addWidget(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self.refresh_status()
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_REFRESH_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()

    def _models_box(self) -> QGroupBox:
        settings = self.library.settings
        box = QGroupBox("Models")
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.model_specs: dict[str, QLineEdit] = {}
        self.model_status: dict[str, QLabel] = {}
        for stage, key, title, tip in MODEL_FIELDS:
            edit = QLineEdit(str(settings.get(key) or ""))
            edit.setObjectName(f"spec-{stage}")
            edit.setPlaceholderText("off (no model)")
            edit.setToolTip(f"{tip}\n{SPEC_HINT}")
            edit.setAccessibleName(title.rstrip(":"))
            edit.setClearButtonEnabled(True)
            status = QLabel()
            status.setObjectName(f"status-{stage}")
            status.setWordWrap(True)
            status.setTextFormat(Qt.TextFormat.RichText)
            status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.model_specs[stage] = edit
            self.model_status[stage] = status
            field = QWidget()  # the status right under its spec (a form row of its own gaps)
            stack = QVBoxLayout(field)
            stack.setContentsMargins(0, 0, 0, 4)
            stack.setSpacing(3)
            stack.addWidget(edit)
            stack.addWidget(status)
            form.addRow(title, field)

        self.download = QCheckBox("Download missing weights once, when online")
        self.download.setChecked(bool(settings.models.download))
        form.addRow("", self.download)
        self.device = QComboBox()
        for key, text in DEVICES.items():
            self.device.addItem(text, key)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        form.addRow("Compute device:", self.device)
        self.detect_min = self._fraction(settings.detect.min_score, 0.05)
        self.detect_min.setToolTip("Keep detected objects at least this sure")
        form.addRow("Min. object score:", self.detect_min)
        self.tags_min = self._fraction(settings.tags.min_score, 0.01)
        self.tags_min.setToolTip("Zero-shot tags need at least this score")
        form.addRow("Min. tag score:", self.tags_min)
        return box

    @staticmethod
    def _fraction(value: float, step: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1.0)
        spin.setDecimals(2)
        spin.setSingleStep(step)
        spin.setValue(float(value))
        return spin

    # -- status ------------------------------------------------------------------

    def statuses(self) -> dict[str, ModelStatus]:
        found = model_statuses(self.library.catalog.conn, self.library.settings)
        return {s.stage: s for s in found}

    def refresh_status(self) -> None:
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        for stage, status in self.statuses().items():
            label = self.model_status.get(stage)
            if label is not None:
                label.setText(status_html(status, muted))
                label.setToolTip(status_text(status))
                label.setAccessibleName(status_text(status))

    def status_texts(self) -> dict[str, str]:
        """Each model's status as shown, in plain words (tests, accessibility)."""
        return {stage: label.accessibleName() for stage, label in self.model_status.items()}

    # -- values ------------------------------------------------------------------

    def worker_settings(self) -> WorkerSettings:
        return WorkerSettings(
            interactive=self.workers["interactive"].value(),
            import_=self.workers["import"].value(),
            batch=self.workers["batch"].value(),
            learning=self.workers["learning"].value(),
        )

    def device_choice(self) -> str:
        return str(self.device.currentData())

    def model_values(self) -> Mapping[str, str]:
        """The model settings as `Settings.with_value` takes them (dotted key -> text)."""
        values = {key: self.model_specs[stage].text().strip() for stage, key, _, _ in MODEL_FIELDS}
        values["models.download"] = "true" if self.download.isChecked() else "false"
        settings = self.library.settings
        values["detect.min_score"] = _fraction_text(self.detect_min, settings.detect.min_score)
        values["tags.min_score"] = _fraction_text(self.tags_min, settings.tags.min_score)
        values["background.mode"] = str(self.background.currentData())
        values["background.folder_limits"] = self.folder_limits.text().strip()
        return values

    def problem(self) -> str | None:
        """Why Save cannot save these values, or None."""
        try:
            library_ops.settings_with(self.library.settings, self.model_values())
        except SettingsError as exc:
            return "; ".join(exc.problems) if exc.problems else str(exc)
        return None

    def accept(self) -> None:
        problem = self.problem()
        if problem is not None:
            self.error.setText(f"Not saved: {problem}")
            self.error.show()
            return
        self.error.hide()
        super().accept()
