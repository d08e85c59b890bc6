"""Small builders shared by the engine tests."""

from __future__ import annotations

import random
from pathlib import Path

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


def run_host_until_idle(lib: object) -> None:
    """Process everything queued with an in-process worker host."""
    from engine.jobs.host import WorkerHost
    from engine.library import Library

    assert isinstance(lib, Library)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle()
    finally:
        host.stop()
