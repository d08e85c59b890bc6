"""A real `redis-server` on loopback for the tests of the Redis broker.

Started once per test session on a free port in its own folder, with no persistence
(as a broker that restarts loses what it held, which the tests want to see).
`make test` installs redis-server (packaging/system-deps.sh test); where it is missing
the Redis half of the queue tests is skipped and says why.

`queue_backend` runs a test once per backend: with "redis" it points
`SHOEBOX_BROKER` at the server, for the test's hosts and the child processes it starts.
Each test's library has its own id, so their queues never meet on the server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="shoebox-redis-"))
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited at start")
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Killed and started again on the same port: everything it held is gone."""
        self.stop()
        self.start()
        self.restarts += 1


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "redis"])
def queue_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test on the embedded SQLite queue and on Redis."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        monkeypatch.setenv("SHOEBOX_BROKER", server.url)
    else:
        monkeypatch.delenv("SHOEBOX_BROKER", raising=False)
    return str(request.param)


__all__ = ["RedisServer", "queue_backend", "redis_server"]
