"""Settings: library location, worker counts per lane, compute device."""

from __future__ import annotations

from desktop.qt import (
    QComboBox,
    QDesktopServices,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    Qt,
    QUrl,
    QVBoxLayout,
    QWidget,
)
from engine.config import LANES, WorkerSettings
from engine.library import Library

DEVICES = {"auto": "Automatic", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)"}
LANE_HELP = {
    "interactive": "Items you are looking at now",
    "import": "New imports",
    "batch": "Re-processing after a model change",
    "learning": "Training your categories",
}


class SettingsDialog(QDialog):
    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(460)
        self.library = library
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
            spin.setValue(library.settings.workers.for_lane(lane))
            spin.setToolTip(LANE_HELP[lane])
            spin.setAccessibleName(f"{lane} workers")
            self.workers[lane] = spin
            form.addRow(f"{lane.capitalize()} workers:", spin)

        self.device = QComboBox()
        for key, text in DEVICES.items():
            self.device.addItem(text, key)
        index = self.device.findData(library.settings.device)
        self.device.setCurrentIndex(max(0, index))
        form.addRow("Compute device:", self.device)
        layout.addLayout(form)
        note = QLabel("Saving restarts the background worker; work in progress is kept.")
        note.setWordWrap(True)
        note.setEnabled(False)
        layout.addWidget(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def worker_settings(self) -> WorkerSettings:
        return WorkerSettings(
            interactive=self.workers["interactive"].value(),
            import_=self.workers["import"].value(),
            batch=self.workers["batch"].value(),
            learning=self.workers["learning"].value(),
        )

    def device_choice(self) -> str:
        return str(self.device.currentData())
