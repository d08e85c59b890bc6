"""Deterministic generator of test-data folders for Shoebox.

Everything here is derived from fixed seeds: calling :func:`make_corpus` on two different roots
produces the same relative paths with byte-identical contents (and identical mtimes).  No numpy,
no network; pixel content comes from Pillow operations plus ``random.Random(str_seed).randbytes``
(``Image.effect_noise`` is not used because it draws from the C library's global ``rand()`` state,
which would make the output depend on what else ran in the process).

Public API:

* :class:`Corpus` / :class:`ExifSpec` - the manifest returned by :func:`make_corpus`.
* :func:`make_corpus` - a mixed, nested folder (JPEG with EXIF, PNG, WebP, GIF, TIFF, BMP, HEIC,
  PDF, duplicates, broken files, skipped files, a FIFO, a symlink loop, a non-UTF-8 name).
* :func:`write_jpeg` - one photo-like JPEG with the requested EXIF.
* :func:`write_large_jpegs` - N camera-sized (12 MP by default) JPEGs, cached by file name.
* :func:`write_tiny_tree` - many tiny distinct PNGs, written by hand (fast).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps, TiffImagePlugin

__all__ = [
    "Corpus",
    "ExifSpec",
    "make_corpus",
    "write_jpeg",
    "write_large_jpegs",
    "write_tiny_tree",
]

TakenAtTag = Literal["DateTimeOriginal", "DateTime"]

# EXIF / TIFF tag numbers.
TAG_ORIENTATION = 0x0112
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_DATETIME = 0x0132
IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
TAG_LENS_MODEL = 0xA434
GPS_VERSION_ID = 0x0000
GPS_LATITUDE_REF = 0x0001
GPS_LATITUDE = 0x0002
GPS_LONGITUDE_REF = 0x0003
GPS_LONGITUDE = 0x0004

EXIF_DATE_FORMAT = "%Y:%m:%d %H:%M:%S"

# Upright size of the orientation test files (after EXIF transpose): landscape.
ORIENTATION_SIZE = (300, 200)

# Marker colour painted over the top-left quadrant of every image made by write_jpeg.
MARKER_RED = (214, 28, 36)

# For orientation k, exif_transpose applies _EXIF_TRANSPOSE[k]; we store the pixels
# transformed by the inverse so that after exif_transpose the image is upright.
_INVERSE_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # exif_transpose uses ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # exif_transpose uses ROTATE_90
}

# Fixed epoch for file mtimes: 2023-06-01 12:00:00 UTC.
_MTIME_BASE = 1_685_620_800


@dataclass(frozen=True)
class ExifSpec:
    """Expected EXIF content of one JPEG of the corpus (all ``None``: the file has no EXIF).

    ``taken_at`` is the value of ``date_tag`` (DateTimeOriginal in the Exif IFD, or only
    DateTime 0x0132 in IFD0).  ``gps`` is (lat, lon) in signed decimal degrees (south/west
    negative); the stored rationals round seconds to 1/1000, so compare with ~1e-5 tolerance.
    """

    taken_at: datetime | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    gps: tuple[float, float] | None = None
    orientation: int | None = None
    date_tag: TakenAtTag | None = None

    @property
    def has_exif(self) -> bool:
        return any(
            v is not None
            for v in (self.taken_at, self.make, self.model, self.lens, self.gps, self.orientation)
        )


@dataclass
class Corpus:
    """Manifest of a generated corpus.  All paths are ``root / relative``."""

    root: Path
    # Every supported, valid file: each must become a catalog item with metadata+thumbnail done.
    good: list[Path]
    # Byte-identical files in two different subfolders (both members also in ``good``).
    duplicate_pairs: list[tuple[Path, Path]]
    # Broken files -> "truncated" | "empty" | "not_an_image" | "huge_dimensions".
    bad: dict[Path, str]
    # Files that must be skipped (hidden files, files in hidden dirs, OS junk, unsupported).
    skipped: list[Path]
    # EXIF orientation 1..8 -> file; after exif_transpose each is 300x200 with a red top-left.
    jpeg_orientations: dict[int, Path]
    # Expected EXIF for every JPEG in ``good`` (ExifSpec() when the file has no EXIF).
    exif: dict[Path, ExifSpec]
    fifo: Path | None
    symlink_loop: Path | None
    non_utf8_name: Path | None
    pdf_multipage: Path
    # Extras (not part of the original brief, useful for assertions):
    pdf_pages: dict[Path, int] = field(default_factory=dict)  # page count of each PDF in good
    pdf_info: dict[Path, dict[str, str]] = field(default_factory=dict)  # {"title", "author"}
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # upright (w, h) of images
    mtimes: dict[Path, int] = field(default_factory=dict)  # mtime (epoch s) of every regular file

    def all_regular_files(self) -> list[Path]:
        """good + bad + skipped (every regular file the generator wrote)."""
        return [*self.good, *self.bad, *self.skipped]


# --------------------------------------------------------------------------------------------
# pixel content
# --------------------------------------------------------------------------------------------

# Gradient endpoints (dark, light).  Nothing here is red-dominant, so the red marker quadrant
# is the only red-dominant one.
_SKIES: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = [
    ((18, 40, 92), (150, 196, 235)),
    ((10, 30, 20), (170, 210, 150)),
    ((40, 40, 60), (200, 205, 215)),
    ((20, 60, 80), (190, 230, 235)),
    ((30, 30, 30), (235, 235, 225)),
    ((25, 45, 110), (240, 225, 170)),
]
_PALETTE: list[tuple[int, int, int]] = [
    (34, 139, 34),
    (60, 120, 60),
    (200, 200, 60),
    (90, 90, 110),
    (240, 240, 235),
    (30, 60, 140),
    (120, 160, 90),
    (70, 130, 180),
    (210, 210, 190),
    (40, 40, 40),
    (100, 150, 200),
    (160, 170, 120),
]


def _rng(*parts: object) -> random.Random:
    # str seeds are hashed with sha512 by random.Random: stable across processes and runs.
    return random.Random(":".join(str(p) for p in parts))


def _noise(size: tuple[int, int], rng: random.Random) -> Image.Image:
    w, h = size
    return Image.frombytes("L", (w, h), rng.randbytes(w * h))


def _render(
    size: tuple[int, int],
    rng: random.Random,
    *,
    marker: bool,
    grain: float = 0.10,
    shapes: tuple[int, int] = (5, 14),
) -> Image.Image:
    """A photo-like RGB image: gradient sky, blotchy texture, shapes, film grain."""
    w, h = size
    dark, light = rng.choice(_SKIES)
    grad = Image.radial_gradient("L") if rng.random() < 0.3 else Image.linear_gradient("L")
    if rng.random() < 0.5:
        grad = grad.transpose(Image.Transpose.ROTATE_180)
    grad = grad.resize((w, h), Image.Resampling.BILINEAR)
    img = ImageOps.colorize(grad, black=dark, white=light)

    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(*shapes)):
        colour = rng.choice(_PALETTE)
        x0 = rng.randrange(-w // 4, w)
        y0 = rng.randrange(-h // 4, h)
        x1 = x0 + rng.randint(max(2, w // 20), max(3, w // 2))
        y1 = y0 + rng.randint(max(2, h // 20), max(3, h // 2))
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)

    # Low-frequency blotches (cloud/foliage texture) and per-pixel grain, both seeded.
    tw, th = max(2, min(w // 24, 96)), max(2, min(h // 24, 72))
    blotch_alpha = 0.18
    tex = _noise((tw, th), rng).resize((w, h), Image.Resampling.BILINEAR)
    if grain > 0:
        tex = Image.blend(tex, _noise((w, h), rng), grain / (blotch_alpha + grain))
    img = Image.blend(img, Image.merge("RGB", (tex, tex, tex)), blotch_alpha + grain)

    if marker:
        ImageDraw.Draw(img).rectangle((0, 0, (w + 1) // 2 - 1, (h + 1) // 2 - 1), fill=MARKER_RED)
    return img


# --------------------------------------------------------------------------------------------
# EXIF
# --------------------------------------------------------------------------------------------


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    value = abs(value)
    deg = int(value)
    minutes_f = (value - deg) * 60
    minutes = int(minutes_f)
    milli_sec = round((minutes_f - minutes) * 60 * 1000)
    return (
        TiffImagePlugin.IFDRational(deg, 1),
        TiffImagePlugin.IFDRational(minutes, 1),
        TiffImagePlugin.IFDRational(milli_sec, 1000),
    )


def _build_exif(
    *,
    orientation: int | None,
    taken_at: datetime | None,
    make: str | None,
    model: str | None,
    lens: str | None,
    gps: tuple[float, float] | None,
    taken_at_tag: TakenAtTag,
) -> Image.Exif | None:
    if all(v is None for v in (orientation, taken_at, make, model, lens, gps)):
        return None
    exif = Image.Exif()
    if orientation is not None:
        exif[TAG_ORIENTATION] = orientation
    if make is not None:
        exif[TAG_MAKE] = make
    if model is not None:
        exif[TAG_MODEL] = model
    if taken_at is not None and taken_at_tag == "DateTime":
        exif[TAG_DATETIME] = taken_at.strftime(EXIF_DATE_FORMAT)
    if (taken_at is not None and taken_at_tag == "DateTimeOriginal") or lens is not None:
        sub = exif.get_ifd(IFD_EXIF)
        if taken_at is not None and taken_at_tag == "DateTimeOriginal":
            sub[TAG_DATETIME_ORIGINAL] = taken_at.strftime(EXIF_DATE_FORMAT)
        if lens is not None:
            sub[TAG_LENS_MODEL] = lens
    if gps is not None:
        lat, lon = gps
        gps_ifd = exif.get_ifd(IFD_GPS)
        gps_ifd[GPS_VERSION_ID] = b"\x02\x03\x00\x00"
        gps_ifd[GPS_LATITUDE_REF] = "N" if lat >= 0 else "S"
        gps_ifd[GPS_LATITUDE] = _dms(lat)
        gps_ifd[GPS_LONGITUDE_REF] = "E" if lon >= 0 else "W"
        gps_ifd[GPS_LONGITUDE] = _dms(lon)
    return exif


def write_jpeg(
    path: Path,
    size: tuple[int, int],
    *,
    orientation: int | None = None,
    taken_at: datetime | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    gps: tuple[float, float] | None = None,
    seed: int = 0,
    quality: int = 90,
    taken_at_tag: TakenAtTag = "DateTimeOriginal",
    marker: bool = True,
) -> Path:
    """Write a photo-like JPEG and return ``path``.

    ``size`` is the *upright* (displayed) size: for orientations 5-8 the stored pixel array is
    ``(h, w)``.  With ``marker`` (default) the top-left quadrant of the upright image is solid red
    and nothing else is red-dominant, so a correct EXIF transpose can be checked from pixels.
    ``taken_at`` goes to DateTimeOriginal (Exif IFD) or, with ``taken_at_tag="DateTime"``, only
    to DateTime (IFD0).  With every EXIF argument ``None`` the file has no EXIF block at all.
    Distinct ``seed`` -> distinct pixels.
    """
    if orientation is not None and orientation not in _INVERSE_TRANSPOSE:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    img = _render(size, _rng("jpeg", seed, size[0], size[1]), marker=marker)
    op = _INVERSE_TRANSPOSE.get(orientation or 1)
    if op is not None:
        img = img.transpose(op)
    exif = _build_exif(
        orientation=orientation,
        taken_at=taken_at,
        make=make,
        model=model,
        lens=lens,
        gps=gps,
        taken_at_tag=taken_at_tag,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if exif is None:
        img.save(path, format="JPEG", quality=quality)
    else:
        img.save(path, format="JPEG", quality=quality, exif=exif)
    return path


# --------------------------------------------------------------------------------------------
# large JPEGs (benchmarks)
# --------------------------------------------------------------------------------------------


def write_large_jpegs(
    root: Path, count: int, *, megapixels: float = 12.0, seed: int = 0
) -> list[Path]:
    """Write ``count`` camera-sized 4:3 JPEGs (12 MP -> 4000x3000) under ``root``.

    Photo-like content (gradients + shapes + grain, ~2-5 MB each at quality 90), EXIF
    DateTimeOriginal + Orientation 1, distinct per file.  File names encode the parameters;
    a file that already exists is not rewritten (writes go through a temp file + rename, so an
    existing file is always complete).
    """
    unit = math.sqrt(megapixels * 1_000_000 / 12)
    w, h = round(unit * 4), round(unit * 3)
    mp_tag = f"{megapixels:g}".replace(".", "p")
    root.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    base = datetime(2021, 3, 1, 8, 0, 0)
    for i in range(count):
        path = root / f"large_{mp_tag}mp_s{seed}_{i:05d}.jpg"
        out.append(path)
        if path.is_file() and path.stat().st_size > 0:
            continue
        rng = _rng("large", megapixels, seed, i)
        img = _render((w, h), rng, marker=False, grain=rng.uniform(0.07, 0.12), shapes=(12, 30))
        exif = _build_exif(
            orientation=1,
            taken_at=base + timedelta(minutes=17 * i + seed * 100_000),
            make="Canon",
            model="Canon EOS R6",
            lens="RF24-105mm F4 L IS USM",
            gps=None,
            taken_at_tag="DateTimeOriginal",
        )
        tmp = path.with_name(f".{path.name}.tmp")
        img.save(tmp, format="JPEG", quality=90, exif=exif)
        os.replace(tmp, path)
    return out


# --------------------------------------------------------------------------------------------
# tiny PNG tree (scale tests)
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


_TINY = 8
_TINY_HEAD = _PNG_SIGNATURE + _png_chunk(
    b"IHDR", struct.pack(">IIBBBBB", _TINY, _TINY, 8, 2, 0, 0, 0)
)
_PNG_IEND = _png_chunk(b"IEND", b"")


# Base 8x8 RGB pattern (diagonal gradient, different per channel) and 256 "tint" tables; a
# file's pixels are base.translate(tint[index]) with the index itself patched into pixels 0-1.
_TINY_BASE = bytes(
    ((x + y) * 12 + c * 85 + (x * y if c == 1 else 0)) & 0xFF
    for y in range(_TINY)
    for x in range(_TINY)
    for c in range(3)
)
_TINY_TINT = [bytes((v + t) & 0xFF for v in range(256)) for t in range(256)]
_TINY_ROW = _TINY * 3
_O_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def _tiny_png(index: int) -> bytes:
    px = bytearray(_TINY_BASE.translate(_TINY_TINT[(index * 37) & 0xFF]))
    px[0:6] = (index & 0xFFFFFFFFFFFF).to_bytes(6, "big")
    raw = b"".join([b"\x00" + px[r : r + _TINY_ROW] for r in range(0, len(px), _TINY_ROW)])
    return _TINY_HEAD + _png_chunk(b"IDAT", zlib.compress(raw, 1)) + _PNG_IEND


def write_tiny_tree(root: Path, count: int, *, per_dir: int = 500) -> int:
    """Write ``count`` distinct valid 8x8 PNGs, ``per_dir`` per subfolder; returns ``count``.

    Layout: ``root/d00000/t0000000.png`` ...  PNG bytes are assembled by hand (no Pillow), so
    100,000 files take a few seconds.
    """
    if per_dir < 1:
        raise ValueError("per_dir must be >= 1")
    root.mkdir(parents=True, exist_ok=True)
    current_dir = ""
    for i in range(count):
        if i % per_dir == 0:
            current_dir = os.path.join(root, f"d{i // per_dir:05d}")
            os.makedirs(current_dir, exist_ok=True)
        fd = os.open(os.path.join(current_dir, f"t{i:07d}.png"), _O_FLAGS, 0o644)
        try:
            os.write(fd, _tiny_png(i))
        finally:
            os.close(fd)
    return count


def _huge_png() -> bytes:
    """A PNG whose IHDR claims 100000x100000 8-bit greyscale pixels, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64, 9)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _PNG_IEND


# --------------------------------------------------------------------------------------------
# make_corpus
# --------------------------------------------------------------------------------------------

_CAMERAS: list[tuple[str, str, str | None]] = [
    ("Canon", "Canon EOS 5D Mark IV", "EF24-105mm f/4L IS USM"),
    ("NIKON CORPORATION", "NIKON D750", "24.0-120.0 mm f/4.0"),
    ("Apple", "iPhone 12 Pro", "iPhone 12 Pro back triple camera 4.2mm f/1.6"),
    ("SONY", "ILCE-7M3", "FE 28-70mm F3.5-5.6 OSS"),
    ("FUJIFILM", "X-T3", "XF18-55mmF2.8-4 R LM OIS"),
    ("samsung", "SM-G991B", None),
]

# (lat, lon): north/east, south/east, north/west, south/west, far north.
_PLACES: list[tuple[float, float]] = [
    (48.858370, 2.294481),  # Paris
    (-33.856784, 151.215297),  # Sydney
    (40.689247, -74.044502),  # New York
    (-22.951916, -43.210487),  # Rio de Janeiro
    (64.146582, -21.942635),  # Reykjavik
]

# (relative folder, year, first month of the season)
_PHOTO_FOLDERS: list[tuple[str, int, int]] = [
    ("2019/summer", 2019, 6),
    ("2019/winter", 2019, 12),
    ("2019/été à Paris", 2019, 7),
    ("2020/spring", 2020, 3),
    ("2021/trip-iceland/day 1", 2021, 8),
    ("2021/trip-iceland/day 2", 2021, 8),
    ("2022/family", 2022, 4),
    ("2023/misc", 2023, 10),
]

_ASPECTS: list[tuple[int, int]] = [(4, 3), (3, 2), (16, 9), (1, 1)]


class _Builder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.corpus = Corpus(
            root=root,
            good=[],
            duplicate_pairs=[],
            bad={},
            skipped=[],
            jpeg_orientations={},
            exif={},
            fifo=None,
            symlink_loop=None,
            non_utf8_name=None,
            pdf_multipage=root / "scans" / "statement-2023-Q3.pdf",
        )

    # -- helpers ------------------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            p.unlink()
        return p

    def stamp(self, p: Path) -> None:
        # Derived from the relative path only: independent of root, n_photos and order.
        rel = os.fsencode(p.relative_to(self.root).as_posix())
        mtime = _MTIME_BASE + zlib.crc32(rel) % (365 * 86_400)
        os.utime(p, (mtime, mtime))
        self.corpus.mtimes[p] = mtime

    def good(self, p: Path, size: tuple[int, int] | None = None) -> Path:
        self.stamp(p)
        self.corpus.good.append(p)
        if size is not None:
            self.corpus.sizes[p] = size
        return p

    def jpeg(
        self,
        rel: str,
        size: tuple[int, int],
        seed: int,
        spec: ExifSpec,
    ) -> Path:
        p = write_jpeg(
            self.path(rel),
            size,
            orientation=spec.orientation,
            taken_at=spec.taken_at,
            make=spec.make,
            model=spec.model,
            lens=spec.lens,
            gps=spec.gps,
            seed=seed,
            quality=85 + seed % 10,
            taken_at_tag=spec.date_tag or "DateTimeOriginal",
        )
        self.corpus.exif[p] = spec
        return self.good(p, size)

    def image(self, rel: str, img: Image.Image, fmt: str, **params: object) -> Path:
        p = self.path(rel)
        img.save(p, format=fmt, **params)
        return self.good(p, img.size)

    def copy(self, src: Path, rel: str) -> Path:
        dst = self.path(rel)
        shutil.copyfile(src, dst)
        if src in self.corpus.exif:
            self.corpus.exif[dst] = self.corpus.exif[src]
        self.corpus.duplicate_pairs.append((src, dst))
        return self.good(dst, self.corpus.sizes.get(src))

    def raw(self, rel: str, data: bytes) -> Path:
        p = self.path(rel)
        p.write_bytes(data)
        self.stamp(p)
        return p

    # -- sections -----------------------------------------------------------------------------

    def photos(self, n: int) -> None:
        for i in range(n):
            folder, year, month = _PHOTO_FOLDERS[i % len(_PHOTO_FOLDERS)]
            rng = _rng("photo", i)
            # Mostly small (keeps generation fast), a few up to 1600 px.
            bucket = rng.random()
            if bucket < 0.6:
                long_side = rng.randint(200, 640)
            elif bucket < 0.9:
                long_side = rng.randint(641, 1024)
            else:
                long_side = rng.randint(1025, 1600)
            a, b = rng.choice(_ASPECTS)
            size = (long_side, max(1, long_side * b // a))
            taken = datetime(year, month, 1, 7, 0, 0) + timedelta(
                days=rng.randrange(80), seconds=rng.randrange(14 * 3600)
            )
            make, model, lens = _CAMERAS[i % len(_CAMERAS)]
            gps: tuple[float, float] | None = None
            if i % 5 == 1:
                lat, lon = _PLACES[(i // 5) % len(_PLACES)]
                gps = (
                    round(lat + rng.uniform(-0.01, 0.01), 6),
                    round(lon + rng.uniform(-0.01, 0.01), 6),
                )
            orientation: int | None = 1
            if i % 8 == 5:
                orientation = 6
                size = (size[1], size[0])  # portrait shot held upright
            elif i % 16 == 14:
                orientation = 8
                size = (size[1], size[0])
            elif i % 7 == 0:
                orientation = None  # camera that does not write the tag
            spec: ExifSpec
            if i % 10 == 3:
                spec = ExifSpec()  # no EXIF at all (e.g. edited / exported)
            elif i % 10 == 7:
                spec = ExifSpec(
                    taken_at=taken,
                    make=make,
                    model=model,
                    orientation=orientation,
                    date_tag="DateTime",
                )
            else:
                spec = ExifSpec(
                    taken_at=taken,
                    make=make,
                    model=model,
                    lens=lens,
                    gps=gps,
                    orientation=orientation,
                    date_tag="DateTimeOriginal",
                )
            ext = (".JPG", ".jpeg", ".jpg", ".jpg")[i % 4]
            stem = f"IMG_{1000 + i:04d}" if i % 3 else f"DSC{10_000 + i:05d}"
            if i == 2:
                stem = "beach day (1)"
            self.jpeg(f"{folder}/{stem}{ext}", size, 10_000 + i, spec)

    def orientations(self) -> None:
        for k in range(1, 9):
            spec = ExifSpec(
                taken_at=datetime(2020, 5, k, 12, 0, k),
                make="Apple",
                model="iPhone 8",
                lens="iPhone 8 back camera 3.99mm f/1.8",
                orientation=k,
                date_tag="DateTimeOriginal",
            )
            p = self.jpeg(f"orientation/orient_{k}.jpg", ORIENTATION_SIZE, 20_000 + k, spec)
            self.corpus.jpeg_orientations[k] = p

    def other_formats(self) -> None:
        # PNG: RGB, RGBA with transparency, greyscale, palette.
        for j in range(2):
            img = _render((640 + 64 * j, 400 + 40 * j), _rng("png", j), marker=False, grain=0.0)
            self.image(f"2020/screenshots/Screenshot 2020-0{j + 1}-1{j}.png", img, "PNG")
        rgba = _render((320, 320), _rng("png", "rgba"), marker=False, grain=0.0).convert("RGBA")
        alpha = Image.radial_gradient("L").resize((320, 320))
        rgba.putalpha(ImageOps.invert(alpha))
        self.image("2020/screenshots/sticker.png", rgba, "PNG")
        grey = _render((500, 700), _rng("png", "L"), marker=False, grain=0.0).convert("L")
        self.image("scans/page-grey.png", grey, "PNG")
        pal = _render((400, 300), _rng("png", "P"), marker=False, grain=0.0).quantize(64)
        self.image("2020/screenshots/palette.png", pal, "PNG")

        # WebP: lossy, lossless, lossy with alpha.
        for j in range(2):
            img = _render((800, 600 - 50 * j), _rng("webp", j), marker=False)
            self.image(f"2021/web/download_{j}.webp", img, "WEBP", quality=80, method=2)
        img = _render((300, 300), _rng("webp", "lossless"), marker=False, grain=0.0)
        self.image("2021/web/icon-lossless.webp", img, "WEBP", lossless=True, method=1)
        img = _render((360, 240), _rng("webp", "alpha"), marker=False).convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize((360, 240)))
        self.image("2021/web/fade.webp", img, "WEBP", quality=75)

        # GIF: two static, one animated (3 frames).
        for j in range(2):
            img = _render((320 + 20 * j, 240), _rng("gif", j), marker=False, grain=0.0)
            img = img.quantize(128)
            self.image(f"gifs/static_{j}.gif", img, "GIF")
        frames = [
            _render((200, 150), _rng("gif", "anim", f), marker=False, grain=0.0).quantize(64)
            for f in range(3)
        ]
        p = self.path("gifs/animated.gif")
        frames[0].save(
            p, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0
        )
        self.good(p, frames[0].size)

        # TIFF: RGB LZW, RGB uncompressed (.tif), greyscale deflate, 1-bit G4 fax-style scan.
        img = _render((600, 450), _rng("tiff", 0), marker=False, grain=0.0)
        self.image("scans/photo-scan-1.tiff", img, "TIFF", compression="tiff_lzw")
        img = _render((300, 220), _rng("tiff", 1), marker=False, grain=0.0)
        self.image("scans/photo-scan-2.tif", img, "TIFF")
        img = _render((500, 650), _rng("tiff", 2), marker=False, grain=0.0).convert("L")
        self.image("scans/letter-grey.tiff", img, "TIFF", compression="tiff_adobe_deflate")
        page = self._document_page((850, 1100), "Invoice #4711", _rng("tiff", 3)).convert("1")
        self.image("scans/invoice-fax.tiff", page, "TIFF", compression="group4")

        # BMP: three RGB.
        for j in range(3):
            img = _render((256 + 32 * j, 192 + 16 * j), _rng("bmp", j), marker=False, grain=0.0)
            self.image(f"misc/old/bitmap_{j}.bmp", img, "BMP")

    def heic(self) -> None:
        import pillow_heif

        pillow_heif.register_heif_opener()
        names = ["IMG_5001.heic", "IMG_5002.heic", "IMG_5003.HEIC"]
        for j, name in enumerate(names):
            img = _render((384 - 32 * j, 288), _rng("heic", j), marker=False, grain=0.04)
            self.image(f"2022/phone/{name}", img, "HEIF", quality=70)

    def _document_page(
        self, size: tuple[int, int], heading: str, rng: random.Random
    ) -> Image.Image:
        page = Image.new("RGB", size, (250, 249, 244))
        draw = ImageDraw.Draw(page)
        try:
            big: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(36)
            small: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(16)
        except (OSError, ImportError):  # pragma: no cover - Pillow without FreeType
            big = small = ImageFont.load_default()
        w, h = size
        draw.text((60, 50), heading, fill=(10, 10, 10), font=big)
        draw.line((60, 110, w - 60, 110), fill=(60, 60, 60), width=2)
        y = 140
        while y < h - 80:
            words = " ".join(
                "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
                for _ in range(rng.randint(5, 10))
            )
            draw.text((60, y), words, fill=(30, 30, 40), font=small)
            amount = f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}"
            draw.text((w - 160, y), amount, fill=(30, 30, 40), font=small)
            y += 28
        return page

    def pdfs(self) -> None:
        pages = [
            self._document_page((850, 1100), f"Quarterly Statement - page {n}", _rng("pdf", n))
            for n in range(1, 4)
        ]
        fixed = time.gmtime(_MTIME_BASE)
        p = self.corpus.pdf_multipage
        p.parent.mkdir(parents=True, exist_ok=True)
        pages[0].save(
            p,
            format="PDF",
            save_all=True,
            append_images=pages[1:],
            resolution=100.0,
            title="Quarterly Statement",
            author="Acme Bank",
            creationDate=fixed,
            modDate=fixed,
        )
        self.good(p)
        self.corpus.pdf_pages[p] = 3
        self.corpus.pdf_info[p] = {"title": "Quarterly Statement", "author": "Acme Bank"}

        receipt = self._document_page((600, 900), "Receipt", _rng("pdf", "receipt"))
        q = self.path("scans/receipts/receipt-0001.pdf")
        receipt.save(
            q,
            format="PDF",
            resolution=100.0,
            title="Receipt",
            author="Corner Shop",
            creationDate=fixed,
            modDate=fixed,
        )
        self.good(q)
        self.corpus.pdf_pages[q] = 1
        self.corpus.pdf_info[q] = {"title": "Receipt", "author": "Corner Shop"}

    def duplicates(self) -> None:
        spec = ExifSpec(
            taken_at=datetime(2018, 8, 14, 16, 30, 0),
            make="Canon",
            model="Canon EOS 5D Mark IV",
            lens="EF24-105mm f/4L IS USM",
            gps=(45.832622, 6.865175),  # Mont Blanc
            orientation=1,
            date_tag="DateTimeOriginal",
        )
        a0 = self.jpeg("dupes/a/mountain.jpg", (800, 600), 30_000, spec)
        self.copy(a0, "dupes/b/mountain copy.jpg")

        img = _render((500, 400), _rng("dupe", "png"), marker=False, grain=0.0)
        a1 = self.image("dupes/a/diagram.png", img, "PNG")
        self.copy(a1, "dupes/b/diagram.png")

        img = _render((480, 320), _rng("dupe", "webp"), marker=False)
        a2 = self.image("dupes/a/meme.webp", img, "WEBP", quality=80)
        self.copy(a2, "dupes/b/meme (1).webp")

        # A triple, recorded as two pairs sharing the first file.
        spec = ExifSpec(
            taken_at=datetime(2019, 7, 4, 21, 15, 0),
            make="Apple",
            model="iPhone XS",
            orientation=1,
            date_tag="DateTimeOriginal",
        )
        a3 = self.jpeg("dupes/a/fireworks.jpg", (1024, 768), 30_001, spec)
        self.copy(a3, "dupes/b/fireworks.jpg")
        self.copy(a3, "2019/summer/IMG_fireworks_backup.jpg")

    def loop_dir(self) -> None:
        spec = ExifSpec(
            taken_at=datetime(2017, 1, 2, 3, 4, 5), orientation=1, date_tag="DateTimeOriginal"
        )
        self.jpeg("loop/inside.jpg", (400, 300), 40_000, spec)
        link = self.root / "loop" / "back"
        if link.is_symlink():
            link.unlink()
        try:
            os.symlink("..", link, target_is_directory=True)
        except (OSError, NotImplementedError):
            return
        self.corpus.symlink_loop = link

    def bad_files(self) -> None:
        src = write_jpeg(
            self.root / "incoming" / ".tmp-trunc.jpg",
            (640, 480),
            seed=50_000,
            taken_at=datetime(2020, 2, 2, 2, 2, 2),
        )
        data = src.read_bytes()
        src.unlink()
        bad = self.corpus.bad
        bad[self.raw("incoming/IMG_9001.jpg", data[: len(data) // 2])] = "truncated"
        bad[self.raw("incoming/IMG_9002.jpg", b"")] = "empty"
        bad[self.raw("incoming/IMG_9003.jpg", b"This is not a JPEG, just a text file.\n" * 3)] = (
            "not_an_image"
        )
        bad[self.raw("incoming/huge.png", _huge_png())] = "huge_dimensions"

    def skipped_files(self) -> None:
        sk = self.corpus.skipped
        p = write_jpeg(self.path("2019/summer/.hidden.jpg"), (320, 240), seed=60_000)
        self.stamp(p)
        sk.append(p)
        p = write_jpeg(self.path(".git/objects/inside.jpg"), (320, 240), seed=60_001)
        self.stamp(p)
        sk.append(p)
        p = write_jpeg(self.path("2020/.thumbnails/cached.jpg"), (160, 120), seed=60_002)
        self.stamp(p)
        sk.append(p)
        ole_header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 56
        sk.append(self.raw("2019/summer/Thumbs.db", ole_header))
        sk.append(self.raw("2019/summer/desktop.ini", b"[.ShellClassInfo]\r\nIconResource=x\r\n"))
        sk.append(self.raw("scans/notes.txt", b"Remember to scan the 2018 tax letters.\n"))

    def specials(self) -> None:
        # Non-UTF-8 file name (valid JPEG).  Filesystems that insist on UTF-8 refuse it.
        name = os.fsdecode(b"caf\xe9-terrace.jpg")
        spec = ExifSpec(
            taken_at=datetime(2016, 9, 9, 9, 9, 9),
            make="Canon",
            model="Canon PowerShot G7 X",
            orientation=1,
            date_tag="DateTimeOriginal",
        )
        try:
            p = self.jpeg(f"2019/summer/{name}", (400, 300), 70_000, spec)
        except (OSError, UnicodeError):
            self.corpus.exif.pop(self.root / "2019/summer" / name, None)
        else:
            self.corpus.non_utf8_name = p

        # FIFO with an image extension: must never be opened (it would block).
        if hasattr(os, "mkfifo"):
            fifo = self.path("incoming/pipe.jpg")
            try:
                os.mkfifo(fifo)
            except OSError:
                pass
            else:
                self.corpus.fifo = fifo


def make_corpus(root: Path, *, n_photos: int = 200) -> Corpus:
    """Generate the mixed test corpus under ``root`` (created if missing) and return its manifest.

    ``n_photos`` generic camera JPEGs go into dated folders; about 60 more files (orientation
    set, other formats, PDFs, duplicates, bad/skipped files) are always added.  Output is
    deterministic and independent of ``root``; re-running over an existing corpus rewrites it.
    """
    root.mkdir(parents=True, exist_ok=True)
    b = _Builder(root)
    b.photos(n_photos)
    b.orientations()
    b.other_formats()
    b.heic()
    b.pdfs()
    b.duplicates()
    b.loop_dir()
    b.bad_files()
    b.skipped_files()
    b.specials()
    return b.corpus
