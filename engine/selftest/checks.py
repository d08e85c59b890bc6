"""The self-test's checks: each reads what the engine made of the samples and says
pass, fail (with what to do) or skip (with why). Each returns one `CheckResult`.

They read the catalog and the thumbnails the way the app does (`Library.items`,
`Library.search`, `engine.vectors.similar`), never a stage's internals.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.selftest import CheckResult
from engine.selftest.samples import CORNERS, SampleSet

if TYPE_CHECKING:
    from engine.library import Library

SAMPLES = "Sample files made"
IMPORT = "Import catalogues the samples"
WORKER = "Worker host processes them"
METADATA = "Photo metadata (date, camera, size)"
THUMBNAILS = "Thumbnails keep orientation"
HEIC = "HEIC photos"
OCR = "OCR reads documents"
TEXT_SEARCH = "Text search finds documents"
TEXT_EMBED = "Text embeddings (MiniLM): search by meaning"
SIMILAR = "Similar photos (MobileNetV2)"
JOBS = "No job failed"
GPU = "GPU"
CLIP = "CLIP: photo search by meaning, zero-shot tags"
DETECT = "Object detection"

MEANING_QUERY = "morning meal at a coffee shop"  # no word of it is in any sample's text
MEANING_TARGET = "receipt.pdf"
MARKER_TOLERANCE = 60.0  # colour distance from a marker's colour (JPEG moves it ~5)
PROBLEMS_SHOWN = 4
NOT_KEPT_HINT = "run `shoebox self-test --keep DIR` to keep the library and its logs/"


@dataclass
class Context:
    """What a run made: the samples, the library, and which models it runs."""

    root: Path
    samples: SampleSet
    lib: Library
    embed_spec: str  # "" when no image model runs
    text_spec: str
    kept: bool = False
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # by sample file name

    def load_items(self) -> None:
        self.items = {}
        for item in self.lib.items():
            for path in item["paths"]:
                self.items[Path(path).name] = item

    def logs_hint(self) -> str:
        logs = self.lib.root / "logs" / "shoebox.log"
        return f"see {logs}" if self.kept else f"{NOT_KEPT_HINT} (its shoebox.log has the details)"


def timed(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """Run check `name`; one that raises is a failure that names the error."""
    started = time.monotonic()
    try:
        result = fn()
    except Exception as exc:  # a broken check must not stop the others
        result = CheckResult(
            name,
            "fail",
            f"the check could not run: {type(exc).__name__}: {exc}",
            "Report this to the Shoebox developers with the whole output of `shoebox self-test`.",
        )
    return CheckResult(
        result.name, result.status, result.detail, result.fix, time.monotonic() - started
    )


def _stage_problem(ctx: Context, name: str, stage: str) -> str | None:
    """Why `stage` did not finish for sample `name`, or None when it did."""
    item = ctx.items.get(name)
    if item is None:
        return f"{name} was not catalogued"
    job = item["stages"].get(stage)
    if job is None:
        return f"{name} has no {stage} job"
    if job["state"] == "done":
        return None
    reason = f": {job['error']}" if job.get("error") else ""
    return f"{name}: {stage} {job['state']}{reason.rstrip('.')}"


def _join(problems: list[str]) -> str:
    """The problems in one line; "a.jpg: X" and "b.pdf: X" become "a.jpg, b.pdf: X"."""
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        name, sep, what = problem.partition(": ")
        if sep and " " not in name:
            grouped.setdefault(what, []).append(name)
        else:
            grouped.setdefault(problem, [])
    problems = [f"{', '.join(names)}: {what}" if names else what for what, names in grouped.items()]
    shown = "; ".join(problems[:PROBLEMS_SHOWN])
    more = len(problems) - PROBLEMS_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


# -- metadata ------------------------------------------------------------------------


def _metadata_problems(ctx: Context, names: list[str]) -> list[str]:
    problems: list[str] = []
    for name in names:
        sample = ctx.samples.by_name(name)
        stage = _stage_problem(ctx, name, "metadata")
        if stage:
            problems.append(stage)
            continue
        item = ctx.items[name]
        meta = item.get("metadata") or {}
        seen = {
            "taken_at": item.get("taken_at"),
            "camera_make": meta.get("camera_make"),
            "camera_model": meta.get("camera_model"),
            "size": (meta.get("width"), meta.get("height")),
        }
        expected: dict[str, object] = {
            "taken_at": sample.taken_at,
            "camera_make": sample.camera_make,
            "camera_model": sample.camera_model,
            "size": sample.size,
        }
        for key, want in expected.items():
            if want is None:
                continue
            if key == "size":
                want = tuple(want)  # type: ignore[arg-type]
            if seen[key] != want:
                problems.append(f"{name}: {key} is {_show(seen[key])}, expected {_show(want)}")
    return problems


def _show(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return repr(value)


def check_metadata(ctx: Context) -> CheckResult:
    names = [s.name for s in ctx.samples.samples if s.taken_at and not s.name.endswith(".heic")]
    problems = _metadata_problems(ctx, names)
    pdf = next((s for s in ctx.samples.samples if s.name.endswith(".pdf")), None)
    if pdf is not None:
        stage = _stage_problem(ctx, pdf.name, "metadata")
        pages = ((ctx.items.get(pdf.name) or {}).get("metadata") or {}).get("pages")
        if stage:
            problems.append(stage)
        elif pages != 1:
            problems.append(f"{pdf.name}: {pages!r} pages, expected 1")
    if problems:
        return CheckResult(
            METADATA,
            "fail",
            _join(problems),
            "The photo metadata reader (Pillow's EXIF) misread the samples: reinstall "
            f"Shoebox; if it persists, {ctx.logs_hint()}",
        )
    orientations = ", ".join(str(ctx.samples.by_name(n).orientation) for n in names)
    return CheckResult(
        METADATA,
        "pass",
        f"{len(names)} photos (EXIF orientations {orientations}): date taken, camera and "
        "displayed size as written; the PDF has its 1 page",
    )


# -- thumbnails ----------------------------------------------------------------------

_COLOUR_NAMES = {"top-left": "red", "top-right": "green", "bottom-left": "blue"}


def _corner_colours(path: Path) -> tuple[tuple[int, int], dict[str, tuple[float, float, float]]]:
    """The thumbnail's size and the mean colour of a small box in each marker corner."""
    from PIL import Image, ImageStat

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    w, h = rgb.size
    side = max(2, int(min(w, h) * 0.08))
    at = {
        "top-left": (1, 1),
        "top-right": (w - side - 1, 1),
        "bottom-left": (1, h - side - 1),
        "bottom-right": (w - side - 1, h - side - 1),
    }
    colours: dict[str, tuple[float, float, float]] = {}
    for corner, (x, y) in at.items():
        r, g, b = ImageStat.Stat(rgb.crop((x, y, x + side, y + side))).mean
        colours[corner] = (r, g, b)
    return (w, h), colours


def _colour_name(colour: tuple[float, float, float]) -> str:
    best, distance = "something else", MARKER_TOLERANCE
    for corner, ref in CORNERS.items():
        d = sum((a - b) ** 2 for a, b in zip(colour, ref, strict=True)) ** 0.5
        if d < distance:
            best, distance = _COLOUR_NAMES[corner], d
    return best


def _thumbnail_problem(ctx: Context, name: str) -> str | None:
    """Why sample `name`'s thumbnail is not its upright scene, or None when it is."""
    stage = _stage_problem(ctx, name, "thumbnail")
    if stage:
        return stage
    item = ctx.items[name]
    path = item.get("thumbnail")
    if not path or not Path(path).is_file():
        return f"{name}: no thumbnail file"
    sample = ctx.samples.by_name(name)
    (w, h), colours = _corner_colours(Path(path))
    if sample.size is not None:
        sw, sh = sample.size
        if (w >= h) != (sw >= sh) or abs(w / h - sw / sh) > 0.05:
            return f"{name}: thumbnail is {w}×{h}, not the shape of the {sw}×{sh} photo (turned)"
    if not sample.upright:  # a page of text: white paper in the corners
        if any(min(c) < 200 for c in colours.values()):
            return f"{name}: the page's thumbnail does not show white paper in its corners"
        return None
    seen = {corner: _colour_name(colours[corner]) for corner in _COLOUR_NAMES}
    if seen != _COLOUR_NAMES:
        shown = ", ".join(f"{c} {seen[c]}" for c in _COLOUR_NAMES)
        want = ", ".join(f"{c} {v}" for c, v in _COLOUR_NAMES.items())
        return f"{name} (EXIF orientation {sample.orientation}): corners {shown}; upright is {want}"
    return None


def check_thumbnails(ctx: Context) -> CheckResult:
    names = [s.name for s in ctx.samples.samples if not s.name.endswith(".heic")]
    problems = [p for p in (_thumbnail_problem(ctx, n) for n in names) if p]
    if problems:
        return CheckResult(
            THUMBNAILS,
            "fail",
            _join(problems),
            "Thumbnails are not made upright: reinstall Shoebox (its Pillow may be damaged); "
            f"if it persists, {ctx.logs_hint()}",
        )
    photos = [n for n in names if ctx.samples.by_name(n).upright]
    orientations = sorted({ctx.samples.by_name(n).orientation for n in photos})
    return CheckResult(
        THUMBNAILS,
        "pass",
        f"{len(names)} thumbnails; the {len(photos)} photos (EXIF orientations "
        f"{', '.join(map(str, orientations))}) show their scene upright, judged by the "
        "corner markers' pixels; the page and the PDF show white paper",
    )


def check_heic(ctx: Context) -> CheckResult:
    heic = next((s for s in ctx.samples.samples if s.name.endswith(".heic")), None)
    fix = (
        "HEIC support (pillow-heif) is missing or broken in this installation: reinstall "
        "Shoebox (from source: `pip install pillow-heif`)."
    )
    if heic is None:
        why = ctx.samples.problems.get("photo.heic", "it was not made")
        return CheckResult(HEIC, "fail", f"no HEIC sample could be made: {why}", fix)
    problems = _metadata_problems(ctx, [heic.name])
    thumb = _thumbnail_problem(ctx, heic.name)
    if thumb:
        problems.append(thumb)
    if problems:
        return CheckResult(HEIC, "fail", _join(problems), fix)
    return CheckResult(
        HEIC,
        "pass",
        f"{heic.name}: date taken, camera ({heic.camera_model}) and size read; thumbnail upright",
    )


# -- text ------------------------------------------------------------------------------


def _words_of(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"\w+", text)}


def check_ocr(ctx: Context) -> CheckResult:
    from engine.ocr.tesseract import INSTALL_HINT, find_tesseract

    problems: list[str] = []
    waiting_for_tesseract = False
    for sample in ctx.samples.with_text():
        stage = _stage_problem(ctx, sample.name, "ocr")
        if stage:
            problems.append(stage)
            waiting_for_tesseract |= "tesseract" in stage.lower()
            continue
        item_id = ctx.items[sample.name]["id"]
        text = " ".join(
            str(r[0])
            for r in ctx.lib.catalog.conn.execute(
                "SELECT text FROM ocr_pages WHERE item_id = ? ORDER BY page", (item_id,)
            )
        )
        missing = [w for w in sample.words if w.casefold() not in _words_of(text)]
        if not text.strip():
            problems.append(f"{sample.name}: no text was read")
        elif missing:
            problems.append(
                f"{sample.name}: read {text[:60].strip()!r}… without {', '.join(missing)}"
            )
    if problems:
        if waiting_for_tesseract or find_tesseract() is None:
            fix = INSTALL_HINT
        else:
            fix = (
                "Tesseract ran but misread clean text: check its English data (eng.traineddata) "
                f"is installed; {ctx.logs_hint()}"
            )
        return CheckResult(OCR, "fail", _join(problems), fix)
    names = [s.name for s in ctx.samples.with_text()]
    count = sum(len(s.words) for s in ctx.samples.with_text())
    return CheckResult(
        OCR,
        "pass",
        f"{' and '.join(names)}: all {count} expected words read (tesseract {find_tesseract()})",
    )


def check_text_search(ctx: Context, ocr_ok: bool) -> CheckResult:
    if not ocr_ok:
        return CheckResult(TEXT_SEARCH, "skip", "needs the text OCR reads, and OCR failed")
    problems: list[str] = []
    found: list[str] = []
    for sample in ctx.samples.with_text():
        if not sample.search_word:
            continue
        item_id = ctx.items[sample.name]["id"]
        result = ctx.lib.search(sample.search_word)
        ids = [h.id for h in result.hits]
        if not ids or ids[0] != item_id:
            problems.append(
                f"searching {sample.search_word!r} found {_names(ctx, ids) or 'nothing'}, "
                f"not {sample.name} first"
            )
        else:
            found.append(f"{sample.search_word!r} → {sample.name}")
    if problems:
        return CheckResult(
            TEXT_SEARCH,
            "fail",
            _join(problems),
            f"The full-text index (SQLite FTS5) does not answer: {ctx.logs_hint()}",
        )
    return CheckResult(TEXT_SEARCH, "pass", "; ".join(found))


def _names(ctx: Context, ids: list[int]) -> str:
    by_id = {item["id"]: name for name, item in ctx.items.items()}
    return ", ".join(by_id.get(i, f"item {i}") for i in ids[:3])


def check_text_embeddings(ctx: Context, ocr_ok: bool) -> CheckResult:
    from models.spec import ModelSpec
    from models.weights import missing_reason, offline_action

    if not ctx.text_spec:
        return CheckResult(TEXT_EMBED, "skip", "no text model is configured")
    spec = ModelSpec.parse(ctx.text_spec)
    fix = f"The text model {spec.display} ships with Shoebox: {offline_action(spec)}."
    reason = missing_reason(spec)
    if reason:
        return CheckResult(TEXT_EMBED, "fail", reason, fix)
    if not ocr_ok:
        return CheckResult(TEXT_EMBED, "skip", "needs the text OCR reads, and OCR failed")
    problems = [
        p for p in (_stage_problem(ctx, s.name, "text_embed") for s in ctx.samples.with_text()) if p
    ]
    dims: set[int] = set()
    for sample in ctx.samples.with_text():
        rows = ctx.lib.catalog.conn.execute(
            "SELECT dim FROM text_vectors WHERE item_id = ? AND model = ?",
            (ctx.items[sample.name]["id"], ctx.text_spec),
        ).fetchall()
        if not rows:
            problems.append(f"{sample.name}: no passage vectors")
        dims |= {int(r[0]) for r in rows}
    if not problems:
        result = ctx.lib.search(MEANING_QUERY)
        target = ctx.items[MEANING_TARGET]["id"]
        hits = [h for h in result.hits if "text-meaning" in h.sources]
        notes = [n for n in result.notes if n.startswith("Documents")]
        if notes:
            problems += notes
        elif not hits or hits[0].id != target:
            problems.append(
                f"searching {MEANING_QUERY!r} by meaning found "
                f"{_names(ctx, [h.id for h in hits]) or 'nothing'}, not {MEANING_TARGET} first"
            )
    if problems:
        return CheckResult(TEXT_EMBED, "fail", _join(problems), f"{fix} {ctx.logs_hint()}")
    return CheckResult(
        TEXT_EMBED,
        "pass",
        f"{spec.display}: passages of both texts embedded ({', '.join(map(str, sorted(dims)))} "
        f"dimensions); {MEANING_QUERY!r} finds {MEANING_TARGET} by meaning",
    )


# -- image embeddings --------------------------------------------------------------------


def check_similar(ctx: Context, why_not: str | None) -> CheckResult:
    from engine.vectors import similar

    if not ctx.embed_spec:
        return CheckResult(SIMILAR, "skip", why_not or "no image model is configured")
    pair = next((s for s in ctx.samples.samples if s.duplicate_of), None)
    if pair is None or pair.duplicate_of is None:
        return CheckResult(SIMILAR, "skip", "no near-duplicate sample")
    problems = [p for p in (_stage_problem(ctx, n, "embed") for n in ctx.items) if p]
    if not problems:
        original = ctx.items[pair.duplicate_of]["id"]
        copy = ctx.items[pair.name]["id"]
        found = similar(
            ctx.lib.catalog.conn,
            ctx.lib.vector_indexes(),
            original,
            limit=3,
            preferred_model=ctx.embed_spec,
        )
        if not found or found[0]["id"] != copy:
            shown = ", ".join(
                f"{Path(h['paths'][0]).name if h['paths'] else h['id']} ({h['score']:.2f})"
                for h in found
            )
            problems.append(
                f"similar to {pair.duplicate_of}: {shown or 'nothing'}; expected {pair.name} first"
            )
        else:
            runner_up = f", next {found[1]['score']:.2f}" if len(found) > 1 else ""
            return CheckResult(
                SIMILAR,
                "pass",
                f"{len(ctx.items)} items embedded; {pair.name} is the nearest to "
                f"{pair.duplicate_of} (cosine {found[0]['score']:.2f}{runner_up})",
            )
    return CheckResult(
        SIMILAR,
        "fail",
        _join(problems),
        f"Image embeddings did not work: reinstall Shoebox; if it persists, {ctx.logs_hint()}",
    )


# -- jobs ------------------------------------------------------------------------------


def check_jobs(ctx: Context) -> CheckResult:
    rows = ctx.lib.catalog.conn.execute(
        """SELECT j.stage, j.state, j.error, (SELECT display FROM paths p
                  WHERE p.item_id = j.item_id ORDER BY p.id LIMIT 1)
           FROM jobs j WHERE j.state IN ('failed', 'dead') ORDER BY j.id"""
    ).fetchall()
    counts = {
        str(r[0]): int(r[1])
        for r in ctx.lib.catalog.conn.execute("SELECT state, count(*) FROM jobs GROUP BY 1")
    }
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    if rows:
        problems = [
            f"{Path(str(r[3] or '?')).name}: {r[0]} {r[1]}" + (f": {r[2]}" if r[2] else "")
            for r in rows
        ]
        return CheckResult(JOBS, "fail", _join(problems), ctx.logs_hint().capitalize() + ".")
    return CheckResult(JOBS, "pass", f"{sum(counts.values())} jobs: {summary}")


# -- the GPU -------------------------------------------------------------------------


def check_gpu(environment: dict[str, str]) -> CheckResult:
    """A small computation on the GPU compared with the CPU's; no GPU is not a failure."""
    try:
        import torch
    except Exception as exc:
        environment["gpu"] = "unknown"
        return CheckResult(
            GPU,
            "fail",
            f"torch cannot be loaded: {type(exc).__name__}: {exc}",
            "Reinstall Shoebox: its torch is missing or damaged.",
        )
    device, name = None, ""
    if torch.cuda.is_available():
        device, name = "cuda", torch.cuda.get_device_name(0)
        cuda = getattr(torch.version, "cuda", None)
        name += f" (CUDA {cuda})" if cuda else ""
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, name = "mps", "Apple GPU (MPS)"
    if device is None:
        environment["gpu"] = "none"
        return CheckResult(GPU, "skip", "no GPU; work runs on the CPU")
    environment["gpu"] = name
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=gen)
    b = torch.randn(256, 256, generator=gen)
    fix = (
        "The GPU does not compute correctly: update its driver; meanwhile run "
        "`shoebox config set device cpu` in your library to work on the CPU."
    )
    try:
        on_cpu = torch.tanh(a @ b)
        on_gpu = torch.tanh(a.to(device) @ b.to(device)).cpu()
    except Exception as exc:
        return CheckResult(GPU, "fail", f"{name}: {type(exc).__name__}: {exc}", fix)
    diff = float((on_cpu - on_gpu).abs().max())
    if not diff < 1e-2:
        return CheckResult(
            GPU, "fail", f"{name}: a matrix product differs from the CPU's by {diff:.3g}", fix
        )
    return CheckResult(
        GPU,
        "pass",
        f"{name}: a 256×256 matrix product matches the CPU's (max difference {diff:.1e})",
    )


# -- models that need downloading ---------------------------------------------------------


def skipped_models() -> list[CheckResult]:
    """CLIP and detection need downloaded weights: never run here, said so with why."""
    from engine.config import DEFAULT_DETECT_MODEL, DEFAULT_EMBED_MODEL

    return [
        timed(CLIP, lambda: _skip(CLIP, DEFAULT_EMBED_MODEL)),
        timed(DETECT, lambda: _skip(DETECT, DEFAULT_DETECT_MODEL)),
    ]


def _skip(check: str, spec: str) -> CheckResult:
    return CheckResult(check, "skip", _download_note(spec))


def _download_note(spec_text: str) -> str:
    from models.spec import ModelSpec
    from models.weights import find_local, offline_action

    spec = ModelSpec.parse(spec_text)
    base = (
        f"{spec.display} needs downloaded weights; the self-test runs only the models "
        "that ship with Shoebox"
    )
    try:
        found = find_local(spec)
    except Exception:  # only a note: whether its weights are here is then not said
        found = None
    if found is not None:
        return f"{base} (its weights are on this machine: {found.origin})"
    return f"{base} (not downloaded yet: {offline_action(spec)})"
