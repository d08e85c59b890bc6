"""Real camera files, assembled by the tests, and Shoebox's metadata compared with
exiftool's (the reference, in tests only).

The files: the JPEG, MPO and TIFF images of Pillow's own test suite, from its source
distribution on PyPI (pinned to the installed Pillow's version) — photos from Canon,
Nikon, Fujifilm, Nokia, Xiaomi, Apple, Google and Nintendo cameras and phones, with
the broken and odd EXIF blocks Pillow's bug reports brought in. Downloaded once
(`pip download`, a package registry, not the open web) into a cache folder
(`SHOEBOX_CAMERA_CORPUS`, default `~/.cache/shoebox/camera-corpus`).

`python -m tests.reliability.camera_corpus` prints the per-field agreement as JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SUFFIXES = (".jpg", ".jpeg", ".mpo", ".tif", ".tiff")
FIELDS = ("taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon", "gps",
          "orientation", "width", "height")  # fmt: skip


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "shoebox" / "camera-corpus"
    return Path(os.environ.get("SHOEBOX_CAMERA_CORPUS", default))


def assemble(folder: Path | None = None) -> list[Path]:
    """The corpus's files (downloading Pillow's sdist once); [] when it cannot be had."""
    import PIL

    folder = folder or cache_dir()
    images = folder / f"pillow-{PIL.__version__}"
    if not images.exists():
        folder.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"pillow=={PIL.__version__}", "-d", str(folder), "-q"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        archives = sorted(folder.glob(f"pillow-{PIL.__version__}.tar.gz"))
        if got.returncode != 0 or not archives:
            return []
        tmp = folder / "tmp-extract"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archives[0]) as tar:
            members = [
                m
                for m in tar.getmembers()
                if "/Tests/images/" in m.name and m.isfile() and m.name.lower().endswith(SUFFIXES)
            ]
            tar.extractall(tmp, members=members, filter="data")
        tmp_images = next(tmp.glob("*/Tests/images"))
        tmp_images.rename(images)
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in images.rglob("*") if p.suffix.lower() in SUFFIXES)


def exiftool_fields(paths: list[Path]) -> dict[Path, dict[str, Any]]:
    """exiftool's reading of each file, in Shoebox's field names (numbers with -n)."""
    out: dict[Path, dict[str, Any]] = {}
    for start in range(0, len(paths), 100):
        chunk = paths[start : start + 100]
        run = subprocess.run(
            ["exiftool", "-json", "-n", "-DateTimeOriginal", "-CreateDate", "-ModifyDate",
             "-Make", "-Model", "-GPSLatitude", "-GPSLongitude", "-Orientation",
             "-ImageWidth", "-ImageHeight", *map(str, chunk)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        for row in json.loads(run.stdout or "[]"):
            path = Path(row["SourceFile"])
            orientation = row.get("Orientation")
            width, height = row.get("ImageWidth"), row.get("ImageHeight")
            if orientation in (5, 6, 7, 8) and width and height:
                width, height = height, width
            date = row.get("DateTimeOriginal") or row.get("CreateDate") or row.get("ModifyDate")
            out[path] = {
                "taken_at": _exif_date(date),
                "camera_make": _clean(row.get("Make")),
                "camera_model": _clean(row.get("Model")),
                "gps_lat": row.get("GPSLatitude"),
                "gps_lon": row.get("GPSLongitude"),
                "gps": _gps(row.get("GPSLatitude"), row.get("GPSLongitude")),
                "orientation": orientation if orientation in range(1, 9) else None,
                "width": width,
                "height": height,
            }
    return out


def _gps(lat: Any, lon: Any) -> tuple[float, float] | None:
    """A position on Earth, or None (exiftool prints a 0xFFFFFFFF latitude as it is)."""
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
        return None
    return (float(lat), float(lon)) if abs(lat) <= 90 and abs(lon) <= 180 else None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _exif_date(value: Any) -> str | None:
    """'2003:12:14 12:01:44' (maybe with a zone or fraction) → '2003-12-14T12:01:44'."""
    if not isinstance(value, str) or len(value) < 19 or value.startswith("0000"):
        return None
    date, time_ = value[:10].replace(":", "-"), value[11:19]
    try:  # a camera's '15:08:70' is 15:09:10 (Shoebox carries; exiftool prints it raw)
        hh, mm, ss = (int(x) for x in time_.split(":"))
        day = datetime.strptime(date, "%Y-%m-%d")
    except ValueError:
        return f"{date}T{time_}"
    return (day + timedelta(hours=hh, minutes=mm, seconds=ss)).isoformat()


def shoebox_fields(path: Path) -> dict[str, Any]:
    """The metadata stage's reading of one file (as the stage runs it)."""
    from engine.pipeline.metadata import photo_metadata
    from engine.pipeline.types import ItemRef

    st = path.stat()
    item = ItemRef(1, "h", "photo", path.suffix.lstrip(".").lower(), st.st_size, (str(path),),
                   st.st_mtime_ns)  # fmt: skip
    try:
        data = photo_metadata(item)
    except Exception as exc:  # a failed file: every field counts as not read
        return {"error": f"{type(exc).__name__}: {exc}"}
    if data.get("taken_at_source") == "file-mtime":
        data["taken_at"] = None  # a guess from the file system, not a date taken
    taken = data.get("taken_at")
    data["taken_at"] = taken[:19] if isinstance(taken, str) else None
    data["camera_make"] = _clean(data.get("camera_make"))
    data["camera_model"] = _clean(data.get("camera_model"))
    data["gps"] = _gps(data.get("gps_lat"), data.get("gps_lon"))
    return data


def _same(field: str, ours: Any, ref: Any) -> bool:
    if field in ("gps_lat", "gps_lon") and ours is not None and ref is not None:
        return math.isclose(float(ours), float(ref), abs_tol=1e-5)
    if field == "gps" and ours is not None and ref is not None:
        return all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(ours, ref, strict=True))
    return bool(ours == ref)


def compare(paths: list[Path]) -> dict[str, Any]:
    """Per field: files where exiftool has a value, and of those how many Shoebox read the
    same (`agree`), differently (`differ`) or not at all (`missing`); `extra`: Shoebox
    has a value exiftool does not. Plus the files Shoebox failed on, with reasons."""
    reference = exiftool_fields(paths)
    fields: dict[str, dict[str, Any]] = {
        f: {"files": 0, "agree": 0, "differ": 0, "missing": 0, "extra": 0, "examples": []}
        for f in FIELDS
    }
    failed: dict[str, str] = {}
    for path in paths:
        ref = reference.get(path)
        if ref is None:
            continue
        ours = shoebox_fields(path)
        if "error" in ours:
            failed[path.name] = ours["error"]
        for field in FIELDS:
            counts = fields[field]
            mine, theirs = ours.get(field), ref.get(field)
            if theirs is None:
                counts["extra"] += mine is not None
                continue
            counts["files"] += 1
            if mine is None:
                counts["missing"] += 1
                verdict = "missing"
            elif _same(field, mine, theirs):
                counts["agree"] += 1
                continue
            else:
                counts["differ"] += 1
                verdict = "differ"
            if len(counts["examples"]) < 5:
                counts["examples"].append(
                    f"{path.name}: ours {mine!r}, exiftool {theirs!r} ({verdict})"
                )
    for counts in fields.values():
        counts["agreement"] = (
            round(counts["agree"] / counts["files"], 3) if counts["files"] else None
        )
    return {"files": len(paths), "fields": fields, "failed": failed}


def iter_report(report: dict[str, Any]) -> Iterator[str]:
    for field, c in report["fields"].items():
        yield (
            f"{field}: {c['agree']}/{c['files']} agree, {c['differ']} differ, "
            f"{c['missing']} missing"
        )


if __name__ == "__main__":
    files = assemble()
    if not files:
        sys.exit("camera corpus: could not download Pillow's source distribution")
    result = compare(files)
    for line in iter_report(result):
        print(line, file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
