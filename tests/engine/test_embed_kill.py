"""A worker host SIGKILLed in the middle of an embedding batch: after recovery every
job of the batch is done exactly once, and no innocent neighbour pays an attempt."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.library import Library
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg
from tests.models.tiny import make_tiny_open_clip
from tests.reliability.harness import write_record

CLIP = "open_clip:tiny-test:local"


def work(lib: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(lib), "work", "--until-idle",
         "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_kill_mid_batch_recovers_every_job_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "weights"))
    lib = tmp_path / "lib"
    for i in range(8):
        jpeg(tmp_path / "src" / f"p{i}.jpg", i)
    for args in (
        ["models", "import", str(make_tiny_open_clip(tmp_path / "clip")), "--as", CLIP],
        ["--library", str(lib), "config", "set", "device", "cpu"],
        ["--library", str(lib), "config", "set", "models.embed_batch", "4"],
        ["--library", str(lib), "import", str(tmp_path / "src"), "--wait"],
        # The embed stage arrives after the import: its 8 jobs are one re-index.
        ["--library", str(lib), "config", "set", "models.embed", CLIP],
    ):
        assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()

    env = cli_env()
    env.update(
        SHOEBOX_FAULT_CRASH_PATH="p5.jpg",
        SHOEBOX_FAULT_CRASH_STAGE="embed",
        SHOEBOX_FAULT_CRASH_ONCE=str(tmp_path / "crashed"),
    )
    killed = work(lib, env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with Library(lib) as library:
        running = library.catalog.read(
            "SELECT batch_n FROM jobs WHERE stage = 'embed' AND state = 'running'"
        )
    # Killed with whole batches of 4 claimed (two workers: maybe two batches).
    assert {r[0] for r in running} == {4} and len(running) in (4, 8), [r[0] for r in running]

    finished = work(lib, env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    stats = json.loads(finished.stdout)
    assert stats["recovered"], "the second host found the first one's batch"
    # 8 embeddings, 8 zero-shot tag sets and 8 label scorings (no labels yet: cheap).
    assert stats["done"] == 24 and stats["failed"] == 0 and stats["dead"] == 0
    with Library(lib) as library:
        jobs = library.catalog.read(
            "SELECT state, attempts FROM jobs WHERE stage IN ('embed', 'tags')"
        )
        vectors = library.catalog.read("SELECT count(*), count(DISTINCT item_id) FROM vectors")
        results = library.catalog.read("SELECT count(*) FROM results WHERE stage = 'embed'")
    write_record(
        {
            "suite": "faults",
            "kind": "sigkill_model_batch",
            "seed": 0,
            "runs": 2,
            "faults": 1,
            "items": 8,
            "jobs": len(jobs),
            "items_lost": 8 - vectors[0][1],
            "items_duplicated": vectors[0][0] - vectors[0][1],
            "jobs_lost": sum(1 for j in jobs if j[0] != "done"),
            "jobs_duplicated": results[0][0] - 8 + sum(1 for j in jobs if j[1] > 1),
            "originals_changed": 0,  # the originals guard fails the test otherwise
            "integrity": "ok",
            "ok": [tuple(j) for j in jobs] == [("done", 1)] * 16 and tuple(vectors[0]) == (8, 8),
        }
    )
    assert [tuple(j) for j in jobs] == [("done", 1)] * 16, "one attempt each: none charged"
    assert tuple(vectors[0]) == (8, 8) and results[0][0] == 8
