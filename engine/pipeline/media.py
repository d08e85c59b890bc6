"""Opening photos and PDFs safely, and turning decoder errors into reasons a person can read."""

from __future__ import annotations

import errno
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.errors import PermanentError, TransientError
from engine.pipeline.types import ItemRef

if TYPE_CHECKING:
    from PIL import Image

MAX_PIXELS = 250_000_000  # a 250-MP panorama decodes in ~750 MB; beyond that we refuse
# PDFium is not thread-safe: every call into it holds this lock.
PDFIUM_LOCK = threading.RLock()

_heif_registered = False
_heif_lock = threading.Lock()
_pillow_configured = False
_pillow_lock = threading.Lock()

# What Pillow's parsers and decoders raise for a bad file. Only these, raised while
# opening or decoding, become "damaged" reasons; anything else is a bug of ours.
DECODER_ERRORS: tuple[type[Exception], ...] = (OSError, SyntaxError, ValueError, EOFError)

FORMAT_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WebP",
    "tiff": "TIFF",
    "bmp": "BMP",
    "heif": "HEIC/HEIF",
    "pdf": "PDF",
}


def _register_heif() -> None:
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_registered = True


def _configure_pillow() -> None:
    """Once per process, before the first open: our pixel limit, and no bomb warnings.

    Pillow warns above MAX_IMAGE_PIXELS and raises above twice that. The warning is
    ignored by a filter installed once (`warnings.catch_warnings` around each open
    would swap the process-wide filter list under other threads); the explicit
    pixel-count check in `open_image` refuses those images instead. Done lazily, not
    at import, so that importing the engine does not import Pillow."""
    global _pillow_configured
    if _pillow_configured:
        return
    with _pillow_lock:
        if not _pillow_configured:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            _pillow_configured = True


def check_readable_format(item: ItemRef) -> None:
    """Fail at once, with a plain reason, for content no stage can read."""
    if item.format == "empty":
        raise PermanentError("The file is empty (0 bytes).")
    if item.format == "unknown":
        raise PermanentError(
            "The file's contents are not a photo or PDF that Shoebox can read "
            "(the name says image, the bytes do not)."
        )


def existing_path(item: ItemRef) -> str:
    for path in item.paths:
        if os.path.isfile(path):
            return path
    if item.paths:
        raise PermanentError("The file is no longer where it was catalogued (moved or deleted).")
    raise PermanentError("No path is known for this item.")


def translate_os_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return PermanentError("The file is no longer where it was catalogued (moved or deleted).")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermanentError("Shoebox is not allowed to read this file (permission denied).")
    return TransientError(f"Reading the file failed: {exc.strerror or exc}.")


@contextmanager
def open_image(item: ItemRef) -> Iterator[Image.Image]:
    """Open a photo lazily (header only) with size limits applied; never modifies it."""
    from PIL import Image, UnidentifiedImageError

    check_readable_format(item)
    if item.format == "heif":
        _register_heif()
    _configure_pillow()
    path = existing_path(item)
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise PermanentError(_too_large_reason(str(exc))) from exc
    except Image.DecompressionBombWarning as exc:  # only where a caller's filter makes it an error
        raise PermanentError(_too_large_reason(str(exc))) from exc
    except UnidentifiedImageError as exc:
        if item.format == "tiff" and _is_big_endian_bigtiff(path):
            raise PermanentError(
                "The file is a big-endian BigTIFF, a TIFF variant the image decoder "
                "cannot read yet."
            ) from exc
        name = FORMAT_NAMES.get(item.format, item.format)
        raise PermanentError(
            f"The file starts like a {name} image but cannot be decoded (damaged or unsupported)."
        ) from exc
    except DECODER_ERRORS as exc:
        raise decode_error(exc, item) from exc
    try:
        width, height = img.size
        if width * height > MAX_PIXELS:
            # The same sentence Pillow's bomb check leads to, for images between the
            # limit and twice it, whose warning is ignored.
            raise PermanentError(
                f"The image is too large to open safely ({width * height:,} pixels)."
            )
        if width <= 0 or height <= 0:
            raise PermanentError("The image header claims zero width or height.")
        yield img
    finally:
        img.close()


def _is_big_endian_bigtiff(path: str) -> bool:
    # Pillow (through 13.0 at least) looks for BigTIFF's version 43 in the
    # little-endian byte only, so it cannot identify big-endian BigTIFFs.
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"MM\x00+"
    except OSError:
        return False


def _too_large_reason(message: str) -> str:
    digits = [
        int(tok) for tok in message.replace("(", " ").replace(")", " ").split() if tok.isdigit()
    ]
    pixels = f" ({digits[0]:,} pixels)" if digits else ""
    return f"The image is too large to open safely{pixels}."


def decode_error(exc: Exception, item: ItemRef) -> Exception:
    """Map an exception raised while decoding pixels to Permanent/Transient."""
    if isinstance(exc, PermanentError | TransientError):
        return exc
    text = str(exc)
    if "truncated" in text.lower():
        return PermanentError("The image file is truncated (incomplete download or copy?).")
    if isinstance(exc, OSError) and exc.errno is not None:  # a real I/O error, not Pillow's
        return translate_os_error(exc)
    if isinstance(exc, OSError | SyntaxError | ValueError | EOFError):
        name = FORMAT_NAMES.get(item.format, item.format)
        return PermanentError(f"The {name} image is damaged and cannot be decoded ({text}).")
    return exc
