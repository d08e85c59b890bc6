"""The few-shot benchmark's data set: real embeddings of procedural photos and documents.

There is no real labelled photo collection on this machine and no internet, so the
pictures are drawn procedurally (by the generators the OCR/search tests use,
`tests/doccorpus.py`) and embedded with the app's real offline image model,
MobileNetV2 with its ImageNet weights (`create_embedder("torchvision:mobilenet_v2")`,
1280-d, no text tower, so the prior of an image label is the positive-minus-
unlabelled centroid). There is no CLIP weights file here: no image label gets a
text prior. Documents are the ground-truth text of `tests/doccorpus.make_documents`
(no OCR) embedded with the real all-MiniLM-L6-v2 (384-d); their prior IS the
MiniLM embedding of the label's name ("receipt", "electricity bill"), a real
zero-shot prior.

Photos pool (400×300, same camera model as the OCR tests: light, noise, blur, JPEG):

* `make_text_free_photos` scenes, 17 scene slots × `PHOTOS_PER_SCENE`: landscape and
  portrait twice each, city, grass, gravel, fabric, indoor, bark, beach, bricks,
  forest, plain (blank wall / sky), branches, skyline, fence. Every picture is a
  fresh random draw of its scene (sky colour, horizon, objects, lighting, tilt).
* `DOC_PHOTOS` phone photos of printed documents (`photograph(render_page(...))`)
  on textured tables.
* `CARS` car-like shapes (body, cabin, two wheels, random size/position/facing) drawn
  on a random scene: half red (the "red car" label), half in other colours (hard
  negatives); plus `RED_THINGS` red non-car blobs on scenes (more hard negatives).

Photo labels (name: what is positive): portrait (faces), beach, forest, city, bricks,
indoor, document_photo, red_car. Prevalence 3–10 %.

Documents pool: `DOCS` documents of 9 kinds (invoice, receipt, utility bill, letter,
bank statement, recipe, manual, insurance, medical; 11 % each); labels are kinds
(named in words) and a few topics inside a kind (electricity bill, car insurance,
fuel receipt, dentist; ~2 % each: near misses are other bills / other insurance).

Features are cached in bench/out/fewshot_features.npz (gitignored); `load()` builds
them once (~2 minutes on 2 cores) and reads the cache afterwards.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT

CACHE = OUT / "fewshot_features.npz"
VERSION = 1
SIZE = (400, 300)
PHOTOS_PER_SCENE = 100
DOC_PHOTOS = 120
CARS = 160
RED_THINGS = 60
DOCS = 1800

# label -> words for its name (documents' zero-shot prior is MiniLM of these words)
PHOTO_LABELS: tuple[str, ...] = (
    "portrait",
    "beach",
    "forest",
    "city",
    "bricks",
    "indoor",
    "document_photo",
    "red_car",
)
DOC_LABELS: dict[str, str] = {
    "invoice": "invoice",
    "receipt": "shop receipt",
    "utility_bill": "utility bill",
    "letter": "letter",
    "bank_statement": "bank statement",
    "recipe": "cooking recipe",
    "manual": "instruction manual",
    "insurance": "insurance policy",
    "medical": "medical document",
    "utility_bill/electricity": "electricity bill",
    "insurance/car": "car insurance",
    "receipt/fuel": "fuel receipt",
    "medical/dental": "dentist",
}


@dataclass(frozen=True)
class Domain:
    """One pool: features (n, d) float32 unit rows, ids (n,) int64, labels -> bool mask,
    and the prior of each label (None: centroid prior)."""

    name: str
    features: np.ndarray
    ids: np.ndarray
    labels: dict[str, np.ndarray]
    priors: dict[str, np.ndarray | None]


def _car(img: object, rng: random.Random, colour: tuple[int, int, int]) -> None:
    from PIL import Image, ImageDraw

    assert isinstance(img, Image.Image)
    w, h = img.size
    d = ImageDraw.Draw(img)
    cw = rng.uniform(0.35, 0.8) * w
    ch = cw * rng.uniform(0.28, 0.36)
    x0 = rng.uniform(0, w - cw)
    y0 = rng.uniform(h * 0.3, h - ch - 4)
    body_top = y0 + ch * 0.4
    d.rounded_rectangle((x0, body_top, x0 + cw, y0 + ch * 0.85), radius=ch * 0.12, fill=colour)
    front = rng.random() < 0.5
    a, b = (0.2, 0.7) if front else (0.3, 0.8)
    cabin = [
        (x0 + cw * (a - 0.05), body_top),
        (x0 + cw * (a + 0.08), y0),
        (x0 + cw * (b - 0.1), y0),
        (x0 + cw * (b + 0.05), body_top),
    ]
    d.polygon(cabin, fill=colour)
    glass = (170, 200, 220)
    d.polygon(
        [
            (x0 + cw * (a + 0.02), body_top - 2),
            (x0 + cw * (a + 0.1), y0 + ch * 0.08),
            (x0 + cw * (b - 0.12), y0 + ch * 0.08),
            (x0 + cw * (b - 0.02), body_top - 2),
        ],
        fill=glass,
    )
    r = ch * 0.2
    for cx in (x0 + cw * 0.2, x0 + cw * 0.8):
        cy = y0 + ch * 0.85
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(20, 20, 20))
        d.ellipse(
            (cx - r * 0.45, cy - r * 0.45, cx + r * 0.45, cy + r * 0.45), fill=(150, 150, 150)
        )
    lamp = x0 + cw - 6 if front else x0 + 2
    d.rectangle((lamp, body_top + 4, lamp + 5, body_top + 10), fill=(250, 240, 180))


def _red_blob(img: object, rng: random.Random) -> None:
    from PIL import Image, ImageDraw

    assert isinstance(img, Image.Image)
    w, h = img.size
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 3)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(20, w / 4), rng.uniform(20, h / 4)
        colour = (rng.randint(170, 230), rng.randint(10, 50), rng.randint(10, 50))
        if rng.random() < 0.5:
            d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
        else:
            pts = [
                (cx + rx * math.cos(t), cy + ry * math.sin(t))
                for t in np.linspace(0, 2 * math.pi, rng.randint(3, 7), endpoint=False)
            ]
            d.polygon(pts, fill=colour)


def _photos() -> tuple[list[object], dict[str, np.ndarray]]:
    from tests.doccorpus import (
        SCENE_NAMES,
        make_documents,
        make_text_free_photos,
        photograph,
        render_page,
    )

    images: list[object] = []
    kinds: list[str] = []
    n_scenes = PHOTOS_PER_SCENE * len(SCENE_NAMES)
    for i, img in enumerate(make_text_free_photos(n_scenes, seed=31, size=SIZE)):
        images.append(img)
        kinds.append(SCENE_NAMES[i % len(SCENE_NAMES)])
    for i, doc in enumerate(make_documents(DOC_PHOTOS, seed=32)):
        rng = random.Random(f"fewshot-docphoto:{i}")
        page = render_page(doc.lines[:30], dpi=100, font=rng.choice(("sans", "serif", "mono")))
        images.append(photograph(page, rng, size=SIZE if rng.random() < 0.7 else SIZE[::-1]))
        kinds.append("document_photo")
    backgrounds = make_text_free_photos(CARS + RED_THINGS, seed=33, size=SIZE)
    others = [(30, 60, 170), (40, 130, 60), (230, 230, 230), (230, 200, 40), (60, 60, 70)]
    for i, bg in enumerate(backgrounds):
        rng = random.Random(f"fewshot-car:{i}")
        img = bg.copy()
        if i < CARS:
            red = i % 2 == 0
            colour = (
                (rng.randint(170, 235), rng.randint(10, 45), rng.randint(10, 45))
                if red
                else tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in rng.choice(others))
            )
            _car(img, rng, colour)  # type: ignore[arg-type]
            kinds.append("red_car" if red else "other_car")
        else:
            _red_blob(img, rng)
            kinds.append("red_thing")
        images.append(img)
    kinds_arr = np.array(kinds)
    labels = {name: kinds_arr == name for name in PHOTO_LABELS}
    return images, labels


def _embed_photos(images: list[object]) -> np.ndarray:
    from models.embed import create_embedder

    embedder = create_embedder("torchvision:mobilenet_v2", "cpu")
    out = []
    for start in range(0, len(images), 32):
        batch = np.stack([embedder.preprocess(im) for im in images[start : start + 32]])  # type: ignore[arg-type]
        out.append(embedder.embed_images(batch))
    return np.concatenate(out).astype(np.float32)


def _docs() -> tuple[list[str], dict[str, np.ndarray]]:
    from tests.doccorpus import make_documents

    docs = make_documents(DOCS, seed=41)
    kinds = np.array([d.kind for d in docs])
    topics = np.array([f"{d.kind}/{d.fact('topic')}" for d in docs])
    labels = {name: (topics == name if "/" in name else kinds == name) for name in DOC_LABELS}
    return [d.text for d in docs], labels


def _build() -> dict[str, np.ndarray]:
    os.environ.setdefault("SHOEBOX_OFFLINE", "1")
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from models.text import DEFAULT_TEXT_MODEL, create_text_embedder

    t0 = time.perf_counter()
    images, photo_labels = _photos()
    t1 = time.perf_counter()
    photo_x = _embed_photos(images)
    t2 = time.perf_counter()
    texts, doc_labels = _docs()
    text_embedder = create_text_embedder(DEFAULT_TEXT_MODEL, "cpu")
    doc_x = text_embedder.embed_texts(texts).astype(np.float32)
    names = list(DOC_LABELS.values())
    prior_x = text_embedder.embed_texts(names).astype(np.float32)
    t3 = time.perf_counter()
    print(
        f"fewshot data: drew {len(images)} photos in {t1 - t0:.0f} s, embedded in {t2 - t1:.0f} s;"
        f" {len(texts)} documents embedded in {t3 - t2:.0f} s",
        file=sys.stderr,
    )
    arrays: dict[str, np.ndarray] = {
        "version": np.array(VERSION),
        "photo_x": photo_x,
        "doc_x": doc_x,
        "doc_prior": prior_x,
    }
    for k, v in photo_labels.items():
        arrays[f"photo_label:{k}"] = v
    for k, v in doc_labels.items():
        arrays[f"doc_label:{k}"] = v
    return arrays


def load(rebuild: bool = False) -> list[Domain]:
    """The two pools (photos, documents), from the cache when it is current."""
    arrays: dict[str, np.ndarray]
    if CACHE.exists() and not rebuild:
        with np.load(CACHE) as z:
            arrays = {k: z[k] for k in z.files}
        if int(arrays.get("version", -1)) != VERSION:
            arrays = _build()
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            np.savez(CACHE, **arrays)  # type: ignore[arg-type]
    else:
        arrays = _build()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, **arrays)  # type: ignore[arg-type]
    photo_x = arrays["photo_x"]
    doc_x = arrays["doc_x"]
    photos = Domain(
        "photos",
        photo_x,
        np.arange(1, len(photo_x) + 1, dtype=np.int64) * 7919,
        {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("photo_label:")},
        dict.fromkeys(PHOTO_LABELS),
    )
    doc_priors: dict[str, np.ndarray | None] = {
        name: arrays["doc_prior"][i] for i, name in enumerate(DOC_LABELS)
    }
    docs = Domain(
        "documents",
        doc_x,
        np.arange(1, len(doc_x) + 1, dtype=np.int64) * 104729 + 5,
        {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("doc_label:")},
        doc_priors,
    )
    return [photos, docs]


if __name__ == "__main__":
    for domain in load(rebuild="--rebuild" in sys.argv):
        counts = {k: int(v.sum()) for k, v in domain.labels.items()}
        print(domain.name, domain.features.shape, counts)
