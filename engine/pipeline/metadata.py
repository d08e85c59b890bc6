"""The `metadata` stage: dates, camera, lens, GPS, orientation, dimensions; PDF facts."""

from __future__ import annotations

import json
import os
import sqlite3
import unicodedata
from datetime import datetime
from fractions import Fraction
from typing import Any

from engine.metadata_sources import gps_datetime, iptc_date, parse_date, xmp_dates, xmp_packet
from engine.pipeline.media import (
    DECODER_ERRORS,
    check_readable_format,
    decode_error,
    existing_path,
    open_image,
    open_pdf,
    translate_os_error,
)
from engine.pipeline.types import ItemRef, ItemStage, StageContext, StageOutput, upsert_result

# EXIF tag numbers (TIFF/EXIF 2.3)
ORIENTATION, MAKE, MODEL, DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, DATETIME_DIGITIZED = 0x9003, 0x9004
OFFSET_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL = 0x9011, 0x9291
IMAGE_WIDTH, IMAGE_LENGTH = 0x0100, 0x0101
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

ITEM_COLUMNS = (
    "width",
    "height",
    "taken_at",
    "taken_at_source",
    "camera_make",
    "camera_model",
    "lens",
    "gps_lat",
    "gps_lon",
    "orientation",
    "pages",
    "title",
    "author",
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    # Control characters are a damaged or blank field (a camera make of "\x8c"), not text.
    text = "".join(ch for ch in str(value) if unicodedata.category(ch) != "Cc").strip()
    return text if any(ch.isalnum() for ch in text) else None


def parse_exif_datetime(value: Any) -> str | None:
    """'YYYY:MM:DD HH:MM:SS' → ISO 8601; None for blanks and impossible dates."""
    parsed = parse_date(_text(value))
    return parsed[0] if parsed else None


def parse_pdf_date(value: str | None) -> str | None:
    """PDF 'D:YYYYMMDDHHmmSS+hh'mm'' → ISO 8601 (local time as written)."""
    if not value:
        return None
    text = value[2:] if value.startswith("D:") else value
    digits = "".join(ch for ch in text[:14] if ch.isdigit())
    for fmt, length in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8), ("%Y", 4)):
        if len(digits) >= length:
            try:
                return datetime.strptime(digits[:length], fmt).isoformat()
            except ValueError:
                continue
    return None


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(Fraction(int(value[0]), int(value[1]))) if value[1] else 0.0
    return float(value)


def parse_gps(gps: dict[int, Any]) -> tuple[float, float, float | None] | None:
    try:
        lat_dms, lon_dms = gps[GPS_LAT], gps[GPS_LON]
        lat = sum(_rational(v) / 60**i for i, v in enumerate(lat_dms))
        lon = sum(_rational(v) / 60**i for i, v in enumerate(lon_dms))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if _text(gps.get(GPS_LAT_REF)) == "S":
        lat = -lat
    if _text(gps.get(GPS_LON_REF)) == "W":
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    alt: float | None = None
    if GPS_ALT in gps:
        try:
            alt = _rational(gps[GPS_ALT]) * (-1 if gps.get(GPS_ALT_REF) in (1, b"\x01") else 1)
        except (TypeError, ValueError, ZeroDivisionError):
            alt = None
    return round(lat, 7), round(lon, 7), alt


def _stored_size(img: Any) -> tuple[int, int]:
    """Width and height as the file stores them (a TIFF's ImageWidth/ImageLength:
    Pillow's size of an oriented TIFF decoded by libtiff is already turned)."""
    tags = getattr(img, "tag_v2", None)
    if tags is not None:
        try:
            w, h = tags.get(IMAGE_WIDTH), tags.get(IMAGE_LENGTH)
        except Exception:
            w = h = None
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            return w, h
    width, height = img.size
    return int(width), int(height)


def _mtime_iso(item: ItemRef, path: str) -> str:
    if item.mtime_ns:
        mtime = item.mtime_ns / 1e9
    else:
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            raise translate_os_error(exc) from exc
    return datetime.fromtimestamp(mtime).replace(microsecond=0).isoformat()


def photo_metadata(item: ItemRef) -> dict[str, Any]:
    """What the file says, read inside one open; then our parsing of it.

    Only reading the file maps to "damaged" reasons: an error in the parsing below
    is a bug of ours and propagates as it is (logged with a traceback, retried)."""
    with open_image(item) as img:
        filename = getattr(img, "filename", None)
        path = filename if isinstance(filename, str) else item.paths[0]
        try:
            exif = img.getexif()
            exif_ifd = exif.get_ifd(EXIF_IFD) if exif else {}
            gps_ifd = exif.get_ifd(GPS_IFD) if exif else {}
        except Exception as exc:  # a damaged EXIF block must not hide the photo
            exif, exif_ifd, gps_ifd = None, {}, {}
            broken_exif: str | None = str(exc)
        else:
            broken_exif = None
        width, height = _stored_size(img)
        xmp = xmp_dates(xmp_packet(img))
        iptc = iptc_date(img)
        try:
            frames = int(getattr(img, "n_frames", 1) or 1)  # walks every frame of a TIFF/GIF
        except DECODER_ERRORS as exc:
            raise decode_error(exc, item) from exc
        mode = img.mode
        fmt = img.format
    orientation = int(exif.get(ORIENTATION, 1)) if exif else 1
    if orientation not in range(1, 9):
        orientation = 1
    if orientation in (5, 6, 7, 8):  # rotated a quarter turn: display dims swap
        width, height = height, width

    # Priority (docs/architecture.md, "Metadata readers"): when the shutter fired
    # (EXIF, then XMP), when the file was made (EXIF digitized, XMP/IPTC created), the
    # EXIF modify date, GPS time (UTC), and last the file's mtime (a guess).
    offset = _text(exif_ifd.get(OFFSET_TIME_ORIGINAL))
    candidates: list[tuple[str, str | None, str | None]] = [
        ("exif-original", parse_exif_datetime(exif_ifd.get(DATETIME_ORIGINAL)), offset),
        *((s, d, z) for s, d, z in xmp if s == "xmp-original"),
        ("exif-digitized", parse_exif_datetime(exif_ifd.get(DATETIME_DIGITIZED)), None),
        *((s, d, z) for s, d, z in xmp if s == "xmp-created"),
        ("iptc", *(iptc or (None, None))),
        ("exif-datetime", parse_exif_datetime(exif.get(DATETIME) if exif else None), None),
        ("gps-utc", *(gps_datetime(dict(gps_ifd)) or (None, None))),
    ]
    source, taken_at, zone = next(((s, d, z) for s, d, z in candidates if d), (None, None, None))
    if not taken_at:
        taken_at, source = _mtime_iso(item, path), "file-mtime"
    subsec = _text(exif_ifd.get(SUBSEC_TIME_ORIGINAL)) if source == "exif-original" else None

    gps = parse_gps(dict(gps_ifd)) if gps_ifd else None
    data: dict[str, Any] = {
        "format": fmt,
        "mode": mode,
        "frames": frames,
        "width": width,
        "height": height,
        "orientation": orientation,
        "taken_at": taken_at,
        "taken_at_source": source,
        "timezone_offset": zone or offset,
        "taken_at_subsec": subsec if subsec and subsec.isdigit() else None,
        "camera_make": _text(exif.get(MAKE)) if exif else None,
        "camera_model": _text(exif.get(MODEL)) if exif else None,
        "lens": _text(exif_ifd.get(LENS_MODEL)) or _text(exif_ifd.get(LENS_MAKE)),
        "gps_lat": gps[0] if gps else None,
        "gps_lon": gps[1] if gps else None,
        "gps_alt": gps[2] if gps else None,
        "pages": None,
        "title": None,
        "author": None,
    }
    if broken_exif:
        data["exif_error"] = broken_exif
    return data


def pdf_metadata(item: ItemRef) -> dict[str, Any]:
    check_readable_format(item)
    path = existing_path(item)
    with open_pdf(path) as pdf:
        pages = len(pdf)
        info = pdf.get_metadata_dict(skip_empty=True)
        width, height = pdf[0].get_size() if pages else (0.0, 0.0)
    created = parse_pdf_date(info.get("CreationDate"))
    taken_at, source = (created, "pdf") if created else (_mtime_iso(item, path), "file-mtime")
    return {
        "format": "PDF",
        "width": round(width),  # points (1/72 inch)
        "height": round(height),
        "orientation": 1,
        "pages": pages,
        "title": _text(info.get("Title")),
        "author": _text(info.get("Author")),
        "subject": _text(info.get("Subject")),
        "creator": _text(info.get("Creator")),
        "producer": _text(info.get("Producer")),
        "created": created,
        "modified": parse_pdf_date(info.get("ModDate")),
        "taken_at": taken_at,
        "taken_at_source": source,
        "camera_make": None,
        "camera_model": None,
        "lens": None,
        "gps_lat": None,
        "gps_lon": None,
    }


class MetadataStage(ItemStage):
    name = "metadata"
    version = "2"  # 2: XMP/IPTC/GPS dates, TIFF stored size (issue 16)
    lane = "import"
    kinds = frozenset({"photo", "document"})
    # Reading a header takes milliseconds; a slow share or a TIFF with thousands of
    # pages seconds. Past this the host fails the job as timed out (a decoder stuck in
    # C cannot be stopped from Python: see docs/architecture.md, "Bad files and limits").
    timeout_s: float | None = 120.0

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        # No catch-all here: reading errors are mapped where the file is read.
        data = pdf_metadata(item) if item.format == "pdf" else photo_metadata(item)
        return StageOutput(data=data)

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        data = output.data
        assignments = ", ".join(f"{col} = ?" for col in ITEM_COLUMNS)
        conn.execute(
            f"UPDATE items SET {assignments}, metadata = ?, seq = ? WHERE id = ?",
            (
                *(data.get(col) for col in ITEM_COLUMNS),
                json.dumps(data, sort_keys=True),
                seq,
                item.id,
            ),
        )
        upsert_result(conn, item.id, self.name, self.version, data)
