"""The self-test's sample files, made at run time with Pillow (no binary assets).

Every photo shows the same asymmetric layout when it is upright: a red block in the
top-left corner, a green one top-right and a blue one bottom-left (three distinct
corners fix all eight EXIF orientations), over a scene of its own (a different
colour and shapes for each, so the near-duplicate is nearest to its original only).
The file stores the scene turned the other way, so only a reader that applies the
EXIF orientation shows it upright. Text is drawn with Pillow's own FreeType font
(`ImageFont.load_default(size=…)`), never a system font a machine may lack.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

UPRIGHT_SIZE = (480, 320)  # every photo as displayed: landscape, width × height
MARKER = 0.18  # the corner blocks' side, as a share of the short side
CORNERS: dict[str, tuple[int, int, int]] = {
    "top-left": (220, 30, 30),  # red
    "top-right": (30, 180, 40),  # green
    "bottom-left": (30, 60, 220),  # blue
}
CAMERA_MAKE = "Shoebox"
CAMERA_MODEL = "Self-Test Camera"

# EXIF tags (Pillow's ExifTags numbers).
_ORIENTATION, _MAKE, _MODEL, _DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003

# How to store an upright scene so that EXIF orientation N shows it upright again:
# the inverse of what `ImageOps.exif_transpose` applies for N.
_STORE_AS: dict[int, Image.Transpose | None] = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}

DOCUMENT_LINES = (
    "INVOICE 4711",
    "Quillfeather Stationery Ltd",
    "12 Harbour Road, Lowmoor",
    "Fountain pens         2 x 18.00",
    "Notebooks             3 x 4.50",
    "Total due             49.50 EUR",
)
PDF_LINES = (
    "RECEIPT",
    "Marmalade Lighthouse Cafe",
    "Breakfast for two      23.80",
    "Orange juice            6.40",
    "Thank you for visiting",
)


@dataclass(frozen=True)
class Sample:
    """One sample file and what the engine must find in it."""

    name: str  # the file name
    kind: str  # photo | document
    orientation: int = 1  # the EXIF orientation the file carries
    taken_at: str | None = None  # ISO, as the catalog records it
    camera_make: str | None = None
    camera_model: str | None = None
    size: tuple[int, int] | None = None  # displayed width × height (photos)
    words: tuple[str, ...] = ()  # words OCR must read
    search_word: str | None = None  # a word the text search must find this item by
    duplicate_of: str | None = None  # a near-duplicate of this sample (resized, recompressed)
    upright: bool = True  # whether its thumbnail must show the corner markers


@dataclass
class SampleSet:
    folder: Path
    samples: list[Sample] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # file name -> why it was not made

    def by_name(self, name: str) -> Sample:
        return next(s for s in self.samples if s.name == name)

    def photos(self) -> list[Sample]:
        return [s for s in self.samples if s.upright]

    def with_text(self) -> list[Sample]:
        return [s for s in self.samples if s.words]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (FreeType, inside Pillow ≥ 10.1): no system font needed."""
    return ImageFont.load_default(size=size)


def upright_scene(seed: int, size: tuple[int, int] = UPRIGHT_SIZE) -> Image.Image:
    """A photo-like scene of its own for each seed, with the three corner markers."""
    rng = random.Random(seed)
    w, h = size
    base = [rng.randrange(60, 200) for _ in range(3)]
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):  # a vertical gradient
        t = y / max(h - 1, 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(c * (1.0 - 0.5 * t) + 40 * t) for c in base))
    for _ in range(6 + seed % 5):  # shapes of their own colour, away from the corners
        cx, cy = rng.randrange(w // 4, 3 * w // 4), rng.randrange(h // 4, 3 * h // 4)
        r = rng.randrange(h // 10, h // 4)
        colour = tuple(rng.randrange(0, 256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.rectangle([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=colour)
    side = int(min(w, h) * MARKER)
    boxes = {
        "top-left": (0, 0),
        "top-right": (w - side, 0),
        "bottom-left": (0, h - side),
    }
    for corner, (x, y) in boxes.items():
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=CORNERS[corner])
    return img


def exif_bytes(
    orientation: int, taken_at: str | None, make: str | None, model: str | None
) -> bytes:
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    if make:
        exif[_MAKE] = make
    if model:
        exif[_MODEL] = model
    if taken_at:
        stamp = taken_at.replace("-", ":").replace("T", " ")  # EXIF: 2019:07:14 09:30:00
        exif[_DATETIME] = stamp
        exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = stamp
    return exif.tobytes()


def stored_pixels(upright: Image.Image, orientation: int) -> Image.Image:
    method = _STORE_AS[orientation]
    return upright if method is None else upright.transpose(method)


def text_page(lines: Sequence[str], size: tuple[int, int], text_px: int) -> Image.Image:
    """A white page with `lines` of black text, like a scanned document."""
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    face = font(text_px)
    x, y = size[0] // 12, size[1] // 12
    for i, line in enumerate(lines):
        draw.text((x, y), line, fill="black", font=face)
        y += int(text_px * (2.0 if i == 0 else 1.6))
    return page


def _words(lines: Sequence[str]) -> tuple[str, ...]:
    """The longer words of the text: what a correct reading must contain."""
    return tuple(w for line in lines for w in line.split() if len(w) >= 6 and w.isalpha())


def make_samples(folder: Path) -> SampleSet:
    """Write the sample files into `folder`; what each must yield is in the result."""
    folder.mkdir(parents=True, exist_ok=True)
    out = SampleSet(folder)
    photos = (
        ("photo-orientation-1.jpg", 1, "2019-07-14T09:30:00"),
        ("photo-orientation-6.jpg", 6, "2020-02-29T18:45:10"),
        ("photo-orientation-8.jpg", 8, "2021-12-24T07:05:59"),
    )
    for seed, (name, orientation, taken_at) in enumerate(photos, start=1):
        scene = upright_scene(seed)
        stored_pixels(scene, orientation).save(
            folder / name,
            quality=90,
            exif=exif_bytes(orientation, taken_at, CAMERA_MAKE, CAMERA_MODEL),
        )
        out.samples.append(
            Sample(name, "photo", orientation, taken_at, CAMERA_MAKE, CAMERA_MODEL, scene.size)
        )
    # What a phone's "share" makes of the first photo: smaller, harder compressed.
    with Image.open(folder / photos[0][0]) as original:
        copy = original.resize((288, 192), Image.Resampling.LANCZOS)
        copy.save(folder / "photo-shared-copy.jpg", quality=55)
    out.samples.append(
        Sample("photo-shared-copy.jpg", "photo", size=(288, 192), duplicate_of=photos[0][0])
    )
    try:
        out.samples.append(_heic(folder))
    except Exception as exc:  # pillow-heif missing or broken: the HEIC check says so
        out.problems["photo.heic"] = f"{type(exc).__name__}: {exc}"
    document = text_page(DOCUMENT_LINES, (1000, 760), 40)
    document.save(folder / "invoice.png")
    out.samples.append(
        Sample(
            "invoice.png",
            "photo",  # a picture of a page: a photo to the catalog, read by OCR's gate
            size=document.size,
            words=_words(DOCUMENT_LINES),
            search_word="Quillfeather",
            upright=False,
        )
    )
    receipt = text_page(PDF_LINES, (900, 640), 36).convert("L")
    receipt.save(folder / "receipt.pdf", resolution=150.0)
    out.samples.append(
        Sample(
            "receipt.pdf",
            "document",
            words=_words(PDF_LINES),
            search_word="Marmalade",
            upright=False,
        )
    )
    return out


def _heic(folder: Path) -> Sample:
    import pillow_heif

    taken_at = "2022-05-01T12:00:00"
    scene = upright_scene(7)
    heif = pillow_heif.from_pillow(scene)
    heif.info["exif"] = exif_bytes(1, taken_at, CAMERA_MAKE, "Self-Test HEIC")
    heif.save(folder / "photo.heic", quality=85)
    return Sample("photo.heic", "photo", 1, taken_at, CAMERA_MAKE, "Self-Test HEIC", scene.size)
