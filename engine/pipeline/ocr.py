"""The `ocr` stage: the text of every page of a document, and of photos that show text.

- PDFs: a page with a text layer (> 50 characters) is taken as it is, without
  tesseract; pages without one are rendered at 300 dpi and read.
- Images of pages (scans, photographed receipts): read upright whichever way they
  were scanned (engine/ocr/orientation.py).
- Photos: only those the text gate (engine/ocr/gate.py, on the stored preview) says
  likely show text; the rest finish at once with the gate's reason. `ocr.photos`
  can say always or never instead.

Each page is one tesseract process with `OMP_THREAD_LIMIT=1` under a per-page time
limit that kills it (the job fails "OCR timed out after N s on page P"; the worker
carries on). Tesseract missing: the job waits with an install hint.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import PermanentError
from engine.pipeline.media import existing_path, load_upright, open_image
from engine.pipeline.thumbnail import PREVIEW_PX, thumb_relpath
from engine.pipeline.types import ItemRef, ItemStage, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    from PIL import Image

    from engine.config import Settings
    from engine.ocr.types import PageText

log = logging.getLogger(__name__)

OCR_VERSION = "1"
# Photos are read at most this size on their long side: ~30 px capital height for a
# receipt filling the frame, and a 12-MP photo reads in a third of the time.
PHOTO_MAX_PX = 3200


@dataclass
class OcrOutput(StageOutput):
    pages: list[PageText] = field(default_factory=list)


class OcrStage(ItemStage):
    name = "ocr"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ("thumbnail",)  # the gate reads the preview
    reads_original = True
    timeout_s: float | None = None  # per page instead (ocr.page_timeout_s)
    remote = True  # may run on a worker host elsewhere (engine/remote/codec.py)

    def __init__(self, settings: Settings) -> None:
        self.languages_setting = settings.ocr.languages
        self.photos = settings.ocr.photos
        self.page_timeout_s = settings.ocr.page_timeout_s
        self.version = f"{OCR_VERSION}+{self.languages_setting}+{self.photos}"
        self._lang: tuple[str, str | None] | None = None
        self._guard = threading.Lock()

    def languages(self) -> str:
        """Tesseract's `-l` value; a missing language is logged once, not failed."""
        from engine.ocr.languages import resolve_languages

        with self._guard:
            if self._lang is None:
                self._lang = resolve_languages(self.languages_setting)
                if self._lang[1]:
                    log.warning("OCR languages: %s", self._lang[1])
            return self._lang[0]

    def availability(self) -> str | None:
        """None when tesseract can run; else what to install (jobs wait meanwhile)."""
        from engine.ocr.tesseract import INSTALL_HINT, find_tesseract

        return None if find_tesseract() else INSTALL_HINT

    # -- running -------------------------------------------------------------------------

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        if item.format == "pdf":
            return self._read_pdf(item, ctx)
        if item.kind == "photo":
            gate = self._gate(item, ctx)
            if gate is not None and not gate.likely_text:
                return OcrOutput(data={"pages": 0, "skipped": gate.reason, "gate": gate.score})
            output = self._read_image(item, ctx)
            if gate is not None:
                output.data["gate"] = gate.score
            return output
        return self._read_image(item, ctx)

    def _gate(self, item: ItemRef, ctx: StageContext) -> Any:
        """The text gate's verdict on the preview; None when every photo is read."""
        from PIL import Image

        from engine.ocr.gate import GateResult, text_gate

        if self.photos == "always":
            return None
        if self.photos == "never":
            return GateResult(False, 0.0, "photos are not read (ocr.photos = never)")
        path = ctx.library_dir / thumb_relpath(item.hash, PREVIEW_PX)
        try:
            with Image.open(path) as img:
                img.load()
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                return text_gate(rgb)
        except (OSError, SyntaxError, ValueError) as exc:
            raise PermanentError(
                f"The preview cannot be read ({exc}); retry the item's thumbnail."
            ) from exc

    def _read_image(self, item: ItemRef, ctx: StageContext) -> OcrOutput:
        from engine.ocr.orientation import read_upright
        from engine.ocr.pdf import rendered_dpi
        from engine.ocr.types import PageTimeout

        image = _decode_upright(item, PHOTO_MAX_PX if item.kind == "photo" else None)
        ctx.progress(0, 1, "reading the page…")
        try:
            page = read_upright(
                image,
                self.languages(),
                timeout_s=self.page_timeout_s,
                control=ctx.control,
                dpi=rendered_dpi(image),
            )
        except PageTimeout as exc:
            raise exc.on_page(1) from None
        return _output([page])

    def _read_pdf(self, item: ItemRef, ctx: StageContext) -> OcrOutput:
        from engine.ocr.pdf import pdf_pages, read_pdf_page

        path = existing_path(item)
        count = pdf_pages(path)
        pages: list[PageText] = []
        for index in range(count):
            ctx.check()
            ctx.progress(index, count, f"page {index + 1} of {count}")
            pages.append(
                read_pdf_page(
                    path,
                    index,
                    self.languages(),
                    timeout_s=self.page_timeout_s,
                    control=ctx.control,
                )
            )
        return _output(pages)

    # -- on a worker host elsewhere (engine/remote/codec.py) ------------------------------

    def remote_files(self, item: ItemRef) -> list[str]:
        return [thumb_relpath(item.hash, PREVIEW_PX)] if item.kind == "photo" else []

    def encode_remote(self, output: StageOutput) -> dict[str, Any]:
        pages = output.pages if isinstance(output, OcrOutput) else []
        return {"data": output.data, "pages": [p.to_json() for p in pages]}

    def decode_remote(self, encoded: dict[str, Any]) -> StageOutput:
        from engine.ocr.types import PageText

        pages = [PageText.from_json(p) for p in encoded["pages"]]
        return OcrOutput(data=encoded["data"], pages=pages)

    # -- storing -------------------------------------------------------------------------

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        from engine.search import fts

        pages = output.pages if isinstance(output, OcrOutput) else []
        conn.execute("DELETE FROM ocr_pages WHERE item_id = ?", (item.id,))
        conn.executemany(
            """INSERT INTO ocr_pages (item_id, page, source, rotation, confidence, lang,
                                      width, height, text, words)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    item.id,
                    n,
                    p.source,
                    p.rotation,
                    p.confidence,
                    p.lang,
                    p.width,
                    p.height,
                    p.text,
                    json.dumps([w.to_list() for w in p.words], separators=(",", ":")),
                )
                for n, p in enumerate(pages)
            ],
        )
        fts.rebuild(conn, [item.id])
        conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item.id))
        upsert_result(conn, item.id, self.name, self.version, output.data)


def _output(pages: list[PageText]) -> OcrOutput:
    read = [p for p in pages if p.source == "ocr" and p.confidence is not None]
    confidence = round(sum(p.confidence or 0.0 for p in read) / len(read), 1) if read else None
    data: dict[str, Any] = {
        "pages": len(pages),
        "chars": sum(len(p.text) for p in pages),
        "text_layer_pages": sum(1 for p in pages if p.source == "text-layer"),
        "ocr_pages": len(read),
        "confidence": confidence,
        "rotated_pages": sum(1 for p in pages if p.rotation),
    }
    return OcrOutput(data=data, pages=pages)


def _decode_upright(item: ItemRef, max_px: int | None) -> Image.Image:
    """The original, upright (EXIF orientation applied), greyscale, at most `max_px`."""
    from PIL import Image

    with open_image(item) as img:
        decoded = load_upright(img, item, max_px, "L")
    if "A" in decoded.mode or decoded.mode == "P":
        # Transparent areas as white paper, not black.
        rgba = decoded.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        decoded = Image.alpha_composite(paper, rgba).convert("RGB")
    dpi = decoded.info.get("dpi")
    grey = decoded.convert("L")
    if max_px is not None and max(grey.size) > max_px:
        scale = max_px / max(grey.size)
        grey.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
        if isinstance(dpi, tuple) and dpi:
            dpi = (float(dpi[0]) * scale, float(dpi[-1]) * scale)
    if isinstance(dpi, tuple) and dpi and float(dpi[0]) >= 50:  # 72/1-dpi files say nothing
        grey.info["dpi"] = (float(dpi[0]), float(dpi[-1]))
    return grey
