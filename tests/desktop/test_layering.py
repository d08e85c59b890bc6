"""Qt comes in through `desktop/qt.py` only; the engine's browse queries stay Qt-free."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from tests.conftest import REPO

QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def imported_modules(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_desktop_qt_imports_pyside() -> None:
    offenders = []
    for file in sorted((REPO / "desktop").rglob("*.py")):
        rel = file.relative_to(REPO).as_posix()
        if rel == "desktop/qt.py":
            continue
        if any(m.split(".")[0] in QT_MODULES for m in imported_modules(rel)):
            offenders.append(rel)
    assert offenders == []


def test_browse_does_not_load_qt() -> None:
    code = f"import sys, engine.browse; print(any(m in sys.modules for m in {QT_MODULES!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_qasync_comes_after_pyside() -> None:
    """Even without QT_API set, qasync binds to PySide6 (imported first by desktop.qt)."""
    code = (
        "import desktop.app, sys; assert 'qasync' not in sys.modules; import qasync; "
        "print(qasync.QtModuleName)"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_API"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "PySide6"


def test_models_never_import_engine_or_qt() -> None:
    """`models/` is usable without a library (a remote worker host) and without a GUI."""
    offenders = []
    for file in sorted((REPO / "models").rglob("*.py")):
        rel = file.relative_to(REPO).as_posix()
        roots = {m.split(".")[0] for m in imported_modules(rel)}
        if roots & {"engine", "desktop", *QT_MODULES}:
            offenders.append((rel, sorted(roots & {"engine", "desktop", *QT_MODULES})))
    assert offenders == []


def test_engine_never_imports_qt() -> None:
    offenders = []
    for file in sorted((REPO / "engine").rglob("*.py")):
        rel = file.relative_to(REPO).as_posix()
        if {m.split(".")[0] for m in imported_modules(rel)} & {*QT_MODULES, "desktop"}:
            offenders.append(rel)
    assert offenders == []


def test_status_does_not_load_torch() -> None:
    """The CLI builds the model stages without importing torch (start-up stays fast)."""
    code = (
        "import sys, os; os.environ.pop('SHOEBOX_NO_MODELS', None); "
        "from engine.config import Settings; from engine.pipeline.registry import "
        "default_registry; r = default_registry(Settings()); "
        "print(sorted(r.names()), 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    stages = "['detect', 'embed', 'labels', 'metadata', 'ocr', 'tags', 'text_embed', 'thumbnail']"
    assert out.stdout.strip() == f"{stages} False", out.stdout
