"""Dates from every place cameras write them (issue 16): files built with Pillow that
carry a date only in XMP, only in IPTC, only in GPS time, or behind a broken EXIF
block; each is read with the right date and taken_at_source, and none is a guess."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.metadata_sources import parse_date
from engine.pipeline.metadata import photo_metadata
from engine.pipeline.types import ItemRef
from engine.queries import GUESSED_DATE_SOURCE

XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmp:CreateDate="2015-05-05T05:05:05-03:00">'
    b"<exif:DateTimeOriginal>2014-04-04T04:04:04.5+02:00</exif:DateTimeOriginal>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def _item(path: Path) -> ItemRef:
    st = path.stat()
    fmt = path.suffix.lstrip(".")
    return ItemRef(1, "h", "photo", fmt, st.st_size, (str(path),), st.st_mtime_ns)


def _iptc_segment(date: bytes, time_: bytes) -> bytes:
    def dataset(num: int, value: bytes) -> bytes:
        return b"\x1c\x02" + bytes([num]) + len(value).to_bytes(2, "big") + value

    iptc = dataset(55, date) + dataset(60, time_)
    block = b"8BIM\x04\x04\x00\x00" + len(iptc).to_bytes(4, "big") + iptc
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def test_xmp_only_date(tmp_path: Path) -> None:
    path = tmp_path / "xmp.jpg"
    Image.new("RGB", (8, 6)).save(path, xmp=XMP)
    data = photo_metadata(_item(path))
    assert (data["taken_at"], data["taken_at_source"]) == ("2014-04-04T04:04:04", "xmp-original")
    assert data["timezone_offset"] == "+02:00"


def test_xmp_in_tiff_create_date(tmp_path: Path) -> None:
    path = tmp_path / "xmp.tif"
    packet = XMP.replace(b"<exif:DateTimeOriginal>2014-04-04T04:04:04.5+02:00", b"<exif:X>")
    packet = packet.replace(b"</exif:DateTimeOriginal>", b"</exif:X>")
    Image.new("RGB", (8, 6)).save(path, tiffinfo={700: packet})
    data = photo_metadata(_item(path))
    assert (data["taken_at"], data["taken_at_source"]) == ("2015-05-05T05:05:05", "xmp-created")


def test_iptc_only_date(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 6)).save(plain)
    raw = plain.read_bytes()
    path = tmp_path / "iptc.jpg"
    path.write_bytes(raw[:2] + _iptc_segment(b"20191014", b"150020+0000") + raw[2:])
    data = photo_metadata(_item(path))
    assert (data["taken_at"], data["taken_at_source"]) == ("2019-10-14T15:00:20", "iptc")
    assert data["timezone_offset"] == "+00:00"


def test_gps_time_only(tmp_path: Path) -> None:
    img = Image.new("RGB", (8, 6))
    exif = img.getexif()
    gps = exif.get_ifd(0x8825)
    gps.update({29: "2021:02:03", 7: (21.0, 22.0, 23.0)})
    path = tmp_path / "gps.jpg"
    img.save(path, exif=exif)
    data = photo_metadata(_item(path))
    assert (data["taken_at"], data["taken_at_source"]) == ("2021-02-03T21:22:23", "gps-utc")
    assert data["timezone_offset"] == "+00:00"


def test_exif_original_beats_xmp_and_modify_date(tmp_path: Path) -> None:
    img = Image.new("RGB", (8, 6))
    exif = img.getexif()
    exif[0x0132] = "2020:01:01 00:00:00"
    exif.get_ifd(0x8769).update({0x9003: "2012:12:12 12:12:12", 0x9291: "25"})
    path = tmp_path / "exif.jpg"
    img.save(path, exif=exif, xmp=XMP)
    data = photo_metadata(_item(path))
    assert (data["taken_at"], data["taken_at_source"]) == ("2012-12-12T12:12:12", "exif-original")
    assert data["taken_at_subsec"] == "25"


def test_broken_exif_falls_back_to_xmp(tmp_path: Path) -> None:
    """An EXIF block Pillow's parser rejects: the XMP date still counts, not the mtime."""
    path = tmp_path / "broken.jpg"
    broken = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff\x01\x00"  # 65535 entries, cut off
    Image.new("RGB", (8, 6)).save(path, exif=broken, xmp=XMP)
    data = photo_metadata(_item(path))
    assert data["taken_at_source"] == "xmp-original"
    assert data["taken_at_source"] != GUESSED_DATE_SOURCE
    assert (data["width"], data["height"]) == (8, 6)


def test_no_date_anywhere_is_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "none.jpg"
    Image.new("RGB", (8, 6)).save(path)
    assert photo_metadata(_item(path))["taken_at_source"] == GUESSED_DATE_SOURCE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017:08:21 15:08:70", ("2017-08-21T15:09:10", None)),
        ("2014-04-04T04:04:04Z", ("2014-04-04T04:04:04", "+00:00")),
        ("0000:00:00 00:00:00", None),
        ("1801:01:01 00:00:00", None),
        ("2019:02:30 10:00:00", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_date(text) == expected


def test_heic_xmp_and_gps_time(tmp_path: Path) -> None:
    """pillow-heif hands HEIC's EXIF and XMP boxes to Pillow's info: both are read."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC support is optional")
    pillow_heif.register_heif_opener()
    img = Image.new("RGB", (64, 48))
    exif = img.getexif()
    exif.get_ifd(0x8825).update({29: "2021:02:03", 7: (1.0, 2.0, 3.0)})
    with_xmp, with_gps = tmp_path / "xmp.heic", tmp_path / "gps.heic"
    img.save(with_xmp, xmp=XMP)
    img.save(with_gps, exif=exif)
    data = photo_metadata(_item(with_xmp))
    assert (data["taken_at"], data["taken_at_source"]) == ("2014-04-04T04:04:04", "xmp-original")
    data = photo_metadata(_item(with_gps))
    assert (data["taken_at"], data["taken_at_source"]) == ("2021-02-03T01:02:03", "gps-utc")
