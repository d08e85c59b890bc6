"""The `text_embed` stage: passage vectors of an item's text, for search by meaning.

Each page's text is cut into overlapping passages of at most ~256 tokens (the text
model's own tokenizer counts them), so a long contract matches on the passage that
answers a query. Batched: one forward pass over every passage of a batch of items.
Items with no text finish with no vectors. The model spec is in the version, so a
new text model re-indexes every document; a missing model makes the jobs wait.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import Settings
from engine.pipeline.modelstage import CatalogReader, ModelHolder
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    import numpy as np

    from engine.search.textvectors import Passage
    from models.text import TextEmbedder

TEXT_EMBED_VERSION = "1"
PASSAGE_TOKENS = 256
PASSAGE_OVERLAP = 32
EMBED_BATCH = 64  # passages per forward pass


@dataclass
class TextEmbedOutput(StageOutput):
    passages: list[Passage] = field(default_factory=list)
    vectors: np.ndarray | None = None


@dataclass
class _Prepared:
    item: ItemRef
    passages: list[Passage]
    texts: list[str]


def _make_text_embedder(spec: str, device: str) -> TextEmbedder:
    from models.text import create_text_embedder

    return create_text_embedder(spec, device)


class TextEmbedStage:
    name = "text_embed"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ("ocr",)
    batch_size = 16  # items; their passages go through the model together
    reads_original = False
    timeout_s: float | None = 600.0
    remote = True  # may run on a worker host elsewhere (engine/remote/codec.py)

    def __init__(self, settings: Settings) -> None:
        self.spec = settings.models.text
        if not self.spec:
            raise ValueError('models.text is "": the text_embed stage is off')
        self.version = f"{TEXT_EMBED_VERSION}+{self.spec}"
        self.holder: ModelHolder[TextEmbedder] = ModelHolder(
            self.spec,
            settings.device,
            _make_text_embedder,
            self.lane,
            allow_download=settings.models.download,
        )
        self._reader = CatalogReader()

    def availability(self) -> str | None:
        return self.holder.availability()

    def model_status(self) -> dict[str, Any]:
        return self.holder.status()

    def _conn(self, library_dir: Path) -> sqlite3.Connection:
        return self._reader.conn(library_dir)

    def prepare(self, item: ItemRef, ctx: StageContext) -> _Prepared:
        return self._prepare_pages(item, self._pages(self._conn(ctx.library_dir), item), ctx)

    @staticmethod
    def _pages(conn: sqlite3.Connection, item: ItemRef) -> list[tuple[int, str]]:
        rows = conn.execute(
            "SELECT page, text FROM ocr_pages WHERE item_id = ? ORDER BY page", (item.id,)
        )
        return [(int(page), str(text)) for page, text in rows]

    def _prepare_pages(
        self, item: ItemRef, rows: Sequence[tuple[int, str]], ctx: StageContext
    ) -> _Prepared:
        from engine.search.textvectors import MAX_CHUNKS, Passage

        model = self.holder.get(ctx)
        passages: list[Passage] = []
        texts: list[str] = []
        for page, text in rows:
            for chunk in model.chunk(str(text), PASSAGE_TOKENS, PASSAGE_OVERLAP):
                if len(passages) >= MAX_CHUNKS:
                    break
                passages.append(Passage(int(page), chunk.start, chunk.end))
                texts.append(chunk.text)
        return _Prepared(item, passages, texts)

    def run_batch(
        self, inputs: Sequence[_Prepared], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        model = self.holder.get(ctx)
        texts = [t for p in inputs for t in p.texts]
        vectors = model.embed_texts(texts, batch_size=EMBED_BATCH)
        if vectors.shape[0] != len(texts):
            raise RuntimeError(f"{self.spec} returned {vectors.shape[0]} vectors for {len(texts)}")
        out: list[StageOutput | BaseException] = []
        at = 0
        for prepared in inputs:
            n = len(prepared.texts)
            out.append(
                TextEmbedOutput(
                    data={"model": self.spec, "digest": model.digest, "passages": n},
                    passages=prepared.passages,
                    vectors=vectors[at : at + n],
                )
            )
            at += n
        return out

    # -- on a worker host elsewhere (engine/remote/codec.py) ------------------------------

    def remote_payload(self, conn: sqlite3.Connection, item: ItemRef) -> dict[str, Any]:
        return {"pages": [[page, text] for page, text in self._pages(conn, item)]}

    def prepare_remote(
        self, item: ItemRef, payload: dict[str, Any], ctx: StageContext
    ) -> _Prepared:
        rows = [(int(page), str(text)) for page, text in payload.get("pages", [])]
        return self._prepare_pages(item, rows, ctx)

    def encode_remote(self, output: StageOutput) -> dict[str, Any]:
        from engine.remote.codec import pack_array

        assert isinstance(output, TextEmbedOutput)
        return {
            "data": output.data,
            "passages": [[p.page, p.start, p.end] for p in output.passages],
            "vectors": None if output.vectors is None else pack_array(output.vectors),
        }

    def decode_remote(self, encoded: dict[str, Any]) -> StageOutput:
        from engine.remote.codec import CodecError, unpack_array
        from engine.search.textvectors import Passage

        passages = [Passage(int(p), int(a), int(b)) for p, a, b in encoded["passages"]]
        vectors = None if encoded.get("vectors") is None else unpack_array(encoded["vectors"])
        if passages and (vectors is None or vectors.ndim != 2 or vectors.shape[0] != len(passages)):
            raise CodecError("passage vectors that do not match the passages")
        return TextEmbedOutput(data=encoded["data"], passages=passages, vectors=vectors)

    def store_many(
        self, conn: sqlite3.Connection, results: Sequence[tuple[ItemRef, StageOutput]], seq: int
    ) -> None:
        import numpy as np

        from engine.search.textvectors import store_text_vectors

        for item, output in results:
            assert isinstance(output, TextEmbedOutput)
            vectors = output.vectors if output.vectors is not None else np.empty((0, 0), np.float32)
            store_text_vectors(
                conn,
                item.id,
                self.spec,
                output.passages,
                vectors,
                str(output.data.get("digest", "")),
                seq,
            )
            upsert_result(conn, item.id, self.name, self.version, output.data)
