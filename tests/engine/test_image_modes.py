"""Photos beyond 8-bit RGB: 16-bit and 12-bit-in-16 greyscale, 16-bit RGB(A), signed
and float samples, and BigTIFF in both byte orders.

The TIFFs are written by hand (`tiff_bytes`): Pillow cannot save big-endian or
16-bit RGB TIFFs, and writing the bytes pins exactly what a scanner would produce.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, ImageStat, UnidentifiedImageError

from engine.errors import PermanentError
from engine.importing.formats import kind_for, sniff_format
from engine.importing.hashing import hash_file
from engine.library import Library
from engine.pipeline.metadata import MetadataStage
from engine.pipeline.thumbnail import ThumbnailStage
from engine.pipeline.types import ItemRef, StageContext
from tests.engine.helpers import run_host_until_idle

SHORT, LONG = 3, 4  # TIFF field types


def tiff_bytes(
    width: int,
    height: int,
    samples: Sequence[float],
    *,
    bits: int = 16,
    channels: int = 1,
    big_endian: bool = False,
    bigtiff: bool = False,
    sample_format: int = 1,  # 1 unsigned, 2 signed, 3 float
) -> bytes:
    """A minimal uncompressed one-strip TIFF (or BigTIFF) holding `samples`, row-major."""
    order = ">" if big_endian else "<"
    code = {(16, 1): "H", (16, 2): "h", (32, 1): "I", (32, 3): "f", (8, 1): "B"}
    data = struct.pack(f"{order}{len(samples)}{code[bits, sample_format]}", *samples)
    entries: list[tuple[int, int, list[int]]] = [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [bits] * channels),
        (259, SHORT, [1]),  # no compression
        (262, SHORT, [2 if channels >= 3 else 1]),  # RGB or BlackIsZero
        (273, LONG, [0]),  # strip offset, set below
        (277, SHORT, [channels]),
        (278, LONG, [height]),
        (279, LONG, [len(data)]),
        (284, SHORT, [1]),  # chunky
    ]
    if channels in (2, 4):
        entries.append((338, SHORT, [2]))  # extra sample: unassociated alpha
    if sample_format != 1:
        entries.append((339, SHORT, [sample_format] * channels))
    inline, offset_code = (8, "Q") if bigtiff else (4, "I")
    header_len = 16 if bigtiff else 8
    ifd_len = (8 + 20 * len(entries) + 8) if bigtiff else (2 + 12 * len(entries) + 4)
    out_of_line = header_len + ifd_len
    packed = [
        struct.pack(f"{order}{len(v)}{'H' if t == SHORT else 'I'}", *v) for _, t, v in entries
    ]
    data_offset = out_of_line + sum(len(p) for p in packed if len(p) > inline)
    ifd, extra = b"", b""
    for (tag, typ, values), value_bytes in zip(entries, packed, strict=True):
        if tag == 273:
            value_bytes = struct.pack(f"{order}I", data_offset)
        if len(value_bytes) > inline:
            field = struct.pack(f"{order}{offset_code}", out_of_line + len(extra))
            extra += value_bytes
        else:
            field = value_bytes.ljust(inline, b"\0")
        count_code = "Q" if bigtiff else "I"
        ifd += struct.pack(f"{order}HH{count_code}", tag, typ, len(values)) + field
    magic = b"MM" if big_endian else b"II"
    if bigtiff:
        head = magic + struct.pack(f"{order}HHHQ", 43, 8, 0, header_len)
        ifd = struct.pack(f"{order}Q", len(entries)) + ifd + struct.pack(f"{order}Q", 0)
    else:
        head = magic + struct.pack(f"{order}HI", 42, header_len)
        ifd = struct.pack(f"{order}H", len(entries)) + ifd + struct.pack(f"{order}I", 0)
    return head + ifd + extra + data


def _gradient(width: int, height: int, top: int) -> list[int]:
    """Dark left to bright right: 0 .. top."""
    row = [round(x * top / (width - 1)) for x in range(width)]
    return row * height


def _ref(path: Path) -> ItemRef:
    digest, head, size = hash_file(path)
    return ItemRef(1, digest, "photo", sniff_format(head, size), size, (str(path),))


def _write(tmp_path: Path, name: str, data: bytes) -> ItemRef:
    path = tmp_path / name
    path.write_bytes(data)
    return _ref(path)


def _thumb(tmp_path: Path, ref: ItemRef) -> Image.Image:
    out = ThumbnailStage().run(ref, StageContext(tmp_path)).data
    with Image.open(tmp_path / str(out["thumb"]["path"])) as img:
        return img.convert("RGB")


def _mean(img: Image.Image) -> float:
    return float(ImageStat.Stat(img.convert("L")).mean[0])


def _column_mean(img: Image.Image, x: int) -> float:
    return _mean(img.crop((x, 0, x + 1, img.height)))


def test_bigtiff_is_sniffed_as_a_tiff_photo() -> None:
    assert sniff_format(b"II+\x00\x08\x00\x00\x00" + b"\0" * 8, 100) == "tiff"
    assert sniff_format(b"MM\x00+\x00\x08\x00\x00" + b"\0" * 8, 100) == "tiff"
    assert kind_for("tiff", ".tif") == "photo"
    assert sniff_format(b"II,\x00" + b"\0" * 12, 100) == "unknown"  # no such version


@pytest.mark.parametrize("big_endian", [True, False], ids=["I;16B", "I;16"])
def test_16bit_grey_tiff_keeps_its_brightness(tmp_path: Path, big_endian: bool) -> None:
    data = tiff_bytes(512, 64, _gradient(512, 64, 65535), big_endian=big_endian)
    ref = _write(tmp_path, "scan16.tif", data)
    assert ref.format == "tiff"
    meta = MetadataStage().run(ref, StageContext(tmp_path)).data
    assert (meta["width"], meta["height"]) == (512, 64)
    assert meta["mode"] == ("I;16B" if big_endian else "I;16")
    thumb = _thumb(tmp_path, ref)
    assert thumb.size == (256, 32)
    assert _mean(thumb) == pytest.approx(127.5, abs=4)  # a full-range ramp averages mid-grey
    assert _column_mean(thumb, 2) < 10
    assert _column_mean(thumb, 253) > 245


def test_12bit_data_in_16bit_samples_is_not_black(tmp_path: Path) -> None:
    grey = _write(tmp_path, "grey12.tif", tiff_bytes(64, 64, [2048] * 64 * 64))
    assert _mean(_thumb(tmp_path, grey)) == pytest.approx(127.5, abs=4)  # 2048 of 4095

    ramp = _write(tmp_path, "ramp12.tif", tiff_bytes(512, 64, _gradient(512, 64, 4095)))
    thumb = _thumb(tmp_path, ramp)
    assert _mean(thumb) == pytest.approx(127.5, abs=4)
    assert _column_mean(thumb, 253) > 245  # 4095 is white, not 16/255
    assert MetadataStage().run(ramp, StageContext(tmp_path)).data["mode"] == "I;16"


def test_8bit_data_in_16bit_samples_keeps_its_values(tmp_path: Path) -> None:
    ref = _write(tmp_path, "grey8in16.tif", tiff_bytes(64, 64, [200] * 64 * 64))
    assert _mean(_thumb(tmp_path, ref)) == pytest.approx(200, abs=3)


def test_signed_and_float_grey_tiffs_get_thumbnails(tmp_path: Path) -> None:
    signed = [v - 1000 for v in _gradient(256, 32, 2000)]
    ref = _write(tmp_path, "signed.tif", tiff_bytes(256, 32, signed, sample_format=2))
    thumb = _thumb(tmp_path, ref)
    assert _column_mean(thumb, 1) < 10 and _column_mean(thumb, 254) > 120

    floats = [v / 255 for v in _gradient(256, 32, 255)]
    ref = _write(tmp_path, "float.tif", tiff_bytes(256, 32, floats, bits=32, sample_format=3))
    thumb = _thumb(tmp_path, ref)
    assert _mean(thumb) == pytest.approx(127.5, abs=4)  # 0.0 .. 1.0 is black .. white
    assert MetadataStage().run(ref, StageContext(tmp_path)).data["mode"] == "F"


@pytest.mark.parametrize("big_endian", [True, False], ids=["MM", "II"])
@pytest.mark.parametrize("channels", [3, 4], ids=["RGB", "RGBA"])
def test_16bit_rgb_tiff_keeps_its_colours(tmp_path: Path, big_endian: bool, channels: int) -> None:
    pixel = [65535, 32896, 0, 65535][:channels]  # orange, opaque
    data = tiff_bytes(96, 64, pixel * 96 * 64, channels=channels, big_endian=big_endian)
    ref = _write(tmp_path, "rgb16.tif", data)
    meta = MetadataStage().run(ref, StageContext(tmp_path)).data
    assert (meta["width"], meta["height"]) == (96, 64)
    red, green, blue = _thumb(tmp_path, ref).getpixel((48, 32))  # type: ignore[misc]
    assert red > 245 and 118 < green < 138 and blue < 10


def _pillow_reads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True


def test_bigtiff_imports_with_metadata_and_thumbnail(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # Pillow writes little-endian BigTIFF itself; the 16-bit one is hand-made.
    Image.new("RGB", (300, 200), (200, 40, 40)).save(src / "colour.tif", big_tiff=True)
    (src / "grey16.tif").write_bytes(tiff_bytes(120, 80, _gradient(120, 80, 65535), bigtiff=True))
    assert (src / "colour.tif").read_bytes()[:4] == b"II+\x00"
    library.import_paths([src])
    run_host_until_idle(library)
    items = {Path(i["paths"][0]).name: i for i in library.items()}
    for name, size in (("colour.tif", (300, 200)), ("grey16.tif", (120, 80))):
        item = items[name]
        assert (item["format"], item["kind"]) == ("tiff", "photo")
        stages = {stage: info["state"] for stage, info in item["stages"].items()}
        assert stages["metadata"] == stages["thumbnail"] == "done", item["stages"]
        assert (item["metadata"]["width"], item["metadata"]["height"]) == size
        assert (library.root / item["thumbnails"]["thumb"]).is_file()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, misreading the header
def test_big_endian_bigtiff_is_read_or_refused_with_a_plain_reason(tmp_path: Path) -> None:
    data = tiff_bytes(40, 30, _gradient(40, 30, 65535), big_endian=True, bigtiff=True)
    ref = _write(tmp_path, "be.tif", data)
    assert ref.format == "tiff"
    if _pillow_reads(data):  # a Pillow that has learnt big-endian BigTIFF
        assert _thumb(tmp_path, ref).size == (40, 30)
        return
    # Pillow 13.0 cannot identify it (it looks for version 43 in the wrong byte).
    for stage in (MetadataStage(), ThumbnailStage()):
        with pytest.raises(PermanentError, match="big-endian BigTIFF"):
            stage.run(ref, StageContext(tmp_path))
