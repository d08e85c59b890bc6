"""Re-tagging a library after a vocabulary change (`shoebox tags add WORD`).

100,000 items with stored 512-d vectors and tags done; one word is added, which
changes the tags stage's version: a re-index session in the batch lane re-tags
every item from its stored vector (no decoding). Timed from the change until the
worker host is idle. Reference, same run: the bare tagger over the same 100,000
vectors in one call. The text side is a random 737 × 512 matrix (what the CLIP
text encoder would give; it is embedded once per model and cached, and a new word
costs its own 7 prompts), so no weights are needed.
Last line: JSON with `items`, `retag_s`, `items_per_s`, `bare_s`, `ratio`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit, fill_items, fill_jobs, run_host_until_idle

from engine.library import Library
from engine.pipeline import tags as tags_module
from engine.store.db import next_seq
from models.tags.vocabulary import all_concepts
from models.tags.zero_shot import ZeroShotTagger

SPEC = "open_clip:ViT-B-32:bench-random"
DIM = 512


def tagger_for(words: list[str]) -> ZeroShotTagger:
    concepts = [c for c, _ in all_concepts(words)]
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((len(concepts), DIM)).astype(np.float32)
    return ZeroShotTagger(concepts, matrix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.pop("SHOEBOX_NO_MODELS", None)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "lib")
        lib.settings.models.embed = SPEC
        lib.settings.models.detect = ""
        lib.save_settings()
        lib.apply_settings()
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((args.count, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        now = time.time()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            fill_items(conn, 1, args.count, seq, now)
            ids = range(1, args.count + 1)
            for stage in lib.registry.stages():
                fill_jobs(conn, stage.name, ids, lane="import", seq=seq, now=now,
                          state="done", version=stage.version)  # fmt: skip
            conn.executemany(
                "INSERT INTO vectors (item_id, model, dim, vector, digest, seq) "
                "VALUES (?, ?, ?, ?, '', ?)",
                ((i, SPEC, DIM, vectors[i - 1].astype("<f2").tobytes(), seq) for i in ids),
            )

        def fake_tagger(self: Any, ctx: Any) -> tuple[ZeroShotTagger, str]:
            with self._guard:
                if self._tagger is None:
                    self._tagger = tagger_for(self.words)
            return self._tagger, "zero-shot"

        tags_module.TagsStage._get_tagger = fake_tagger  # type: ignore[method-assign]

        bare_tagger = tagger_for(["grandma's red car"])
        start = time.perf_counter()
        bare_tagger.score(vectors, 0.05, 10)
        bare_s = time.perf_counter() - start

        start = time.perf_counter()
        lib.change_tag_words(["grandma's red car"], add=True)
        sessions = lib.apply_settings()
        run_host_until_idle(lib)
        retag_s = time.perf_counter() - start
        done = lib.catalog.read(
            "SELECT count(*) FROM jobs WHERE stage = 'tags' AND state = 'done' AND version = ?",
            (lib.registry.get("tags").version,),
        )[0][0]
        lib.close()
    assert sessions and done == args.count, (sessions, done)
    emit(
        {
            "benchmark": "retag",
            "items": args.count,
            "retag_s": round(retag_s, 2),
            "items_per_s": round(args.count / retag_s),
            "bare_s": round(bare_s, 2),
            "ratio": round(bare_s / retag_s, 3),
        }
    )


if __name__ == "__main__":
    main()
