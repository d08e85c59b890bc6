"""Long-lived resources of a worker host (loaded models), shared by its threads.

A resource is keyed by (name, device): one loaded copy per process, never one per
worker thread. It is loaded lazily by the first job that asks, while other
threads asking for the same key wait for that load rather than starting their
own. The host releases a resource when the lanes that used it have had no work
for `idle_release_s`; never while their jobs wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("shoebox.resources")

ResourceKey = tuple[str, str]  # (model spec, device)


@dataclass
class _Entry:
    key: ResourceKey
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Any = None
    state: str = "unloaded"  # unloaded | loading | loaded | failed
    error: str | None = None
    lanes: set[str] = field(default_factory=set)
    last_used: float = 0.0
    loaded_at: float = 0.0
    load_s: float = 0.0
    release: Callable[[Any], None] | None = None


class ResourcePool:
    def __init__(self, idle_release_s: float = 600.0) -> None:
        self.idle_release_s = idle_release_s
        self._entries: dict[ResourceKey, _Entry] = {}
        self._guard = threading.Lock()

    def _entry(self, key: ResourceKey) -> _Entry:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(key)
            return entry

    def get(
        self,
        key: ResourceKey,
        load: Callable[[], Any],
        *,
        lane: str,
        release: Callable[[Any], None] | None = None,
    ) -> Any:
        """The loaded resource, loading it (once, whoever asks first) if needed."""
        entry = self._entry(key)
        entry.lanes.add(lane)
        entry.last_used = time.monotonic()
        if entry.state == "loaded":
            return entry.value
        with entry.lock:
            if entry.state == "loaded":  # another thread loaded it while we waited
                return entry.value
            entry.state = "loading"
            started = time.monotonic()
            try:
                value = load()
            except BaseException as exc:
                entry.state, entry.error = "failed", str(exc) or type(exc).__name__
                raise
            entry.value, entry.release = value, release
            entry.state, entry.error = "loaded", None
            entry.loaded_at = time.monotonic()
            entry.load_s = entry.loaded_at - started
            entry.last_used = entry.loaded_at
            log.info("loaded %s on %s in %.1f s", key[0], key[1], entry.load_s)
            return value

    def status(self) -> list[dict[str, Any]]:
        """What is loaded or loading now: for the host's status row and the GUI."""
        with self._guard:
            entries = list(self._entries.values())
        return [
            {
                "model": e.key[0],
                "device": e.key[1],
                "state": e.state,
                "error": e.error,
                "lanes": sorted(e.lanes),
                "load_s": round(e.load_s, 3),
            }
            for e in entries
        ]

    def release_idle(self, busy_lanes: set[str], now: float | None = None) -> list[ResourceKey]:
        """Unload resources none of whose lanes has work, idle for `idle_release_s`."""
        now = time.monotonic() if now is None else now
        released: list[ResourceKey] = []
        with self._guard:
            entries = list(self._entries.values())
        for entry in entries:
            if entry.state != "loaded":
                continue
            if entry.lanes & busy_lanes:
                entry.last_used = now  # its jobs wait or run: keep it, restart the clock
                continue
            if now - entry.last_used < self.idle_release_s:
                continue
            with entry.lock:
                if entry.state != "loaded":
                    continue
                value, entry.value = entry.value, None
                entry.state = "unloaded"
                if entry.release is not None:
                    try:
                        entry.release(value)
                    except Exception:
                        log.exception("releasing %s failed", entry.key)
                released.append(entry.key)
                log.info("released %s on %s after %.0f s idle", *entry.key, self.idle_release_s)
        return released

    def release_all(self) -> None:
        self.release_idle(set(), now=float("inf"))
