"""`shoebox self-test`: proves that Shoebox works on this machine (from source or a bundle).

In a temporary library it makes sample files (engine/selftest/samples.py), imports
them through the real engine and processes them in a child worker host, the path
`shoebox import --wait` takes (engine/jobs/supervisor.py); then it checks what came
out (engine/selftest/checks.py). Only stages that need no downloaded weights run;
the others are reported as skipped, with the reason. The user's library and
settings are never opened, and nothing is written beside the program: only the
temporary folder and the user's caches.

The app's Help menu calls `run_self_test` from a worker thread; the CLI prints
`SelfTestReport.to_text()` or `to_json()`. Nothing here imports Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATUSES", "CheckResult", "SelfTestReport", "run_self_test"]

STATUSES: tuple[str, ...] = ("pass", "fail", "skip")
_MARKS = {"pass": "pass   ", "fail": "FAIL   ", "skip": "skipped"}


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "Thumbnails keep orientation"
    status: str  # "pass" | "fail" | "skip"
    detail: str  # what was seen
    fix: str = ""  # what to do, for a failure
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class SelfTestReport:
    checks: tuple[CheckResult, ...]
    seconds: float
    environment: dict[str, str]  # version, frozen, python, platform, gpu (and cancelled)

    @property
    def ok(self) -> bool:
        """No check failed (skipped ones do not count against it)."""
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    def to_json(self) -> dict[str, object]:
        env = self.environment
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "version": env.get("version", ""),
            "frozen": env.get("frozen") == "true",
            "python": env.get("python", ""),
            "platform": env.get("platform", ""),
            "gpu": env.get("gpu", ""),
            "cancelled": env.get("cancelled") == "true",
            "checks": [c.to_json() for c in self.checks],
        }

    def to_text(self) -> str:
        """The human report: a line per check, then the verdict (and what to do)."""
        env = self.environment
        lines = [
            f"Shoebox {env.get('version', '?')}"
            + (" (bundle)" if env.get("frozen") == "true" else " (from source)")
            + f", Python {env.get('python', '?')}, {env.get('platform', '?')}"
        ]
        for c in self.checks:
            lines.append(f"{_MARKS.get(c.status, c.status)}  {c.name}: {c.detail}")
        lines.append("")
        passed = sum(c.status == "pass" for c in self.checks)
        if self.ok and env.get("cancelled") == "true":
            lines.append(
                f"Self-test cancelled: {passed} checks passed before it stopped "
                f"({self.seconds:.1f} s); the others did not run"
            )
        elif self.ok:
            lines.append(f"Self-test passed: {passed} checks in {self.seconds:.1f} s")
        else:
            failed = self.failed
            lines.append(
                f"Self-test FAILED: {len(failed)} of {len(self.checks)} checks failed "
                f"(in {self.seconds:.1f} s)"
            )
            for c in failed:
                lines.append(f"  - {c.name}: {c.detail}")
                if c.fix:
                    lines.append(f"    What to do: {c.fix}")
        return "\n".join(lines)


def run_self_test(
    progress: Callable[[str], None] | None = None,
    *,
    keep: Path | None = None,
    cancel: threading.Event | None = None,
) -> SelfTestReport:
    """Run every check; `progress` gets a short line as each step starts. With `keep`,
    the samples and the library are made in that (new or empty) folder and left
    there; else in a temporary folder that is removed. `cancel` set: stop as soon as
    possible and report what was checked."""
    from engine.selftest.runner import run

    return run(progress, keep=keep, cancel=cancel)
