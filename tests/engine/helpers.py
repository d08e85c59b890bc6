"""Small builders shared by the engine tests."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image


def jpeg(
    path: Path, seed: int, size: tuple[int, int] = (320, 240), exif: Image.Exif | None = None
) -> Path:
    """A distinct small JPEG (content depends on `seed`)."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(8):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        img.paste(
            (rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 20, y + 20)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=85, exif=exif if exif is not None else b"")
    return path


IDLE_TIMEOUT_S = 60.0
"""How long a test waits for a worker host to go idle: a hang fails with what is pending."""


def run_host_until_idle(lib: object, timeout: float = IDLE_TIMEOUT_S) -> None:
    """Process everything queued with an in-process worker host.

    Raises TimeoutError naming the pending jobs if that takes longer than `timeout`."""
    from engine.jobs.host import WorkerHost
    from engine.library import Library

    assert isinstance(lib, Library)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle(timeout=timeout)
    finally:
        host.stop()


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _permission_override_dropper() -> Callable[[], None]:
    """A preexec_fn: the child (and what it execs) can no longer bypass file permissions.

    Root reads a chmod-000 file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; taken
    out of the bounding set, they are gone after exec. (Switching to `nobody` would do
    too, but only where that user may run this interpreter; often it lives under
    /root, which it may not enter.) libc is loaded here, in the parent: the child
    between fork and exec only calls prctl."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def drop() -> None:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) (no CAP_SETPCAP?)")

    return drop


def run_without_root_override(
    argv: list[str], *, timeout: float = IDLE_TIMEOUT_S, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command that must meet file permissions as an ordinary user would.

    As root, the child keeps uid 0 but loses the capabilities that ignore permission
    bits, so chmod 000 stops its reads; otherwise it runs as it is."""
    preexec = _permission_override_dropper() if os.geteuid() == 0 else None
    try:
        return subprocess.run(
            argv,
            preexec_fn=preexec,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )
    except subprocess.SubprocessError as exc:
        if isinstance(exc, subprocess.TimeoutExpired):
            raise
        raise RuntimeError(
            f"cannot run {argv[:4]} without root's permission override: {exc}"
        ) from exc
