"""What the search box understands: words, "quoted phrases" and inline filters.

    invoice 4711                    words (all must match for an exact hit)
    "final notice"                  a phrase, matched exactly
    kind:photo  kind:document       only photos / only documents
    tag:beach  tag:"red car"        items with that tag
    label:Receipts                  items with that label of yours (yours or automatic)
    after:2023  before:2024-06-15   taken (or dated) on/after, or before, the start of
                                    that year, month or day
    in:Taxes  in:/home/me/Scans     in a folder of that name, or under that path

Filters combine with AND; words that are not filters are the query, sent to the
full-text index as they are and to the embedding models as one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

KINDS = {
    "photo": "photo",
    "photos": "photo",
    "image": "photo",
    "images": "photo",
    "document": "document",
    "documents": "document",
    "doc": "document",
    "docs": "document",
}

# Words too common to decide a match alone: left out of the any-word fallback.
_STOPWORDS_TEXT = """a about all an and any are as at be been but by can could did do does for
    from had has have how i if in into is it its me my no not of on or our so than that the
    their them then there these they this to up was we were what when where which who why
    will with would you your"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

_TOKEN = re.compile(
    r'(?P<key>[A-Za-z]+):(?:"(?P<qval>[^"]*)"?|(?P<val>\S*))'
    r'|"(?P<phrase>[^"]*)"?'
    r"|(?P<word>\S+)"
)
_DATE = re.compile(r"^(\d{4})(?:[-/.](\d{1,2}))?(?:[-/.](\d{1,2}))?$")
# What FTS5's unicode61 tokenizer keeps: letters and digits (everything else separates).
_FTS_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class QueryError(ValueError):
    """A filter the search box cannot use, said in words."""


@dataclass
class Query:
    words: list[str] = field(default_factory=list)  # free words, in order
    phrases: list[str] = field(default_factory=list)
    kind: str | None = None
    tags: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    after: date | None = None
    before: date | None = None
    folders: list[str] = field(default_factory=list)
    typing: bool = False  # the last word may be unfinished (results as you type)

    @property
    def text(self) -> str:
        """The query as a sentence, for the embedding models (filters left out)."""
        return " ".join([*self.words, *self.phrases]).strip()

    @property
    def has_text(self) -> bool:
        return bool(self.text)

    @property
    def has_filters(self) -> bool:
        return bool(
            self.kind or self.tags or self.labels or self.after or self.before or self.folders
        )


def parse(text: str, *, typing: bool = False) -> Query:
    """The query in `text`. Raises QueryError for a filter value it cannot read."""
    unfinished = bool(text) and not text[-1].isspace() and not text.endswith('"')
    query = Query(typing=typing and unfinished)
    for m in _TOKEN.finditer(text):
        if m.group("key") is not None:
            key = m.group("key").lower()
            value = m.group("qval") if m.group("qval") is not None else m.group("val") or ""
            if key in ("kind", "type", "is"):
                kind = KINDS.get(value.lower())
                if kind is None:
                    raise QueryError(f"kind:{value} — use kind:photo or kind:document.")
                query.kind = kind
                continue
            if key == "tag":
                if value.strip():
                    query.tags.append(value.strip())
                continue
            if key == "label":
                if value.strip():
                    query.labels.append(value.strip())
                continue
            if key in ("after", "since", "from"):
                query.after = parse_date(value, key)
                continue
            if key in ("before", "until"):
                query.before = parse_date(value, key)
                continue
            if key in ("in", "folder"):
                if value.strip():
                    query.folders.append(value.strip())
                continue
            # Not a filter ("re:invoice", "12:30"): the words themselves.
            query.words.append(m.group(0))
        elif m.group("phrase") is not None:
            phrase = " ".join(m.group("phrase").split())
            if phrase:
                query.phrases.append(phrase)
        else:
            query.words.append(m.group("word"))
    return query


def parse_date(value: str, key: str = "after") -> date:
    m = _DATE.match(value.strip())
    if m is None:
        raise QueryError(f"{key}:{value} — write a date as 2023, 2023-06 or 2023-06-15.")
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise QueryError(f"{key}:{value} is not a date ({exc}).") from exc


def fts_terms(text: str) -> list[str]:
    """The tokens FTS5 would make of `text` (lower-cased; diacritics folded by FTS)."""
    return [t.lower() for t in _FTS_WORD.findall(text)]


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_match(query: Query, *, any_word: bool = False) -> str | None:
    """An FTS5 MATCH expression: every word and phrase (or, with `any_word`, any word
    that is not a stopword, phrases still required). None when there is nothing to
    match."""
    terms: list[str] = []
    for word in query.words:
        terms += fts_terms(word)
    if any_word:
        terms = [t for t in terms if t not in STOPWORDS]
    parts: list[str] = []
    for i, term in enumerate(terms):
        last = i == len(terms) - 1 and query.typing and not query.phrases
        parts.append(_quote(term) + ("*" if last else ""))
    phrases = [" ".join(fts_terms(p)) for p in query.phrases]
    phrase_parts = [_quote(p) for p in phrases if p]
    if any_word:
        if not parts:
            return None
        words = "(" + " OR ".join(parts) + ")" if len(parts) > 1 else parts[0]
        return " AND ".join([words, *phrase_parts])
    all_parts = parts + phrase_parts
    return " AND ".join(all_parts) if all_parts else None


def highlight_terms(query: Query) -> list[str]:
    """Lower-cased words and phrases to highlight in page text."""
    out: list[str] = []
    for word in query.words:
        out += [t for t in fts_terms(word) if t not in STOPWORDS]
    out += [" ".join(fts_terms(p)) for p in query.phrases]
    return [t for t in out if t]
