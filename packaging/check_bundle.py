"""Checks a built bundle the way a user's machine would run it (`make bundle-check`).

Runs `dist/shoebox/shoebox self-test --json` in a bare environment (`env -i`, a new
empty HOME, `PATH=/usr/bin:/bin`) with no network (a new network namespace, where
`unshare` is allowed), then checks that the bundle did not write inside itself.
Prints one JSON object; exit 0 when the self-test passed and the folder is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime (ns)."""
    out: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        if path.is_file() or path.is_symlink():
            st = path.lstat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def no_network_prefix() -> tuple[list[str], bool]:
    """`unshare -rn` when this machine lets an ordinary process make a network namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], False
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True)
    return ([unshare, "-rn"], True) if probe.returncode == 0 else ([], False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "shoebox")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    exe = args.bundle / "shoebox"
    if not os.access(exe, os.X_OK):
        print(f"no bundle at {exe}: run `make bundle` first", file=sys.stderr)
        return 2
    before = snapshot(args.bundle)
    prefix, isolated = no_network_prefix()
    with tempfile.TemporaryDirectory(prefix="shoebox-bare-home-") as home:
        env = {"HOME": home, "PATH": "/usr/bin:/bin"}
        started = time.monotonic()
        done = subprocess.run(
            [*prefix, str(exe), "self-test", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        seconds = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    after = snapshot(args.bundle)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    result = {
        "bundle": str(args.bundle),
        "returncode": done.returncode,
        "seconds": round(seconds, 1),
        "network_isolated": isolated,
        "self_test_ok": bool(report and report.get("ok")),
        "failed": [c["name"] for c in (report or {}).get("checks", []) if c["status"] == "fail"],
        "bundle_files_changed": changed[:20],
        "frozen": (report or {}).get("frozen"),
    }
    if report is None:
        result["stdout_tail"] = done.stdout[-2000:]
    if done.returncode != 0 or report is None:
        result["stderr_tail"] = done.stderr[-4000:]
    if report is not None:
        for check in report.get("checks", []):
            mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}.get(check["status"], "?   ")
            print(f"{mark} {check['name']}: {check['detail']}", file=sys.stderr)
    print(json.dumps(result))
    ok = done.returncode == 0 and result["self_test_ok"] and not changed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
