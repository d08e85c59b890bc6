"""The OCR engine: accuracy on clean renders, reading rotated pages upright, the page time
limit, missing tesseract or languages, PDF text layers and renders, word boxes.

Pages come from tests/doccorpus.py (300 dpi renders, compact: tesseract reads one in
well under a second). Pages are read in a thread pool, one tesseract process each, as
the OCR stage does.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.errors import PermanentError, WaitingError
from engine.jobs.control import JobControl, JobInterrupted
from engine.jobs.subprocesses import run_controlled
from engine.ocr import orientation, tesseract
from engine.ocr.languages import apt_package, resolve_languages, system_language
from engine.ocr.orientation import detect_orientation, read_upright, rotate_clockwise
from engine.ocr.pdf import page_text_layer, pdf_pages, read_pdf_page, render_page, rendered_dpi
from engine.ocr.tesseract import (
    INSTALL_HINT,
    TESSERACT_ENV,
    find_tesseract,
    installed_languages,
    read_image,
)
from engine.ocr.types import PageText, PageTimeout, Word
from tests.doccorpus import FONTS, rotate_page, write_scanned_pdf, write_text_pdf
from tests.doccorpus import render_page as render_lines
from tests.ocr_metrics import cer, edit_distance

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract is not installed"
)

T = TypeVar("T")
R = TypeVar("R")
WORKERS = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)

WORDS = [
    "the", "of", "and", "invoice", "payment", "account", "number", "total", "amount", "due",
    "date", "customer", "reference", "order", "delivery", "address", "balance", "statement",
    "period", "description", "quantity", "price", "tax", "receipt", "contract", "agreement",
    "section", "insurance", "policy", "premium", "bank", "transfer", "letter", "meeting",
]  # fmt: skip


def lines_for(seed: int, count: int, words: int = 6) -> list[str]:
    """`count` lines of business-letter words, numbers, amounts and codes (they fit a
    6-inch line at 14 pt)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        line = []
        for _ in range(rng.randint(words - 2, words)):
            roll = rng.random()
            if roll < 0.12:
                line.append(str(rng.randint(10, 99_999)))
            elif roll < 0.18:
                line.append(f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}")
            elif roll < 0.24:
                line.append(rng.choice(WORDS).capitalize())
            else:
                line.append(rng.choice(WORDS))
        lines.append(" ".join(line))
    return lines


def in_parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(fn, items))


def test_edit_distance_and_cer() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert cer("Invoice  4711\ntotal", "Invoice 4711 total") == 0.0
    assert cer("abcd", "abed") == 0.25


# -- accuracy ---------------------------------------------------------------------------------


CLEAN_CASES = [(font, size) for font in ("sans", "serif", "mono") for size in (9, 11, 14)]


def test_clean_renders_read_with_under_2_percent_character_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[list[str]] = []

    def counting(args: Sequence[str], *a: Any, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        runs.append(list(args))
        return run_controlled(args, *a, **kw)

    monkeypatch.setattr("engine.ocr.tesseract.run_controlled", counting)

    def read(case: tuple[str, int]) -> tuple[str, int, float, PageText]:
        font, size = case
        lines = lines_for(sum(map(ord, font)) * 100 + size, 8)
        page = read_upright(render_lines(lines, font=font, size_pt=size), "eng", timeout_s=60)
        return font, size, cer("\n".join(lines), page.text), page

    results = in_parallel(read, CLEAN_CASES)
    report = {f"{font} {size}pt": round(error, 4) for font, size, error, _ in results}
    print("CER", report)
    assert all(error < 0.02 for _, _, error, _ in results), report
    for _, _, _, page in results:
        assert (page.rotation, page.orientation, page.source) == (0, "upright", "ocr")
        assert page.confidence is not None and page.confidence > 85
    # An upright page read well costs one tesseract run: no orientation detection.
    assert len(runs) == len(CLEAN_CASES)
    assert all("--psm" in args and args[args.index("--psm") + 1] == "3" for args in runs)


def test_text_too_small_in_pixels_is_read_again_enlarged() -> None:
    lines = lines_for(7, 6)
    page = render_lines(lines, font="serif", size_pt=10)
    small = page.resize(
        (round(page.width * 0.2), round(page.height * 0.2)), Image.Resampling.BILINEAR
    )
    as_is = read_image(small, "eng", timeout_s=60, upscale=1.0)
    auto = read_image(small, "eng", timeout_s=60)
    reference = "\n".join(lines)
    assert cer(reference, auto.text) < 0.05
    assert cer(reference, auto.text) < cer(reference, as_is.text)
    assert (auto.width, auto.height) == small.size  # boxes stay in the image's pixels
    assert all(0 <= w.x0 < w.x1 <= small.width + 1 for w in auto.words)


# -- orientation ------------------------------------------------------------------------------


def rotated_pages(count: int) -> list[tuple[Image.Image, int, str]]:
    """(page turned clockwise by 90/180/270, the turn that makes it upright, its text)."""
    fonts = sorted(FONTS)
    pages = []
    for i in range(count):
        lines = lines_for(100 + i, 3 + i % 2)
        turn = (90, 180, 270)[i % 3]
        img = render_lines(lines, font=fonts[i % len(fonts)], size_pt=(9, 10, 11, 12, 14)[i % 5])
        pages.append((rotate_page(img, turn), (360 - turn) % 360, "\n".join(lines)))
    return pages


def test_rotated_pages_are_read_upright() -> None:
    pages = rotated_pages(21)

    def read(case: tuple[Image.Image, int, str]) -> tuple[int, int, float, str]:
        img, want, text = case
        page = read_upright(img, "eng", timeout_s=60)
        upright = img.size if want == 180 else (img.height, img.width)
        assert (page.width, page.height) == upright
        return want, page.rotation, cer(text, page.text), page.orientation

    results = in_parallel(read, pages)
    right = [want == got and error < 0.02 for want, got, error, _ in results]
    methods = [method for *_, method in results]
    print("rotation", f"{sum(right)}/{len(right)}", {m: methods.count(m) for m in set(methods)})
    assert sum(right) >= 0.95 * len(right), results


def test_without_a_confident_osd_recognition_is_compared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = rotated_pages(3)  # one each turned 90, 180, 270
    # OSD unsure (and wrong): below the threshold its answer is not taken.
    monkeypatch.setattr(orientation, "osd", lambda *a: (0, 2.5))
    assert detect_orientation(pages[1][0], timeout_s=60)[::2] == (pages[1][1], "compare")
    monkeypatch.undo()
    # Real OSD, never trusted (a page turned 180, one turned 270).
    forced = in_parallel(
        lambda case: detect_orientation(case[0], timeout_s=60, min_confidence=float("inf")),
        pages[1:],
    )
    for (_, want, _), (rotation, _, method) in zip(pages[1:], forced, strict=True):
        assert (rotation, method) == (want, "compare")
    # read_upright asks detect_orientation when the first reading shows no direction.
    monkeypatch.setattr(orientation, "_axis", lambda page: None)
    monkeypatch.setattr(orientation, "osd", lambda *a: None)  # "Too few characters"
    img, want, text = pages[1]  # upside down
    page = read_upright(img, "eng", timeout_s=60)
    assert (page.rotation, page.orientation) == (want, "compare")
    assert cer(text, page.text) < 0.02


def test_osd_is_used_when_confident(monkeypatch: pytest.MonkeyPatch) -> None:
    img, want, _ = rotated_pages(2)[1]  # upside down
    monkeypatch.setattr(orientation, "osd", lambda *a: (want, 30.0))
    assert detect_orientation(img, timeout_s=60) == (want, 30.0, "osd")


def test_an_osd_answer_that_reads_worse_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # OSD now and then calls an upright page upside down; the reading decides.
    lines = lines_for(5, 4)
    img = render_lines(lines, size_pt=11)
    monkeypatch.setattr(orientation, "osd", lambda *a: (180, 99.0))
    monkeypatch.setattr(orientation, "_axis", lambda page: None)  # ask OSD
    page = read_upright(img, "eng", timeout_s=60)
    assert (page.rotation, page.orientation) == (0, "osd")
    assert cer("\n".join(lines), page.text) < 0.02


def test_a_page_without_text_costs_little(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[list[str]] = []

    def counting(args: Sequence[str], *a: Any, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        runs.append(list(args))
        return run_controlled(args, *a, **kw)

    monkeypatch.setattr("engine.ocr.tesseract.run_controlled", counting)
    page = read_upright(Image.new("L", (1200, 800), 255), "eng", timeout_s=60)
    assert (page.text, page.words, page.rotation, page.orientation) == ("", [], 0, "none")
    assert page.confidence is None
    assert len(runs) == 2  # as it is, and enlarged (tiny text may read as nothing)


def test_rotate_clockwise_matches_the_corpus_turns() -> None:
    img = render_lines(["Invoice 4711"], size_pt=11)
    for turn in (90, 180, 270):
        back = rotate_clockwise(rotate_page(img, turn), (360 - turn) % 360)
        assert back.tobytes() == img.tobytes()


# -- word boxes -------------------------------------------------------------------------------


def test_word_boxes_lie_where_the_words_were_drawn() -> None:
    size_pt, dpi, margin_in = 11.0, 300, 0.4
    img = render_lines(["Invoice 4711 total"], size_pt=size_pt, dpi=dpi, margin_in=margin_in)
    page = read_upright(img, "eng", timeout_s=60)
    assert page.text == "Invoice 4711 total"
    word = next(w for w in page.words if page.text[w.start : w.end] == "4711")
    # Where doccorpus drew it: text origin at the margin, "4711" after "Invoice ".
    font = ImageFont.truetype(str(FONTS["sans"]), round(size_pt * dpi / 72))
    origin = round(margin_in * dpi)
    alone = Image.new("L", img.size, 0)
    ImageDraw.Draw(alone).text((origin + font.getlength("Invoice "), origin), "4711", 255, font)
    expected = alone.getbbox()
    assert expected is not None
    got = (word.x0, word.y0, word.x1, word.y1)
    assert all(abs(g - e) <= 3 for g, e in zip(got, expected, strict=True)), (got, expected)
    # Rotated input: the boxes are in the upright image's pixels.
    turned = read_upright(rotate_page(img, 90), "eng", timeout_s=60)
    assert turned.rotation == 270
    again = next(w for w in turned.words if turned.text[w.start : w.end] == "4711")
    assert abs(again.x0 - word.x0) <= 3 and abs(again.y0 - word.y0) <= 3


def test_page_text_json_round_trip() -> None:
    page = PageText(
        text="Invoice 4711",
        confidence=95.123,
        words=[Word(1, 2, 30, 40, 96.44, 0, 7), Word(35, 2, 60, 40, 93.0, 8, 12)],
        width=100,
        height=50,
        rotation=90,
        source="ocr",
        lang="eng",
        orientation="osd",
    )
    data = page.to_json()
    assert data["words"][0] == [1, 2, 30, 40, 96.4, 0, 7]
    back = PageText.from_json(data)
    assert back.words[1] == page.words[1] and back.text == page.text
    assert (back.rotation, back.lang, back.orientation) == (90, "eng", "osd")
    assert back.confidence == 95.1


# -- the page time limit, cancel, missing pieces ----------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and "Z" in line for line in fh)
    except FileNotFoundError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry))
    return members


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether `predicate` became true within `timeout` (checked every 10 ms): a killed
    process is gone a moment after SIGKILL, not at the instant kill() returns."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _fake_tesseract(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pid"
    script = tmp_path / "tesseract"
    # The shell is the group leader; its `sleep` child is in the same group.
    script.write_text(f"#!/bin/sh\necho $$ > {marker}\nsleep 60\n")
    script.chmod(0o755)
    return script, marker


def test_a_page_that_takes_too_long_is_killed_with_its_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, marker = _fake_tesseract(tmp_path)
    monkeypatch.setenv(TESSERACT_ENV, str(script))
    img = render_lines(["Invoice 4711 total"])
    started = time.monotonic()
    with pytest.raises(PageTimeout) as info:
        read_image(img, "eng", timeout_s=1)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 2.0, elapsed
    assert "timed out after 1 s" in str(info.value)
    assert isinstance(info.value, PermanentError)  # the job fails with the reason
    assert str(info.value.on_page(3)) == "OCR timed out after 1 s on page 3."
    pid = int(marker.read_text())
    assert _until(lambda: not _alive(pid) and not _group_members(pid)), _group_members(pid)


def test_cancel_kills_tesseract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script, marker = _fake_tesseract(tmp_path)
    monkeypatch.setenv(TESSERACT_ENV, str(script))
    control = JobControl()
    threading.Timer(0.3, control.cancel).start()
    with pytest.raises(JobInterrupted) as info:
        read_upright(render_lines(["Invoice 4711"]), "eng", timeout_s=30, control=control)
    assert info.value.why == "cancelled"
    pid = int(marker.read_text())
    assert _until(lambda: not _alive(pid) and not _group_members(pid))


def test_missing_tesseract_waits_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TESSERACT_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on it
    assert find_tesseract() is None
    for call in (
        lambda: read_image(render_lines(["x"]), "eng", timeout_s=5),
        lambda: read_upright(render_lines(["x"]), "eng", timeout_s=5),
        installed_languages,
        lambda: resolve_languages("auto"),
    ):
        with pytest.raises(WaitingError) as info:
            call()
        assert str(info.value) == INSTALL_HINT
    assert "sudo apt install tesseract-ocr" in INSTALL_HINT
    assert "brew install tesseract" in INSTALL_HINT
    monkeypatch.setenv(TESSERACT_ENV, str(tmp_path / "no-such-tesseract"))
    with pytest.raises(WaitingError) as info:
        read_image(render_lines(["x"]), "eng", timeout_s=5)
    assert "no-such-tesseract" in str(info.value) and INSTALL_HINT in str(info.value)


def test_installed_languages() -> None:
    assert {"eng", "osd"} <= installed_languages()


def test_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    have = {"eng", "fra", "osd", "chi_tra"}
    assert resolve_languages("eng", installed=have) == ("eng", None)
    assert resolve_languages("eng+fra", installed=have) == ("eng+fra", None)
    assert resolve_languages("en, fr", installed=have) == ("eng+fra", None)
    lang, warning = resolve_languages("eng+deu", installed=have)
    assert lang == "eng"
    assert warning is not None and "tesseract-ocr-deu" in warning and "German" in warning
    with pytest.raises(WaitingError, match="tesseract-ocr-deu"):
        resolve_languages("deu", installed=have)
    for env, expected in [
        ({"LANG": "fr_FR.UTF-8"}, ("eng+fra", None)),
        ({"LANG": "C.UTF-8"}, ("eng", None)),
        ({"LC_ALL": "zh_TW.UTF-8", "LANG": "fr_FR.UTF-8"}, ("eng+chi_tra", None)),
        ({"LC_MESSAGES": "en_GB.UTF-8"}, ("eng", None)),
    ]:
        for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        assert resolve_languages("auto", installed=have) == expected, env
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert system_language() == "deu"
    lang, warning = resolve_languages("auto", installed=have)
    assert lang == "eng" and warning is not None and "tesseract-ocr-deu" in warning
    assert apt_package("chi_sim") == "tesseract-ocr-chi-sim"


def test_a_language_tesseract_lacks_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WaitingError, match="tesseract-ocr-xyz"):
        read_image(render_lines(["Invoice"]), "xyz", timeout_s=30)


# -- PDF ----------------------------------------------------------------------------------------


def _no_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tesseract must not run for a text layer")

    monkeypatch.setattr("engine.ocr.tesseract.run_controlled", refuse)
    monkeypatch.setattr(tesseract, "run_tesseract", refuse)
    monkeypatch.setattr(orientation, "run_tesseract", refuse)


def test_a_text_layer_is_taken_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "Invoice 4711 total due by the end of March",
        "Acme Widgets Ltd, 14 Harbour Road, Leeds",
        "Payment terms: thirty days net",
    ]
    path = tmp_path / "text.pdf"
    write_text_pdf(path, [lines, ["Page 2"]])
    _no_tesseract(monkeypatch)
    assert pdf_pages(str(path)) == 2
    page = page_text_layer(str(path), 0)
    assert page is not None
    assert read_pdf_page(str(path), 0, "eng", timeout_s=60) == page
    assert page.text.split("\n")[:3] == lines
    assert (page.source, page.confidence, page.rotation) == ("text-layer", None, 0)
    image = render_page(str(path), 0)
    assert (page.width, page.height) == image.size == (2550, 3301)  # US letter at 300 dpi
    assert image.mode == "L" and rendered_dpi(image) == 300
    # Boxes are in the render's pixels: "4711" covers ink there, nothing around it.
    word = next(w for w in page.words if page.text[w.start : w.end] == "4711")
    darkest, _ = cast(
        "tuple[int, int]", image.crop((word.x0, word.y0, word.x1, word.y1)).getextrema()
    )
    assert darkest < 100
    assert 30 < word.y1 - word.y0 < 45 and 60 < word.x1 - word.x0 < 100  # 11 pt at 300 dpi
    assert page_text_layer(str(path), 1) is None  # "Page 2": too little text to trust


def test_a_scanned_page_has_no_text_layer_and_renders_at_300_dpi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = lines_for(3, 5)
    scan = render_lines(lines, size_pt=11)
    path = tmp_path / "scan.pdf"
    write_scanned_pdf(path, [scan, rotate_page(scan, 180)], dpi=300)
    assert page_text_layer(str(path), 0) is None
    second = read_pdf_page(str(path), 1, "eng", timeout_s=60)
    assert (second.source, second.rotation) == ("ocr", 180)
    assert cer("\n".join(lines), second.text) < 0.02
    script, _ = _fake_tesseract(tmp_path)
    monkeypatch.setenv(TESSERACT_ENV, str(script))
    with pytest.raises(PageTimeout, match=r"^OCR timed out after 1 s on page 2\.$"):
        read_pdf_page(str(path), 1, "eng", timeout_s=1)
    monkeypatch.delenv(TESSERACT_ENV)
    image = render_page(str(path), 0, dpi=300)
    assert abs(image.width - scan.width) <= 1 and abs(image.height - scan.height) <= 1
    capped = render_page(str(path), 0, dpi=300, max_pixels=200_000)
    assert capped.width * capped.height <= 200_000
    effective = rendered_dpi(capped)
    assert effective is not None and effective < 300
    assert abs(capped.width - scan.width * effective / 300) <= 2


def test_damaged_pdfs_have_readable_reasons(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    for call in (
        lambda: pdf_pages(str(broken)),
        lambda: page_text_layer(str(broken), 0),
        lambda: render_page(str(broken), 0),
    ):
        with pytest.raises(PermanentError, match="The PDF is damaged"):
            call()
    with pytest.raises(PermanentError, match="moved or deleted"):
        pdf_pages(str(tmp_path / "gone.pdf"))
    good = tmp_path / "one.pdf"
    write_text_pdf(good, [["Hello"]])
    with pytest.raises(PermanentError, match="has 1 page; there is no page 2"):
        render_page(str(good), 1)
