"""The `tags` stage: tags from the stored embedding — no decoding, no network pass
over the image — so a vocabulary change re-tags 100k items in seconds.

- A model with a text tower (CLIP): zero-shot over the built-in vocabulary plus the
  user's words (`shoebox tags add`), prompt-ensembled; the text side is embedded
  once per (model, vocabulary) and cached under `<library>/index/`.
- A model with a classification head and no text tower (MobileNetV2, ImageNet):
  the head applied to the stored feature (source `classifier`).
Detected objects become tags in the `detect` stage (source `detect`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.pipeline.modelstage import CatalogReader, ModelHolder
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    import numpy as np

    from engine.config import Settings
    from models.embed import ImageEmbedder

TAGS_VERSION = "1"
SOURCES = ("zero-shot", "classifier")


@dataclass
class TagsOutput(StageOutput):
    tags: list[tuple[str, float]] = field(default_factory=list)
    source: str = "zero-shot"


def _make_embedder(spec: str, device: str) -> ImageEmbedder:
    from models.embed import create_embedder

    return create_embedder(spec, device)


class TagsStage:
    name = "tags"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ("embed",)
    batch_size = 512
    reads_original = False
    timeout_s: float | None = 600.0

    def __init__(self, settings: Settings, tag_words: Sequence[str] = ()) -> None:
        from models.tags.vocabulary import vocabulary_digest

        self.spec = settings.models.embed
        self.min_score = settings.tags.min_score
        self.max_tags = settings.tags.max_tags
        self.words = sorted(set(tag_words))
        self.vocabulary = vocabulary_digest(self.words)
        self.version = f"{TAGS_VERSION}+{self.spec}+{self.vocabulary}"
        self.holder = ModelHolder(
            self.spec,
            settings.device,
            _make_embedder,
            self.lane,
            allow_download=settings.models.download,
        )
        self._tagger: Any = None
        self._tagger_key = ""
        self._guard = threading.Lock()
        self._reader = CatalogReader()

    def availability(self) -> str | None:
        return self.holder.availability()

    # -- the tagger, built once per loaded model

    def _get_tagger(self, ctx: StageContext) -> tuple[Any, str]:
        model = self.holder.get(ctx)
        key = model.identity
        with self._guard:
            if self._tagger is None or self._tagger_key != key:
                self._tagger = self._build(model, ctx)
                self._tagger_key = key
            source = "zero-shot" if model.has_text else "classifier"
            return self._tagger, source

    def _build(self, model: ImageEmbedder, ctx: StageContext) -> Any:
        import numpy as np

        from models.tags.vocabulary import all_concepts, prompts_for
        from models.tags.zero_shot import (
            ClassifierTagger,
            ZeroShotTagger,
            ensemble_text_embeddings,
            imagenet_tag_names,
        )

        if not model.has_text:
            head = getattr(model, "classifier_head", None)
            if head is None:
                return None
            weight, bias = head()
            return ClassifierTagger(weight, bias, imagenet_tag_names())
        concepts = all_concepts(self.words)
        # One text vector per (concept, its prompts), cached per model: a new word
        # embeds its own few prompts, not the whole vocabulary again.
        keys = ["|".join([c, *prompts_for(c, cat)]) for c, cat in concepts]
        cache = _cache_path(ctx.library_dir, model.identity)
        known = _load_text_cache(cache)
        missing = [
            (k, c, cat) for k, (c, cat) in zip(keys, concepts, strict=True) if k not in known
        ]
        if missing:
            prompts: list[str] = []
            groups: list[int] = []
            for _, concept, category in missing:
                these = prompts_for(concept, category)
                prompts += these
                groups.append(len(these))
            ctx.progress(0, len(prompts), "embedding the tag vocabulary…")
            fresh = ensemble_text_embeddings(model.embed_texts(prompts), groups)
            for (key, _, _), vector in zip(missing, fresh, strict=True):
                known[key] = vector.astype(np.float32)
            _save_text_cache(cache, known)
        matrix = np.stack([known[k] for k in keys]).astype(np.float32)
        return ZeroShotTagger([c for c, _ in concepts], matrix)

    # -- the stage

    def prepare(self, item: ItemRef, ctx: StageContext) -> ItemRef:
        return item

    def _conn(self, library_dir: Path) -> sqlite3.Connection:
        return self._reader.conn(library_dir)

    def run_batch(
        self, inputs: Sequence[ItemRef], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        import numpy as np

        tagger, source = self._get_tagger(ctx)
        ids = [item.id for item in inputs]
        vectors, norms = _load_vectors(self._conn(ctx.library_dir), ids, self.spec)
        out: list[StageOutput | BaseException] = []
        present = [i for i in ids if i in vectors]
        scored: dict[int, list[tuple[str, float]]] = {}
        if present and tagger is not None:
            matrix = np.stack([vectors[i] for i in present]).astype(np.float32)
            if source == "classifier":
                matrix *= np.array([[norms.get(i, 1.0)] for i in present], dtype=np.float32)
            for item_id, tags in zip(
                present, tagger.score(matrix, self.min_score, self.max_tags), strict=True
            ):
                scored[item_id] = tags
        for item in inputs:
            if item.id not in vectors:
                out.append(RuntimeError("The item's embedding is not stored yet."))
                continue
            tags = scored.get(item.id, [])
            out.append(
                TagsOutput(
                    data={"model": self.spec, "vocabulary": self.vocabulary, "count": len(tags)},
                    tags=tags,
                    source=source,
                )
            )
        return out

    def store_many(
        self, conn: sqlite3.Connection, results: Sequence[tuple[ItemRef, StageOutput]], seq: int
    ) -> None:
        for item, output in results:
            assert isinstance(output, TagsOutput)
            conn.execute(
                f"DELETE FROM item_tags WHERE item_id = ? AND source IN ({','.join('?' * 2)})",
                (item.id, *SOURCES),
            )
            conn.executemany(
                "INSERT INTO item_tags (item_id, tag, source, score, model) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET score = max(score, excluded.score)",
                [(item.id, tag, output.source, score, self.spec) for tag, score in output.tags],
            )
            upsert_result(conn, item.id, self.name, self.version, output.data)
            conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item.id))


def _cache_path(library_dir: Path, identity: str) -> Path:
    import hashlib

    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return library_dir / "index" / f"tag-text-{key}.npz"


def _load_text_cache(path: Path) -> dict[str, np.ndarray]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [str(k) for k in data["keys"]]
            return dict(zip(keys, data["matrix"], strict=True))
    except (OSError, ValueError, KeyError):
        return {}


def _save_text_cache(path: Path, known: dict[str, np.ndarray]) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    keys = list(known)
    np.savez(tmp, keys=np.array(keys), matrix=np.stack([known[k] for k in keys]))
    tmp.replace(path)


def _load_vectors(
    conn: sqlite3.Connection, ids: Sequence[int], model: str
) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    import numpy as np

    marks = ",".join("?" * len(ids))
    vectors = {
        int(r[0]): np.frombuffer(r[1], dtype="<f2").astype(np.float32)
        for r in conn.execute(
            f"SELECT item_id, vector FROM vectors WHERE model = ? AND item_id IN ({marks})",
            (model, *ids),
        )
    }
    norms: dict[int, float] = {}
    for r in conn.execute(
        f"SELECT item_id, data FROM results WHERE stage = 'embed' AND item_id IN ({marks})",
        tuple(ids),
    ):
        data = json.loads(r[1])
        if data.get("model") == model and "norm" in data:
            norms[int(r[0])] = float(data["norm"])
    return vectors, norms
