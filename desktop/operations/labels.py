"""The user's own categories: make a label from examples, add to it, take it off an
item, review what the model suggests (one at a time or a page at once), undo.

Every write goes through one serial pool (`run_label_op`): the decisions reach the
catalog in the order the user made them, off the GUI thread (the first write of a
session builds the stage registry, tens of milliseconds), and a read queued after a
write sees it. The review window reads its queue the same way (`read_review`).
The training after a decision is the worker host's (its `learning` lane); the
queue refills when it finishes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from desktop.qt import QThreadPool
from desktop.threads import run_in_thread
from engine.learning.labels import find_label, labels_for, labels_seq
from engine.learning.names import LabelError
from engine.learning.review import REASON_WORDS
from engine.library import Library

T = TypeVar("T")

REVIEW_LIMIT = 120  # suggestions read at a time: a few pages ahead
TRAINING_STATES = ("queued", "running")

_pool: QThreadPool | None = None


def label_pool() -> QThreadPool:
    """One thread: label writes and the reads after them run in the order asked."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(1)
        _pool.setExpiryTimeout(30_000)
    return _pool


def wait_for_label_pool(timeout_ms: int = 30_000) -> bool:
    return _pool.waitForDone(timeout_ms) if _pool is not None else True


def run_label_op(
    fn: Callable[[], T],
    on_done: Callable[[T], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """`fn()` in the label pool, after every label operation asked before it."""
    run_in_thread(fn, on_done, on_error, pool=label_pool())


# -- what the views show ---------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """An item as the review window draws it."""

    id: int
    name: str
    thumb: str | None  # relative to the library folder
    preview: str | None


@dataclass(frozen=True)
class Suggestion:
    """One entry of a review queue."""

    id: int
    label: str
    label_id: int
    score: float
    why: tuple[int, ...]  # the nearest labelled examples
    reason: str  # neighbour | threshold | audit | below

    @property
    def reason_text(self) -> str:
        return REASON_WORDS.get(self.reason, self.reason)


@dataclass(frozen=True)
class LabelInfo:
    """One label's progress (`Library.labels()`)."""

    id: int
    name: str
    version: int | None
    examples: int
    negatives: int
    auto: int
    in_review: int
    estimated_precision: float | None
    audited_precision: float | None
    audited_precision_lower: float | None
    audited: int
    threshold: float | None
    suggest_only: bool
    why_suggest_only: str
    training: str | None

    @property
    def is_training(self) -> bool:
        return self.training in TRAINING_STATES

    @classmethod
    def of(cls, d: dict[str, Any]) -> LabelInfo:
        def num(key: str) -> float | None:
            value = d.get(key)
            return None if value is None else float(value)

        return cls(
            id=int(d["id"]),
            name=str(d["name"]),
            version=None if d.get("version") is None else int(d["version"]),
            examples=int(d.get("examples") or 0),
            negatives=int(d.get("negatives") or 0),
            auto=int(d.get("auto") or 0),
            in_review=int(d.get("in_review") or 0),
            estimated_precision=num("estimated_precision"),
            audited_precision=num("audited_precision"),
            audited_precision_lower=num("audited_precision_lower"),
            audited=int(d.get("audited") or 0),
            threshold=num("threshold"),
            suggest_only=bool(d.get("suggest_only")),
            why_suggest_only=str(d.get("why_suggest_only") or ""),
            training=None if d.get("training") is None else str(d["training"]),
        )


@dataclass
class ReviewSnapshot:
    """What the review window shows, read in one go (in the label pool)."""

    label: str | None  # the queue asked for; None: every label's
    queue: list[Suggestion] = field(default_factory=list)
    cards: dict[int, Card] = field(default_factory=dict)  # queue items and their `why`
    labels: list[LabelInfo] = field(default_factory=list)
    undo_text: str | None = None
    seq: int = 0  # labels_seq when read

    def info(self, name: str | None) -> LabelInfo | None:
        return next((i for i in self.labels if i.name == name), None)


@dataclass(frozen=True)
class LabelCount:
    """A sidebar row: how many items are yours / automatic / to review."""

    id: int
    name: str
    user: int
    auto: int
    review: int


def _name(item: dict[str, Any]) -> str:
    paths = item.get("paths") or item.get("missing_paths") or []
    return os.path.basename(str(paths[0])) if paths else f"item {item['id']}"


def cards(library: Library, item_ids: Sequence[int]) -> dict[int, Card]:
    ids = sorted(set(int(i) for i in item_ids))
    out: dict[int, Card] = {}
    for start in range(0, len(ids), 500):
        for item in library.items(ids[start : start + 500]):
            thumbs = item.get("thumbnails") or {}
            out[int(item["id"])] = Card(
                int(item["id"]), _name(item), thumbs.get("thumb"), thumbs.get("preview")
            )
    return out


def read_review(library: Library, label: str | None, limit: int = REVIEW_LIMIT) -> ReviewSnapshot:
    """The queue (of `label`, or of every label), its items, each label's progress."""
    conn = library.catalog.conn
    seq = labels_seq(conn)
    infos = [LabelInfo.of(d) for d in library.labels()]
    if label is not None and not any(i.name == label for i in infos):
        label = None  # renamed or deleted meanwhile: every label's queue
    queue = [
        Suggestion(
            int(r["id"]),
            str(r["label"]),
            int(r["label_id"]),
            float(r["score"]),
            tuple(int(i) for i in r["why"]),
            str(r["reason"]),
        )
        for r in library.review(label, limit)
    ]
    wanted = [s.id for s in queue] + [i for s in queue for i in s.why[:3]]
    return ReviewSnapshot(
        label=label,
        queue=queue,
        cards=cards(library, wanted),
        labels=infos,
        undo_text=library.undo_text(label),
        seq=seq,
    )


def label_counts(library: Library) -> list[LabelCount]:
    return [
        LabelCount(int(r["id"]), str(r["name"]), int(r["user"]), int(r["auto"]), int(r["review"]))
        for r in library.label_counts()
    ]


def current_seq(library: Library) -> int:
    """Moves whenever any label changes (one indexed MAX: fine on the GUI thread)."""
    return labels_seq(library.catalog.conn)


def item_labels(library: Library, item_id: int) -> list[dict[str, Any]]:
    """The item's labels: `{"label", "source": "user"|"auto", "score"}`, by name."""
    return labels_for(library.catalog.conn, [item_id])[item_id]


# -- what the user does (run these with `run_label_op`) ---------------------------------


def create_label(library: Library, name: str, item_ids: Sequence[int]) -> int:
    """A new label with these items as its examples; its first training starts now."""
    return library.create_label(name, list(item_ids))


@dataclass(frozen=True)
class Labelled:
    """What "New Label from Selection" did: made `name` (`created`) or added to it."""

    name: str
    created: bool
    changed: int  # items that became examples (already so: not counted)

    def message(self) -> str:
        items = f"{self.changed:,} item{'' if self.changed == 1 else 's'}"
        if self.created:
            return (
                f"New label {self.name} from {items}; Shoebox is learning it "
                "(Review its suggestions: Ctrl+Shift+L)."
            )
        if not self.changed:
            return f"Those items are already {self.name}."
        return f"Added {items} to {self.name}."


def label_names(library: Library) -> list[str]:
    """Every label's name, by name (one small read: fine on the GUI thread)."""
    return [str(r["name"]) for r in library.label_counts()]


def label_selection(library: Library, name: str, item_ids: Sequence[int]) -> Labelled:
    """The items are examples of `name`: a new label when there is none of that name
    (any spelling: "receipts" is Receipts), else they are added to it."""
    try:
        found = find_label(library.catalog.conn, name)
    except LabelError:
        create_label(library, name, item_ids)
        shown = find_label(library.catalog.conn, name).name
        return Labelled(shown, True, len(set(item_ids)))
    return Labelled(found.name, False, add_to_label(library, found.name, item_ids))


def add_to_label(library: Library, name: str, item_ids: Sequence[int]) -> int:
    """These items are examples of `name` (one undo entry); returns how many changed."""
    return library.label_items(name, list(item_ids), origin="example")


def remove_label(library: Library, name: str, item_ids: Sequence[int]) -> int:
    """Take `name` off these items, for good: it is never applied or suggested again
    (until the user says otherwise). One undo entry."""
    return library.unlabel_items(name, list(item_ids))


def decide(library: Library, label: str, item_ids: Sequence[int], accept: bool) -> int:
    """A review answer: these items are (accept) or are not the label."""
    return library.review_decide(label, list(item_ids), accept=accept)


def confirm_page(
    library: Library, label: str, ticked: Sequence[int], unticked: Sequence[int]
) -> int:
    """ "Confirm a page": the ticked items are the label, the unticked are not."""
    return library.review_page(label, list(ticked), list(unticked))


def undo(library: Library, label: str | None = None) -> str | None:
    """Undo the newest label decision (of `label`, or of any); what was undone, or None."""
    return library.review_undo(label)
