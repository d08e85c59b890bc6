"""Shared fixtures. Qt tests run offscreen; nothing here imports Qt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
# Tests never reach a model hub, and never read or fill the user's weights cache.
os.environ["SHOEBOX_OFFLINE"] = "1"
os.environ.setdefault("SHOEBOX_MODELS_DIR", f"/tmp/shoebox-test-models-{os.getpid()}")
# New libraries start without model stages unless a test asks for them (tests of the
# job core count jobs; the model tests build their own registries or settings).
os.environ["SHOEBOX_NO_MODELS"] = "1"
# Counting tests need every worker: a busy CI machine must not make balanced mode cut
# them. The throttle's own tests set the mode they test.
os.environ["SHOEBOX_BACKGROUND"] = "full"

REPO = Path(__file__).resolve().parent.parent

# Originals are sacred: no test may see Shoebox change a source file (tests/originals.py).
pytest_plugins = ["tests.originals", "tests.redis_server"]


@pytest.fixture
def library_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def library(library_dir: Path) -> Iterator[object]:
    from engine.library import Library

    lib = Library(library_dir)
    yield lib
    lib.close()


def cli_env() -> dict[str, str]:
    """Environment for running `python -m engine.cli` as a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SHOEBOX_FAULT_CRASH_PATH", None)
    return env


def import_in_child(lib: Path, root: Path, timeout: float) -> dict[str, Any]:
    """`shoebox import ROOT --wait --json` in a child process (its worker host under the
    supervisor, as the CLI runs it); its JSON summary. A hang fails at `timeout`."""
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(lib), "import", str(root),
         "--wait", "--json"],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary
