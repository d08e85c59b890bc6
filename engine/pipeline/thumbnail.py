"""The `thumbnail` stage: a ~256 px thumbnail and a ~1280 px preview, upright.

Both come from one decode. JPEGs decode in draft mode (the DCT scales 1/2..1/8
during decoding), which is most of the speed on 12-MP photos. Files are
content-addressed (`thumbs/ab/<hash>-256.jpg`), written atomically, so running
the stage twice rewrites the same bytes.
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from engine.pipeline.media import (
    check_readable_format,
    existing_path,
    load_upright,
    open_pdf,
    pdf_reason,
)
from engine.pipeline.media import open_image as _open_image
from engine.pipeline.types import ItemRef, ItemStage, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    from PIL import Image

THUMB_PX = 256
PREVIEW_PX = 1280
SIZES = {"thumb": THUMB_PX, "preview": PREVIEW_PX}


def thumb_relpath(content_hash: str, px: int) -> str:
    return f"thumbs/{content_hash[:2]}/{content_hash}-{px}.jpg"


# Full-scale values of the sample depths cameras and scanners store in 16-bit
# samples (8-bit data in 16-bit files too): the smallest one that covers an
# image's brightest pixel is taken as its white.
_FULL_SCALES = tuple(2**bits - 1 for bits in (8, 10, 12, 14, 16))
# Greyscale modes with more than 8 bits a sample (F: 32-bit float).
_HIGH_BIT_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _grey_to_l(img: Image.Image) -> Image.Image:
    """High-bit-depth greyscale to 8 bits by the data's real range.

    12-bit data in 16-bit samples (max 4095) fills 0..255 instead of coming out
    nearly black; 16-bit data keeps its relative brightness. No numpy: Pillow's
    `getextrema` and a linear `point` do it in C."""
    if img.mode not in ("I;16", "I", "F"):
        # getextrema/point do not take I;16B/I;16L/I;16N, and converting those to
        # I;16 clips at 255; I (32-bit) holds every value.
        img = img.convert("I")
    lo, hi = cast("tuple[float, float]", img.getextrema())
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN/inf in float data
        lo, hi = 0.0, 1.0
    offset = -lo if lo < 0 else 0  # signed samples: the darkest becomes black
    peak = hi + offset
    full: float
    if img.mode == "F" and lo >= 0 and hi <= 1.0:
        full = 1.0  # float samples are usually normalised to 0..1
    else:
        full = next((scale for scale in _FULL_SCALES if peak <= scale), peak)
    gain = 255 / full
    # +0.5: point() and the conversion to L truncate; values above 255 are clipped.
    return img.point(lambda v: (v + offset) * gain + 0.5).convert("L")


def _to_rgb(img: Image.Image) -> Image.Image:
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in _HIGH_BIT_GREY:  # 16-bit and float greyscale TIFFs and PNGs
        return _grey_to_l(img).convert("RGB")
    # Pillow itself decodes 16-bit RGB(A) TIFFs to 8-bit RGB(A) (the high byte).
    return img.convert("RGB")


def decode_photo(item: ItemRef, target_px: int = PREVIEW_PX) -> Image.Image:
    """Decode a photo upright as RGB, at least `target_px` on its long side when the
    source allows (reduced right after decoding: `media.load_upright`).

    Only what reads the file (open, draft, load, EXIF) maps to "damaged/truncated"
    reasons; the conversion to RGB after it is our code, and its errors are bugs."""
    with _open_image(item) as img:
        decoded = load_upright(img, item, target_px, "RGB")
    return _to_rgb(decoded)


def render_pdf_page(item: ItemRef, target_px: int = PREVIEW_PX) -> Image.Image:
    from engine.errors import PermanentError

    check_readable_format(item)
    path = existing_path(item)
    with open_pdf(path) as pdf:
        if len(pdf) == 0:
            raise PermanentError("The PDF has no pages.")
        page = pdf[0]
        try:
            width, height = page.get_size()
            if width <= 0 or height <= 0:
                raise PermanentError("The PDF's first page has no size (its MediaBox is empty).")
            scale = target_px / max(width, height)
            try:
                image = page.render(scale=scale).to_pil()
            except Exception as exc:  # pypdfium2 raises PdfiumError and plain errors alike
                raise PermanentError(
                    pdf_reason(exc, "The PDF's first page is damaged and cannot be shown.")
                ) from exc
        finally:
            page.close()
    return _to_rgb(image)


def _save_atomic(img: Image.Image, dest: Path, quality: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, "JPEG", quality=quality, optimize=False, progressive=False)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_thumbnails(item: ItemRef, library_dir: Path) -> dict[str, dict[str, int | str]]:
    """Decode once, write preview and thumbnail; returns {size: {path, width, height}}.

    Decoding raises PermanentError for a bad file; resizing and saving are ours, so
    what they raise propagates as it is (logged with a traceback and retried), never
    as "the file is damaged"."""
    from PIL import Image

    preview = render_pdf_page(item) if item.format == "pdf" else decode_photo(item)
    if max(preview.size) > PREVIEW_PX:  # in place: the decoded image is ours, no copy
        preview.thumbnail((PREVIEW_PX, PREVIEW_PX), Image.Resampling.BICUBIC, reducing_gap=2.0)
    thumb = preview.copy()
    thumb.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.BICUBIC, reducing_gap=2.0)
    written: dict[str, dict[str, int | str]] = {}
    for size, img, quality in (("preview", preview, 85), ("thumb", thumb, 82)):
        rel = thumb_relpath(item.hash, SIZES[size])
        _save_atomic(img, library_dir / rel, quality)
        written[size] = {"path": rel, "width": img.width, "height": img.height}
    return written


class ThumbnailStage(ItemStage):
    name = "thumbnail"
    version = "1"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    # A 250-MP image decodes in seconds; past this the job fails as timed out (see
    # MetadataStage.timeout_s for what that does and does not stop).
    timeout_s: float | None = 300.0

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        return StageOutput(data=make_thumbnails(item, ctx.library_dir))

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        for size, info in output.data.items():
            conn.execute(
                """INSERT INTO thumbnails (item_id, size, path, width, height)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (item_id, size) DO UPDATE SET
                     path = excluded.path, width = excluded.width, height = excluded.height""",
                (item.id, size, info["path"], info["width"], info["height"]),
            )
        conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item.id))
        upsert_result(conn, item.id, self.name, self.version, output.data)
