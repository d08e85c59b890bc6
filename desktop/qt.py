"""The one module that imports Qt. Everything else in `desktop/` takes Qt names from here.

PySide6 is imported before qasync (which otherwise picks the first binding it
finds), and QT_API is set for the same reason.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_API", "pyside6")

from PySide6 import QtCore as QtCore
from PySide6 import QtGui as QtGui
from PySide6 import QtWidgets as QtWidgets
from PySide6.QtCore import *  # noqa: F403
from PySide6.QtGui import *  # type: ignore[assignment]  # noqa: F403
from PySide6.QtWidgets import *  # type: ignore[assignment]  # noqa: F403

QT_VERSION_STR: str = QtCore.qVersion()
