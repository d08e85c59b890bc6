""" "New Label from Selection": a name for the selected items — a new label, or one of
the library's labels to add them to (the list offers those; typing filters it).

The dialog only asks; `desktop.actions.new_label_from_selection` does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from desktop.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from engine.learning.names import label_key


class NewLabelDialog(QDialog):
    """Asks for a label's name for `count` items; `name()` is what the user chose."""

    def __init__(self, count: int, labels: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("newLabelDialog")
        self.setWindowTitle("New Label from Selection")
        self.labels = list(labels)
        self.count = count
        items = f"{count:,} selected item{'' if count == 1 else 's'}"
        intro = QLabel(
            f"What do the {items} have in common? Name it: Shoebox learns the label from "
            "them and finds more. Or pick one of your labels to add them to."
        )
        intro.setWordWrap(True)
        self.box = QComboBox()
        self.box.setObjectName("labelName")
        self.box.setEditable(True)
        self.box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.box.setAccessibleName("Label name")
        self.box.addItems(self.labels)
        self.box.setCurrentIndex(-1)
        line = self.box.lineEdit()
        assert line is not None
        line.setPlaceholderText("Receipts, Grandma, Whiteboards…")
        line.textChanged.connect(self._changed)
        completer = self.box.completer()
        if completer is not None:
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.hint = QLabel()
        self.hint.setObjectName("newLabelHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(placeholder-text);")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.box)
        layout.addWidget(self.hint)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(420)
        self._changed("")
        self.box.setFocus()

    @property
    def ok_button(self) -> QPushButton:
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert button is not None
        return button

    def name(self) -> str:
        return " ".join(self.box.currentText().split())

    def existing(self) -> str | None:
        """The label of that name already in the library (any spelling), or None."""
        key = label_key(self.name())
        return next((n for n in self.labels if label_key(n) == key), None)

    def _changed(self, _text: str) -> None:
        name, existing = self.name(), self.existing()
        self.ok_button.setEnabled(bool(name))
        if not name:
            self.hint.setText("")
            self.ok_button.setText("Create Label")
        elif existing is not None:
            self.hint.setText(f"The {self.count:,} items are added to {existing}.")
            self.ok_button.setText("Add to Label")
        else:
            self.hint.setText(f"A new label, {name}, with these items as its examples.")
            self.ok_button.setText("Create Label")
