"""Opening photos and PDFs safely, and turning decoder errors into reasons a person can read."""

from __future__ import annotations

import errno
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from engine.errors import PermanentError, SourceOfflineError, TransientError
from engine.pipeline.types import ItemRef

if TYPE_CHECKING:
    from PIL import Image

MAX_PIXELS = 250_000_000  # a 250-MP panorama decodes in ~1 GB; beyond that we refuse
# The memory ceiling of one decode: the raster the decoder allocates (width × height ×
# Pillow's bytes per pixel for the mode, after JPEG draft scaling) must fit in this.
# Everything after the decode works on a reduced copy (`load_upright`), so a decode's
# peak stays near this raster. See docs/architecture.md, "Bad files and limits".
MAX_DECODE_BYTES = 1 << 30
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


GONE_REASON = "The file is no longer where it was catalogued (moved or deleted)."


def existing_path(item: ItemRef) -> str:
    for path in item.paths:
        if os.path.isfile(path):
            return path
    if item.paths:
        raise missing_error(item.paths)
    raise PermanentError("No path is known for this item.")


def offline_folder(path: str) -> str | None:
    """Where the file's own folder is not there: the outermost folder on the way to it
    that is missing (the unplugged drive's mount point, or the folder on it that was
    imported). None when the folder is there (then the file itself is gone)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        return None
    missing = folder
    parent = os.path.dirname(missing)
    while parent != missing and not os.path.isdir(parent):
        missing, parent = parent, os.path.dirname(parent)
    return missing


def missing_error(paths: tuple[str, ...] | list[str]) -> PermanentError | SourceOfflineError:
    """No path of an item holds a file. If one of them lies in a folder that is not
    there, the item waits for it (SourceOfflineError: its jobs run again when the folder
    is back); only a file gone from a folder that is there was moved or deleted."""
    for path in paths:
        folder = offline_folder(path)
        if folder is not None:
            return SourceOfflineError(display_path(folder))
    return PermanentError(GONE_REASON)


def display_path(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "replace")


def translate_os_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        if isinstance(exc.filename, str) and offline_folder(exc.filename) is not None:
            return missing_error([exc.filename])
        return PermanentError(GONE_REASON)
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


TRUNCATED_REASON = "The image file is truncated (incomplete download or copy?)."
# Decoder messages that say nothing to a person: the reason is given without them.
_JARGON = (
    "decoder object",
    "data stream",
    "when reading image file",
    "decoder error",
    "encoder error",
    "_io.",
    "0x",
    "traceback",
    "<",
)


def readable_detail(text: str) -> str:
    """A decoder's message, if it is one short line a person might use; else ''."""
    line = text.strip().splitlines()[0].strip().rstrip(".") if text.strip() else ""
    lowered = line.lower()
    if not line or len(line) > 120 or any(j in lowered for j in _JARGON):
        return ""
    return line


def decode_error(exc: Exception, item: ItemRef) -> Exception:
    """Map an exception raised while decoding pixels to Permanent/Transient."""
    if isinstance(exc, PermanentError | TransientError):
        return exc
    text = str(exc)
    lowered = text.lower()
    if "truncated" in lowered or "end of file" in lowered or isinstance(exc, EOFError):
        return PermanentError(TRUNCATED_REASON)
    if isinstance(exc, OSError) and exc.errno is not None:  # a real I/O error, not Pillow's
        return translate_os_error(exc)
    if isinstance(exc, OSError | SyntaxError | ValueError):
        name = FORMAT_NAMES.get(item.format, item.format)
        detail = readable_detail(text)
        return PermanentError(
            f"The {name} image is damaged and cannot be decoded"
            + (f" ({detail})." if detail else ".")
        )
    return exc


def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel takes in Pillow's raster (multi-band 8-bit modes use 4)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def check_decode_size(img: Image.Image) -> None:
    """Refuse, before decoding, an image whose raster would pass MAX_DECODE_BYTES."""
    width, height = img.size
    need = width * height * _pixel_bytes(img.mode)
    if need > MAX_DECODE_BYTES:
        raise PermanentError(
            f"The image is too large to open safely ({width:,} × {height:,} pixels would "
            f"need {need / 2**20:,.0f} MB of memory; the limit is {MAX_DECODE_BYTES >> 20:,} MB)."
        )


# EXIF orientation → the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
            6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip


def load_upright(
    img: Image.Image, item: ItemRef, target_px: int | None, draft_mode: str = "RGB"
) -> Image.Image:
    """Decode an opened photo and return it upright, at least `target_px` on its long
    side where the source allows (None: full size).

    Memory: the raster is checked against MAX_DECODE_BYTES before decoding (after JPEG
    draft scaling), and an image at least twice the target is reduced (box filter, in C)
    before it is turned upright or converted, so those work on the small copy. Only
    the reading (draft, load, EXIF) maps to "damaged" reasons."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    try:
        if target_px is not None and img.format == "JPEG":
            img.draft(draft_mode, (target_px, target_px))
        check_decode_size(img)
        img.load()
        factor = max(img.size) // target_px if target_px else 1
        if factor < 2:
            upright = ImageOps.exif_transpose(img)
            return upright if upright is not None else img.copy()
        orientation = img.getexif().get(0x0112, 1)
    except DECODER_ERRORS as exc:
        raise decode_error(exc, item) from exc
    small = _reducible(img).reduce(factor)
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    if method is not None:
        small = small.transpose(PILImage.Transpose[method])
    return small


def _reducible(img: Image.Image) -> Image.Image:
    """`Image.reduce` takes neither palette, bilevel nor 16-bit greyscale images."""
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img


# PDFium's error texts, as a person would say them.
_PDFIUM_REASONS = (
    ("password", "The PDF is password-protected."),
    ("security", "The PDF is encrypted in a way Shoebox cannot open."),
    ("format", "The PDF is damaged (or not really a PDF) and cannot be opened."),
    ("file", "The PDF cannot be read from the disk."),
    ("page", "A page of the PDF is damaged and cannot be read."),
)


def pdf_reason(exc: Exception, default: str = "The PDF is damaged and cannot be read.") -> str:
    text = str(exc).lower()
    for needle, reason in _PDFIUM_REASONS:
        if needle in text:
            return reason
    return default


@contextmanager
def open_pdf(path: str) -> Iterator[Any]:
    """A pypdfium2 document, open, with PDFIUM_LOCK held; PDFium's errors (on opening
    and while the block reads it) become plain PermanentErrors."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise PermanentError(
                pdf_reason(exc, "The PDF is damaged and cannot be opened.")
            ) from exc
        except OSError as exc:
            if exc.errno is None and isinstance(exc, FileNotFoundError):
                exc = FileNotFoundError(errno.ENOENT, "No such file", path)  # pypdfium2's own
            raise translate_os_error(exc) from exc
        try:
            yield pdf
        except pdfium.PdfiumError as exc:
            raise PermanentError(pdf_reason(exc)) from exc
        finally:
            pdf.close()
