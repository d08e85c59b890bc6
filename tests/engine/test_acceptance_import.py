"""Issue 2's acceptance: a ≥200-file folder full of traps imports with `import --wait --json`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from engine.library import Library
from tests.conftest import import_in_child
from tests.corpus import Corpus, make_corpus


def _snapshot(paths: list[Path]) -> dict[Path, tuple[str, int]]:
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Library, dict[str, object]]:
    base = tmp_path_factory.mktemp("accept")
    corpus = make_corpus(base / "corpus")
    before = _snapshot(corpus.all_regular_files())
    summary = import_in_child(base / "lib", corpus.root, timeout=600)
    assert _snapshot(corpus.all_regular_files()) == before, "an original was modified"
    lib = Library(base / "lib")
    return corpus, lib, summary


def _items_by_raw_path(lib: Library) -> dict[bytes, dict[str, object]]:
    items = {i["id"]: i for i in lib.items()}
    return {
        bytes(raw): items[item_id]
        for raw, item_id in lib.catalog.read("SELECT raw, item_id FROM paths")
    }


def test_summary_counts(imported: tuple[Corpus, Library, dict[str, object]]) -> None:
    corpus, _, summary = imported
    assert len(corpus.all_regular_files()) >= 200
    for key in ("files_seen", "items_new", "duplicates", "skipped", "failed"):
        assert isinstance(summary[key], int), key
    n_dupes = len(corpus.duplicate_pairs)
    assert summary["duplicates"] == n_dupes
    assert summary["files_seen"] == len(corpus.good) + len(corpus.bad)
    assert summary["items_new"] == len(corpus.good) + len(corpus.bad) - n_dupes
    assert summary["failed"] == len(corpus.bad)
    assert summary["skipped"] >= len(corpus.skipped)


def test_every_good_file_is_done_and_bad_files_fail_with_a_reason(
    imported: tuple[Corpus, Library, dict[str, object]],
) -> None:
    corpus, lib, _ = imported
    by_path = _items_by_raw_path(lib)
    for path in corpus.good:
        item = by_path[os.fsencode(path)]
        states = {name: s["state"] for name, s in item["stages"].items()}  # type: ignore[attr-defined]
        assert states == {"metadata": "done", "thumbnail": "done"}, (path, item["stages"])
        assert item["metadata"] and item["thumbnails"]
    for path, why in corpus.bad.items():
        item = by_path[os.fsencode(path)]
        stages = item["stages"]
        failed = {n: s for n, s in stages.items() if s["state"] == "failed"}  # type: ignore[attr-defined]
        assert failed, (path, why, stages)
        for s in failed.values():
            reason = s["error"]
            assert (
                reason
                and reason[0].isupper()
                and reason.endswith(".")
                and "Traceback" not in reason
            )
            assert len(reason) < 200


def test_special_files_and_hidden_files_are_not_items(
    imported: tuple[Corpus, Library, dict[str, object]],
) -> None:
    corpus, lib, _ = imported
    by_path = _items_by_raw_path(lib)
    for path in corpus.skipped:
        assert os.fsencode(path) not in by_path, path
    if corpus.fifo:
        assert os.fsencode(corpus.fifo) not in by_path


def test_duplicates_share_one_item(imported: tuple[Corpus, Library, dict[str, object]]) -> None:
    corpus, lib, _ = imported
    by_path = _items_by_raw_path(lib)
    for a, b in corpus.duplicate_pairs:
        assert by_path[os.fsencode(a)]["id"] == by_path[os.fsencode(b)]["id"]


def test_exif_metadata_matches_what_was_written(
    imported: tuple[Corpus, Library, dict[str, object]],
) -> None:
    corpus, lib, _ = imported
    by_path = _items_by_raw_path(lib)
    checked = 0
    for path, spec in corpus.exif.items():
        meta = by_path[os.fsencode(path)]["metadata"]
        assert isinstance(meta, dict)
        if spec.taken_at is not None:
            assert meta["taken_at"] == spec.taken_at.isoformat(), path
        else:
            assert meta["taken_at_source"] == "file-mtime", path
        if spec.make:
            assert meta["camera_make"] == spec.make
            assert meta["camera_model"] == spec.model
        if spec.gps:
            assert meta["gps_lat"] == pytest.approx(spec.gps[0], abs=1e-4)
            assert meta["gps_lon"] == pytest.approx(spec.gps[1], abs=1e-4)
        checked += 1
    assert checked >= 50
    pdf = by_path[os.fsencode(corpus.pdf_multipage)]["metadata"]
    assert isinstance(pdf, dict)
    assert (pdf["pages"], pdf["title"], pdf["author"]) == (3, "Quarterly Statement", "Acme Bank")


def test_all_eight_orientations_give_upright_thumbnails(
    imported: tuple[Corpus, Library, dict[str, object]],
) -> None:
    corpus, lib, _ = imported
    by_path = _items_by_raw_path(lib)
    assert sorted(corpus.jpeg_orientations) == list(range(1, 9))
    for orientation, path in corpus.jpeg_orientations.items():
        item = by_path[os.fsencode(path)]
        thumbs = item["thumbnails"]
        assert isinstance(thumbs, dict)
        img = Image.open(lib.root / thumbs["thumb"]).convert("RGB")
        assert img.width > img.height, orientation  # 300x200 upright
        quad = img.crop((0, 0, img.width // 2, img.height // 2)).resize((1, 1)).getpixel((0, 0))
        assert isinstance(quad, tuple)
        r, g, b = quad[:3]
        assert r > g + 40 and r > b + 40, (orientation, quad)
        meta = item["metadata"]
        assert isinstance(meta, dict) and meta["orientation"] == orientation
