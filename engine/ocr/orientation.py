"""Reading pages upright: scanners feed pages sideways and upside down.

`read_upright` reads the page as it is first. Most pages are upright, and for them
that one tesseract run is all it costs: a reading with enough real words at a good
confidence, its word boxes lying horizontally, is upright (upside-down Latin text
reads at a mean confidence of ~30-45, clean upright print at ~95).

Otherwise the first reading tells which way the lines run: tesseract reads lines
that run down the page (turned 90° clockwise) as they are, in tall word boxes, and
the order of the words gives the turn; lines running up the page come out as
garbage in tall boxes, upside-down lines as garbage in wide ones. Each of those
leaves one other candidate, which is read in full: the better reading wins (two
runs for a turned page, where OSD plus a check and the final reading take three or
four). Only when the first reading shows no direction (few words) does
`detect_orientation` decide: tesseract's OSD (`--psm 0`), trusted from
OSD_MIN_CONFIDENCE, else recognition compared at each rotation on a crop of the
page. OSD alone is weak: its confidence is below 14 on a third of our compact test
pages (right or not), and it calls upright pages upside down now and then, so a
rotated reading is kept only when it reads better than the first.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import PermanentError
from engine.ocr.tesseract import (
    SMALL_TEXT_PX,
    UPSCALE,
    Deadline,
    installed_languages,
    median_word_height,
    poorly_read,
    quality,
    read_enlarged_if_better,
    read_grey,
    run_tesseract,
    to_grey,
)
from engine.ocr.types import PageText

if TYPE_CHECKING:
    from PIL import Image

    from engine.jobs.control import JobControl

__all__ = [
    "OSD_MIN_CONFIDENCE",
    "detect_orientation",
    "read_upright",
    "rotate_clockwise",
]

# OSD answers below this orientation confidence are checked by comparing recognition.
# OCRmyPDF trusts 14 and up, Paperless 12; on our compact test pages correct answers
# came with 9-17, so OSD alone is not enough there either.
OSD_MIN_CONFIDENCE = 14.0
# The crop compared at each candidate rotation: at most this many pixels a side.
COMPARE_SIDE_PX = 1200
ROTATIONS = (0, 90, 180, 270)
# Words of four or more characters needed to tell which way the lines run.
MIN_AXIS_WORDS = 3

_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)
_CONFIDENCE = re.compile(r"^Orientation confidence:\s*([\d.]+)", re.MULTILINE)


def rotate_clockwise(img: Image.Image, degrees: int) -> Image.Image:
    """`img` turned clockwise by a multiple of 90 degrees (lossless)."""
    from PIL import Image

    turns = {
        90: Image.Transpose.ROTATE_270,  # PIL's ROTATE_* turn counter-clockwise
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }
    d = degrees % 360
    if d == 0:
        return img
    if d not in turns:
        raise ValueError(f"rotation must be a multiple of 90 degrees, not {degrees}")
    return img.transpose(turns[d])


def osd(
    grey: Image.Image, deadline: Deadline, control: JobControl | None
) -> tuple[int, float] | None:
    """Tesseract's orientation detection: (clockwise rotation to apply, confidence),
    or None when it finds too little text or its `osd` traineddata is missing."""
    if "osd" not in installed_languages():
        return None
    try:
        out = run_tesseract(grey, ["--psm", "0"], deadline, control, output="")
    except PermanentError:  # "Too few characters. Skipping this page"
        return None
    rotate, confidence = _ROTATE.search(out), _CONFIDENCE.search(out)
    if rotate is None or confidence is None:
        return None
    return int(rotate.group(1)) % 360, float(confidence.group(1))


def _sample(grey: Image.Image) -> Image.Image:
    """A crop of the inked part of the page, at most COMPARE_SIDE_PX a side, centred."""
    mask = grey.point(lambda v: 255 if v < 128 else 0)
    box = mask.getbbox()
    if box is None:
        return grey
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    half = COMPARE_SIDE_PX // 2
    x0, x1 = max(x0, cx - half), min(x1, cx + half)
    y0, y1 = max(y0, cy - half), min(y1, cy + half)
    pad = 16
    return grey.crop(
        (max(0, x0 - pad), max(0, y0 - pad), min(grey.width, x1 + pad), min(grey.height, y1 + pad))
    )


def compare_rotations(
    grey: Image.Image,
    lang: str,
    candidates: Sequence[int],
    deadline: Deadline,
    control: JobControl | None,
    *,
    scale: float = 1.0,
) -> tuple[int, float]:
    """The candidate rotation whose reading of a crop is best (mean confidence × real
    words; `--psm 6`, a single block, which reads only horizontal lines), and its margin
    over the runner-up (0-100). `scale` enlarges the crop (small text)."""
    sample = _sample(grey)
    scores: list[tuple[float, bool, int]] = []
    for rotation in candidates:
        turned = rotate_clockwise(sample, rotation)
        page = read_grey(turned, lang, deadline, control, psm=6, scale=scale)
        scores.append((quality(page), rotation == 0, rotation))  # ties: as it is
    scores.sort(reverse=True)
    best, _, rotation = scores[0]
    if best <= 0:
        return 0, 0.0  # nothing readable whichever way up
    runner_up = scores[1][0] if len(scores) > 1 else 0.0
    return rotation, 100.0 * (best - runner_up) / best


def detect_orientation(
    img: Image.Image,
    *,
    timeout_s: float,
    control: JobControl | None = None,
    lang: str = "eng",
    candidates: Sequence[int] = ROTATIONS,
    min_confidence: float = OSD_MIN_CONFIDENCE,
    scale: float = 1.0,
    deadline: Deadline | None = None,
) -> tuple[int, float, str]:
    """(clockwise rotation that makes `img` upright, confidence, method).

    Method "osd": tesseract's OSD was at least `min_confidence` sure (confidence is
    OSD's own). Method "compare": recognition was compared at each of `candidates`
    (confidence: the winner's margin over the runner-up, 0-100), on a crop enlarged
    by `scale`."""
    deadline = deadline or Deadline(timeout_s)
    grey = to_grey(img)
    found = osd(grey, deadline, control)
    if found is not None and found[1] >= min_confidence and found[0] in candidates:
        return found[0], found[1], "osd"
    rotation, margin = compare_rotations(grey, lang, candidates, deadline, control, scale=scale)
    return rotation, margin, "compare"


def _axis(page: PageText) -> str | None:
    """ "wide" when the words of four or more characters lie in boxes wider than tall
    (lines across the image), "tall" when they stand (lines down it), None when too
    few words say so clearly."""
    long = [w for w in page.words if w.end - w.start >= 4]
    if len(long) < MIN_AXIS_WORDS:
        return None
    tall = sum(w.y1 - w.y0 > w.x1 - w.x0 for w in long) / len(long)
    return "tall" if tall >= 0.75 else "wide" if tall <= 0.25 else None


def _downward(page: PageText) -> bool:
    """Consecutive words of a line go down the image (lines running top to bottom)."""
    steps = [
        b.y0 - a.y0
        for a, b in zip(page.words, page.words[1:], strict=False)
        if page.text[a.end : b.start] == " "
    ]
    return not steps or statistics.fmean(steps) >= 0


def read_upright(
    img: Image.Image,
    lang: str,
    *,
    timeout_s: float,
    control: JobControl | None = None,
    dpi: float | None = None,
    try_enlarged: bool = False,
    osd_min_confidence: float = OSD_MIN_CONFIDENCE,
) -> PageText:
    """Read `img` upright: `rotation` says how it was turned, word boxes, `width` and
    `height` are the upright image's; `orientation` says how the turn was found.

    `dpi` (PDF renders) is passed to tesseract; `try_enlarged` also reads ×2 and keeps
    the better (phone photos). `timeout_s` covers every tesseract run for the page
    (PageTimeout); `control` kills a run on cancel or stop (JobInterrupted)."""
    deadline = Deadline(timeout_s)
    grey = to_grey(img)

    def reading(rotation: int, unsure: bool = False) -> PageText:
        turned = rotate_clockwise(grey, rotation)
        page = read_grey(turned, lang, deadline, control, dpi=dpi)
        if rotation == 0 and _axis(page) == "tall":
            return page  # sideways lines: enlarging comes with the upright reading
        return read_enlarged_if_better(
            page, turned, deadline, control, dpi=dpi, always=try_enlarged, unsure=unsure
        )

    first = reading(0)
    enlarged = False  # enlarged for its small text already, or no help
    axis, good = _axis(first), not poorly_read(first)
    if good and axis == "wide":
        return _done(first, 0, "upright")
    if axis == "tall" and good:
        # Lines running down the page, read as they are: the words' order gives the turn.
        candidates, method = [270 if _downward(first) else 90], "lines"
    elif axis == "tall":
        candidates, method = [90, 270], "reread"  # lines running up: 90 the likelier
    elif axis == "wide":
        candidates, method = [180], "reread"
    else:
        # Too few words to tell: tiny text, perhaps, read as nothing. Enlarged first.
        first = read_enlarged_if_better(first, grey, deadline, control, dpi=dpi)
        enlarged = True
        if not first.words:
            return _done(first, 0, "none")  # no text (the photo gate let it through)
        if not poorly_read(first) and _axis(first) == "wide":
            return _done(first, 0, "upright")
        height = median_word_height(first)
        rotation, _, method = detect_orientation(
            grey,
            timeout_s=timeout_s,
            control=control,
            lang=lang,
            min_confidence=osd_min_confidence,
            scale=UPSCALE if height is not None and height < SMALL_TEXT_PX else 1.0,
            deadline=deadline,
        )
        candidates = [rotation] if rotation != 0 else []
    best, best_rotation = first, 0
    for rotation in candidates:
        page = reading(rotation)
        if _score(page) > _score(best):
            best, best_rotation = page, rotation
        if not poorly_read(best) and _axis(best) == "wide":
            break
    tried = best_rotation == 0 and enlarged
    if not tried and (poorly_read(best) or (best_rotation == 0 and _axis(best) == "tall")):
        # Still poor: perhaps tiny text after all.
        best = read_enlarged_if_better(
            best, rotate_clockwise(grey, best_rotation), deadline, control, dpi=dpi
        )
    return _done(best, best_rotation, method)


def _score(page: PageText) -> float:
    """`quality`, halved for a reading of sideways lines: its boxes are not upright."""
    return quality(page) * (0.5 if _axis(page) == "tall" else 1.0)


def _done(page: PageText, rotation: int, method: str) -> PageText:
    page.rotation = rotation
    page.orientation = method
    return page
