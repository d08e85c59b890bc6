"""Label names: what the user typed, and the key that makes "Receipts" and
"receipts " the same label. Tiny on purpose: the search filter imports it."""

from __future__ import annotations

MAX_NAME = 80


class LabelError(ValueError):
    """Something about a label the user asked for, said in words."""


def label_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def clean_name(name: str) -> str:
    """The name as it is shown; raises LabelError for an empty or overlong one."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise LabelError("A label needs a name.")
    if len(cleaned) > MAX_NAME:
        raise LabelError(f"A label's name can be at most {MAX_NAME} characters.")
    if any(ord(c) < 32 for c in cleaned):
        raise LabelError("A label's name cannot contain control characters.")
    return cleaned
