"""Background work that yields: a CPU-bound competitor alone, then beside an import.

A competitor process (a pure-Python counting loop, nice 0: "the user's program") reports
its count every 0.2 s. Measured in the same run, on the same warm page cache:

- `solo`: the competitor alone;
- `reference`: the import of N 12-MP photos (thumbnail + metadata; models and OCR off)
  as before this change — Full speed with niceness 0 — with no competitor;
- `full`: the same import with `background.mode = full` (niceness 10, idle I/O class);
- then with the competitor running: the import in `full` and in `balanced`.

Each import is what the app does: a background `shoebox work --parent-pid` host for the
library, `shoebox import FOLDER`, timed until the last job ended.

- `competitor_kept_balanced` / `competitor_kept_full`: the competitor's rate during the
  import / its solo rate (target: balanced ≥ 0.80);
- `import_ratio_full`: reference seconds / full seconds, both without the competitor
  (target ≥ 0.95: Full speed costs nothing).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import OUT, REPO, cpu_count, emit, warm_page_cache

from tests.corpus import write_large_jpegs

COMPETITOR = """
import sys, time
n = 0
nxt = time.monotonic() + 0.2
while True:
    for _ in range(20000):
        n += 1
    now = time.monotonic()
    if now >= nxt:
        sys.stdout.write(f"{now} {n}\\n"); sys.stdout.flush()
        nxt = now + 0.2
"""


class Competitor:
    """The competing program; `rate(t0, t1)`: its loop counts a second in that window."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True
        )
        self.samples: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t, n = line.split()
            self.samples.append((float(t), int(n)))

    def rate(self, t0: float, t1: float) -> float:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            raise RuntimeError("the competitor reported too little in the window")
        (ta, na), (tb, nb) = inside[0], inside[-1]
        return (nb - na) / (tb - ta)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(root), *args],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip


def unfinished(root: Path) -> int:
    conn = sqlite3.connect(f"file:{root / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running', 'waiting')"
            ).fetchone()[0]
        )
    finally:
        conn.close()


def import_once(folder: Path, n: int, mode: str, nice: int, scratch: Path) -> dict[str, Any]:
    root = scratch / f"lib-{mode}-{nice}-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(REPO), SHOEBOX_NO_MODELS="1")
    env.pop("SHOEBOX_BACKGROUND", None)
    cli(root, "config", "set", "background.mode", mode, env=env)
    cli(root, "config", "set", "background.nice", str(nice), env=env)
    host = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--library", str(root), "work",
         "--parent-pid", str(os.getpid())],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # the host is up (its start is not what is measured)
        t0 = time.monotonic()
        cli(root, "import", str(folder), env=env)
        while unfinished(root):
            time.sleep(0.1)
        t1 = time.monotonic()
    finally:
        host.terminate()
        host.wait(60)
    conn = sqlite3.connect(f"file:{root / 'catalog.db'}?mode=ro", uri=True)
    done = int(conn.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0])
    conn.close()
    shutil.rmtree(root, ignore_errors=True)
    if done != 2 * n:
        raise RuntimeError(f"{mode}: {done} jobs done, expected {2 * n}")
    return {"t0": t0, "t1": t1, "seconds": t1 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--solo-s", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    files = write_large_jpegs(OUT / "jpeg12mp", args.count)[: args.count]
    folder = OUT / f"throttle-{args.count}"
    if not folder.exists() or len(list(folder.iterdir())) != args.count:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in files:
            (folder / path.name).symlink_to(path.resolve())
    warm_page_cache(files)

    result: dict[str, Any] = {"benchmark": "throttle", "files": args.count, "cpus": cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        # Alternated, best of `--rounds`: the first import also warms what follows.
        refs, fulls = [], []
        for _ in range(args.rounds):
            refs.append(import_once(folder, args.count, "full", 0, scratch))
            fulls.append(import_once(folder, args.count, "full", 10, scratch))
        reference = min(refs, key=lambda r: r["seconds"])
        full = min(fulls, key=lambda r: r["seconds"])
        print(f"alone: reference {reference['seconds']:.2f}s, full {full['seconds']:.2f}s",
              flush=True)  # fmt: skip
        competitor = Competitor()
        try:
            time.sleep(1.0)
            s0 = time.monotonic()
            time.sleep(args.solo_s)
            solo = competitor.rate(s0, time.monotonic())
            kept: dict[str, float] = {}
            seconds: dict[str, float] = {}
            for mode in ("full", "balanced"):
                run = import_once(folder, args.count, mode, 10, scratch)
                kept[mode] = competitor.rate(run["t0"], run["t1"]) / solo
                seconds[mode] = run["seconds"]
                print(f"with the competitor: {mode} {run['seconds']:.2f}s, competitor kept "
                      f"{kept[mode]:.3f}", flush=True)  # fmt: skip
            s0 = time.monotonic()
            time.sleep(args.solo_s)
            solo_after = competitor.rate(s0, time.monotonic())
        finally:
            competitor.stop()
    result.update(
        reference_s=round(reference["seconds"], 3),
        full_s=round(full["seconds"], 3),
        import_ratio_full=round(reference["seconds"] / full["seconds"], 3),
        full_with_competitor_s=round(seconds["full"], 3),
        balanced_with_competitor_s=round(seconds["balanced"], 3),
        competitor_solo_per_s=round(solo),
        competitor_solo_after_per_s=round(solo_after),
        competitor_kept_full=round(kept["full"], 3),
        competitor_kept_balanced=round(kept["balanced"], 3),
    )
    emit(result)


if __name__ == "__main__":
    main()
