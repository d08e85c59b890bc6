"""Time to a visible main window, as after a double-click: the bundle and the source.

On a private Xvfb screen, each program is started with a new empty HOME and timed
until its main window ("… Shoebox") is mapped and visible (`xdotool search`, polled
every 10 ms).

- cold: the program's files are dropped from the page cache first (posix_fadvise
  DONTNEED on every file of the bundle, or of the venv's site-packages and the source
  tree), and HOME is new: no font cache, no library yet;
- warm: started again (same HOME, files cached), the median of `--warm` runs.

The source run (`.venv/bin/shoebox`) is the reference measured in the same run; the
last line is one JSON object with `bundle_cold_s`, `bundle_warm_s`, `source_cold_s`,
`source_warm_s` and `bundle_warm_ratio` (bundle / source, warm).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, emit


def evict(folders: list[Path]) -> int:
    """Drop the clean pages of every file under `folders` from the page cache."""
    dropped = 0
    for folder in folders:
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    dropped += 1
                finally:
                    os.close(fd)
    return dropped


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A private Xvfb; `-displayfd` tells its number once it accepts clients."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    try:
        while not number.endswith(b"\n"):
            chunk = os.read(read_fd, 16)
            if not chunk:
                raise SystemExit("Xvfb did not start")
            number += chunk
    finally:
        os.close(read_fd)
    return proc, f":{number.decode().strip()}"


def time_to_window(cmd: list[str], home: Path, display: str, timeout: float) -> float:
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "LANG": "C.UTF-8",
    }
    started = time.monotonic()
    app = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        # Poll every 10 ms: `xdotool search --sync` polls only twice a second.
        deadline = started + timeout
        while True:
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "Shoebox$"],
                env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
                capture_output=True,
            )
            if found.returncode == 0 and found.stdout.strip():
                return time.monotonic() - started
            if app.poll() is not None or time.monotonic() > deadline:
                err = app.stderr.read().decode("utf-8", "replace")[-2000:] if app.stderr else ""
                raise SystemExit(f"{cmd[0]}: no window ({err})")
            time.sleep(0.01)
    finally:
        app.send_signal(signal.SIGTERM)  # the app closes its worker host on the way out
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()


def measure(
    name: str, cmd: list[str], files: list[Path], display: str, warm: int, timeout: float
) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"shoebox-startup-{name}-"))
    try:
        evict(files)
        cold = time_to_window(cmd, home, display, timeout)
        warm_runs = [time_to_window(cmd, home, display, timeout) for _ in range(warm)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{name}: cold {cold:.2f} s, warm {[round(w, 2) for w in warm_runs]}", file=sys.stderr)
    return {
        f"{name}_cold_s": round(cold, 2),
        f"{name}_warm_s": round(statistics.median(warm_runs), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "shoebox")
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    xvfb, display = start_xvfb()
    result: dict[str, object] = {"bench": "startup", "display": "Xvfb 1440x900"}
    times: dict[str, float] = {}
    try:
        source = REPO / ".venv" / "bin" / "shoebox"
        site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
        src_files = [site / "PySide6", site / "shiboken6", REPO / "desktop", REPO / "engine"]
        times.update(measure("source", [str(source)], src_files, display, args.warm, args.timeout))
        exe = args.bundle / "shoebox"
        if os.access(exe, os.X_OK):
            times.update(
                measure("bundle", [str(exe)], [args.bundle], display, args.warm, args.timeout)
            )
            times["bundle_warm_ratio"] = round(times["bundle_warm_s"] / times["source_warm_s"], 2)
        else:
            result["bundle"] = f"not built ({exe}): run `make bundle`"
    finally:
        xvfb.terminate()
        xvfb.wait()
    result.update(times)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
