"""Checks that the test-data generator in tests/corpus.py produces what its manifest claims."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import SupportsFloat

import pillow_heif
import pypdfium2
import pytest
from PIL import Image, ImageFile, ImageOps, ImageStat

from tests.corpus import (
    IFD_EXIF,
    IFD_GPS,
    ORIENTATION_SIZE,
    TAG_DATETIME,
    TAG_DATETIME_ORIGINAL,
    TAG_LENS_MODEL,
    TAG_MAKE,
    TAG_MODEL,
    TAG_ORIENTATION,
    Corpus,
    ExifSpec,
    make_corpus,
    write_jpeg,
    write_large_jpegs,
    write_tiny_tree,
)

pillow_heif.register_heif_opener()

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _red_dominant(img: Image.Image) -> bool:
    r, g, b = ImageStat.Stat(img.convert("RGB")).mean[:3]
    return r > 100 and r > 1.6 * g and r > 1.6 * b


def _quadrants(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    hw, hh = w // 2, h // 2
    boxes = ((0, 0, hw, hh), (hw, 0, w, hh), (0, hh, hw, h), (hw, hh, w, h))
    return [img.crop(box) for box in boxes]


def _loads_fully(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
    except Exception:
        return False
    return True


def _walk_files(root: Path) -> dict[Path, int]:
    """Every non-directory entry under root (symlinks not followed) -> st_mode."""
    found: dict[Path, int] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            if not stat.S_ISDIR(mode):
                found[p] = mode
    return found


def _gps_value(ref: str, dms: Sequence[SupportsFloat]) -> float:
    deg, minutes, sec = (float(v) for v in dms)
    value = deg + minutes / 60 + sec / 3600
    return -value if ref in ("S", "W") else value


# ---------------------------------------------------------------------------------------------


def test_counts_and_layout(corpus: Corpus) -> None:
    files = corpus.all_regular_files()
    assert len(files) >= 200
    assert len(corpus.good) >= 200
    assert len(set(files)) == len(files), "good/bad/skipped overlap"
    suffixes: defaultdict[str, int] = defaultdict(int)
    for p in corpus.good:
        suffixes[p.suffix.lower()] += 1
    assert suffixes[".jpg"] + suffixes[".jpeg"] >= 200
    for suffix in (".png", ".webp", ".gif", ".bmp", ".heic", ".pdf"):
        assert suffixes[suffix] >= 2, suffix
    assert suffixes[".tif"] + suffixes[".tiff"] >= 3
    rels = {p.relative_to(corpus.root).as_posix() for p in corpus.good}
    for folder in ("2019/summer/", "scans/", "dupes/a/", "dupes/b/"):
        assert any(r.startswith(folder) for r in rels), folder
    assert max(len(p.relative_to(corpus.root).parts) for p in corpus.good) >= 3  # nested
    assert all(p.is_relative_to(corpus.root) for p in files)


def test_manifest_matches_disk(corpus: Corpus) -> None:
    on_disk = _walk_files(corpus.root)
    regular = {p for p, mode in on_disk.items() if stat.S_ISREG(mode)}
    assert regular == set(corpus.all_regular_files())
    specials = {p for p, mode in on_disk.items() if not stat.S_ISREG(mode)}
    assert specials == {p for p in (corpus.fifo, corpus.symlink_loop) if p is not None}
    assert set(corpus.mtimes) == regular
    for p in regular:
        assert int(os.stat(p).st_mtime) == corpus.mtimes[p]


def test_every_good_file_is_valid(corpus: Corpus) -> None:
    for p in corpus.good:
        if p.suffix.lower() == ".pdf":
            pdf = pypdfium2.PdfDocument(str(p))
            try:
                assert len(pdf) == corpus.pdf_pages[p]
            finally:
                pdf.close()
            continue
        assert p.suffix.lower() in IMAGE_SUFFIXES, p
        with Image.open(p) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
            assert upright.size == corpus.sizes[p], p


def test_duplicates_are_byte_identical(corpus: Corpus) -> None:
    assert len(corpus.duplicate_pairs) >= 3
    good = set(corpus.good)
    for a, b in corpus.duplicate_pairs:
        assert a in good and b in good
        assert a.parent != b.parent
        assert a.read_bytes() == b.read_bytes()
    parents = {(a.parent.name, b.parent.name) for a, b in corpus.duplicate_pairs}
    assert ("a", "b") in parents


def test_all_other_contents_distinct(corpus: Corpus) -> None:
    # Connected components of the duplicate pairs are the only allowed same-content groups.
    component: dict[Path, frozenset[Path]] = {}
    for a, b in corpus.duplicate_pairs:
        merged = component.get(a, frozenset({a})) | component.get(b, frozenset({b}))
        for p in merged:
            component[p] = merged
    by_hash: dict[str, set[Path]] = defaultdict(set)
    for p in corpus.all_regular_files():
        by_hash[_sha(p)].add(p)
    for group in by_hash.values():
        if len(group) > 1:
            first = next(iter(group))
            assert component.get(first) == frozenset(group), sorted(map(str, group))


def test_orientations_upright_after_transpose(corpus: Corpus) -> None:
    assert sorted(corpus.jpeg_orientations) == list(range(1, 9))
    w, h = ORIENTATION_SIZE
    for k, p in corpus.jpeg_orientations.items():
        with Image.open(p) as im:
            assert im.getexif().get(TAG_ORIENTATION) == k
            assert im.size == ((w, h) if k <= 4 else (h, w))
            upright = ImageOps.exif_transpose(im)
        assert upright.size == (300, 200)
        tl, tr, bl, br = _quadrants(upright)
        assert _red_dominant(tl), k
        assert not any(_red_dominant(q) for q in (tr, bl, br)), k


def test_every_jpeg_has_red_top_left_when_upright(corpus: Corpus) -> None:
    assert set(corpus.exif) == {p for p in corpus.good if p.suffix.lower() in (".jpg", ".jpeg")}
    for p in corpus.exif:
        with Image.open(p) as im:
            upright = ImageOps.exif_transpose(im)
        quads = _quadrants(upright)
        assert _red_dominant(quads[0]), p
        assert not _red_dominant(quads[3]), p


def test_exif_round_trip(corpus: Corpus) -> None:
    for p, spec in corpus.exif.items():
        with Image.open(p) as im:
            exif = im.getexif()
            if not spec.has_exif:
                assert len(exif) == 0 and "exif" not in im.info, p
                continue
            sub = exif.get_ifd(IFD_EXIF)
            gps = exif.get_ifd(IFD_GPS)
        assert exif.get(TAG_ORIENTATION) == spec.orientation, p
        assert exif.get(TAG_MAKE) == spec.make, p
        assert exif.get(TAG_MODEL) == spec.model, p
        assert sub.get(TAG_LENS_MODEL) == spec.lens, p
        stamp = spec.taken_at.strftime("%Y:%m:%d %H:%M:%S") if spec.taken_at else None
        if spec.date_tag == "DateTime":
            assert exif.get(TAG_DATETIME) == stamp and TAG_DATETIME_ORIGINAL not in sub, p
        else:
            assert sub.get(TAG_DATETIME_ORIGINAL) == stamp and TAG_DATETIME not in exif, p
        if spec.gps is None:
            assert not gps, p
        else:
            lat = _gps_value(gps[1], gps[2])
            lon = _gps_value(gps[3], gps[4])
            assert lat == pytest.approx(spec.gps[0], abs=1e-5), p
            assert lon == pytest.approx(spec.gps[1], abs=1e-5), p


def test_exif_variety(corpus: Corpus) -> None:
    specs = list(corpus.exif.values())
    assert sum(not s.has_exif for s in specs) >= 3
    assert sum(s.date_tag == "DateTime" for s in specs) >= 3
    assert sum(s.has_exif and s.orientation is None for s in specs) >= 3
    with_gps = [s.gps for s in specs if s.gps is not None]
    assert len(with_gps) >= 5
    assert any(lat < 0 for lat, _ in with_gps) and any(lon < 0 for _, lon in with_gps)
    assert any(lat > 0 for lat, _ in with_gps) and any(lon > 0 for _, lon in with_gps)
    years = {s.taken_at.year for s in specs if s.taken_at is not None}
    assert len(years) >= 4
    long_sides = [max(corpus.sizes[p]) for p in corpus.exif]
    assert min(long_sides) <= 300 and max(long_sides) >= 1200


def test_bad_files_are_bad(corpus: Corpus) -> None:
    assert sorted(corpus.bad.values()) == sorted(
        ["truncated", "empty", "not_an_image", "huge_dimensions"]
    )
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    for p, why in corpus.bad.items():
        assert not _loads_fully(p), (p, why)
        data = p.read_bytes()
        if why == "empty":
            assert data == b""
        elif why == "truncated":
            assert data.startswith(b"\xff\xd8") and not data.endswith(b"\xff\xd9")
            assert len(data) > 1000
        elif why == "not_an_image":
            assert p.suffix == ".jpg" and data.decode("ascii").strip()  # plain text
            assert not data.startswith(b"\xff\xd8")
        elif why == "huge_dimensions":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
            pos = 8
            chunks: list[bytes] = []
            while pos < len(data):
                (length,) = struct.unpack(">I", data[pos : pos + 4])
                tag = data[pos + 4 : pos + 8]
                body = data[pos + 8 : pos + 8 + length]
                (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
                assert crc == zlib.crc32(tag + body), tag
                chunks.append(tag)
                if tag == b"IHDR":
                    assert struct.unpack(">II", body[:8]) == (100_000, 100_000)
                pos += 12 + length
            assert chunks == [b"IHDR", b"IDAT", b"IEND"]
            assert len(data) < 200
        else:  # pragma: no cover
            pytest.fail(f"unknown tag {why}")


def test_skipped_files(corpus: Corpus) -> None:
    names = {p.name for p in corpus.skipped}
    assert {".hidden.jpg", "Thumbs.db", "desktop.ini", "notes.txt"} <= names
    in_hidden_dir = [
        p
        for p in corpus.skipped
        if p.suffix == ".jpg"
        and any(part.startswith(".") for part in p.relative_to(corpus.root).parts[:-1])
    ]
    assert in_hidden_dir
    for p in in_hidden_dir:
        assert _loads_fully(p)  # a real image: it must be skipped because of where it is


def test_pdf_multipage(corpus: Corpus) -> None:
    p = corpus.pdf_multipage
    assert p in corpus.good
    pdf = pypdfium2.PdfDocument(str(p))
    try:
        assert len(pdf) == 3
        meta = pdf.get_metadata_dict()
        assert meta["Title"] == "Quarterly Statement"
        assert meta["Author"] == "Acme Bank"
        width, height = pdf[0].get_size()
        assert (round(width), round(height)) == (612, 792)  # US letter in points
    finally:
        pdf.close()


def test_fifo(corpus: Corpus) -> None:
    if not hasattr(os, "mkfifo"):
        assert corpus.fifo is None
        pytest.skip("no FIFOs on this platform")
    assert corpus.fifo is not None
    assert corpus.fifo.name == "pipe.jpg"
    assert stat.S_ISFIFO(os.lstat(corpus.fifo).st_mode)


def test_symlink_loop(corpus: Corpus) -> None:
    link = corpus.symlink_loop
    if link is None:
        pytest.skip("symlinks not supported here")
    assert link.is_symlink()
    target = Path(os.path.realpath(link))
    assert target == Path(os.path.realpath(corpus.root))
    assert link.is_relative_to(corpus.root)


def test_non_utf8_name(corpus: Corpus) -> None:
    p = corpus.non_utf8_name
    if p is None:
        pytest.skip("filesystem refuses non-UTF-8 names")
    raw = os.fsencode(p.name)
    assert b"\xe9" in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert p in corpus.good and p in corpus.exif
    assert _loads_fully(p)


def test_deterministic_and_root_independent(corpus: Corpus, tmp_path: Path) -> None:
    # Photos and all fixed files depend only on their index/relative path, so a smaller corpus
    # at another root must be a byte-identical subset of the fixture corpus.
    small = make_corpus(tmp_path / "small", n_photos=12)
    big_rel = {p.relative_to(corpus.root): p for p in corpus.all_regular_files()}
    rels = [p.relative_to(small.root) for p in small.all_regular_files()]
    assert len(rels) == len(small.all_regular_files())
    for rel in rels:
        assert rel in big_rel, rel
        assert (small.root / rel).read_bytes() == big_rel[rel].read_bytes(), rel
        assert small.mtimes[small.root / rel] == corpus.mtimes[big_rel[rel]], rel
    for p, spec in small.exif.items():
        assert corpus.exif[big_rel[p.relative_to(small.root)]] == spec
    assert len(big_rel) - len(rels) == 200 - 12
    # Re-running over an existing corpus (FIFO, symlink and all) gives the same result.
    again = make_corpus(tmp_path / "small", n_photos=12)
    assert [p.relative_to(again.root) for p in again.all_regular_files()] == rels
    assert all((again.root / r).read_bytes() == big_rel[r].read_bytes() for r in rels)
    assert again.fifo == small.fifo and again.symlink_loop == small.symlink_loop


def test_write_jpeg_rejects_bad_orientation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_jpeg(tmp_path / "x.jpg", (10, 10), orientation=9)


def test_write_jpeg_without_exif_has_no_exif(tmp_path: Path) -> None:
    p = write_jpeg(tmp_path / "sub" / "plain.jpg", (64, 48), seed=3)
    with Image.open(p) as im:
        assert im.size == (64, 48)
        assert len(im.getexif()) == 0
    spec = ExifSpec()
    assert not spec.has_exif


def test_tiny_tree(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    assert write_tiny_tree(root, 2000, per_dir=500) == 2000
    files = sorted(root.rglob("*.png"))
    assert len(files) == 2000
    assert len({p.parent for p in files}) == 4
    assert len({p.read_bytes() for p in files}) == 2000
    for p in files[::37]:
        with Image.open(p) as im:
            im.load()
            assert im.size == (8, 8) and im.mode == "RGB"


def test_large_jpegs_small_and_cached(tmp_path: Path) -> None:
    paths = write_large_jpegs(tmp_path, 2, megapixels=0.5, seed=7)
    assert len(paths) == 2 and len({_sha(p) for p in paths}) == 2
    for p in paths:
        with Image.open(p) as im:
            assert im.size == (816, 612)
            exif = im.getexif()
            assert exif.get(TAG_ORIENTATION) == 1
            assert exif.get_ifd(IFD_EXIF).get(TAG_DATETIME_ORIGINAL)
    before = [p.stat().st_mtime_ns for p in paths]
    os.utime(paths[0], ns=(1, 1))
    again = write_large_jpegs(tmp_path, 3, megapixels=0.5, seed=7)
    assert again[:2] == paths
    assert paths[0].stat().st_mtime_ns == 1  # not rewritten
    assert paths[1].stat().st_mtime_ns == before[1]
    assert again[2].is_file()


@pytest.mark.slow
def test_large_jpegs_12mp(tmp_path: Path) -> None:
    paths = write_large_jpegs(tmp_path, 2)
    for p in paths:
        assert 2_000_000 <= p.stat().st_size <= 5_000_000
        with Image.open(p) as im:
            assert im.size == (4000, 3000)
