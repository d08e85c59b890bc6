"""Run a child process under a job's control: killed on cancel, stop or timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

from engine.jobs.control import JobControl

POLL_S = 0.05


def run_controlled(
    args: Sequence[str],
    control: JobControl | None,
    *,
    input_bytes: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Like `subprocess.run(capture_output=True)`, but the job's control can stop it.

    The child gets its own process group, so helpers it starts die with it. When the
    job is interrupted, the group is killed and `JobInterrupted` is raised. With
    `timeout_s`, a child still running after that many seconds has its group killed
    and `subprocess.TimeoutExpired` is raised (with what it had written so far)."""
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    # The input is written by a thread of its own: communicate() cannot be retried
    # with input (it would stop writing what did not fit in the pipe the first time).
    feeder: threading.Thread | None = None
    if proc.stdin is not None:
        feeder = threading.Thread(
            target=_feed, args=(proc.stdin, input_bytes or b""), daemon=True, name="stdin-feeder"
        )
        proc.stdin = None
        feeder.start()
    try:
        while True:
            wait_s = POLL_S
            if deadline is not None:
                wait_s = max(0.0, min(POLL_S, deadline - time.monotonic()))
            try:
                out, err = proc.communicate(timeout=wait_s)
                return subprocess.CompletedProcess(list(args), proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                pass
            interruption = control.interruption() if control is not None else None
            if interruption is not None:
                _kill_group(proc)
                proc.communicate()
                raise interruption
            if deadline is not None and time.monotonic() >= deadline:
                _kill_group(proc)
                out, err = proc.communicate()
                raise subprocess.TimeoutExpired(list(args), timeout_s or 0.0, out, err)
    finally:
        if feeder is not None:
            feeder.join()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        with contextlib.suppress(BrokenPipeError):
            pipe.write(data)
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
