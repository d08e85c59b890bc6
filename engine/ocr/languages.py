"""Which tesseract languages to read with, from the `ocr.languages` setting.

"auto" is English plus the system locale's language, where its traineddata is
installed; otherwise the setting names tesseract codes ("eng+deu"; ISO 639-1 codes
like "de" are accepted too). A requested language that is not installed is a
warning naming the package to install, and the installed ones are used; when none
of them is installed, the job waits (WaitingError) with that advice.
"""

from __future__ import annotations

import locale
import os
import re

from engine.errors import WaitingError
from engine.ocr.tesseract import installed_languages

__all__ = [
    "ISO_TO_TESSERACT",
    "apt_package",
    "resolve_languages",
    "system_language",
]

# ISO 639-1 → tesseract traineddata name (Chinese is split by script below).
ISO_TO_TESSERACT: dict[str, str] = {
    "af": "afr", "ar": "ara", "be": "bel", "bg": "bul", "bn": "ben", "ca": "cat",
    "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
    "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin",
    "fr": "fra", "ga": "gle", "gl": "glg", "he": "heb", "hi": "hin", "hr": "hrv",
    "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn",
    "ka": "kat", "kk": "kaz", "ko": "kor", "lt": "lit", "lv": "lav", "mk": "mkd",
    "ms": "msa", "mt": "mlt", "nb": "nor", "nl": "nld", "nn": "nor", "no": "nor",
    "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv",
    "sq": "sqi", "sr": "srp", "sv": "swe", "sw": "swa", "ta": "tam", "th": "tha",
    "tl": "tgl", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie",
    "zh": "chi_sim",
}  # fmt: skip

NAMES: dict[str, str] = {
    "eng": "English", "deu": "German", "fra": "French", "spa": "Spanish",
    "ita": "Italian", "nld": "Dutch", "por": "Portuguese", "swe": "Swedish",
    "dan": "Danish", "nor": "Norwegian", "fin": "Finnish", "pol": "Polish",
    "ces": "Czech", "rus": "Russian", "ukr": "Ukrainian", "jpn": "Japanese",
    "chi_sim": "Chinese (simplified)", "chi_tra": "Chinese (traditional)",
    "kor": "Korean", "tur": "Turkish", "ell": "Greek", "hun": "Hungarian",
    "ron": "Romanian", "bul": "Bulgarian", "hrv": "Croatian", "slk": "Slovak",
    "slv": "Slovenian", "srp": "Serbian", "cat": "Catalan", "ara": "Arabic",
    "heb": "Hebrew", "hin": "Hindi", "tha": "Thai", "vie": "Vietnamese",
    "ind": "Indonesian", "lit": "Lithuanian", "lav": "Latvian", "est": "Estonian",
}  # fmt: skip

_TRADITIONAL_CHINESE = ("tw", "hk", "mo", "hant")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def apt_package(code: str) -> str:
    """Debian/Ubuntu package with a language's traineddata (chi_sim → tesseract-ocr-chi-sim)."""
    return "tesseract-ocr-" + code.lower().replace("_", "-")


def _describe(code: str) -> str:
    name = NAMES.get(code)
    return f"{code} ({name})" if name else code


def _from_locale_name(name: str | None) -> str | None:
    """'de_DE.UTF-8' → 'deu'; 'zh_TW' → 'chi_tra'; C/POSIX/unknown → None."""
    if not name:
        return None
    base = name.split(".")[0].split("@")[0].strip().lower().replace("-", "_")
    if base in ("", "c", "posix"):
        return None
    iso, _, region = base.partition("_")
    if iso == "zh":
        return "chi_tra" if region in _TRADITIONAL_CHINESE else "chi_sim"
    return ISO_TO_TESSERACT.get(iso)


def system_language() -> str | None:
    """The tesseract code of the system locale's language (LC_ALL, LC_MESSAGES, LANG,
    then Python's `locale.getlocale()`), or None."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return _from_locale_name(value)
    try:
        return _from_locale_name(locale.getlocale()[0])
    except ValueError:
        return None


def _install_advice(missing: list[str]) -> str:
    packages = " ".join(apt_package(code) for code in missing)
    them = "it" if len(missing) == 1 else "them"
    return (
        f"install {them} with `sudo apt install {packages}` (macOS: `brew install tesseract-lang`)"
    )


def resolve_languages(setting: str, *, installed: set[str] | None = None) -> tuple[str, str | None]:
    """(tesseract `-l` value such as "eng" or "eng+deu", warning or None).

    The warning names what is missing and the package to install; the languages that
    are installed are used meanwhile. WaitingError when none of them is installed."""
    have = installed if installed is not None else installed_languages()
    text = setting.strip().lower()
    warnings: list[str] = []
    if text in ("", "auto"):
        wanted = ["eng"]
        local = system_language()
        if local is not None and local != "eng":
            wanted.append(local)
    else:
        wanted = []
        for token in re.split(r"[+,\s]+", text):
            if not token or token == "osd":
                continue
            code = ISO_TO_TESSERACT.get(token, token) if len(token) == 2 else token
            if not _CODE.match(code):
                warnings.append(f"{token!r} is not a tesseract language code (like eng or deu).")
                continue
            if code not in wanted:
                wanted.append(code)
        if not wanted:
            wanted = ["eng"]
    usable = [code for code in wanted if code in have]
    missing = [code for code in wanted if code not in have]
    if not usable:
        names = ", ".join(_describe(code) for code in missing)
        raise WaitingError(f"Tesseract has no traineddata for {names}: {_install_advice(missing)}.")
    if missing:
        names = ", ".join(_describe(code) for code in missing)
        warnings.append(
            f"Tesseract has no traineddata for {names}, so text is read as "
            f"{'+'.join(usable)} only: {_install_advice(missing)}."
        )
    return "+".join(usable), " ".join(warnings) or None
