"""How long since the person last touched the computer, as the OS tells it.

"Only when idle" needs the whole machine's idle time, not just input into Shoebox's
window. Each reader answers seconds, or None when it cannot tell right now:

- X11: XScreenSaverQueryInfo (libXss), on a plain X session.
- Wayland: the compositor's D-Bus idle monitor: GNOME's `org.gnome.Mutter.IdleMonitor`,
  else `org.freedesktop.ScreenSaver.GetSessionIdleTime` (KDE), through `gdbus`. Under
  Wayland, XWayland's X11 idle time only counts input into X clients, so it is not used.
- macOS: `HIDIdleTime` of IOHIDSystem (`ioreg`).
- Windows: `GetLastInputInfo`.

Where none answers, the throttle falls back to the app's own `activity` stamp.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import threading
from typing import Any, Protocol

COMMAND_TIMEOUT_S = 2.0


class IdleReader(Protocol):
    def idle_s(self) -> float | None: ...


def open_system_idle() -> IdleReader | None:
    """The reader for this session, or None where the OS gives no idle time."""
    if sys.platform == "win32":  # pragma: no cover - not run here
        return WindowsIdle()
    if sys.platform == "darwin":  # pragma: no cover - not run here
        return CommandIdle(["ioreg", "-c", "IOHIDSystem", "-d", "4"], parse_ioreg)
    if os.environ.get("WAYLAND_DISPLAY"):
        return WaylandIdle.open()
    return X11Idle.open()


class CommandIdle:
    """Idle time from a command's output (`parse` turns it into seconds)."""

    def __init__(self, argv: list[str], parse: Any) -> None:
        self.argv = argv
        self.parse = parse

    def idle_s(self) -> float | None:
        if shutil.which(self.argv[0]) is None:
            return None
        try:
            out = subprocess.run(
                self.argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode != 0:
            return None
        value: float | None = self.parse(out.stdout)
        return value


def parse_ioreg(text: str) -> float | None:
    """`"HIDIdleTime" = 1234567890` (nanoseconds)."""
    found = re.search(r'"HIDIdleTime"\s*=\s*(\d+)', text)
    return int(found.group(1)) / 1e9 if found else None


def parse_gdbus_milliseconds(text: str) -> float | None:
    """`(uint64 12345,)` or `(uint32 12345,)` from `gdbus call`."""
    found = re.search(r"\(u?int(?:32|64)?\s*(\d+),?\)", text.strip())
    return int(found.group(1)) / 1000.0 if found else None


GNOME_IDLE = [
    "gdbus", "call", "--session", "--dest", "org.gnome.Mutter.IdleMonitor",
    "--object-path", "/org/gnome/Mutter/IdleMonitor/Core",
    "--method", "org.gnome.Mutter.IdleMonitor.GetIdletime",
]  # fmt: skip
FREEDESKTOP_IDLE = [
    "gdbus", "call", "--session", "--dest", "org.freedesktop.ScreenSaver",
    "--object-path", "/org/freedesktop/ScreenSaver",
    "--method", "org.freedesktop.ScreenSaver.GetSessionIdleTime",
]  # fmt: skip


class WaylandIdle:
    """The first of the compositor idle monitors that answers, kept once found."""

    def __init__(self, readers: list[CommandIdle]) -> None:
        self.readers = readers

    @classmethod
    def open(cls) -> WaylandIdle | None:
        if shutil.which("gdbus") is None:
            return None
        return cls(
            [CommandIdle(argv, parse_gdbus_milliseconds) for argv in (GNOME_IDLE, FREEDESKTOP_IDLE)]
        )

    def idle_s(self) -> float | None:
        for i, reader in enumerate(self.readers):
            idle = reader.idle_s()
            if idle is not None:
                self.readers = self.readers[i:]  # the ones before it never answer here
                return idle
        return None


class WindowsIdle:  # pragma: no cover - Windows
    class _LastInputInfo(ctypes.Structure):
        _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

    def idle_s(self) -> float | None:
        try:
            windll: Any = ctypes.windll  # type: ignore[attr-defined]
            info = self._LastInputInfo()
            info.cbSize = ctypes.sizeof(info)
            if not windll.user32.GetLastInputInfo(ctypes.byref(info)):
                return None
            ticks = int(windll.kernel32.GetTickCount()) & 0xFFFFFFFF
            return float((ticks - int(info.dwTime)) & 0xFFFFFFFF) / 1000.0  # both wrap at 49.7 days
        except Exception:
            return None


class X11Idle:
    """XScreenSaverQueryInfo's idle time, where libXss and a display are there."""

    class _Info(ctypes.Structure):
        _fields_ = [
            ("window", ctypes.c_ulong),
            ("state", ctypes.c_int),
            ("kind", ctypes.c_int),
            ("til_or_since", ctypes.c_ulong),
            ("idle", ctypes.c_ulong),
            ("eventMask", ctypes.c_ulong),
        ]

    def __init__(self, xlib: Any, xss: Any, display: Any) -> None:
        self.xlib, self.xss, self.display = xlib, xss, display
        self.info = xss.XScreenSaverAllocInfo()
        self.root = xlib.XDefaultRootWindow(display)
        self.lock = threading.Lock()

    @classmethod
    def open(cls) -> X11Idle | None:
        if not os.environ.get("DISPLAY") or not sys.platform.startswith("linux"):
            return None
        try:
            xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
            xss = ctypes.CDLL(ctypes.util.find_library("Xss") or "libXss.so.1")
            xlib.XOpenDisplay.restype = ctypes.c_void_p
            xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
            xlib.XDefaultRootWindow.restype = ctypes.c_ulong
            xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
            xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(cls._Info)
            xss.XScreenSaverQueryInfo.argtypes = [
                ctypes.c_void_p,
                ctypes.c_ulong,
                ctypes.POINTER(cls._Info),
            ]
            display = xlib.XOpenDisplay(None)
            if not display:
                return None
            return cls(xlib, xss, display)
        except (OSError, AttributeError):
            return None

    def idle_s(self) -> float | None:
        with self.lock:
            if not self.xss.XScreenSaverQueryInfo(self.display, self.root, self.info):
                return None
            return float(self.info.contents.idle) / 1000.0
