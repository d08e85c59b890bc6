"""The user's idle time as each OS tells it; the Wayland path through a stand-in gdbus."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from engine.jobs import user_idle
from engine.jobs.throttle import SystemProbe


def test_readings_are_parsed_to_seconds() -> None:
    assert user_idle.parse_gdbus_milliseconds("(uint64 4200,)\n") == 4.2
    assert user_idle.parse_gdbus_milliseconds("(uint32 7000,)") == 7.0
    assert user_idle.parse_gdbus_milliseconds("Error: GDBus.Error:org.freedesktop") is None
    ioreg = '    |   "HIDIdleTime" = 3500000000\n    |   "HIDKeyboardModifierMappingPairs" = ()'
    assert user_idle.parse_ioreg(ioreg) == 3.5
    assert user_idle.parse_ioreg("no such key") is None


def fake_gdbus(folder: Path, gnome: str | None, freedesktop: str | None) -> Path:
    """A `gdbus` that answers as a compositor would: None means "no such service"."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "gdbus"
    lines = ["#!/bin/sh", 'echo "$@" >> "$0.calls"']
    for service, answer in (("Mutter", gnome), ("freedesktop.ScreenSaver", freedesktop)):
        if answer is None:
            lines.append(f'case "$*" in *{service}*) echo "Error: no service" >&2; exit 1;; esac')
        else:
            lines.append(f'case "$*" in *{service}*) echo "{answer}"; exit 0;; esac')
    lines.append("exit 1")
    script.write_text("\n".join(lines) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for gdbus")
def test_under_wayland_the_compositor_is_asked_not_xwayland(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = fake_gdbus(tmp_path / "bin", None, "(uint32 7000,)")  # KDE: no Mutter
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("DISPLAY", ":0")  # XWayland is there too; its idle time is not used
    reader = user_idle.open_system_idle()
    assert isinstance(reader, user_idle.WaylandIdle)
    assert reader.idle_s() == 7.0
    assert reader.idle_s() == 7.0
    calls = Path(f"{script}.calls").read_text().splitlines()
    assert sum("Mutter" in c for c in calls) == 1  # asked once, then skipped
    probe = SystemProbe(tmp_path / "lib")
    assert probe.read().user_idle_s == 7.0
    probe.read_idle = False  # not "idle" mode: nothing is asked
    before = len(Path(f"{script}.calls").read_text().splitlines())
    assert probe.read().user_idle_s is None
    assert len(Path(f"{script}.calls").read_text().splitlines()) == before


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for gdbus")
def test_without_an_answer_the_apps_own_activity_stamp_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from engine.jobs.throttle import ACTIVITY_FILE

    script = fake_gdbus(tmp_path / "bin", None, None)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    lib = tmp_path / "lib"
    lib.mkdir()
    stamp = lib / ACTIVITY_FILE
    stamp.write_text("")
    os.utime(stamp, (time.time() - 300, time.time() - 300))
    idle = SystemProbe(lib).user_idle_s()
    assert idle is not None and 299 <= idle <= 330
