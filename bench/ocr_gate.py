"""Photo text gate (engine/ocr/gate.py): accuracy and cost per preview.

Images are 1280-px previews (1280x960 or 960x1280) from tests/doccorpus.py: photographed
documents (pages and receipts; scale, tilt up to 15 degrees, one in six lying sideways,
perspective, shadow, noise, JPEG) and text-free photos (landscapes, portraits, cities,
skylines, fences, grass, gravel, fabric, bark, bricks, rooms, beaches, forests, bare trees,
blank frames), for each seed in --seeds; plus the photo-like images of tests/corpus.py
(make_corpus; its one real document page, the fax, counts as a document) and a few extra
cases (clean scans, a dark-mode screen, a light-on-dark sign) reported separately.
Time is wall time of text_gate() alone, one thread, image already decoded.
Last line: JSON with `docs_recall`, `photos_false_positive`, `gate_ms_p50`, `gate_ms_p95`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from _common import emit, percentile
from PIL import Image, ImageOps

from engine.ocr.gate import GateResult, text_gate
from tests.corpus import make_corpus
from tests.doccorpus import (
    SCENE_NAMES,
    make_documents,
    make_gate_set,
    photograph,
    render_doc,
    render_page,
)


def timed(img: Image.Image, times: list[float]) -> GateResult:
    start = time.perf_counter()
    result = text_gate(img)
    times.append((time.perf_counter() - start) * 1000)
    return result


def corpus_images(root: Path) -> tuple[list[Image.Image], list[Image.Image]]:
    """(documents, photos) of make_corpus, each as a <=1280-px upright preview."""
    corpus = make_corpus(root, n_photos=120)
    docs: list[Image.Image] = []
    photos: list[Image.Image] = []
    for path in corpus.good:
        if path.suffix.lower() in (".pdf", ".heic"):
            continue
        with Image.open(path) as im:
            img = ImageOps.exif_transpose(im)
            img.thumbnail((1280, 1280))
            img.load()
        (docs if path.name == "invoice-fax.tiff" else photos).append(img)
    return docs, photos


def extra_cases() -> dict[str, Image.Image]:
    """Text the generated sets do not cover: clean scans, light-on-dark writing."""
    doc = make_documents(12, seed=99)
    scan = render_doc(doc[3])[0].convert("RGB")
    scan.thumbnail((1280, 1280))
    lines = [doc[5].title, *doc[5].lines[:14]]
    dark_screen = ImageOps.invert(render_page(lines, size_pt=10)).convert("RGB")
    dark_screen = ImageOps.colorize(dark_screen.convert("L"), (30, 32, 38), (225, 228, 232))
    sign_page = render_page(["PLATFORM 4", "Trains to the airport", "EXIT  ->"], size_pt=40)
    sign = ImageOps.colorize(ImageOps.invert(sign_page), (20, 60, 150), (245, 245, 245))
    sign_photo = photograph(sign, random.Random(4), size=(1280, 960), fill=(0.7, 0.8))
    receipt = photograph(render_doc(doc[1])[0], random.Random(2), size=(960, 1280))
    return {
        "clean scan (300 dpi page, preview)": scan,
        "dark-mode screen": dark_screen,
        "light-on-dark sign, photographed": sign_photo,
        "receipt, portrait frame": receipt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3001, 3002, 3003])
    parser.add_argument("--docs", type=int, default=40, help="documents per seed")
    parser.add_argument("--photos", type=int, default=68, help="text-free photos per seed")
    args = parser.parse_args()

    times: list[float] = []
    doc_hits = doc_total = photo_hits = photo_total = 0
    by_scene: dict[str, list[int]] = {}
    for seed in args.seeds:
        docs, photos = make_gate_set(seed, args.docs, args.photos)
        for i, img in enumerate(docs):
            r = timed(img, times)
            doc_total += 1
            doc_hits += r.likely_text
            if not r.likely_text:
                print(f"seed {seed} missed document {i}: {r.reason}")
        for i, img in enumerate(photos):
            r = timed(img, times)
            scene = SCENE_NAMES[i % len(SCENE_NAMES)]
            by_scene.setdefault(scene, [0, 0])
            by_scene[scene][0] += r.likely_text
            by_scene[scene][1] += 1
            photo_total += 1
            photo_hits += r.likely_text
            if r.likely_text:
                print(f"seed {seed} false positive photo {i} ({scene}): {r.reason}")
        print(f"seed {seed}: {len(docs)} documents, {len(photos)} photos done", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        c_docs, c_photos = corpus_images(Path(tmp))
    c_doc_hits = sum(timed(img, times).likely_text for img in c_docs)
    c_photo_hits = sum(timed(img, times).likely_text for img in c_photos)
    print(f"tests/corpus.py: documents {c_doc_hits}/{len(c_docs)} pass, "
          f"photos {c_photo_hits}/{len(c_photos)} pass")  # fmt: skip

    print("false positives by scene:", {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_scene.items())})
    for name, img in extra_cases().items():
        r = text_gate(img)
        print(f"extra: {name}: {'text' if r.likely_text else 'no text'} - {r.reason}")

    p50, p95 = percentile(times, 50), percentile(times, 95)
    print(f"gate time per preview: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms "
          f"over {len(times)} images")  # fmt: skip
    recall = doc_hits / doc_total
    false_pos = photo_hits / photo_total
    print(f"documents recall {recall:.3f} ({doc_hits}/{doc_total}), "
          f"text-free false positives {false_pos:.3f} ({photo_hits}/{photo_total})")  # fmt: skip
    emit(
        {
            "benchmark": "ocr_gate",
            "docs_recall": round(recall, 4),
            "photos_false_positive": round(false_pos, 4),
            "gate_ms_p50": round(p50, 2),
            "gate_ms_p95": round(p95, 2),
            "docs": doc_total,
            "photos": photo_total,
            "corpus_photos_false_positive": round(c_photo_hits / max(1, len(c_photos)), 4),
        }
    )


if __name__ == "__main__":
    main()
