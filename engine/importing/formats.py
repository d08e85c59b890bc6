"""Which files Shoebox takes, and what their bytes say they are."""

from __future__ import annotations

PHOTO_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".gif",
        ".tif",
        ".tiff",
        ".bmp",
        ".heic",
        ".heif",
        ".hif",
    }
)
DOCUMENT_EXTENSIONS = frozenset({".pdf"})
SUPPORTED_EXTENSIONS = PHOTO_EXTENSIONS | DOCUMENT_EXTENSIONS

# Names that operating systems and NAS boxes sprinkle into folders.
SYSTEM_NAMES = frozenset(
    {
        "thumbs.db",
        "desktop.ini",
        ".ds_store",
        "@eadir",
        "$recycle.bin",
        "lost+found",
        "system volume information",
        ".spotlight-v100",
        ".trashes",
        ".fseventsd",
    }
)

HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})

SNIFF_BYTES = 32


def sniff_format(head: bytes, size: int) -> str:
    """The format the file's first bytes show, or 'empty' / 'unknown'."""
    if size == 0:
        return "empty"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # Classic TIFF (version 42) and BigTIFF (version 43, 64-bit offsets), each in
    # little-endian (II) or big-endian (MM) byte order.
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM":
        return "bmp"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heif"
    if head.startswith(b"%PDF-"):
        return "pdf"
    return "unknown"


def kind_for(fmt: str, extension: str) -> str:
    """photo | document. Content decides; the extension only breaks ties."""
    if fmt == "pdf":
        return "document"
    if fmt in ("unknown", "empty") and extension in DOCUMENT_EXTENSIONS:
        return "document"
    return "photo"


def is_supported_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in SUPPORTED_EXTENSIONS


def is_hidden_or_system(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES
