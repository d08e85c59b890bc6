"""Photo text gate: does this photo probably show text worth running OCR on?

OCR costs about a second per image, so the photo pipeline asks this cheap question first
(one call per photo, on its upright ~1280-px preview, 10-20 ms of numpy + Pillow on one core).
Photographed documents, receipts, whiteboards, screenshots and signs should pass; holiday
photos, landscapes and portraits should not.

How it decides (each step has a physical reason, not a tuned artefact of test data):

1. The preview is reduced to about 640 px on its long side and made grey; a second pass at
   half that size looks for big lettering (signs) only.
2. *Strokes*: writing is thin marks darker (or lighter) than their surroundings.  A
   morphological black-hat (closing minus image, 5x5) finds marks at most ~4 px wide; a mark
   counts when it is at least 25% darker than the local background (a ratio, so shadows and
   exposure do not matter).  The same is done on the inverted image for light-on-dark text.
3. *Paper*: per 16x16 block, the background (3x3-smoothed, strokes excluded) must be flat
   compared with the strokes' contrast, as paper, a screen or a painted sign is; foliage,
   gravel, fabric and bark are not.  (Sensor noise, JPEG grain and fax dithering are finer
   than letters and are smoothed away.)
4. *Glyphs*: connected stroke pixels are grouped (run-length union-find, vectorised).
   Letters and words are compact blobs 3-30 px tall; branches, grass and mortar form large
   nets instead.  Of the ink on paper-like blocks, the share in glyph-sized blobs is kept.
   Blobs that fill their box (windows, bars, tiles) are not letters.
5. *Lines*: text is written along lines.  A glyph is *linked* when a glyph of similar size
   sits next to it along the line (small gap, same centre line within ~15 degrees of tilt);
   horizontal and vertical lines are both tried (pages lying sideways).  Most letters have
   such a neighbour; scattered blobs mostly do not (the linked share).
6. *Irregularity*: neighbouring letters differ in width and height; rows of identical marks
   (a grid of windows, a fence) are architecture, not writing.

The score multiplies soft ramps of these (the number of linked glyphs is the main evidence;
light-on-dark marks need more of it unless they look clean) into a number in [0, 1];
``likely_text`` is ``score >= GATE_THRESHOLD`` (0.5).  Cost: four passes at most, each a few
numpy operations on a 640x480 array; documents usually stop after the first.

Limits: letters smaller than ~6 px in the 1280-px preview (a small page far away) are not
seen; nor is handwriting that joins into long strokes, nor text on busy backgrounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["GATE_THRESHOLD", "GateResult", "text_gate"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

# Working size: long side of the reduced grey image.
WORK_SIDE = 640
# Block size for the background-flatness test.
BLOCK = 16
# Stroke detection: structuring element size and relative darkness of a stroke.
KERNEL = 5
STROKE_RATIO = 0.25
# Glyph size limits (pixels at working size).  The half-size pass looks for big lettering
# only: glyphs smaller than BIG_GLYPH_MIN_H there are the full-size pass's business.
GLYPH_MIN_H, BIG_GLYPH_MIN_H, GLYPH_MAX_H, GLYPH_MAX_SPAN = 3, 8, 30, 60
# A blob filling this share of its bounding box is a filled box, not a letter.
SOLID_FILL = 0.85
# Background around a glyph: std of its block's background (3x3-smoothed grey, strokes and a
# 1-px rim excluded) at most this share of the strokes' contrast.
FLAT_MAX = 0.08
# Neighbour test: gap along the line (x glyph size), centre-line offset (x glyph size).
GAP_MAX, OFFSET_MAX, SIZE_RATIO_MAX = 1.5, 0.4, 2.0
# Lines may be tilted: the centre line may drift by this much per pixel along it (tan 15 deg).
SKEW = 0.27
# Score shape: linked glyphs for a zero and a full count score.
LINKED_ZERO, LINKED_FULL = 6.0, 40.0
# Share of glyph-sized blobs that are linked: most letters have a neighbour, random blobs not.
LINKED_SHARE_ZERO, LINKED_SHARE_FULL = 0.3, 0.5
# Light-on-dark marks that do not look clean need this many times the linked glyphs.
LIGHT_EVIDENCE = 2.0
GATE_THRESHOLD = 0.5


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict: ``likely_text``, a ``score`` in [0, 1] and the ``reason`` in words."""

    likely_text: bool
    score: float
    reason: str


@dataclass(frozen=True)
class _Evidence:
    linked: int  # glyphs with a similar neighbour along a line
    glyph_ink: float  # share of the stroke ink on paper-like blocks that is in glyph-sized blobs
    identical: float  # share of neighbour pairs of (nearly) identical size
    solid: float  # share of glyph-sized blobs on paper that are filled boxes
    linked_share: float  # share of the (not filled) glyph-sized blobs on paper that are linked
    big: bool  # found by the half-size pass (large lettering)
    polarity: str  # "dark" or "light" writing


_NONE = _Evidence(0, 0.0, 0.0, 0.0, 0.0, False, "dark")


def text_gate(img: Image.Image) -> GateResult:
    """Decide whether OCR is worth running on ``img`` (an upright preview, any mode)."""
    grey = _grey(img, WORK_SIDE)
    if grey.size == 0 or int(grey.max()) - int(grey.min()) < 24:
        return GateResult(False, 0.0, "flat image, no marks at all")
    half = _halve(grey)
    best, best_score = _NONE, 0.0
    for arr, min_h in ((grey, GLYPH_MIN_H), (half, BIG_GLYPH_MIN_H)):
        for polarity in ("dark", "light"):
            ev = _evidence(arr if polarity == "dark" else 255 - arr, polarity, min_h)
            s = _score(ev)
            if s > best_score or (best is _NONE and ev.linked > best.linked):
                best, best_score = ev, s
            if best_score >= 1.0:
                break
        if best_score >= 1.0:
            break
    return GateResult(best_score >= GATE_THRESHOLD, round(best_score, 3), _reason(best, best_score))


# -- scoring ----------------------------------------------------------------------------------


def _ramp(x: float, zero: float, full: float) -> float:
    return min(1.0, max(0.0, (x - zero) / (full - zero)))


def _score(ev: _Evidence) -> float:
    if ev.linked <= 0:
        return 0.0
    # Light-on-dark writing (screens, signs) is rarer than bright structure on dark (lit
    # windows, mortar, sunlit threads): unless its marks look clean (nearly all paper ink in
    # glyphs, nearly all glyphs in lines, as on a screen or a sign) it needs twice the linked
    # glyphs, and paper ink that is mostly glyphs.
    dark = ev.polarity == "dark"
    clean = _ramp(ev.glyph_ink, 0.6, 0.9) * _ramp(ev.linked_share, 0.5, 0.8)
    need = 1.0 if dark else 1.0 + (LIGHT_EVIDENCE - 1.0) * (1.0 - clean)
    zero, full = math.log(LINKED_ZERO * need), math.log(LINKED_FULL * need)
    count = _ramp(math.log(ev.linked), zero, full)
    ink = _ramp(ev.glyph_ink, 0.05, 0.25) if dark else _ramp(ev.glyph_ink, 0.5, 0.8)
    lines = _ramp(ev.linked_share, LINKED_SHARE_ZERO, LINKED_SHARE_FULL)
    irregular = _ramp(ev.identical, 0.95, 0.75) * _ramp(ev.solid, 0.45, 0.25)
    return count * ink * lines * irregular


def _reason(ev: _Evidence, score: float) -> str:
    tail = f"(score {score:.2f})"
    if ev.linked == 0:
        return f"no letter-like marks along lines {tail}"
    where = "" if ev.polarity == "dark" else ", light on dark"
    big = ", large lettering" if ev.big else ""
    if score >= GATE_THRESHOLD:
        return f"looks like text: {ev.linked} letter-like marks in lines{where}{big} {tail}"
    if (ev.identical > 0.75 or ev.solid > 0.25) and ev.linked >= LINKED_ZERO:
        return f"regular pattern of identical marks (windows, fence, tiles), not writing {tail}"
    if ev.glyph_ink < 0.25 and ev.linked >= LINKED_ZERO:
        return f"thin marks mostly form large nets (branches, grass), not letters {tail}"
    return f"only {ev.linked} letter-like marks in lines, too few for text {tail}"


# -- image preparation ------------------------------------------------------------------------


def _grey(img: Image.Image, side: int) -> U8:
    """``img`` as 8-bit grey, reduced so its long side is about ``side`` pixels."""
    if img.mode not in ("RGB", "L"):
        if "A" in img.getbands() or img.mode == "P":
            rgba = img.convert("RGBA")
            base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(base, rgba).convert("RGB")
        else:
            img = img.convert("RGB")
    long_side = max(img.size)
    factor = max(1, round(long_side / side))
    if factor > 1:
        img = img.reduce(factor)
    if max(img.size) > side * 1.25:
        w, h = img.size
        f = side / max(w, h)
        img = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _halve(a: U8) -> U8:
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    b = a[:h, :w].astype(np.uint16)
    return ((b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2] + 2) // 4).astype(
        np.uint8
    )


def _rank_filter(a: U8, k: int, op: np.ufunc) -> U8:
    """Separable k x k maximum or minimum (``op`` is np.maximum or np.minimum), edges repeated."""
    r = k // 2
    hgt, wid = a.shape
    p = np.pad(a, ((0, 0), (r, r)), mode="edge")
    m = p[:, 0:wid].copy()
    for i in range(1, k):
        op(m, p[:, i : i + wid], out=m)
    p = np.pad(m, ((r, r), (0, 0)), mode="edge")
    out = p[0:hgt].copy()
    for i in range(1, k):
        op(out, p[i : i + hgt], out=out)
    return out


def _max_filter(a: U8, k: int) -> U8:
    return _rank_filter(a, k, np.maximum)


def _min_filter(a: U8, k: int) -> U8:
    return _rank_filter(a, k, np.minimum)


def _box3(a: U8) -> F32:
    """3x3 mean (edges repeated), as float32."""
    p = np.pad(a, 1, mode="edge").astype(np.float32)
    rows = p[:-2] + p[1:-1] + p[2:]
    out: F32 = (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) * np.float32(1 / 9)
    return out


def _block_sum(a: F32) -> F32:
    """Sums over BLOCK x BLOCK tiles (the ragged right and bottom edges are dropped)."""
    hb, wb = a.shape[0] // BLOCK, a.shape[1] // BLOCK
    out: F32 = a[: hb * BLOCK, : wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).sum(axis=(1, 3))
    return out


# -- evidence ---------------------------------------------------------------------------------


def _evidence(a: U8, polarity: str, min_h: int = GLYPH_MIN_H) -> _Evidence:
    """Glyph and line evidence for dark writing in ``a`` (pass 255 - a for light writing).

    Glyphs are ``GLYPH_MIN_H`` to ``GLYPH_MAX_H`` pixels tall and at least ``min_h`` pixels
    tall or wide.
    """
    big = min_h > GLYPH_MIN_H
    if min(a.shape) < BLOCK * 2:
        return _Evidence(0, 0.0, 0.0, 0.0, 0.0, big, polarity)
    closed = _min_filter(_max_filter(a, KERNEL), KERNEL)
    depth = closed.astype(np.int16) - a.astype(np.int16)  # how much darker than around
    strokes = depth.astype(np.float32) > STROKE_RATIO * (closed.astype(np.float32) + 8.0)
    if not strokes.any():
        return _Evidence(0, 0.0, 0.0, 0.0, 0.0, big, polarity)
    flat = _flat_blocks(a, depth, strokes)
    if not flat.any():
        return _Evidence(0, 0.0, 0.0, 0.0, 0.0, big, polarity)
    comps = _components(strokes)
    if comps is None:
        return _Evidence(0, 0.0, 0.0, 0.0, 0.0, big, polarity)
    y0, y1, x0, x1, area = comps.y0, comps.y1, comps.x0, comps.x1, comps.area
    h, w = y1 - y0, x1 - x0
    glyph = (
        (h >= GLYPH_MIN_H)
        & (h <= GLYPH_MAX_H)
        & (np.maximum(h, w) >= min_h)
        & (np.maximum(h, w) <= GLYPH_MAX_SPAN)
        & (area >= 4)
        & (area >= 0.12 * h * w)
    )
    # Of the ink on paper-like blocks, how much is in glyph-sized blobs (by runs of pixels)?
    run_len = comps.run_end - comps.run_start
    rb = np.minimum(comps.run_row // BLOCK, flat.shape[0] - 1)
    cb = np.minimum((comps.run_start + comps.run_end) // (2 * BLOCK), flat.shape[1] - 1)
    run_on_paper = flat[rb, cb]
    paper_ink = float(run_len[run_on_paper].sum())
    glyph_run = run_on_paper & glyph[comps.run_label]
    glyph_ink = float(run_len[glyph_run].sum()) / paper_ink if paper_ink else 0.0
    by = np.minimum((y0 + y1) // (2 * BLOCK), flat.shape[0] - 1)
    bx = np.minimum((x0 + x1) // (2 * BLOCK), flat.shape[1] - 1)
    on_paper = glyph & flat[by, bx]
    n_paper = int(on_paper.sum())
    if n_paper < 2:
        return _Evidence(0, glyph_ink, 0.0, 0.0, 0.0, big, polarity)
    # Letters are strokes and fill only part of their box; filled boxes are windows, bars, tiles.
    solid = area >= SOLID_FILL * h * w
    solid_share = float((on_paper & solid).sum()) / n_paper
    keep = on_paper & ~solid
    y0, y1, x0, x1 = y0[keep], y1[keep], x0[keep], x1[keep]
    best = (0, 0.0)
    for along0, along1, across0, across1 in ((x0, x1, y0, y1), (y0, y1, x0, x1)):
        linked, identical = _lines(along0, along1, across0, across1)
        if linked > best[0]:
            best = (linked, identical)
    share = best[0] / max(1, int(keep.sum()))
    return _Evidence(best[0], glyph_ink, best[1], solid_share, share, big, polarity)


def _flat_blocks(
    a: U8, depth: npt.NDArray[np.int16], strokes: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Blocks whose background (stroke pixels and their rim excluded) is flat vs the strokes.

    The grey is smoothed 3x3 first: sensor noise, JPEG grain and fax dithering are finer
    than letters and do not make paper less flat; foliage, gravel and fabric stay textured.
    """
    bg = 1 - _max_filter(strokes.view(np.uint8), 3)
    g = _box3(a)
    gb = g * bg
    n_bg = _block_sum(bg.astype(np.float32))
    mean = _block_sum(gb) / np.maximum(n_bg, 1.0)
    var = _block_sum(gb * g) / np.maximum(n_bg, 1.0) - mean * mean
    n_s = _block_sum(strokes.astype(np.float32))
    contrast = _block_sum(np.where(strokes, depth, 0).astype(np.float32)) / np.maximum(n_s, 1.0)
    std = np.sqrt(np.maximum(var, 0.0))
    ok: npt.NDArray[np.bool_] = (n_bg >= 0.3 * BLOCK * BLOCK) & (n_s > 0)
    ok &= std <= FLAT_MAX * (contrast + 4.0)
    return ok


@dataclass(frozen=True)
class _Components:
    """Connected components (bounding boxes, ends exclusive, and pixel counts) and the
    horizontal runs they are made of (each run's component, row, start and end)."""

    y0: I64
    y1: I64
    x0: I64
    x1: I64
    area: I64
    run_label: I64
    run_row: I64
    run_start: I64
    run_end: I64


def _components(mask: npt.NDArray[np.bool_]) -> _Components | None:
    """8-connected components of ``mask``."""
    hgt, wid = mask.shape
    padded = np.zeros((hgt, wid + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past its end
    edges = np.flatnonzero(d)
    n = len(edges) // 2
    if n == 0:
        return None
    # Row-major order: every row holds start, end, start, end, ...
    row64 = edges[0::2] // (wid + 1)
    start64 = edges[0::2] % (wid + 1)
    end64 = edges[1::2] % (wid + 1)
    # Runs of row r-1 touching a run of row r (8-connected): prev.end >= s and prev.start <= e.
    stride = wid + 4
    key_end = row64 * stride + end64
    key_start = row64 * stride + start64
    first = np.searchsorted(row64, np.arange(hgt + 1))
    lo = np.searchsorted(key_end, (row64 - 1) * stride + start64, "left")
    hi = np.searchsorted(key_start, (row64 - 1) * stride + end64, "right")
    prev = np.maximum(row64 - 1, 0)
    lo = np.maximum(lo, first[prev])
    hi = np.minimum(hi, first[row64])
    cnt = np.where(row64 > 0, np.maximum(hi - lo, 0), 0)
    total = int(cnt.sum())
    v = np.repeat(np.arange(n), cnt)
    u = np.repeat(lo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    parent = np.arange(n)
    if total:
        for _ in range(200):  # hook and compress until every edge joins equal roots
            pu, pv = parent[u], parent[v]
            if np.array_equal(pu, pv):
                break
            low = np.minimum(pu, pv)
            np.minimum.at(parent, pu, low)
            np.minimum.at(parent, pv, low)
            parent = parent[parent[parent]]
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    _, label = np.unique(parent, return_inverse=True)
    k = int(label.max()) + 1
    area = np.bincount(label, weights=end64 - start64, minlength=k).astype(np.int64)
    x0 = np.full(k, wid, np.int64)
    np.minimum.at(x0, label, start64)
    x1 = np.zeros(k, np.int64)
    np.maximum.at(x1, label, end64)
    y0 = np.full(k, hgt, np.int64)
    np.minimum.at(y0, label, row64)
    y1 = np.zeros(k, np.int64)
    np.maximum.at(y1, label, row64 + 1)
    return _Components(y0, y1, x0, x1, area, label, row64, start64, end64)


def _lines(a0: I64, a1: I64, b0: I64, b1: I64) -> tuple[int, float]:
    """Glyphs linked to a similar neighbour along axis a; share of near-identical pairs.

    ``a0, a1`` are each glyph's extent along the line, ``b0, b1`` across it.
    """
    if len(a0) < 2:
        return 0, 0.0
    size = (b1 - b0).astype(np.float32)
    centre = (b0 + b1).astype(np.float32) / 2
    order = np.argsort(centre, kind="stable")
    a0, a1, size, centre = a0[order], a1[order], size[order], centre[order]
    n = len(centre)
    # Candidate pairs: centres closer than the largest possible offset, found by a band search.
    reach = OFFSET_MAX * float(size.max()) + SKEW * (GAP_MAX + 1) * float(size.max())
    hi = np.searchsorted(centre, centre + reach, "right")
    cnt = hi - np.arange(n) - 1
    total = int(cnt.sum())
    if total == 0:
        return 0, 0.0
    i = np.repeat(np.arange(n), cnt)
    j = i + 1 + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    m = np.maximum(size[i], size[j])
    ratio = np.maximum(size[i], size[j]) / np.maximum(np.minimum(size[i], size[j]), 1.0)
    gap = np.maximum(a0[j] - a1[i], a0[i] - a1[j]).astype(np.float32)  # >= 0 apart, < 0 overlap
    mid = (a0 + a1).astype(np.float32) / 2
    ok = (
        (gap >= -1)
        & (gap <= GAP_MAX * m)
        & (np.abs(centre[j] - centre[i]) <= OFFSET_MAX * m + SKEW * np.abs(mid[j] - mid[i]))
        & (ratio <= SIZE_RATIO_MAX)
    )
    if not ok.any():
        return 0, 0.0
    ii, jj = i[ok], j[ok]
    linked = np.zeros(n, bool)
    linked[ii] = True
    linked[jj] = True
    width = (a1 - a0).astype(np.float32)
    same = (np.abs(width[ii] - width[jj]) <= 1) & (np.abs(size[ii] - size[jj]) <= 1)
    return int(linked.sum()), float(same.mean())
