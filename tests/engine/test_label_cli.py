"""`shoebox label …` and `shoebox review …`: the stable JSON shapes and the errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.engine.jobstages import run_until_idle
from tests.engine.learnlib import in_label, learning_library, members, open_learning

N = 200


def cli(capsys: pytest.CaptureFixture[str], lib: Path, *args: str) -> Any:
    code = main(["--library", str(lib), *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def train(path: Path) -> None:
    with open_learning(path) as lib:
        run_until_idle(lib)


def test_label_and_review_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lib"
    learning_library(path, N).close()
    examples = [str(i) for i in members(N)[:5]]
    created = cli(capsys, path, "label", "create", "cats", "--example", *examples)
    assert created["name"] == "cats"
    train(path)

    (row,) = cli(capsys, path, "label", "list")
    assert {
        "name", "version", "examples", "negatives", "auto", "in_review",
        "estimated_precision", "audited_precision_lower",
    } <= set(row)  # fmt: skip
    assert (row["name"], row["version"], row["examples"], row["negatives"]) == ("cats", 1, 5, 0)
    assert row["in_review"] > 0 and row["auto"] == 0

    queue = cli(capsys, path, "review", "--label", "cats", "--limit", "5")
    assert len(queue) == 5
    for q in queue:
        assert {"id", "label", "score", "why"} <= set(q)
        assert q["label"] == "cats" and isinstance(q["id"], int)
        assert set(q["why"]) <= {int(e) for e in examples}
    scores = [q["score"] for q in queue]
    assert all(0 <= s <= 1 for s in scores)

    wrong = [str(q["id"]) for q in queue if not in_label(q["id"])] or [str(members(N, 4)[-1] + 1)]
    assert cli(capsys, path, "review", "reject", *wrong, "--label", "cats")["changed"] == len(wrong)
    (row,) = cli(capsys, path, "label", "list")
    assert row["negatives"] == len(wrong)
    undone = cli(capsys, path, "review", "undo")["undone"]
    assert undone.startswith("Reject")
    (row,) = cli(capsys, path, "label", "list")
    assert row["negatives"] == 0

    items = cli(capsys, path, "items", examples[0], examples[1])
    by_id = {i["id"]: i for i in items}
    assert by_id[int(examples[0])]["labels"] == [{"label": "cats", "source": "user", "score": None}]

    assert cli(capsys, path, "label", "rename", "cats", "Cats & kittens")["name"] == (
        "Cats & kittens"
    )
    versions = cli(capsys, path, "label", "versions", "Cats & kittens")
    assert [v["version"] for v in versions] == [1] and versions[0]["active"]


def test_label_errors_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lib"
    learning_library(path, 20).close()
    assert main(["--library", str(path), "label", "add", "nope", "1"]) != 0
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert main(["--library", str(path), "label", "create", "dogs", "--example", "999"]) != 0
    err = capsys.readouterr().err
    assert "999" in err and "Traceback" not in err
    assert main(["--library", str(path), "review", "accept", "1"]) != 0
    assert "--label" in capsys.readouterr().err
