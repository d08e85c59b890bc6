"""Run a child process under a job's control: killed on cancel, stop or timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence

from engine.jobs.control import JobControl

POLL_S = 0.05


def run_controlled(
    args: Sequence[str],
    control: JobControl | None,
    *,
    input_bytes: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Like `subprocess.run(capture_output=True)`, but the job's control can stop it.

    The child gets its own process group, so helpers it starts die with it. When the
    job is interrupted, the group is killed and `JobInterrupted` is raised."""
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    first_input = input_bytes
    while True:
        try:
            out, err = proc.communicate(first_input, timeout=POLL_S)
            return subprocess.CompletedProcess(list(args), proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            first_input = None  # communicate() keeps feeding what it started
        interruption = control.interruption() if control is not None else None
        if interruption is not None:
            _kill_group(proc)
            proc.communicate()
            raise interruption


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
