"""A worker host SIGKILLed in the middle of a training (before or after it wrote the
new version's file): the previous version stays active and serving, and after
recovery the training runs again and completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env
from tests.engine.jobstages import run_until_idle
from tests.engine.learnlib import learning_library, members, open_learning
from tests.reliability.harness import write_record

N = 300


def host(lib: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.engine.learnlib", str(lib)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.parametrize("fault", ["crash", "crash_after_save"])
def test_a_training_killed_midway_leaves_the_previous_version_active(
    tmp_path: Path, fault: str
) -> None:
    path = tmp_path / "lib"
    with learning_library(path, N) as lib:
        lib.create_label("cats", members(N)[:6])
        run_until_idle(lib)
        (v1,) = lib.label_versions("cats")
        assert v1["status"] == "active"
        served = sorted(r[0] for r in lib.catalog.read("SELECT item_id FROM label_suggestions"))
        assert served
        lib.label_items("cats", members(N)[6:10])  # queues the second training
        served = [i for i in served if i not in members(N)[6:10]]

    env = cli_env()
    env.update(SHOEBOX_FAULT_LEARN=fault, SHOEBOX_FAULT_CRASH_ONCE=str(tmp_path / "crashed"))
    killed = host(path, env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "crashed").exists()
    v2_file = path / "label-models" / "1" / "v2.npz"
    assert v2_file.exists() == (fault == "crash_after_save")

    with open_learning(path) as lib:
        assert [v["version"] for v in lib.label_versions("cats")] == [1]
        assert lib.labels()[0]["version"] == 1
        still = sorted(r[0] for r in lib.catalog.read("SELECT item_id FROM label_suggestions"))
        assert still == served, "the killed training changed what the active version serves"
        (job,) = lib.catalog.read("SELECT state FROM jobs WHERE stage = 'learn'")
        assert job[0] in ("running", "queued"), job

    again = host(path, env)  # the marker exists: no second crash
    assert again.returncode == 0, again.stderr[-2000:]
    with open_learning(path) as lib:
        versions = {v["version"]: v for v in lib.label_versions("cats")}
        assert set(versions) == {1, 2}
        assert versions[2]["status"] == "active", versions[2]
        assert lib.labels()[0]["version"] == 2
        (job,) = lib.catalog.read("SELECT state FROM jobs WHERE stage = 'learn'")
        integrity = lib.catalog.read("PRAGMA integrity_check")[0][0]
    write_record(
        {
            "suite": "faults",
            "kind": f"sigkill_training_{fault}",
            "seed": 0,
            "runs": 2,
            "faults": 1,
            "jobs": 1,
            "jobs_lost": int(job[0] != "done"),
            "jobs_duplicated": 0 if set(versions) == {1, 2} else len(versions) - 2,
            "items_lost": 0,
            "items_duplicated": 0,
            "originals_changed": 0,
            "integrity": integrity,
            "ok": job[0] == "done" and set(versions) == {1, 2} and integrity == "ok",
        }
    )
    assert job[0] == "done" and integrity == "ok", (job, integrity)
    assert os.path.getsize(v2_file) > 0
