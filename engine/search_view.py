"""The search box's text as the desktop app shows it: its inline filters as chips
(`filter_chips`), the text without one (`without_filter`) or with one more
(`with_filter`), a hit's reason with its matched words marked (`why_parts`,
`why_html`), and the state filter of the grid applied to hits (`ids_in_state`).

The grammar is engine/search/query.py's; nothing here imports Qt.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from engine.browse import _STATE_WHERE
from engine.search.query import _TOKEN, KINDS

# Filter keys the query understands, by the name a chip shows.
FILTER_KEYS: dict[str, str] = {
    "kind": "kind",
    "type": "kind",
    "is": "kind",
    "tag": "tag",
    "label": "label",
    "after": "after",
    "since": "after",
    "from": "after",
    "before": "before",
    "until": "before",
    "in": "in",
    "folder": "in",
}
KIND_LABELS = {"photo": "Photos", "document": "Documents"}
_MARK = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class FilterChip:
    """One inline filter of the box: `text[start:end]` is how it was typed."""

    key: str  # kind | tag | label | after | before | in
    value: str
    start: int
    end: int

    @property
    def label(self) -> str:
        if self.key == "kind":
            return KIND_LABELS.get(KINDS.get(self.value.lower(), ""), f"kind: {self.value}")
        if self.key == "in":
            return f"in {self.value}"
        if self.key in ("after", "before"):
            return f"{self.key} {self.value}"
        return f"{self.key}: {self.value}"


def filter_chips(text: str) -> list[FilterChip]:
    """The inline filters in `text`, in order (values that would not parse included:
    the search says what is wrong with them; a chip lets the user remove them)."""
    out: list[FilterChip] = []
    for m in _TOKEN.finditer(text):
        key = m.group("key")
        if key is None:
            continue
        name = FILTER_KEYS.get(key.lower())
        if name is None:
            continue  # "re:invoice": words, not a filter
        value = m.group("qval") if m.group("qval") is not None else m.group("val") or ""
        if not value.strip():
            continue
        out.append(FilterChip(name, value.strip(), m.start(), m.end()))
    return out


def without_filter(text: str, chip: FilterChip) -> str:
    """`text` with the chip's filter taken out (spaces tidied)."""
    return _tidy(text[: chip.start] + " " + text[chip.end :])


def with_filter(text: str, key: str, value: str) -> str:
    """`text` with the filter `key:value` added (a kind replaces the one there)."""
    if key == "kind":
        for chip in reversed([c for c in filter_chips(text) if c.key == "kind"]):
            text = text[: chip.start] + text[chip.end :]
    written = f'"{value}"' if any(c.isspace() for c in value) else value
    return _tidy(f"{text} {key}:{written}")


def _tidy(text: str) -> str:
    return " ".join(text.split())


def why_parts(why: str) -> list[tuple[str, bool]]:
    """A hit's reason cut into (text, matched) runs: the [bracketed] words are matched."""
    out: list[tuple[str, bool]] = []
    at = 0
    for m in _MARK.finditer(why):
        if m.start() > at:
            out.append((why[at : m.start()], False))
        if m.group(1):
            out.append((m.group(1), True))
        at = m.end()
    if at < len(why):
        out.append((why[at:], False))
    return out


def why_text(why: str) -> str:
    """The reason without its marks."""
    return "".join(text for text, _ in why_parts(why))


def why_html(why: str) -> str:
    """The reason as rich text, the matched words bold."""
    return "".join(
        f"<b>{html.escape(text)}</b>" if marked else html.escape(text)
        for text, marked in why_parts(why)
    )


def ids_in_state(conn: sqlite3.Connection, ids: Sequence[int], state: str) -> set[int]:
    """Which of `ids` the grid's state filter keeps ("all": every one)."""
    if state == "all" or state not in _STATE_WHERE:
        return set(ids)
    where = _STATE_WHERE[state]
    out: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = [int(i) for i in ids[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT i.id FROM items i WHERE i.id IN ({marks}) AND {where}"
        out.update(int(r[0]) for r in conn.execute(sql, chunk))
    return out
