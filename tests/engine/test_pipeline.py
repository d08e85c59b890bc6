from __future__ import annotations

import os
import struct
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.errors import PermanentError, TransientError
from engine.importing.formats import sniff_format
from engine.importing.hashing import hash_file
from engine.pipeline import metadata, thumbnail
from engine.pipeline.metadata import MetadataStage, parse_exif_datetime, parse_pdf_date
from engine.pipeline.thumbnail import ThumbnailStage
from engine.pipeline.types import ItemRef, StageContext
from tests.engine.helpers import jpeg


def _ref(path: Path, item_id: int = 1) -> ItemRef:
    digest, head, size = hash_file(path)
    return ItemRef(item_id, digest, "photo", sniff_format(head, size), size, (str(path),))


def _exif(
    orientation: int = 1, date: str | None = None, gps: tuple[float, float] | None = None
) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 5D"
    if date:
        exif.get_ifd(0x8769)[0x9003] = date
        exif.get_ifd(0x8769)[0xA434] = "EF 24-70mm"
    if gps:

        def dms(v: float) -> tuple[Fraction, Fraction, Fraction]:
            v = abs(v)
            d, m = int(v), int((abs(v) - int(v)) * 60)
            s = round(((abs(v) - d) * 60 - m) * 60 * 100)
            return (Fraction(d), Fraction(m), Fraction(s, 100))

        g = exif.get_ifd(0x8825)
        g[1], g[2] = ("N" if gps[0] >= 0 else "S"), dms(gps[0])
        g[3], g[4] = ("E" if gps[1] >= 0 else "W"), dms(gps[1])
    return exif


def test_exif_metadata_is_extracted(tmp_path: Path) -> None:
    path = jpeg(
        tmp_path / "p.jpg", 1, (400, 300), _exif(6, "2019:07:04 15:30:00", (-33.8688, 151.2093))
    )
    data = MetadataStage().run(_ref(path), StageContext(tmp_path)).data
    assert data["taken_at"] == "2019-07-04T15:30:00"
    assert data["taken_at_source"] == "exif-original"
    assert (data["camera_make"], data["camera_model"], data["lens"]) == (
        "Canon",
        "EOS 5D",
        "EF 24-70mm",
    )
    assert (data["width"], data["height"], data["orientation"]) == (300, 400, 6)  # rotated display
    assert data["gps_lat"] == pytest.approx(-33.8688, abs=1e-3)
    assert data["gps_lon"] == pytest.approx(151.2093, abs=1e-3)


def test_date_falls_back_to_file_time(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "p.jpg", 2)
    os.utime(path, (1_500_000_000, 1_500_000_000))
    data = MetadataStage().run(_ref(path), StageContext(tmp_path)).data
    assert data["taken_at_source"] == "file-mtime"
    assert data["taken_at"].startswith("2017-07-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020:01:02 03:04:05", "2020-01-02T03:04:05"),
        ("0000:00:00 00:00:00", None),
        ("    ", None),
        ("2020:13:45 99:99:99", None),
    ],
)
def test_exif_dates(text: str, expected: str | None) -> None:
    assert parse_exif_datetime(text) == expected


def test_pdf_dates() -> None:
    assert parse_pdf_date("D:20240131120000+01'00'") == "2024-01-31T12:00:00"
    assert parse_pdf_date("garbage") is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_thumbnails_are_upright(tmp_path: Path, orientation: int) -> None:
    # Upright: 300x200 with a red top-left block. Store the inverse transform.
    upright = Image.new("RGB", (300, 200), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 150, 100))
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright.transpose(inverse) if inverse is not None else upright
    path = tmp_path / f"o{orientation}.jpg"
    stored.save(path, "JPEG", quality=95, exif=_exif(orientation))
    out = ThumbnailStage().run(_ref(path), StageContext(tmp_path)).data
    thumb = Image.open(tmp_path / str(out["thumb"]["path"]))
    assert thumb.size == (256, 171)
    top_left = thumb.convert("RGB").getpixel((20, 20))
    bottom_right = thumb.convert("RGB").getpixel((230, 150))
    assert isinstance(top_left, tuple) and isinstance(bottom_right, tuple)
    assert top_left[0] > 200 and top_left[2] < 60
    assert bottom_right[2] > 200 and bottom_right[0] < 60


def test_large_jpeg_gets_a_1280_preview_and_256_thumbnail(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "big.jpg", 3, (4000, 3000))
    out = ThumbnailStage().run(_ref(path), StageContext(tmp_path)).data
    assert (out["preview"]["width"], out["preview"]["height"]) == (1280, 960)
    assert (out["thumb"]["width"], out["thumb"]["height"]) == (256, 192)
    assert out["thumb"]["path"].startswith("thumbs/")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"hello, I am text", "not a photo or PDF"),
        (_png_header_only(100_000, 100_000), "too large"),
    ],
)
def test_bad_files_fail_permanently_with_a_readable_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    for stage in (MetadataStage(), ThumbnailStage()):
        with pytest.raises(PermanentError, match=reason) as info:
            stage.run(_ref(path), StageContext(tmp_path))
        assert "Traceback" not in str(info.value)


def test_truncated_jpeg_thumbnail_fails_with_reason(tmp_path: Path) -> None:
    good = jpeg(tmp_path / "g.jpg", 5, (800, 600))
    data = good.read_bytes()
    path = tmp_path / "t.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PermanentError, match="truncated"):
        ThumbnailStage().run(_ref(path), StageContext(tmp_path))


def test_pdf_metadata_and_thumbnail(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (850, 1100), (255, 255, 255)) for _ in range(3)]
    path = tmp_path / "doc.pdf"
    pages[0].save(
        path,
        "PDF",
        save_all=True,
        append_images=pages[1:],
        title="Quarterly Statement",
        author="Acme Bank",
    )
    ref = _ref(path)
    assert ref.format == "pdf"
    data = MetadataStage().run(ref, StageContext(tmp_path)).data
    assert (data["pages"], data["title"], data["author"]) == (3, "Quarterly Statement", "Acme Bank")
    out = ThumbnailStage().run(ref, StageContext(tmp_path)).data
    assert out["preview"]["height"] == 1280 and out["thumb"]["height"] == 256


def test_jpeg_truncated_inside_its_header_fails_permanently(tmp_path: Path) -> None:
    good = jpeg(tmp_path / "g.jpg", 6, (800, 600))
    path = tmp_path / "t.jpg"
    path.write_bytes(good.read_bytes()[:300])  # cut inside the header segments
    for stage in (MetadataStage(), ThumbnailStage()):
        with pytest.raises(PermanentError) as info:
            stage.run(_ref(path), StageContext(tmp_path))
        assert "truncated" in str(info.value) or "damaged" in str(info.value)


def _pdf(path: Path) -> Path:
    Image.new("RGB", (850, 1100), (255, 255, 255)).save(path, "PDF")
    return path


@pytest.mark.parametrize("error", [TypeError, ValueError, OSError])
@pytest.mark.parametrize("kind", ["jpeg", "pdf"])
def test_a_bug_in_our_conversion_is_not_called_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception], kind: str
) -> None:
    # Decoding succeeded; what fails is Shoebox's own code after it. That is a bug to
    # log and retry, never "the file is damaged".
    path = jpeg(tmp_path / "p.jpg", 7) if kind == "jpeg" else _pdf(tmp_path / "d.pdf")

    def broken(img: Image.Image) -> Image.Image:
        raise error("bug in the conversion")

    monkeypatch.setattr(thumbnail, "_to_rgb", broken)
    with pytest.raises(Exception) as info:  # any type but Permanent/Transient
        ThumbnailStage().run(_ref(path), StageContext(tmp_path))
    assert not isinstance(info.value, PermanentError | TransientError)
    assert isinstance(info.value, error)
    assert "damaged" not in str(info.value)


@pytest.mark.parametrize("error", [TypeError, ValueError, OSError])
def test_a_bug_in_our_metadata_parsing_is_not_called_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    path = jpeg(tmp_path / "p.jpg", 8, exif=_exif(1, "2019:07:04 15:30:00"))

    def broken(value: object) -> str | None:
        raise error("bug in the parser")

    monkeypatch.setattr(metadata, "parse_exif_datetime", broken)
    with pytest.raises(Exception) as info:  # any type but Permanent/Transient
        MetadataStage().run(_ref(path), StageContext(tmp_path))
    assert not isinstance(info.value, PermanentError | TransientError)
    assert "damaged" not in str(info.value)


def test_opening_images_leaves_the_warning_filters_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # warnings.catch_warnings swaps the process-wide filter list: from worker threads
    # it races. Opening an image must neither use it nor change the filters.
    paths = [jpeg(tmp_path / f"p{i}.jpg", 20 + i) for i in range(8)]
    ThumbnailStage().run(_ref(paths[0]), StageContext(tmp_path))  # one-time setup done

    used_by: list[str] = []

    class Spy(warnings.catch_warnings):  # records who uses it; pytest itself does too
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            caller = str(sys._getframe(1).f_globals.get("__name__", ""))
            if caller.startswith("engine."):
                used_by.append(caller)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(warnings, "catch_warnings", Spy)
    before = list(warnings.filters)

    def both(path: Path) -> None:
        for stage in (MetadataStage(), ThumbnailStage()):
            stage.run(_ref(path), StageContext(tmp_path))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(both, paths))
    assert used_by == []
    assert warnings.filters == before


@pytest.mark.parametrize("strict", [False, True], ids=["warning-ignored", "warnings-as-errors"])
def test_image_between_the_limit_and_twice_it_is_refused(tmp_path: Path, strict: bool) -> None:
    # Pillow only warns below twice its limit; the explicit check refuses these with
    # the same sentence as before, whatever the process's warning filters say.
    path = tmp_path / "wide.png"
    path.write_bytes(_png_header_only(20_000, 15_000))
    with warnings.catch_warnings():
        # pytest resets the filters per test, dropping the one open_image installs
        # once per process; put its equivalent back (or make every warning an error).
        warnings.simplefilter("error" if strict else "ignore", Image.DecompressionBombWarning)
        for stage in (MetadataStage(), ThumbnailStage()):
            with pytest.raises(PermanentError) as info:
                stage.run(_ref(path), StageContext(tmp_path))
            assert str(info.value) == "The image is too large to open safely (300,000,000 pixels)."
