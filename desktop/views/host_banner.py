"""The worker host where the user sees it: a status-bar label, and a notice when it dies
or finds another Shoebox already processing the library."""

from __future__ import annotations

import logging
from typing import Any

from desktop.hostcontrol import HostControl
from desktop.qt import QLabel, QWidget, Signal
from desktop.views.speed_view import background_text

log = logging.getLogger("shoebox.desktop")

HOST_DIED = "The background worker stopped unexpectedly and was restarted."
HOST_LOCKED = (
    "Another Shoebox process is working on this library; "
    "its progress shows here and this window takes over when it ends."
)


class HostBanner(QLabel):
    """ "Worker running", "Worker stopped" or locked out; `notice(text)` asks the window
    to show a message (the host was restarted after a crash, or is waiting its turn)."""

    notice = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hostBanner")
        self.setEnabled(False)  # muted: it is a state, not a message
        self.host: HostControl | None = None

    def set_host(self, host: HostControl | None) -> None:
        self.host = host
        if host is not None:
            host.restarted.connect(self._restarted)
            host.locked.connect(self._locked)
            host.started.connect(lambda _pid: self.refresh())
        self.refresh()

    def refresh(self, background: dict[str, Any] | None = None) -> None:
        """`background`: the host's heartbeat entry (engine.queries.host_background)."""
        host = self.host
        slowed = ""
        if host is None:
            self.setText("")
        elif host.is_locked_out:
            self.setText("Worker: another Shoebox is processing this library")
        elif host.running:
            slowed = throttled_text(background)
            self.setText(slowed or "Worker running")
        else:
            self.setText("Worker stopped")
        self.setEnabled(bool(slowed))  # muted unless it says something the user can act on
        self.setToolTip(
            f"{background_text(background)}. Change it in Settings (Ctrl+,)." if slowed else ""
        )

    def _restarted(self, code: int) -> None:
        self.notice.emit(HOST_DIED)
        log.warning("worker host exited with status %s and was restarted", code)
        self.refresh()

    def _locked(self) -> None:
        self.notice.emit(HOST_LOCKED)
        self.refresh()


def throttled_text(background: dict[str, Any] | None) -> str:
    """ "Background work slowed: on battery: one worker", "Background work slowed by
    your limit: ocr: at most 2 a second", or "" when nothing holds it back."""
    if not background:
        return ""
    limits = "; ".join(str(x) for x in background.get("rate_limited") or [])
    if not background.get("throttled"):
        return f"Background work slowed by your limit: {limits}" if limits else ""
    why = str(background.get("why") or "")
    if int(background.get("workers") or 0) == 0:
        return f"Background work paused: {why}" if why else "Background work paused"
    text = f"Background work slowed: {why}" if why else "Background work slowed"
    return f"{text}; your limit: {limits}" if limits else text
