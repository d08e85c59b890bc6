"""What OCR gives back for one page or photo: its text, and where each word is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import PermanentError

SOURCES = ("text-layer", "ocr")


@dataclass(frozen=True, slots=True)
class Word:
    """One word: its box in pixels of the upright page image (x1/y1 exclusive), its
    recognition confidence (0-100; 100 for a PDF text layer) and where it is in the
    page text (`text[start:end]` is the word)."""

    x0: int
    y0: int
    x1: int
    y1: int
    conf: float
    start: int
    end: int

    def to_list(self) -> list[float | int]:
        return [self.x0, self.y0, self.x1, self.y1, round(self.conf, 1), self.start, self.end]

    @classmethod
    def from_list(cls, values: list[Any]) -> Word:
        x0, y0, x1, y1, conf, start, end = values
        return cls(int(x0), int(y0), int(x1), int(y1), float(conf), int(start), int(end))


@dataclass(slots=True)
class PageText:
    """The text of one page, upright.

    `rotation` is the clockwise turn (0/90/180/270) that was applied to the image to
    read it upright; `width`/`height` are the upright image's, in the pixels the word
    boxes use. `confidence` is the mean word confidence (0-100), None for a text layer.
    `source` is "text-layer" (a PDF's own text) or "ocr"; `lang` the tesseract
    languages it was read with ("" for a text layer). `orientation` says how the
    rotation was found: "upright" (read well as it was), "lines" (sideways lines
    read in the first pass), "reread" (read again at the turn the first reading's
    lines left), "osd" (tesseract's orientation detection), "compare" (recognition
    compared at each rotation), "none" (no text found), "" (not looked for)."""

    text: str
    confidence: float | None
    words: list[Word] = field(default_factory=list)
    width: int = 0
    height: int = 0
    rotation: int = 0
    source: str = "ocr"
    lang: str = ""
    orientation: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": None if self.confidence is None else round(self.confidence, 1),
            "words": [w.to_list() for w in self.words],
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "source": self.source,
            "lang": self.lang,
            "orientation": self.orientation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageText:
        confidence = data.get("confidence")
        return cls(
            text=str(data["text"]),
            confidence=None if confidence is None else float(confidence),
            words=[Word.from_list(w) for w in data.get("words", [])],
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            rotation=int(data.get("rotation", 0)),
            source=str(data.get("source", "ocr")),
            lang=str(data.get("lang", "")),
            orientation=str(data.get("orientation", "")),
        )


class PageTimeout(PermanentError):
    """Tesseract ran past its per-page limit and was killed.

    Permanent: the same page would take as long again. `on_page(n)` gives the same
    error naming the page ("OCR timed out after 120 s on page 3")."""

    def __init__(self, timeout_s: float, page: int | None = None) -> None:
        self.timeout_s = timeout_s
        self.page = page
        where = "" if page is None else f" on page {page}"
        super().__init__(f"OCR timed out after {timeout_s:g} s{where}.")

    def on_page(self, page: int) -> PageTimeout:
        """The same timeout, naming the page (1-based, as people count them)."""
        return PageTimeout(self.timeout_s, page)
