"""The search box: one query at a time in a worker thread, the newest one wins.

`start_search` numbers each request; a result that comes back after a newer request
was made is dropped (counted in `SearchState.dropped`), and a request that is already
stale when its worker starts does not run at all. The first search of a library loads
the text model and builds the vector indexes, so searches never run on the GUI
thread; call `prepare` there first so the library's searcher is made once.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop.threads import run_in_thread
from engine.library import Library
from engine.search.hybrid import Hit
from engine.search.query import QueryError, parse
from engine.search_view import FilterChip, ids_in_state
from engine.search_view import filter_chips as engine_filter_chips
from engine.text_view import search_terms

log = logging.getLogger("shoebox.desktop")

SEARCH_LIMIT = 200  # a few screens of the grid, best first


@dataclass(frozen=True)
class SearchRequest:
    serial: int
    text: str
    kind: str = ""  # the toolbar's kind filter ("" for all); an inline kind: wins
    state: str = "all"  # the toolbar's state filter
    typing: bool = False  # the last word may be unfinished


@dataclass
class SearchOutcome:
    request: SearchRequest
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be searched, and why
    terms: list[str] = field(default_factory=list)  # to highlight in page text
    error: str = ""  # the query could not be read: a sentence for the user
    elapsed_ms: float = 0.0

    @property
    def ids(self) -> list[int]:
        return [h.id for h in self.hits]

    @property
    def reasons(self) -> dict[int, str]:
        return {h.id: h.why for h in self.hits}

    def hit(self, item_id: int) -> Hit | None:
        return next((h for h in self.hits if h.id == item_id), None)


@dataclass
class SearchState:
    """The window's search: what the grid shows (`shown`, None when not searching)."""

    serial: int = 0  # the newest request's number
    shown: SearchOutcome | None = None
    opened_at: int = 0  # when results were first shown, in the order of things opened
    started: int = 0  # requests sent to a worker (for tests and logs)
    delivered: int = 0  # results that came back and were shown
    dropped: int = 0  # results (or requests) made stale by a newer request

    @property
    def active(self) -> bool:
        return self.shown is not None

    def supersede(self) -> int:
        """A new request (or leaving the search): anything older is stale."""
        self.serial += 1
        return self.serial


def filter_chips(text: str) -> list[FilterChip]:
    """The box's inline filters as chips (`label:` included)."""
    return engine_filter_chips(text)


def prepare(library: Library) -> None:
    library.searcher()


WARM_UP_DELAY_MS = 2500  # after the window is shown and its first pages are drawn
WARM_UP_QUIET_S = 1.5  # ... and once the user has not scrolled or typed for this long
WARM_UP_RETRY_MS = 500
WARM_UP_LATEST_S = 60.0  # after this it loads anyway (a search would load it then)


def warm_up(library: Library) -> None:
    """Load the query model in the searcher's own thread (never this one), so the first
    search by meaning does not wait seconds for torch."""
    library.searcher().warm_up().add_done_callback(lambda _: freeze_long_lived())


def freeze_long_lived() -> None:
    """Move what is alive now (modules, torch's and Qt's objects, the first pages) out
    of the garbage collector's sight. Once torch is loaded, each full collection walked
    its million objects: 260–300 ms with every thread stopped, during a scroll. No
    `gc.collect()` first: that would be one such stall, and what it would free is the
    little cyclic garbage of imports."""
    gc.freeze()


def run_search(library: Library, request: SearchRequest) -> SearchOutcome:
    """The search itself, in a worker thread (this thread's catalog connection)."""
    started = time.perf_counter()
    try:
        inline_kind = parse(request.text).kind
        result = library.search(
            request.text,
            kind=None if inline_kind else request.kind or None,
            typing=request.typing,
            limit=SEARCH_LIMIT,
        )
    except QueryError as exc:
        return SearchOutcome(request, error=str(exc))
    hits = result.hits
    if request.state != "all" and hits:
        keep = ids_in_state(library.catalog.conn, [h.id for h in hits], request.state)
        hits = [h for h in hits if h.id in keep]
    return SearchOutcome(
        request,
        hits=hits,
        notes=list(result.notes),
        terms=search_terms(result.query),
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
    )


def start_search(
    library: Library,
    state: SearchState,
    request_text: str,
    on_result: Callable[[SearchOutcome], None],
    on_error: Callable[[BaseException], None],
    *,
    kind: str = "",
    state_filter: str = "all",
    typing: bool = False,
) -> SearchRequest:
    """Search in a worker; `on_result` runs on the GUI thread only if no newer request
    was made meanwhile."""
    request = SearchRequest(state.supersede(), request_text, kind, state_filter, typing)
    state.started += 1

    def work() -> SearchOutcome | None:
        if request.serial != state.serial:
            return None  # superseded while it waited for a thread
        return run_search(library, request)

    def done(outcome: SearchOutcome | None) -> None:
        if outcome is None or request.serial != state.serial:
            state.dropped += 1
            return
        state.delivered += 1
        on_result(outcome)

    def failed(exc: BaseException) -> None:
        if request.serial != state.serial:
            state.dropped += 1
            return
        on_error(exc)

    run_in_thread(work, done, failed)
    return request
