"""Deterministic generator of documents, pages, photos and queries for OCR and search tests.

Used by the OCR tests, the document-search quality benchmark and the photo text gate.  Every
function is seeded: the same arguments give the same pixels, bytes and strings in any process
(``random.Random`` seeded with ints or strings, numpy ``default_rng`` seeded with ints; Pillow's
``effect_noise`` is never used because it draws from the C library's global state).

Public API:

* :data:`FONTS` - DejaVu TrueType fonts by role ("sans", "serif", "mono", "condensed", ...).
* :func:`render_page` - lines of text as a white, mode-"L" page image (300 dpi by default), only
  as tall as its content: compact pages that tesseract reads in about a second.
* :func:`rotate_page` - a page turned 90/180/270 degrees clockwise, as a scanner feeds it sideways.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "FONTS",
    "render_page",
    "rotate_page",
]

_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

FONTS: dict[str, Path] = {
    "sans": _FONT_DIR / "DejaVuSans.ttf",
    "serif": _FONT_DIR / "DejaVuSerif.ttf",
    "mono": _FONT_DIR / "DejaVuSansMono.ttf",
    "condensed": _FONT_DIR / "DejaVuSansCondensed.ttf",
    "serif_condensed": _FONT_DIR / "DejaVuSerifCondensed.ttf",
}

# Bold face of each role (used for the first line with ``bold_first``).
_BOLD: dict[str, Path] = {
    "sans": _FONT_DIR / "DejaVuSans-Bold.ttf",
    "serif": _FONT_DIR / "DejaVuSerif-Bold.ttf",
    "mono": _FONT_DIR / "DejaVuSansMono-Bold.ttf",
    "condensed": _FONT_DIR / "DejaVuSansCondensed-Bold.ttf",
    "serif_condensed": _FONT_DIR / "DejaVuSerifCondensed-Bold.ttf",
}


@lru_cache(maxsize=64)
def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px)


def render_page(
    lines: Sequence[str],
    *,
    font: str = "sans",
    size_pt: float = 11.0,
    dpi: int = 300,
    width_in: float = 6.0,
    margin_in: float = 0.4,
    bold_first: bool = False,
) -> Image.Image:
    """Render ``lines`` (one text line each, no wrapping) black on a white mode-"L" page.

    The page is ``width_in`` inches wide at ``dpi``; its height fits the lines plus the margins.
    An empty string is a blank line.  Lines longer than the page are clipped at the right edge
    (choose the lines, font and size so they fit).
    """
    if font not in FONTS:
        raise ValueError(f"unknown font {font!r}; one of {sorted(FONTS)}")
    px = max(6, round(size_pt * dpi / 72))
    regular = _font(FONTS[font], px)
    bold = _font(_BOLD.get(font, FONTS[font]), px)
    line_h = round(px * 1.45)
    margin = round(margin_in * dpi)
    width = round(width_in * dpi)
    height = 2 * margin + max(1, len(lines)) * line_h
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y = margin
    for i, line in enumerate(lines):
        if line:
            face = bold if (bold_first and i == 0) else regular
            draw.text((margin, y), line, fill=0, font=face)
        y += line_h
    return page


_ROTATIONS: dict[int, Image.Transpose] = {
    # Image.Transpose.ROTATE_* turn counter-clockwise; a clockwise turn by d is ROTATE_(360-d).
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def rotate_page(img: Image.Image, degrees: int) -> Image.Image:
    """``img`` turned clockwise by 90, 180 or 270 degrees (lossless transpose); 0 is a copy."""
    d = degrees % 360
    if d == 0:
        return img.copy()
    if d not in _ROTATIONS:
        raise ValueError(f"rotation must be a multiple of 90 degrees, not {degrees}")
    return img.transpose(_ROTATIONS[d])
