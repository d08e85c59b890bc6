"""OCR throughput: Shoebox's `read_upright` against the tesseract CLI run directly.

The same rendered pages (tests/doccorpus.py: fonts, sizes, 300 dpi, ~6 × 2-4 inch),
the same parallelism (a thread pool of `workers` = CPU count, one tesseract process
per page, OMP_THREAD_LIMIT=1 on both sides), in the same run, rounds alternating.
Ours opens the PNG with Pillow and reads it upright (orientation checked: on an
upright page read well, that costs nothing beyond the one tesseract run); the CLI is
`tesseract page.png out -l eng` (plain text, no orientation), in a session of its own
like ours (see `run_cli`). `--rotated N` turns N
of the pages sideways or upside down to show what orientation costs when needed.
Last line: JSON with `pages`, `workers`, `ours_pages_s`, `cli_pages_s`, `ratio`
(ours / CLI, best round of each), `cpu_ratio` (CLI CPU seconds a page / ours, both
processes and their tesseract children: what throughput is when the cores are
busy, and steady when other work shares the machine), `cer_mean` of our readings.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import cpu_count, emit, warm_page_cache

from engine.ocr.orientation import read_upright
from tests.doccorpus import FONTS, render_page, rotate_page
from tests.ocr_metrics import cer

WORDS = [
    "the", "of", "and", "to", "in", "invoice", "payment", "account", "number", "total",
    "amount", "due", "date", "customer", "reference", "order", "delivery", "address", "balance",
    "statement", "period", "description", "quantity", "price", "tax", "receipt", "contract",
    "agreement", "section", "page", "insurance", "policy", "premium", "bank", "transfer",
    "letter", "dear", "sincerely", "regards", "meeting", "schedule", "report", "annual",
    "tenant", "rent",
]  # fmt: skip


def page_lines(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(5, 9)):
            word = rng.choice(WORDS)
            if rng.random() < 0.12:
                word = str(rng.randint(1, 99_999))
            elif rng.random() < 0.1:
                word = word.capitalize()
            words.append(word)
        lines.append(" ".join(words))
    return lines


def make_pages(folder: Path, count: int, rotated: int) -> list[tuple[Path, str]]:
    fonts = sorted(FONTS)
    pages = []
    for i in range(count):
        lines = page_lines(i, 8 + i % 8)
        img = render_page(
            lines, font=fonts[i % len(fonts)], size_pt=(9, 10, 11, 12, 14)[i % 5], width_in=8.0
        )
        if i < rotated:
            img = rotate_page(img, (90, 180, 270)[i % 3])
        path = folder / f"page{i:02d}.png"
        img.save(path)
        pages.append((path, "\n".join(lines)))
    return pages


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (tesseract) so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["OMP_THREAD_LIMIT"] = "1"
    return e


def run_cli(paths: list[Path], workers: int, out: Path) -> tuple[float, float]:
    child_env = env()

    def one(path: Path) -> None:
        subprocess.run(
            ["tesseract", str(path), str(out / path.stem), "-l", "eng"],
            check=True,
            capture_output=True,
            env=child_env,
            # Its own session, as run_controlled gives ours: with the kernel's
            # autogroup scheduling a session is a scheduling group, and a process in
            # its own one gets more CPU against other load than one in ours.
            start_new_session=True,
        )

    start, cpu = time.perf_counter(), cpu_s()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - start, cpu_s() - cpu


def run_ours(paths: list[Path], workers: int) -> tuple[float, float, list[tuple[str, int, str]]]:
    from PIL import Image

    def one(path: Path) -> tuple[str, int, str]:
        with Image.open(path) as img:
            img.load()
            page = read_upright(img, "eng", timeout_s=120)
        return page.text, page.rotation, page.orientation

    start, cpu = time.perf_counter(), cpu_s()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, paths))
    return time.perf_counter() - start, cpu_s() - cpu, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--rotated", type=int, default=0, help="pages turned 90/180/270")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=cpu_count())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pages = make_pages(folder, args.pages, args.rotated)
        paths = [p for p, _ in pages]
        warm_page_cache(paths)
        run_cli(paths[:1], 1, folder)  # traineddata into the page cache
        run_ours(paths[:1], 1)
        cli_times, our_times, cli_cpu, our_cpu = [], [], [], []
        results: list[tuple[str, int, str]] = []
        for round_no in range(args.rounds):
            cli_s, cli_c = run_cli(paths, args.workers, folder)
            ours_s, ours_c, results = run_ours(paths, args.workers)
            cli_times.append(cli_s)
            our_times.append(ours_s)
            cli_cpu.append(cli_c)
            our_cpu.append(ours_c)
            emit(
                {
                    "round": round_no,
                    "cli_s": round(cli_s, 3),
                    "ours_s": round(ours_s, 3),
                    "cli_cpu_s": round(cli_c, 3),
                    "ours_cpu_s": round(ours_c, 3),
                }
            )
        errors = [cer(ref, text) for (_, ref), (text, _, _) in zip(pages, results, strict=True)]
        methods = collections.Counter(method for _, _, method in results)
        emit({"methods": dict(methods), "cer_max": round(max(errors), 4)})
        ours_rate = args.pages / min(our_times)
        cli_rate = args.pages / min(cli_times)
        emit(
            {
                "pages": args.pages,
                "rotated": args.rotated,
                "workers": args.workers,
                "ours_pages_s": round(ours_rate, 3),
                "cli_pages_s": round(cli_rate, 3),
                "ratio": round(ours_rate / cli_rate, 3),
                "cli_cpu_ms_page": round(1000 * statistics.median(cli_cpu) / args.pages, 1),
                "ours_cpu_ms_page": round(1000 * statistics.median(our_cpu) / args.pages, 1),
                "cpu_ratio": round(statistics.median(cli_cpu) / statistics.median(our_cpu), 3),
                "cer_mean": round(statistics.fmean(errors), 4),
            }
        )


if __name__ == "__main__":
    main()
