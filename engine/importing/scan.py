"""Walking folders: recursive, symlink-loop safe, never opening special files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from engine.importing.formats import is_hidden_or_system, is_supported_name


@dataclass(frozen=True)
class FoundFile:
    path: str  # filesystem string (surrogate-escaped where the name is not UTF-8)
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str  # hidden | system | unsupported | special | loop | unreadable
    detail: str = ""


def display_path(path: str) -> str:
    """A printable form of a filesystem path (bad bytes become U+FFFD)."""
    return os.fsencode(path).decode("utf-8", "replace")


def walk(roots: list[str], *, skip_hidden: bool = True) -> Iterator[FoundFile | Skipped]:
    """Yield every supported regular file under `roots` (files or folders), and what was skipped.

    Directory symlinks are followed, but each directory (device, inode) is entered
    once, so loops end. Only `stat` is used on non-regular files: a FIFO or a device
    is never opened, so it cannot hang the scan.
    """
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[str] = []
    for root in roots:
        root = os.path.abspath(root)
        try:
            st = os.stat(root)
        except OSError as exc:
            yield Skipped(root, "unreadable", exc.strerror or str(exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            stack.append(root)
        elif stat.S_ISREG(st.st_mode):
            # A file named explicitly is taken even if hidden; its type must still be supported.
            if is_supported_name(os.path.basename(root)):
                yield FoundFile(root, st.st_size, st.st_mtime_ns)
            else:
                yield Skipped(root, "unsupported")
        else:
            yield Skipped(root, "special", _kind(st.st_mode))

    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            yield Skipped(folder, "unreadable", exc.strerror or str(exc))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            yield Skipped(folder, "loop")
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(folder, "unreadable", exc.strerror or str(exc))
            continue
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if skip_hidden and is_hidden_or_system(name):
                yield Skipped(entry.path, "hidden" if name.startswith(".") else "system")
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:  # dangling symlink, permission, vanished
                yield Skipped(entry.path, "unreadable", exc.strerror or str(exc))
                continue
            mode = est.st_mode
            if stat.S_ISDIR(mode):
                subdirs.append(entry.path)
            elif stat.S_ISREG(mode):
                if is_supported_name(name):
                    yield FoundFile(entry.path, est.st_size, est.st_mtime_ns)
                else:
                    yield Skipped(entry.path, "unsupported")
            else:
                yield Skipped(entry.path, "special", _kind(mode))
        stack.extend(reversed(subdirs))  # depth-first, alphabetical


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
