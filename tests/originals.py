"""Originals are sacred: a pytest plugin that proves Shoebox never changes a source file.

Registered from tests/conftest.py. For the whole session an audit hook
(`sys.addaudithook`) watches every `open` for writing (a mode with w/a/x/+, or
`os.open` flags with O_WRONLY/O_RDWR/O_APPEND/O_TRUNC/O_CREAT) and every rename,
removal, truncation, `utime` and `chmod` of a path under a *registered source root*.
Who did it is decided by the nearest frame of this repository's code on the stack:

- Shoebox's code (engine/, desktop/, models/): the call fails with
  `OriginalsWriteError` before it happens, and the test fails at teardown even if
  the engine caught the error;
- the test's own code (tests/: writing the files to import, a fault test truncating
  one mid-import): allowed, and the path is remembered as changed by the test.

Sources are registered by `register(path)` (or the `sources` fixture), and, with no
change to the tests, every root an in-process import is given (`Importer.run`: the
CLI, `Library.import_paths`, the watcher). At registration each file's size, mtime,
ctime and checksum are taken; after the test every one of them that the test itself
did not change must be there, unchanged. A file whose `stat` is the same (ctime
included, which no write can keep) is not read again, so the check after a test is
a `stat` walk; checksums are cached by stat for the session. Files over
`FULL_HASH_MAX` are checksummed by their first and last MiB. FIFOs, sockets and
devices are only `stat`ed, symlinks are compared by target, never followed.

`@pytest.mark.originals_mutable`: the test changes sources in ways the hook cannot
see (another process truncates them); the snapshot is not compared (the hook still
fails Shoebox's own writes).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_SHOEBOX = tuple(str(REPO / d) + os.sep for d in ("engine", "desktop", "models"))
_TESTS = str(REPO / "tests") + os.sep
_SELF = str(Path(__file__).resolve())
FULL_HASH_MAX = 64 << 20
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT
_MUTATING = frozenset({"os.rename", "os.remove", "os.rmdir", "os.truncate", "os.utime",
                       "os.chmod", "os.chown", "os.link", "os.symlink"})  # fmt: skip
MARKER = "originals_mutable"


class OriginalsWriteError(PermissionError):
    """Shoebox tried to change a source file (a test guard, never raised in the app)."""


Entry = tuple[Any, ...]  # (kind, size, mtime_ns, digest or link target)


@dataclass
class _Guard:
    """What the current test registered, and what happened to it."""

    roots: dict[str, tuple[str, ...]] = field(default_factory=dict)  # root → excluded dirs
    baseline: dict[str, Entry] = field(default_factory=dict)
    stats: dict[str, tuple[int, ...]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)  # changed by the test itself
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_guard: _Guard | None = None  # the running test's (None: nothing registered, hook idle)
# What the whole session checked, for the reliability report (tests/reliability/run.py).
_session = {"tests_guarded": 0, "files_checked": 0, "originals_changed": 0, "writes_blocked": 0}
_hash_cache: dict[tuple[int, ...], str] = {}


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _digest(path: str, st: os.stat_result) -> str:
    key = _stat_key(st)
    found = _hash_cache.get(key)
    if found is not None:
        return found
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb", buffering=0) as fh:
            if st.st_size <= FULL_HASH_MAX:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
        digest = h.hexdigest()
    except OSError as exc:
        digest = f"unreadable: {exc.strerror}"
    _hash_cache[key] = digest
    return digest


def _entry(path: str) -> tuple[Entry, tuple[int, ...]] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", 0, st.st_mtime_ns, os.readlink(path)), _stat_key(st)
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_size, st.st_mtime_ns, _digest(path, st)), _stat_key(st)
    return ("special", 0, st.st_mtime_ns, stat.S_IFMT(st.st_mode)), _stat_key(st)


def _walk(root: str, excluded: tuple[str, ...]) -> Iterator[str]:
    if not os.path.isdir(root) or os.path.islink(root):
        if os.path.lexists(root):
            yield root
        return
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in excluded]
        for name in dirs:  # symlinked directories: their target is not walked
            if os.path.islink(os.path.join(dirpath, name)):
                yield os.path.join(dirpath, name)
        for name in names:
            yield os.path.join(dirpath, name)


def register(path: str | os.PathLike[str], *, exclude: tuple[str, ...] = ()) -> Path:
    """Guard a source tree (a folder or one file) for the rest of the current test.

    Files in it now are snapshotted; files added later are snapshotted when an import
    is given them. Returns the path, so `src = register(tmp_path / "src")` reads well."""
    guard = _guard
    if guard is None:  # not inside a test (a session fixture making a corpus)
        return Path(path)
    root = os.path.abspath(os.fspath(path))
    excluded = tuple(os.path.abspath(e) for e in exclude)
    with guard.lock:
        guard.roots[root] = excluded
        for real in {root, os.path.realpath(root)}:
            guard.roots.setdefault(real, excluded)
    _snapshot(guard, root, excluded)
    return Path(path)


def _is_touched(guard: _Guard, path: str) -> bool:
    """Changed by the test: the path itself, or a folder above it (renamed, removed)."""
    while True:
        if path in guard.touched:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def _snapshot(guard: _Guard, root: str, excluded: tuple[str, ...]) -> None:
    """Take what is under `root` now as the baseline: files not seen before, and files
    the test changed since the last look (a first look at a file is kept otherwise)."""
    seen = set()
    for path in _walk(root, excluded):
        seen.add(path)
        with guard.lock:
            if path in guard.baseline and not _is_touched(guard, path):
                continue
        found = _entry(path)
        if found is not None:
            with guard.lock:
                guard.baseline[path], guard.stats[path] = found
    with guard.lock:
        inside = [p for p in guard.baseline if p == root or p.startswith(root + os.sep)]
        for path in inside:  # the test removed or moved it away since
            if path not in seen and _is_touched(guard, path):
                del guard.baseline[path], guard.stats[path]
        guard.touched = {p for p in guard.touched if not (p == root or p.startswith(root + os.sep))}


def _changes(guard: _Guard) -> list[str]:
    problems = []
    for path, before in sorted(guard.baseline.items()):
        if _is_touched(guard, path):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            problems.append(f"{path}: gone")
            continue
        if _stat_key(st) == guard.stats[path]:
            continue  # not written since (a write always moves ctime)
        found = _entry(path)
        if found is None:
            problems.append(f"{path}: gone")
        elif found[0] != before:
            what = "content" if found[0][3] != before[3] else "size/mtime/type"
            problems.append(f"{path}: {what} changed")
    return problems


# -- the audit hook -----------------------------------------------------------------------


def _under_root(guard: _Guard, path: str) -> bool:
    for root, excluded in guard.roots.items():
        if path == root or path.startswith(root + os.sep):
            return not any(path == e or path.startswith(e + os.sep) for e in excluded)
    return False


def _path_of(arg: Any, dir_fd: Any = None) -> str | None:
    if isinstance(arg, int):
        try:
            return os.readlink(f"/proc/self/fd/{arg}")
        except OSError:
            return None
    try:
        text = os.fsdecode(arg)
    except TypeError:
        return None
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(text):
        base = _path_of(dir_fd)
        if base is None:
            return None
        text = os.path.join(base, text)
    return os.path.abspath(text)


def _writer() -> str:
    """'shoebox' or 'test': whose code (nearest frame of this repository) is calling."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_SHOEBOX):
            return "shoebox"
        if name.startswith(_TESTS) and name != _SELF:
            return "test"
        frame = frame.f_back  # type: ignore[assignment]
    return "test"  # pytest's own or the stdlib's at the bottom: not Shoebox


def _paths_of(event: str, args: tuple[Any, ...]) -> list[str | None]:
    if event == "open":
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        if not (flags & _WRITE_FLAGS or any(c in mode for c in "wax+")):
            return []
        return [_path_of(args[0])]
    if event == "os.rename":
        return [_path_of(args[0], args[2]), _path_of(args[1], args[3])]
    if event in ("os.remove", "os.rmdir"):
        return [_path_of(args[0], args[1] if len(args) > 1 else None)]
    if event == "os.link":
        return [_path_of(args[1], args[3] if len(args) > 3 else None)]
    if event == "os.symlink":
        return [_path_of(args[1], args[2] if len(args) > 2 else None)]
    return [_path_of(args[0])]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" and event not in _MUTATING:
        return
    guard = _guard
    if guard is None or not guard.roots:
        return
    hits = [p for p in _paths_of(event, args) if p is not None and _under_root(guard, p)]
    if not hits:
        return
    if _writer() == "test":
        with guard.lock:
            guard.touched.update(hits)
        return
    message = f"Shoebox tried to change an original: {event} {hits[0]}"
    with guard.lock:
        guard.violations.append(message)
    raise OriginalsWriteError(message)


_installed = False


def install() -> None:
    """The hook (once per process: audit hooks cannot be removed) and the import wrap."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_hook)
    from engine.importing.importer import Importer

    original: Callable[..., Any] = Importer.run

    def run(self: Importer, roots: list[str], *args: Any, **kwargs: Any) -> Any:
        library = os.path.dirname(os.path.abspath(self.catalog.path))
        for root in roots:
            register(root, exclude=(library,))
        return original(self, roots, *args, **kwargs)

    run.__wrapped__ = original  # type: ignore[attr-defined]
    Importer.run = run  # type: ignore[method-assign]


# -- pytest -------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test changes source files where the guard cannot see it (another "
        "process); its before/after snapshot is not compared (tests/originals.py)",
    )
    install()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """One record of the whole session's checks, when records are kept."""
    from tests.reliability.harness import write_record

    write_record(
        {
            "suite": "originals",
            "kind": "session",
            "seed": 0,
            **_session,
            "ok": _session["originals_changed"] == 0 and _session["writes_blocked"] == 0,
        }
    )


@pytest.fixture(autouse=True)
def _originals_guard(request: pytest.FixtureRequest) -> Iterator[_Guard]:
    global _guard
    guard = _Guard()
    _guard = guard
    try:
        yield guard
    finally:
        _guard = None
    problems = list(guard.violations)
    changed: list[str] = []
    if guard.baseline and request.node.get_closest_marker(MARKER) is None:
        changed = _changes(guard)
        problems += changed
    if guard.roots:
        _session["tests_guarded"] += 1
        _session["files_checked"] += len(guard.baseline)
        _session["originals_changed"] += len(changed)
        _session["writes_blocked"] += len(guard.violations)
    if problems:
        pytest.fail(
            "originals changed during the test:\n  " + "\n  ".join(problems[:20]), pytrace=False
        )


@pytest.fixture
def sources() -> Callable[..., Path]:
    """`sources(tmp_path / "src")`: guard a source tree for this test (`register`)."""
    return register
