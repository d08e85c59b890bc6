"""Running tesseract: one process a call, under the job's control and a page time limit.

Each call runs `tesseract stdin stdout -l LANG --psm N tsv` with the page as an 8-bit
greyscale image on stdin and `OMP_THREAD_LIMIT=1` (tesseract's OpenMP threads only
fight the stage's own parallelism: one process a page, one core each, is fastest in
throughput). The TSV gives each word's box, confidence and block/paragraph/line, from
which the page text (lines and paragraph breaks) and each word's place in it are built.

Text that is small in pixels is read a second time enlarged: tesseract reads best at
about 30 px capital height and loses characters below ~15 px.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import PermanentError, TransientError, WaitingError
from engine.jobs.subprocesses import run_controlled
from engine.ocr.types import PageText, PageTimeout, Word

if TYPE_CHECKING:
    from PIL import Image

    from engine.jobs.control import JobControl

__all__ = [
    "INSTALL_HINT",
    "TESSERACT_ENV",
    "PageTimeout",
    "bundled_tesseract",
    "find_tesseract",
    "installed_languages",
    "read_image",
    "require_tesseract",
]

TESSERACT_ENV = "SHOEBOX_TESSERACT"
INSTALL_HINT = (
    "Tesseract is not installed: install it with `sudo apt install tesseract-ocr` "
    "(macOS: `brew install tesseract`), or set SHOEBOX_TESSERACT to the program's path."
)

# Median word-box height (px) below which a page is read again enlarged, and the
# height the enlargement aims at. Measured on 300-dpi renders (bench/ocr_speed.py
# and tests/engine/test_ocr_engine.py): CER is flat above ~20 px box height.
SMALL_TEXT_PX = 11.0
UPSCALE = 2.0
MAX_OCR_PIXELS = 40_000_000  # an enlargement never goes beyond this many pixels
UNSURE_MAX_PIXELS = 16_000_000  # ... nor this many when the text size is not known
# A reading is good with at least MIN_WORDS real words at a mean confidence of
# GOOD_CONFIDENCE (clean print reads at ~95; upside-down text at ~30-45).
MIN_WORDS = 3
GOOD_CONFIDENCE = 70.0

_languages: dict[str, frozenset[str]] = {}
_languages_lock = threading.Lock()


def find_tesseract() -> str | None:
    """The tesseract program to run, or None when there is none.

    `SHOEBOX_TESSERACT` (a path or a command name) wins; then the copy inside the
    bundle (Linux builds ship one); then pytesseract's `tesseract_cmd` (which a program
    embedding Shoebox may have set); then PATH."""
    override = os.environ.get(TESSERACT_ENV, "").strip()
    if override:
        return shutil.which(override)
    bundled = bundled_tesseract()
    if bundled is not None:
        return str(bundled)
    return shutil.which(_pytesseract_cmd())


def bundled_tesseract() -> Path | None:
    """The tesseract inside a PyInstaller bundle (`_internal/tesseract/`), or None.

    Laid out by packaging/shoebox.spec: the program, `lib/` with the shared libraries
    it links, `tessdata/` with English and orientation data."""
    if not getattr(sys, "frozen", False):
        return None
    base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))
    program = base / "tesseract" / "tesseract"
    return program if os.access(program, os.X_OK) else None


def _bundled_dir(cmd: str) -> Path | None:
    bundled = bundled_tesseract()
    if bundled is not None and Path(cmd) == bundled:
        return bundled.parent
    return None


def tesseract_options(cmd: str) -> list[str]:
    """Options every run of `cmd` needs: the bundled copy reads the bundle's own data."""
    folder = _bundled_dir(cmd)
    return [] if folder is None else ["--tessdata-dir", str(folder / "tessdata")]


def _pytesseract_cmd() -> str:
    try:
        module = importlib.import_module("pytesseract.pytesseract")
    except ImportError:
        return "tesseract"
    cmd = getattr(module, "tesseract_cmd", "tesseract")
    return cmd if isinstance(cmd, str) and cmd else "tesseract"


def require_tesseract() -> str:
    """The tesseract program, or WaitingError saying how to install it."""
    cmd = find_tesseract()
    if cmd is None:
        override = os.environ.get(TESSERACT_ENV, "").strip()
        if override:
            raise WaitingError(
                f"{TESSERACT_ENV} is set to {override!r}, which is not a program that can "
                f"be run. {INSTALL_HINT}"
            )
        raise WaitingError(INSTALL_HINT)
    return cmd


def installed_languages() -> set[str]:
    """Languages tesseract has traineddata for (`osd` included when installed).

    Cached per tesseract program; empty when it cannot list them."""
    cmd = require_tesseract()
    with _languages_lock:
        cached = _languages.get(cmd)
    if cached is not None:
        return set(cached)
    try:
        done = run_controlled(
            [cmd, *tesseract_options(cmd), "--list-langs"], None, env=child_env(cmd), timeout_s=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    if done.returncode != 0:
        return set()
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    langs = frozenset(
        line.strip() for line in lines if line.strip() and not line.startswith("List of")
    )
    with _languages_lock:
        _languages[cmd] = langs
    return set(langs)


def clear_caches() -> None:
    """Forget the cached language lists (after installing traineddata; tests)."""
    with _languages_lock:
        _languages.clear()


def child_env(cmd: str | None = None) -> dict[str, str]:
    """The environment tesseract runs in: one OpenMP thread; for the bundled copy, its
    own libraries; for a system copy inside a bundle, the system's (PyInstaller's
    bootloader points LD_LIBRARY_PATH at the bundle, saving the original)."""
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"
    folder = _bundled_dir(cmd) if cmd else None
    if folder is not None:
        env["LD_LIBRARY_PATH"] = str(folder / "lib")
    elif getattr(sys, "frozen", False):
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original:
            env["LD_LIBRARY_PATH"] = original
        else:
            env.pop("LD_LIBRARY_PATH", None)
    return env


class Deadline:
    """The time left for one page, shared by every tesseract run that reads it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise PageTimeout(self.timeout_s)
        return left


def run_tesseract(
    image: Image.Image,
    options: Sequence[str],
    deadline: Deadline,
    control: JobControl | None,
    *,
    output: str = "tsv",
) -> str:
    """Run tesseract once on `image` (sent as PNG on stdin); its stdout as text.

    Killed (whole process group) when the job is interrupted (`JobInterrupted`) or
    the page's time is up (`PageTimeout`)."""
    cmd = require_tesseract()
    args = [cmd, "stdin", "stdout", *tesseract_options(cmd), *options]
    if output:
        args.append(output)
    data = encode_png(image)
    try:
        done = run_controlled(
            args, control, input_bytes=data, env=child_env(cmd), timeout_s=deadline.left()
        )
    except subprocess.TimeoutExpired as exc:
        raise PageTimeout(deadline.timeout_s) from exc
    except FileNotFoundError as exc:
        raise WaitingError(INSTALL_HINT) from exc
    except PermissionError as exc:
        raise WaitingError(f"Tesseract at {cmd} cannot be run (permission denied).") from exc
    if done.returncode != 0:
        raise _failure(done.returncode, done.stderr.decode("utf-8", "replace"), options)
    return done.stdout.decode("utf-8", "replace")


def _failure(returncode: int, stderr: str, options: Sequence[str]) -> Exception:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if any("Failed loading language" in line for line in lines):
        lang = options[list(options).index("-l") + 1] if "-l" in options else "?"
        return WaitingError(
            f"Tesseract has no traineddata for {lang!r}: install the language packs "
            f"(e.g. `sudo apt install tesseract-ocr-{lang.split('+')[0]}`)."
        )
    if returncode < 0:
        return TransientError(f"Tesseract stopped with signal {-returncode}.")
    last = lines[-1] if lines else f"exit status {returncode}"
    return PermanentError(f"Tesseract could not read the page ({last}).")


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def to_grey(img: Image.Image) -> Image.Image:
    """8-bit greyscale, transparency flattened onto white."""
    from PIL import Image

    if img.mode == "L":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("L")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return img.convert("I").point(lambda v: v / 256).convert("L")
    return img.convert("L")


@dataclass(frozen=True, slots=True)
class _Row:
    block: int
    par: int
    line: int
    left: int
    top: int
    width: int
    height: int
    conf: float
    text: str


def parse_tsv(tsv: str) -> list[_Row]:
    rows: list[_Row] = []
    for line in tsv.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 12 or parts[0] != "5":
            continue
        text = parts[11].strip()
        if not text:
            continue
        try:
            _, _, block, par, ln, _, left, top, width, height = (int(p) for p in parts[:10])
            conf = float(parts[10])
        except ValueError:
            continue
        rows.append(_Row(block, par, ln, left, top, width, height, max(0.0, conf), text))
    return rows


def assemble(rows: Sequence[_Row], scale: float = 1.0) -> tuple[str, list[Word]]:
    """Page text (words by spaces, lines by newlines, blocks and paragraphs by a blank
    line) and its words, boxes divided by `scale` (the enlargement that was read)."""
    pieces: list[str] = []
    words: list[Word] = []
    length = 0
    previous: tuple[int, int, int] | None = None
    for row in rows:
        key = (row.block, row.par, row.line)
        if previous is not None:
            if key[:2] != previous[:2]:
                sep = "\n\n"
            elif key != previous:
                sep = "\n"
            else:
                sep = " "
            pieces.append(sep)
            length += len(sep)
        previous = key
        start = length
        pieces.append(row.text)
        length += len(row.text)
        words.append(
            Word(
                x0=int(row.left / scale),
                y0=int(row.top / scale),
                x1=round((row.left + row.width) / scale),
                y1=round((row.top + row.height) / scale),
                conf=row.conf,
                start=start,
                end=length,
            )
        )
    return "".join(pieces), words


def mean_confidence(words: Sequence[Word]) -> float | None:
    return statistics.fmean(w.conf for w in words) if words else None


def _valid(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) >= 3


def quality(page: PageText) -> float:
    """How well a page was read: mean confidence × number of real words (≥ 3 letters
    or digits). Compares readings of the same image (scales, rotations)."""
    valid = [w for w in page.words if _valid(page.text[w.start : w.end])]
    if not valid:
        return 0.0
    return statistics.fmean(w.conf for w in valid) * len(valid)


def median_word_height(page: PageText) -> float | None:
    heights = [
        w.y1 - w.y0 for w in page.words if w.conf > 30 and _valid(page.text[w.start : w.end])
    ]
    return statistics.median(heights) if heights else None


def read_grey(
    grey: Image.Image,
    lang: str,
    deadline: Deadline,
    control: JobControl | None,
    *,
    psm: int = 3,
    dpi: float | None = None,
    scale: float = 1.0,
) -> PageText:
    """One tesseract run on a greyscale image (enlarged by `scale` first); word boxes
    in the pixels of `grey`."""
    from PIL import Image

    image = grey
    if scale != 1.0:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        image = grey.resize(size, Image.Resampling.BICUBIC)
    options = ["-l", lang, "--psm", str(psm)]
    if dpi is not None:
        options += ["--dpi", str(max(70, round(dpi * scale)))]
    rows = parse_tsv(run_tesseract(image, options, deadline, control))
    text, words = assemble(rows, scale)
    return PageText(
        text=text,
        confidence=mean_confidence(words),
        words=words,
        width=grey.width,
        height=grey.height,
        rotation=0,
        source="ocr",
        lang=lang,
    )


def read_image(
    img: Image.Image,
    lang: str,
    *,
    timeout_s: float,
    control: JobControl | None = None,
    psm: int = 3,
    dpi: float | None = None,
    upscale: float | None = None,
    try_enlarged: bool = False,
    deadline: Deadline | None = None,
) -> PageText:
    """Read `img` as it is (no rotation): its text, and its words with boxes in its pixels.

    `upscale` None decides by measurement (`read_enlarged_if_better`; `try_enlarged`
    always tries ×2 too, for photos); a number reads once at that enlargement. `dpi`
    is passed to tesseract when known (PDF renders). The whole call, every tesseract
    run in it, must finish within `timeout_s` (or the time left on `deadline`, which
    callers share between calls for one page), else PageTimeout; the job's `control`
    kills it on cancel or stop (JobInterrupted)."""
    deadline = deadline or Deadline(timeout_s)
    grey = to_grey(img)
    first = read_grey(grey, lang, deadline, control, psm=psm, dpi=dpi, scale=upscale or 1.0)
    if upscale is not None:
        return first
    return read_enlarged_if_better(
        first, grey, deadline, control, psm=psm, dpi=dpi, always=try_enlarged
    )


def read_enlarged_if_better(
    first: PageText,
    grey: Image.Image,
    deadline: Deadline,
    control: JobControl | None,
    *,
    psm: int = 3,
    dpi: float | None = None,
    always: bool = False,
    unsure: bool = True,
) -> PageText:
    """`first` (a reading of `grey` at its size), or a second reading of it enlarged ×2
    when that reads better (`quality`).

    Tried when the words are small (median box height below SMALL_TEXT_PX: clean
    renders at 9 px read at ~3% character error as they are and ~0.5% enlarged; from
    11 px up enlarging changes nothing), when next to nothing was read on an image
    small enough that text in it may be tiny, and with `always` (phone photos of
    pages, 1280 px: keeping the better of the two readings misses 11% of the words
    instead of 14% as they are and 13% enlarged). `unsure` False leaves out the
    nothing-read case (a page not yet known to be upright reads as little)."""
    scale = _enlargement(first, grey.width * grey.height, always, unsure)
    if scale is None:
        return first
    second = read_grey(grey, first.lang, deadline, control, psm=psm, dpi=dpi, scale=scale)
    return second if quality(second) > quality(first) else first


def _enlargement(page: PageText, pixels: int, always: bool, unsure: bool) -> float | None:
    height = median_word_height(page)
    if always or (height is not None and height < SMALL_TEXT_PX):
        scale = min(UPSCALE, (MAX_OCR_PIXELS / max(1, pixels)) ** 0.5)
        return scale if scale >= 1.25 else None
    if not unsure:
        return None
    if (height is None or poorly_read(page)) and pixels * UPSCALE**2 <= UNSURE_MAX_PIXELS:
        return UPSCALE  # tiny text may read as nothing, or as large-boxed garbage
    return None


def poorly_read(page: PageText) -> bool:
    """Few real words, or read with low confidence."""
    valid = [w for w in page.words if _valid(page.text[w.start : w.end])]
    return len(valid) < MIN_WORDS or statistics.fmean(w.conf for w in valid) < GOOD_CONFIDENCE
