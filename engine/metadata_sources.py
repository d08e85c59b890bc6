"""Dates taken from the places besides EXIF that cameras, phones and editors write them
(issue 16): the XMP packet, IPTC (APP13 / TIFF tag 33723) and GPS time.

Pillow reads the containers; the XMP packet is parsed here with xml.etree, after a
size limit and a refusal of DTDs/entities (no defusedxml needed: a packet with a
DOCTYPE is not XMP any camera writes)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

XMP_MAX_BYTES = 2 * 1024 * 1024
TIFF_XMP_TAG = 700

NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
# In order of preference: when the shutter fired, then when the file was made.
XMP_DATE_NAMES = (
    (f"{{{NS_EXIF}}}DateTimeOriginal", "xmp-original"),
    (f"{{{NS_PHOTOSHOP}}}DateCreated", "xmp-created"),
    (f"{{{NS_XMP}}}CreateDate", "xmp-created"),
    (f"{{{NS_EXIF}}}DateTimeDigitized", "xmp-created"),
)

_DATE_RE = re.compile(
    r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(\.\d+)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_date(text: str | None) -> tuple[str, str | None] | None:
    """EXIF/XMP date text → (ISO 8601 local time to the second, zone offset or None).

    Seconds or minutes past 59 (a camera's '15:08:70') carry into the next minute/hour;
    dates before 1826 (the first photograph: a blank camera clock) are no date."""
    if not text:
        return None
    m = _DATE_RE.match(text)
    if not m:
        return None
    year, month, day, hh, mm, ss, _frac, zone = m.groups()
    try:
        base = datetime(int(year), int(month), int(day))
    except ValueError:
        return None
    if base.year < 1826:
        return None
    hours, minutes, seconds = int(hh or 0), int(mm or 0), int(ss or 0)
    if hours > 23 or minutes > 99 or seconds > 99:
        return None
    when = base + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if zone == "Z":
        offset: str | None = "+00:00"
    elif zone:
        digits = zone.replace(":", "")
        offset = f"{digits[:3]}:{digits[3:]}"
    else:
        offset = None
    return when.isoformat(), offset


def xmp_packet(img: Any) -> bytes | None:
    """The raw XMP packet Pillow found (JPEG APP1, WebP, PNG iTXt, TIFF tag 700, HEIC)."""
    info = getattr(img, "info", {}) or {}
    raw = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if raw is None:
        tags = getattr(img, "tag_v2", None)
        if tags is not None:
            try:
                raw = tags.get(TIFF_XMP_TAG)
            except Exception:  # a damaged tag is no packet
                raw = None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if isinstance(raw, (tuple, list)):  # some TIFF writers: a tuple of byte values
        try:
            raw = bytes(raw)
        except (TypeError, ValueError):
            return None
    return raw if isinstance(raw, bytes) and raw else None


def xmp_dates(packet: bytes | None) -> list[tuple[str, str, str | None]]:
    """[(source, ISO date, zone offset)] in order of preference; [] for no/bad packet."""
    if not packet or len(packet) > XMP_MAX_BYTES:
        return []
    start = packet.find(b"<x:xmpmeta")
    if start < 0:
        start = packet.find(b"<rdf:RDF")
    if start < 0:
        return []
    end_tag = b"</x:xmpmeta>" if packet.startswith(b"<x:xmpmeta", start) else b"</rdf:RDF>"
    end = packet.find(end_tag, start)
    if end < 0:
        return []
    body = packet[start : end + len(end_tag)]
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return []
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    found: dict[str, str] = {}
    for el in root.iter():
        for name, value in el.attrib.items():
            found.setdefault(name, value)
        if el.text and el.text.strip():
            found.setdefault(el.tag, el.text.strip())
        elif len(el):  # rdf:Seq/rdf:Alt holding the value in rdf:li
            li = next((c for c in el.iter() if c is not el and c.text and c.text.strip()), None)
            if li is not None and li.text:
                found.setdefault(el.tag, li.text.strip())
    dates = []
    for name, source in XMP_DATE_NAMES:
        parsed = parse_date(found.get(name))
        if parsed:
            dates.append((source, parsed[0], parsed[1]))
    return dates


def iptc_date(img: Any) -> tuple[str, str | None] | None:
    """IPTC 2:55 DateCreated (+ 2:60 TimeCreated) → (ISO date, zone offset)."""
    from PIL import IptcImagePlugin

    try:
        info = IptcImagePlugin.getiptcinfo(img)
    except Exception:  # a damaged APP13 block is no date
        return None
    if not info:
        return None
    date, time_ = info.get((2, 55)), info.get((2, 60))
    if isinstance(date, list):
        date = date[0] if date else None
    if isinstance(time_, list):
        time_ = time_[0] if time_ else None
    if not isinstance(date, bytes):
        return None
    d = date.decode("ascii", "replace").strip()
    if not re.fullmatch(r"\d{8}", d):
        return None
    text = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    if isinstance(time_, bytes):
        t = time_.decode("ascii", "replace").strip()
        if re.fullmatch(r"\d{6}([+-]\d{4})?", t):
            text += f"T{t[:2]}:{t[2:4]}:{t[4:6]}{t[6:]}"
    return parse_date(text)


def gps_datetime(gps: dict[int, Any]) -> tuple[str, str] | None:
    """GPSDateStamp (29) + GPSTimeStamp (7) → (ISO 8601 in UTC, '+00:00')."""
    stamp, clock = gps.get(29), gps.get(7)
    if not isinstance(stamp, str) or not isinstance(clock, tuple) or len(clock) != 3:
        return None
    try:
        h, m, s = (float(v) for v in clock)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(x == x and x >= 0 for x in (h, m, s)):  # NaN from 0/0 rationals
        return None
    parsed = parse_date(f"{stamp.strip()[:10]} {int(h):02d}:{int(m):02d}:{int(s):02d}")
    return (parsed[0], "+00:00") if parsed else None
