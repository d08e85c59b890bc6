"""Builds the one-folder bundle `dist/shoebox/` with PyInstaller (`make bundle`).

Prints one JSON object (build seconds, bundle size and its largest parts) and keeps it
beside the bundle as `dist/shoebox.build.json`, never inside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def largest_parts(internal: Path, n: int = 8) -> dict[str, float]:
    """The biggest entries of `_internal/` in MB: where a bundle's size goes."""
    sizes: dict[str, int] = {}
    for entry in internal.iterdir():
        if entry.is_symlink():  # PyInstaller links libraries to the top; counted once
            continue
        sizes[entry.name] = folder_bytes(entry) if entry.is_dir() else entry.stat().st_size
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:n]
    return {name: round(size / 2**20, 1) for name, size in top}


def torch_variant() -> str:
    import torch

    return "cuda" if torch.version.cuda else "cpu"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    args = parser.parse_args()
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(args.dist),
            "--workpath",
            str(args.work),
            str(ROOT / "packaging" / "shoebox.spec"),
        ],
        check=True,
    )
    seconds = time.monotonic() - started
    bundle = args.dist / "shoebox"
    import torch

    report = {
        "bundle": str(bundle),
        "build_s": round(seconds, 1),
        "size_mb": round(folder_bytes(bundle) / 2**20, 1),
        "torch": torch.__version__,
        "torch_variant": torch_variant(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "largest_mb": largest_parts(bundle / "_internal"),
    }
    (args.dist / "shoebox.build.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
