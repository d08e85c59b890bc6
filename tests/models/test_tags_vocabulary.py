"""The zero-shot vocabulary, its prompts and digest, and the numpy taggers."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from models.tags import vocabulary as vocab
from models.tags.vocabulary import (
    CONCEPTS,
    all_concepts,
    indefinite,
    prompts_for,
    vocabulary_digest,
)
from models.tags.zero_shot import (
    ClassifierTagger,
    ZeroShotTagger,
    ensemble_text_embeddings,
)

DOCUMENT_KINDS = (
    "receipt",
    "invoice",
    "letter",
    "screenshot",
    "whiteboard",
    "handwriting",
    "id card",
    "passport",
    "business card",
    "bank statement",
    "bill",
    "form",
    "contract",
    "menu",
    "ticket",
    "boarding pass",
    "certificate",
    "diploma",
    "recipe",
    "map",
    "poster",
    "flyer",
    "book page",
    "newspaper",
    "magazine",
    "sheet music",
    "chart",
    "diagram",
    "slide",
    "spreadsheet",
    "text message",
    "email",
    "postcard",
    "greeting card",
    "calendar",
    "note",
    "sticky note",
    "label",
    "barcode",
    "qr code",
    "prescription",
    "report card",
    "tax form",
    "pay slip",
    "warranty",
    "manual page",
)
PEOPLE = ("portrait", "selfie", "group photo", "baby", "child", "wedding")


def _builtin() -> list[str]:
    return [c for concepts in CONCEPTS.values() for c in concepts]


# -- vocabulary


def test_vocabulary_is_large_unique_and_lowercase() -> None:
    concepts = _builtin()
    assert len(concepts) >= 500
    assert len(set(concepts)) == len(concepts), [c for c in concepts if concepts.count(c) > 1]
    for c in concepts:
        assert c == c.lower() == c.strip() and "  " not in c and c, c
        assert len(c.split()) <= 4, c
    assert {"object", "animal", "scene", "event", "document"} <= set(CONCEPTS)


def test_document_kinds_and_people_are_present() -> None:
    assert set(DOCUMENT_KINDS) <= set(CONCEPTS["document"]), set(DOCUMENT_KINDS) - set(
        CONCEPTS["document"]
    )
    assert set(PEOPLE) <= set(_builtin())


def test_every_category_has_templates() -> None:
    assert set(CONCEPTS) <= set(vocab.CATEGORY_TEMPLATES)
    for category, concepts in CONCEPTS.items():
        for concept in concepts:
            prompts = prompts_for(concept, category)
            assert prompts and len(set(prompts)) == len(prompts)
            assert all(concept in p and "{" not in p for p in prompts)


def test_no_article_entries_are_concepts() -> None:
    assert set(_builtin()) >= vocab.NO_ARTICLE


@pytest.mark.parametrize(
    ("concept", "category", "expected"),
    [
        ("invoice", "document", "an invoice"),
        ("id card", "document", "an id card"),
        ("x-ray", "document", "an x-ray"),
        ("envelope", "object", "an envelope"),
        ("elephant", "animal", "an elephant"),
        ("umbrella", "object", "an umbrella"),
        ("uniform", "clothing", "a uniform"),
        ("qr code", "document", "a qr code"),
        ("receipt", "document", "a receipt"),
        ("hourglass", "user", "an hourglass"),
        ("snow", "weather", "snow"),
        ("skiing", "activity", "skiing"),
        ("jeans", "clothing", "jeans"),
        ("christmas", "event", "christmas"),
    ],
)
def test_indefinite_article(concept: str, category: str, expected: str) -> None:
    assert indefinite(concept, category) == expected


def test_prompts_use_an_before_vowels() -> None:
    assert "a scan of an invoice." in prompts_for("invoice", "document")
    assert "a photo of an elephant." in prompts_for("elephant", "animal")
    assert "a photo of a dog." in prompts_for("dog", "animal")
    for category, concepts in CONCEPTS.items():
        for concept in concepts:
            for prompt in prompts_for(concept, category):
                assert f" a {concept}" not in prompt or concept[0] not in "aio", prompt


def test_templates_by_category() -> None:
    photo = prompts_for("dog", "animal")
    assert "a photo of a dog." in photo and "a close-up photo of a dog." in photo
    assert "a scan of a receipt." in prompts_for("receipt", "document")
    assert "a photo taken at a beach." in prompts_for("beach", "scene")
    assert "a photo taken at a wedding." in prompts_for("wedding", "event")
    assert prompts_for("grandma's quilt", "user") == [
        t.format(a="a grandma's quilt", c="grandma's quilt") for t in vocab.PHOTO_TEMPLATES
    ]
    assert len(vocab.PHOTO_TEMPLATES) == 7


def test_all_concepts_appends_user_words_deduplicated() -> None:
    base = all_concepts()
    assert len(base) == len(_builtin())
    more = all_concepts(["Zebra Crossing", "dog", "zebra  crossing", "aunt may", ""])
    assert more[: len(base)] == base
    assert more[len(base) :] == [("aunt may", "user"), ("zebra crossing", "user")]
    concepts = [c for c, _ in more]
    assert len(set(concepts)) == len(concepts)


def test_digest_is_stable_and_follows_the_words() -> None:
    d = vocabulary_digest([])
    assert d == vocabulary_digest(()) == vocabulary_digest([])
    assert len(d) == 16 and int(d, 16) >= 0
    with_word = vocabulary_digest(["grandma"])
    assert with_word != d
    assert vocabulary_digest(["grandma"]) == with_word
    assert vocabulary_digest(["b", "a"]) == vocabulary_digest(["a", "b"])
    assert vocabulary_digest(["a", "b"]) != vocabulary_digest(["a"])
    # A built-in concept added again changes nothing.
    assert vocabulary_digest(["dog"]) == d


def test_digest_follows_the_builtin_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    d = vocabulary_digest([])
    changed = dict(CONCEPTS, animal=(*CONCEPTS["animal"], "axolotl"))
    monkeypatch.setattr(vocab, "CONCEPTS", changed)
    vocab._builtin.cache_clear()
    try:
        assert vocabulary_digest([]) != d
    finally:
        monkeypatch.undo()
        vocab._builtin.cache_clear()
    assert vocabulary_digest([]) == d


def test_modules_import_without_torch() -> None:
    import subprocess

    code = (
        "import sys\n"
        "import models.tags.vocabulary, models.tags.zero_shot\n"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- ensembling


def test_ensemble_averages_normalised_prompts() -> None:
    per_prompt = np.array(
        [[2.0, 0.0], [0.0, 5.0], [0.0, 0.0 + 3.0], [1.0, 1.0], [4.0, 4.0], [1.0, 0.0]]
    )
    out = ensemble_text_embeddings(per_prompt, [2, 1, 3])
    assert out.shape == (3, 2) and out.dtype == np.float32
    s = np.sqrt(0.5)
    np.testing.assert_allclose(out[0], [s, s], atol=1e-6)  # mean of unit x and unit y
    np.testing.assert_allclose(out[1], [0.0, 1.0], atol=1e-6)
    expected = np.array([s + s + 1.0, s + s]) / np.linalg.norm([s + s + 1.0, s + s])
    np.testing.assert_allclose(out[2], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_ensemble_checks_groups() -> None:
    with pytest.raises(ValueError):
        ensemble_text_embeddings(np.ones((3, 4)), [2, 2])
    with pytest.raises(ValueError):
        ensemble_text_embeddings(np.ones((3, 4)), [3, 0])
    assert ensemble_text_embeddings(np.ones((0, 4)), []).shape == (0, 4)


# -- zero-shot


def _text_matrix(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _near(
    text: np.ndarray, index: int, cos: float = 0.3, seed: int = 1, count: int = 1
) -> np.ndarray:
    """Unit image-like vectors at cosine `cos` from concept `index` (CLIP's range for
    a match), the rest a random direction orthogonal to it."""
    rng = np.random.default_rng(10_000 + seed)  # not _text_matrix's stream
    t = text[index]
    w = rng.standard_normal((count, text.shape[1]))
    w -= (w @ t)[:, None] * t
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return (cos * t + np.sqrt(1 - cos**2) * w).astype(np.float32)


def test_zero_shot_ranks_the_nearby_concept_first() -> None:
    text = _text_matrix(200, 512)
    names = [f"c{i}" for i in range(200)]
    tagger = ZeroShotTagger(names, text)
    for index in (0, 17, 199):
        images = _near(text, index, seed=index, count=5)
        for tags in tagger.score(images, 0.05, 10):
            assert tags and tags[0][0] == names[index]
            assert all(0.05 <= p <= 1.0 for _, p in tags)
            assert [p for _, p in tags] == sorted((p for _, p in tags), reverse=True)


def test_zero_shot_mixture_gets_both_tags() -> None:
    text = _text_matrix(300, 128, seed=3)
    names = [f"c{i}" for i in range(300)]
    image = (text[5] + 0.99 * text[42])[None, :]
    (tags,) = ZeroShotTagger(names, text).score(image, 0.05)
    assert [t for t, _ in tags[:2]] == ["c5", "c42"]


def test_max_tags_is_respected() -> None:
    text = _text_matrix(50, 32)
    names = [f"c{i}" for i in range(50)]
    images = _near(text, 3, cos=0.1, count=8)
    tagger = ZeroShotTagger(names, text)
    everything = tagger.score(images, 0.0, 50)
    assert all(len(t) == 50 for t in everything)
    assert all(abs(sum(p for _, p in t) - 1.0) < 1e-3 for t in everything)
    for k in (0, 1, 3):
        assert all(len(t) <= k for t in tagger.score(images, 0.0, k))
    top3 = tagger.score(images, 0.0, 3)
    assert [[n for n, _ in t] for t in top3] == [[n for n, _ in t[:3]] for t in everything]


def test_orthogonal_vector_gets_no_tags() -> None:
    d = 64
    text = np.zeros((40, d), dtype=np.float32)
    text[np.arange(40), np.arange(40)] = 1.0  # concepts on the first 40 axes
    image = np.zeros((2, d), dtype=np.float32)
    image[0, 50] = 1.0  # orthogonal to every concept
    # row 1 is all zeros: no direction at all
    tagger = ZeroShotTagger([f"c{i}" for i in range(40)], text)
    assert tagger.score(image, 0.05, 10) == [[], []]
    np.testing.assert_allclose(tagger.probabilities(image), 1 / 40, rtol=1e-5)


def test_flat_similarities_get_no_tags_at_the_default() -> None:
    # CLIP-like: every text vector shares a common direction u (so every cosine is
    # ~0.25); an image showing only that common part matches nothing in particular.
    n, d = 600, 1024
    rng = np.random.default_rng(7)
    specific = rng.standard_normal((n, d)).astype(np.float32)
    specific[:, 0] = 0.0
    specific /= np.linalg.norm(specific, axis=1, keepdims=True)
    text = 0.25 * np.eye(1, d, dtype=np.float32) + np.sqrt(1 - 0.25**2) * specific
    image = np.eye(1, d, dtype=np.float32).repeat(3, axis=0)
    image[1:, 1:] += 0.002 * rng.standard_normal((2, d - 1)).astype(np.float32)
    tagger = ZeroShotTagger([f"c{i}" for i in range(n)], text)
    assert tagger.score(image) == [[], [], []]
    # The same image plus a concept's own part is tagged with it.
    with_one = image[:1] + 0.1 * specific[123]
    assert tagger.score(with_one)[0][0][0] == "c123"


def test_blocks_give_the_same_result_as_one_pass() -> None:
    text = _text_matrix(120, 256, seed=4)
    names = [f"c{i}" for i in range(120)]
    rng = np.random.default_rng(5)
    picks = rng.integers(0, 120, size=1000)
    images = np.stack([_near(text, int(i), 0.3, seed=int(s))[0] for s, i in enumerate(picks)])
    whole = ZeroShotTagger(names, text, block_rows=100_000).score(images, 0.02, 5)
    blocked = ZeroShotTagger(names, text, block_rows=64).score(images, 0.02, 5)
    assert len(whole) == len(blocked) == 1000
    for a, b in zip(whole, blocked, strict=True):
        assert [t for t, _ in a] == [t for t, _ in b]
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], atol=1e-5)
    assert sum(bool(t) and t[0][0] == names[i] for t, i in zip(whole, picks, strict=True)) > 990
    assert ZeroShotTagger(names, text).score(images[:0], 0.05) == []


def test_zero_shot_checks_shapes() -> None:
    text = _text_matrix(5, 8)
    with pytest.raises(ValueError):
        ZeroShotTagger(["a", "b"], text)
    tagger = ZeroShotTagger(list("abcde"), text)
    with pytest.raises(ValueError):
        tagger.score(np.ones((2, 7), dtype=np.float32), 0.05)
    with pytest.raises(ValueError):
        tagger.score(np.ones((2, 8), dtype=np.float32), 1.5)


def test_logit_scale_sharpens() -> None:
    text = _text_matrix(100, 512, seed=9)
    image = _near(text, 7, 0.2)
    sharp = ZeroShotTagger([f"c{i}" for i in range(100)], text, 100.0).probabilities(image)
    soft = ZeroShotTagger([f"c{i}" for i in range(100)], text, 10.0).probabilities(image)
    assert sharp[0, 7] > soft[0, 7] and int(sharp[0].argmax()) == int(soft[0].argmax()) == 7


# -- classifier head


def test_classifier_softmax() -> None:
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    bias = np.array([0.0, 0.5, -1.0], dtype=np.float32)
    features = np.array([[2.0, 0.5], [0.0, 0.0]], dtype=np.float32)
    tagger = ClassifierTagger(weight, bias, ["cat", "dog", "cow"])
    logits = features @ weight.T + bias
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tagger.probabilities(features), expected, rtol=1e-5)
    tags = tagger.score(features, 0.0, 3)
    assert [t for t, _ in tags[0]] == ["cat", "cow", "dog"]
    np.testing.assert_allclose([p for _, p in tags[0]], expected[0][[0, 2, 1]], atol=1e-6)
    assert tagger.score(features, 0.4, 3)[0] == [("cat", pytest.approx(expected[0, 0], abs=1e-6))]
    assert len(tagger.score(features, 0.0, 1)[1]) == 1


def test_classifier_norms_restore_the_feature() -> None:
    rng = np.random.default_rng(11)
    weight = rng.standard_normal((10, 16)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    raw = (rng.standard_normal((6, 16)) * 4).astype(np.float32)
    norms = np.linalg.norm(raw, axis=1)
    unit = raw / norms[:, None]
    tagger = ClassifierTagger(weight, bias, [f"k{i}" for i in range(10)], block_rows=4)
    direct = tagger.score(raw, 0.0, 4)
    via_norms = tagger.score(unit, 0.0, 4, norms=norms)
    assert [[t for t, _ in r] for r in direct] == [[t for t, _ in r] for r in via_norms]
    with pytest.raises(ValueError):
        tagger.score(unit, 0.0, 4, norms=norms[:3])


def test_classifier_merges_classes_with_one_name() -> None:
    weight = np.eye(3, dtype=np.float32)
    tagger = ClassifierTagger(weight, np.zeros(3, np.float32), ["crane", "crane", "hen"])
    assert tagger.tag_names == ["crane", "hen"]
    probs = tagger.probabilities(np.array([[0.0, 0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probs, [[2 / 3, 1 / 3]], rtol=1e-5)


def test_imagenet_tag_names() -> None:
    pytest.importorskip("torchvision")
    from models.tags.zero_shot import imagenet_tag_names

    names = imagenet_tag_names()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and all(n == n.lower() for n in names)
    assert "cardigan" in names and "cardigan welsh corgi" in names


def _reference_select(probs: np.ndarray, min_score: float, max_tags: int) -> list[list[int]]:
    out = []
    for row in probs.tolist():
        ranked = sorted(range(len(row)), key=lambda j: (-row[j], j))
        out.append([j for j in ranked if row[j] >= np.float32(min_score)][:max_tags])
    return out


@pytest.mark.parametrize(
    ("min_score", "max_tags"), [(0.05, 10), (0.01, 3), (0.2, 10), (0.0, 5), (1e-9, 4), (0.0, 40)]
)
def test_selection_matches_a_plain_sort(min_score: float, max_tags: int) -> None:
    from models.tags.zero_shot import _select

    rng = np.random.default_rng(12)
    logits = rng.standard_normal((300, 30)).astype(np.float32) * 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = [f"c{i}" for i in range(30)]
    got = _select(probs.astype(np.float32), names, min_score, max_tags)
    expected = _reference_select(probs.astype(np.float32), min_score, max_tags)
    assert [[t for t, _ in row] for row in got] == [[names[j] for j in row] for row in expected]
    for row, p in zip(got, probs, strict=True):
        for tag, score in row:
            assert score == pytest.approx(float(p[int(tag[1:])]), abs=1e-6)
