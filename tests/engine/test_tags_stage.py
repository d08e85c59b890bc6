"""The tags stage's text side: embedded once per model, a new word costs its own prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.config import Settings
from engine.pipeline.tags import TagsStage
from engine.pipeline.types import StageContext
from models.tags.vocabulary import all_concepts, prompts_for


class FakeClip:
    has_text = True
    identity = "open_clip:fake:x@0123456789ab"

    def __init__(self) -> None:
        self.embedded: list[int] = []

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.embedded.append(len(texts))
        rng = np.random.default_rng(len(texts))
        v = rng.standard_normal((len(texts), 16)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_new_word_embeds_only_its_prompts(tmp_path: Path) -> None:
    settings = Settings()
    settings.models.embed = "open_clip:ViT-B-32:laion2b_s34b_b79k"
    ctx = StageContext(tmp_path)
    model = FakeClip()
    first = TagsStage(settings)._build(model, ctx)  # type: ignore[arg-type]
    total = sum(len(prompts_for(c, cat)) for c, cat in all_concepts())
    assert model.embedded == [total]
    again = TagsStage(settings)._build(model, ctx)  # type: ignore[arg-type]
    assert model.embedded == [total], "the vocabulary is embedded once per model"
    assert np.array_equal(first._text_t, again._text_t)

    with_word = TagsStage(settings, ["grandma's red car"])
    assert with_word.version != TagsStage(settings).version, "a new word re-tags"
    tagger = with_word._build(model, ctx)  # type: ignore[arg-type]
    assert model.embedded == [total, len(prompts_for("grandma's red car", "user"))]
    assert (
        tagger.concepts[-1] == "grandma's red car"
        and len(tagger.concepts) == len(first.concepts) + 1
    )
