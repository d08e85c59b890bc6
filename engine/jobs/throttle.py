"""Background work that yields to the person using the machine.

Three parts, all in the worker host:

- **Priority.** `lower_priority()` puts the host process at a higher niceness and, on
  Linux, in the idle I/O class, at start: the app (and every other program) gets the CPU
  and the disk first, whatever the mode.
- **How many workers run** (`Throttle`): the `background.mode` setting —
  `full` (every pool worker), `balanced` (the default: backs off while other programs
  keep the CPU busy, and to one worker on battery) or `idle` (runs only when the user
  has not touched the machine for `background.idle_after_s`). Cuts are immediate;
  recovery is one worker per check, so a burst of load does not make the count
  oscillate. The interactive lane is never throttled: the host applies the limit to
  the pool lanes only (`Gate`).
- **Rate limits** (`RateLimits`): at most N jobs a second of a stage, or N files a
  second from a source folder (a network share), as token buckets whose burst is one
  second of work, so a restart costs at most a second's burst.

The decision and why is written where the app and `shoebox status` read it (`meta`
rows `throttle_*`), so the status bar can say "Background work slowed: …".
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.jobs.user_idle import open_system_idle

log = logging.getLogger("shoebox.throttle")

MODES = ("full", "balanced", "idle")
CHECK_S = 2.0  # how often the host re-reads the machine's load
ACTIVITY_FILE = "activity"  # under the library: its mtime is the app's last user input


# -- priority --------------------------------------------------------------------------

IOPRIO_CLASS_IDLE = 3
IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314}


def lower_priority(niceness: int) -> dict[str, Any]:
    """Raise this process's niceness to `niceness` (never lowers it) and put its I/O in
    the idle class where the OS has one. Returns what was applied."""
    applied: dict[str, Any] = {"nice": None, "io": None}
    if hasattr(os, "nice"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if niceness > current:
                os.setpriority(os.PRIO_PROCESS, 0, niceness)
            applied["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        except OSError as exc:
            log.info("could not lower the CPU priority: %s", exc)
    if sys.platform.startswith("linux"):
        applied["io"] = "idle" if _ioprio_idle() else None
    elif sys.platform == "darwin":  # pragma: no cover - not run here
        applied["io"] = "throttle" if _iopolicy_throttle() else None
    elif sys.platform == "win32":  # pragma: no cover - not run here
        try:
            import psutil

            process = psutil.Process()
            process.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)  # type: ignore[attr-defined]
            applied["nice"] = "below normal"
            process.ionice(psutil.IOPRIO_VERYLOW)  # type: ignore[attr-defined]
            applied["io"] = "very low"
        except Exception as exc:
            log.info("could not lower the priority: %s", exc)
    return applied


def _iopolicy_throttle() -> bool:  # pragma: no cover - macOS
    """setiopolicy_np(IOPOL_TYPE_DISK, IOPOL_SCOPE_PROCESS, IOPOL_THROTTLE): the disk
    serves this process after everyone else (sys/resource.h: 0, 0, 3)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.dylib", use_errno=True)
        return int(libc.setiopolicy_np(0, 0, 3)) == 0
    except Exception:
        return False


def _ioprio_idle() -> bool:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, IDLE): every thread started later inherits it."""
    number = _SYS_IOPRIO_SET.get(os.uname().machine)
    if number is None:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        value = IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT
        return int(libc.syscall(number, IOPRIO_WHO_PROCESS, 0, value)) == 0
    except Exception:
        return False


def io_priority_class(pid: int) -> int | None:
    """The I/O scheduling class of a process (Linux), for tests and `status`."""
    number = {"x86_64": 252, "aarch64": 31}.get(os.uname().machine)  # ioprio_get
    if number is None:
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    value = int(libc.syscall(number, IOPRIO_WHO_PROCESS, pid))
    return None if value < 0 else value >> _IOPRIO_CLASS_SHIFT


# -- what the machine is doing -----------------------------------------------------------


def note_activity(library_dir: Path) -> None:
    """The user used the app now: where the X server's idle time is not known (Wayland,
    macOS, Windows here), this stamp is what "Only when idle" goes by."""
    path = library_dir / ACTIVITY_FILE
    try:
        os.utime(path)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            path.touch()
    except OSError:
        pass


@dataclass(frozen=True)
class Signals:
    """One reading: what other programs use of the CPU (0..1 of the whole machine), the
    power source, and seconds since the user last touched the machine (None: unknown)."""

    other_cpu: float = 0.0
    on_battery: bool = False
    user_idle_s: float | None = None


class SystemProbe:
    """Signals from the OS (psutil), this process's own use subtracted."""

    def __init__(self, library_dir: Path | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        self.library_dir = library_dir
        psutil.cpu_percent(None)  # the first reading is since boot: start the interval
        self._own_cpu = self._own_times()
        self._at = time.monotonic()
        self._system_idle = open_system_idle()
        self.read_idle = (
            True  # the host turns it off outside "idle" mode (a subprocess on some OSes)
        )

    def _own_times(self) -> float:
        total = 0.0
        procs = [self._me]
        with contextlib.suppress(Exception):
            procs += self._me.children(recursive=True)  # tesseract, model helpers
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += float(times.user + times.system)
            except Exception:
                continue
        return total

    def read(self) -> Signals:
        psutil = self._psutil
        now = time.monotonic()
        machine = float(psutil.cpu_percent(None)) / 100.0
        own = self._own_times()
        elapsed = max(now - self._at, 1e-3)
        ours = max(0.0, (own - self._own_cpu) / elapsed / self._cpus)
        self._own_cpu, self._at = own, now
        battery = None
        with contextlib.suppress(Exception):
            battery = psutil.sensors_battery()
        on_battery = battery is not None and battery.power_plugged is False
        return Signals(
            other_cpu=min(1.0, max(0.0, machine - ours)),
            on_battery=on_battery,
            user_idle_s=self.user_idle_s() if self.read_idle else None,
        )

    def user_idle_s(self) -> float | None:
        """Seconds since the user's last input: the OS's (`engine.jobs.user_idle`), else
        the app's own (it touches `activity` in the library on input), else unknown."""
        if self._system_idle is not None:
            idle = self._system_idle.idle_s()
            if idle is not None:
                return idle
        if self.library_dir is not None:
            try:
                return max(0.0, time.time() - (self.library_dir / ACTIVITY_FILE).stat().st_mtime)
            except OSError:
                return None
        return None


# -- the decision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    workers: int  # pool workers allowed to run now
    of: int  # the pool's size
    why: str = ""  # "" when not throttled; else a sentence for the status bar

    @property
    def throttled(self) -> bool:
        return self.workers < self.of

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "of": self.of, "throttled": self.throttled,
                "why": self.why}  # fmt: skip


class Throttle:
    """The pool's worker count for a mode and a reading of the machine."""

    def __init__(
        self, mode: str, pool: int, *, busy_cpu: float = 0.5, idle_after_s: float = 120.0
    ) -> None:
        self.mode = mode if mode in MODES else "balanced"
        self.pool = max(1, pool)
        self.busy_cpu = busy_cpu
        self.idle_after_s = idle_after_s
        self.current = self.pool

    def target(self, s: Signals, cpus: int) -> Decision:
        """What the mode asks for now, before smoothing."""
        pool = self.pool
        if self.mode == "full":
            return Decision(pool, pool)
        if self.mode == "idle":
            idle = s.user_idle_s
            if idle is not None and idle < self.idle_after_s:
                why = f"waiting until the computer is idle (used {_ago(idle)} ago)"
                return Decision(0, pool, why)
        if s.on_battery:
            return Decision(1, pool, "on battery: one worker")
        if s.other_cpu >= self.busy_cpu:
            # The cores other programs leave free, at least one worker: the host runs at a
            # lower priority, so that one yields to them anyway.
            free = int(cpus * (1.0 - s.other_cpu) + 0.5)
            workers = max(1, min(pool, free))
            if workers < pool:
                busy = round(100 * s.other_cpu)
                return Decision(workers, pool, f"other programs are using {busy}% of the CPU")
        return Decision(pool, pool)

    def update(self, s: Signals, cpus: int) -> Decision:
        want = self.target(s, cpus)
        if want.workers <= self.current:
            self.current = want.workers  # back off at once
        else:
            self.current += 1  # recover one worker per check
        why = want.why if self.current < self.pool else ""
        if not why and self.current < self.pool:
            why = "recovering after other programs were busy"
        return Decision(self.current, self.pool, why)


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s" if seconds < 120 else f"{int(seconds // 60)} min"


class Gate:
    """At most `limit` pool jobs running; `limit` changes at any time (the throttle). A
    cut takes effect as running jobs finish — none is interrupted."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.running = 0
        self.peak = 0
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        with self._cond:
            self._limit = max(0, limit)
            self._cond.notify_all()

    def acquire(self, stopping: Callable[[], bool]) -> bool:
        """Wait for a slot; False if the host is stopping meanwhile."""
        with self._cond:
            while self.running >= self._limit:
                if stopping():
                    return False
                self._cond.wait(0.2)
            self.running += 1
            self.peak = max(self.peak, self.running)
            return True

    def over(self) -> bool:
        """More running than the limit allows (it was cut meanwhile)."""
        with self._cond:
            return self.running > self._limit

    def release(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


# -- rate limits -----------------------------------------------------------------------


class LimitsError(ValueError):
    pass


def parse_limits(text: str, *, folders: bool) -> dict[str, float]:
    """`"ocr=2; thumbnail=20"` or `"/mnt/nas=5; /media/usb=10"` (per second)."""
    out: dict[str, float] = {}
    separators = ";" if folders else ";,"
    parts = [text]
    for sep in separators:
        parts = [p for part in parts for p in part.split(sep)]
    for part in parts:
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.rpartition("=")
        key = key.strip()
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not key or not rate > 0:
            what = "FOLDER=FILES_PER_SECOND" if folders else "STAGE=JOBS_PER_SECOND"
            raise LimitsError(f"{part!r}: write {what}, several separated by ';'")
        if folders:
            key = os.path.abspath(os.path.expanduser(key))
        out[key] = rate
    return out


def is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def folder_limit_of(
    paths: Iterable[str], folder_limits: dict[str, float]
) -> tuple[str, float] | None:
    """The slowest limited folder that holds one of `paths` or lies inside one, and its
    files a second: what the imports panel names when an import is slowed on purpose."""
    found: tuple[str, float] | None = None
    for path in paths:
        path = os.path.abspath(path)
        for folder, rate in folder_limits.items():
            overlaps = is_under(path, folder) or is_under(folder, path)
            if overlaps and (found is None or rate < found[1]):
                found = (folder, rate)
    return found


class TokenBucket:
    """`rate` a second, with a burst of one second's worth (at least one)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self.tokens = 1.0  # a restart does not bring a whole burst
        self.at = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Take one token; the seconds to wait before using it (0 if there was one)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
            self.tokens -= 1.0
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class SharedTokenBucket:
    """A `TokenBucket` whose state lives in a file that every process of the library
    takes its tokens through (under `flock`): the importer in the app, the CLI and the
    worker host then share one folder limit instead of each reading at the full rate.
    Wall-clock time, since the processes share no monotonic origin; a clock set back
    counts as no time passed."""

    def __init__(self, path: Path, rate: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self.lock = threading.Lock()  # flock is per open file: threads share none

    def take(self) -> float:
        import fcntl

        with self.lock, open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            f.seek(0)
            now = self.clock()
            try:
                at_text, tokens_text = f.read().split()
                at, tokens = float(at_text), float(tokens_text)
            except ValueError:  # new (or torn by a crash mid-write): a fresh bucket
                at, tokens = now, 1.0
            tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate) - 1.0
            f.seek(0)
            f.truncate()
            f.write(f"{now!r} {tokens!r}".encode())
            return 0.0 if tokens >= 0 else -tokens / self.rate


LIMITS_DIR = "limits"  # under the library: the shared folder buckets
SLOWING_WITHIN_S = 5.0  # a limit that made a job wait this recently is "slowing" work


def _folder_bucket(
    folder: str, rate: float, shared_dir: Path | None, clock: Callable[[], float] | None
) -> TokenBucket | SharedTokenBucket:
    if shared_dir is None or sys.platform == "win32":  # no flock: each process its own
        return TokenBucket(rate, clock or time.monotonic)
    import hashlib

    shared_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(f"{folder}={rate!r}".encode()).hexdigest()[:20]
    return SharedTokenBucket(shared_dir / f"{name}.bucket", rate, clock or time.time)


class RateLimits:
    """The stage and folder limits of the settings; `wait` blocks a job until its turn.
    With `shared_dir` (the library's `limits` folder), folder limits are shared by every
    process of the library; stage limits are the host's own."""

    def __init__(
        self,
        stages: dict[str, float],
        folders: dict[str, float],
        clock: Callable[[], float] | None = None,
        *,
        shared_dir: Path | None = None,
    ) -> None:
        self.stages = {k: TokenBucket(v, clock or time.monotonic) for k, v in stages.items()}
        self.folders = sorted(
            ((k, _folder_bucket(k, v, shared_dir, clock)) for k, v in folders.items()),
            key=lambda kv: -len(kv[0]),
        )
        self.waited_s = 0.0
        self._slowed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, library_dir: Path | None = None) -> RateLimits:
        bg = settings.background
        return cls(
            parse_limits(bg.stage_limits, folders=False),
            parse_limits(bg.folder_limits, folders=True),
            shared_dir=library_dir / LIMITS_DIR if library_dir is not None else None,
        )

    def __bool__(self) -> bool:
        return bool(self.stages or self.folders)

    def delay(self, stage: str, paths: Iterable[str], reads_original: bool) -> float:
        return self._delay(stage, paths, reads_original)[0]

    def _delay(self, stage: str, paths: Iterable[str], reads_original: bool) -> tuple[float, str]:
        """The seconds to wait, and the limit that makes it wait ("ocr: at most 2 a
        second"), "" when none does."""
        wait, why = 0.0, ""
        bucket = self.stages.get(stage)
        if bucket is not None:
            wait = bucket.take()
            why = f"{stage}: at most {bucket.rate:g} a second" if wait > 0 else ""
        if reads_original and self.folders:
            first = next(iter(paths), None)
            if first is not None:
                for folder, folder_bucket in self.folders:
                    if is_under(first, folder):
                        folder_wait = folder_bucket.take()
                        if folder_wait > wait:
                            name = os.path.basename(folder.rstrip(os.sep)) or folder
                            wait = folder_wait
                            why = f"{name}: at most {folder_bucket.rate:g} files a second"
                        break
        return wait, why

    def slowing(self, within_s: float = SLOWING_WITHIN_S) -> list[str]:
        """The limits that made a job wait lately: what the status bar names."""
        now = time.monotonic()
        with self._lock:
            return sorted(why for why, at in self._slowed_at.items() if now - at <= within_s)

    def wait(
        self,
        stage: str,
        paths: Iterable[str],
        reads_original: bool,
        check: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Sleep until this job may start; `check` raises if the job must stop."""
        delay, why = self._delay(stage, paths, reads_original)
        if delay > 0:
            with self._lock:
                self.waited_s += delay
                self._slowed_at[why] = time.monotonic()
        while delay > 0:
            step = min(delay, 0.25)
            sleep(step)
            delay -= step
            check()
