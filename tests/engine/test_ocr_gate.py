"""The photo text gate: photographed documents pass, text-free photos do not.

The evaluation images come from tests/doccorpus.py with a seed that was not used while the
gate was developed (seeds 1-6 were), at preview size (1280x960 / 960x1280).
"""

from __future__ import annotations

import random

import pytest
from PIL import Image

from engine.ocr.gate import GATE_THRESHOLD, GateResult, text_gate
from tests.corpus import _render, _rng
from tests.doccorpus import make_documents, make_gate_set, render_doc, render_page

HELD_OUT_SEED = 2025
N_DOCS, N_PHOTOS = 30, 42


@pytest.fixture(scope="module")
def gate_set() -> tuple[list[Image.Image], list[Image.Image]]:
    return make_gate_set(HELD_OUT_SEED, N_DOCS, N_PHOTOS)


def test_gate_separates_documents_from_photos(
    gate_set: tuple[list[Image.Image], list[Image.Image]],
) -> None:
    docs, photos = gate_set
    assert len(docs) >= 30 and len(photos) >= 40
    doc_results = [text_gate(img) for img in docs]
    photo_results = [text_gate(img) for img in photos]
    recall = sum(r.likely_text for r in doc_results) / len(docs)
    false_pos = sum(r.likely_text for r in photo_results) / len(photos)
    print(f"\ntext gate: documents recall {recall:.3f}, text-free false positives {false_pos:.3f}")
    for i, r in enumerate(doc_results):
        if not r.likely_text:
            print(f"  missed document {i}: {r.reason}")
    for i, r in enumerate(photo_results):
        if r.likely_text:
            print(f"  false positive photo {i}: {r.reason}")
    assert recall >= 0.90
    assert false_pos <= 0.05
    # Deterministic: the same image gives the same verdict.
    assert text_gate(docs[0]) == doc_results[0]


def test_results_are_consistent(gate_set: tuple[list[Image.Image], list[Image.Image]]) -> None:
    docs, photos = gate_set
    for img in (docs[1], photos[1]):
        r = text_gate(img)
        assert isinstance(r, GateResult)
        assert 0.0 <= r.score <= 1.0
        assert r.likely_text == (r.score >= GATE_THRESHOLD)
        assert f"(score {r.score:.2f})" in r.reason


def test_camera_like_photos_of_tests_corpus_are_not_text() -> None:
    """The photo-like images of tests/corpus.py (gradients, shapes, blotches, grain)."""
    for i in range(8):
        img = _render((1280, 960), _rng("gate", i), marker=False, grain=0.02 * (i % 4))
        r = text_gate(img)
        assert not r.likely_text, r.reason


def test_clean_scan_passes() -> None:
    doc = make_documents(9, seed=HELD_OUT_SEED)[3]
    page = render_doc(doc)[0].convert("RGB")  # 300-dpi page, as a scanner gives it
    r = text_gate(page)
    assert r.likely_text, r.reason
    assert "looks like text" in r.reason
    preview = page.copy()
    preview.thumbnail((1280, 1280))
    assert text_gate(preview).likely_text


def test_other_modes_and_sizes() -> None:
    page = render_page(
        ["Quarterly statement", *[f"Line {i} of the report, total 12.50" for i in range(12)]]
    )
    assert text_gate(page).likely_text  # mode "L"
    assert text_gate(page.convert("1")).likely_text
    rgba = page.convert("RGBA")
    assert text_gate(rgba).likely_text
    assert not text_gate(Image.new("RGB", (40, 30), "white")).likely_text  # tiny


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (120, 160, 200)])
def test_flat_image_is_not_text(colour: tuple[int, int, int]) -> None:
    r = text_gate(Image.new("RGB", (1280, 960), colour))
    assert not r.likely_text and r.score == 0.0


def test_blank_paper_photo_is_not_text() -> None:
    from tests.doccorpus import photograph

    blank = Image.new("L", (1800, 2400), 255)
    r = text_gate(photograph(blank, random.Random(5), size=(1280, 960)))
    assert not r.likely_text, r.reason
