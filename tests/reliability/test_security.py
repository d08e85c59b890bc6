"""Security (issue 16): queue messages are JSON only; nothing listens on a network port;
no connection leaves the machine during an import and its processing; the logs hold
no file contents. (Model files load without unpickling code: tests/models/test_embedders.py.)"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from huey.registry import Message

from engine.jobs.serializer import JsonSerializer
from tests.conftest import REPO, cli_env
from tests.doccorpus import write_text_pdf
from tests.engine.helpers import jpeg
from tests.reliability.harness import write_record

SECRET = "Zebrafinch-7731-Quokka"  # a document's words that must stay out of the logs


class _Evil:
    ran: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_Evil.ran.append, ("unpickled",))


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The test's record for the report (suite "security"): ok only if it got to its end."""
    rec: dict[str, Any] = {"suite": "security", "kind": request.node.originalname[5:]}
    rec.update(seed=0, ok=False)
    yield rec
    write_record(rec)


def test_queue_messages_are_json_and_a_pickle_is_refused(record: dict[str, Any]) -> None:
    ser = JsonSerializer()
    msg = Message(
        "id-1", "shoebox.run_jobs", dt.datetime(2026, 1, 2, 3, 4, 5), 0, 0, 3,
        ("import", "thumbnail", [[12, 1], [13, 1]]), {}, None, None, None, None,
    )  # fmt: skip
    data = ser.serialize(msg)
    assert data.startswith(b"{") and b"thumbnail" in data
    back = ser.deserialize(data)
    assert back.args == ("import", "thumbnail", [[12, 1], [13, 1]])
    assert back.eta == dt.datetime(2026, 1, 2, 3, 4, 5) and back.priority == 3
    with pytest.raises(TypeError):
        ser.serialize(msg._replace(args=("import", object())))
    # A pickle planted in the queue does not run: it is not JSON.
    with pytest.raises(ValueError):
        ser.deserialize(pickle.dumps(_Evil()))
    assert _Evil.ran == []
    record.update(pickles_run=len(_Evil.ran), ok=True)


def _listening_inodes() -> set[str]:
    """Socket inodes in LISTEN (TCP) or bound (UDP) state, from /proc/net."""
    found: set[str] = set()
    for table, listen in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[3] == listen:
                found.add(parts[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_the_worker_host_listens_on_no_network_port(tmp_path: Path, record: dict[str, Any]) -> None:
    lib = tmp_path / "lib"
    src = tmp_path / "src"
    for i in range(3):
        jpeg(src / f"p{i}.jpg", i)
    env = cli_env()
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(lib), "import", str(src)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    host = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--library", str(lib), "work"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Wait until the host is working: its jobs get done (counted in the catalog).
        from engine.library import Library

        deadline = time.monotonic() + 60
        while True:
            with Library(lib) as library:
                left = library.catalog.read(
                    "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
                )[0][0]
            if left == 0:
                break
            assert host.poll() is None, host.stderr.read() if host.stderr else ""
            assert time.monotonic() < deadline, "the host did not finish 3 photos"
            time.sleep(0.05)
        assert host.poll() is None
        listening = _socket_inodes(host.pid) & _listening_inodes()
        assert not listening
        record.update(ports_listening=len(listening), ok=True)
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)


_NO_NETWORK = """
import socket, sys
connects = []
def hook(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            connects.append(repr(address))
            raise ConnectionRefusedError(f"test: no network ({address})")
sys.addaudithook(hook)
from engine.cli import main
code = main(sys.argv[1:])
print("CONNECTS", len(connects), connects, flush=True)
sys.exit(code)
"""


def test_an_import_and_its_processing_connect_nowhere(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    """Models off (no weights here: the one network use is an explicit download), the
    network allowed (SHOEBOX_OFFLINE unset): not one connection is attempted."""
    src = tmp_path / "src"
    for i in range(3):
        jpeg(src / f"p{i}.jpg", i)
    write_text_pdf(src / "doc.pdf", [["A letter", SECRET]])
    env = cli_env()
    env.pop("SHOEBOX_OFFLINE", None)
    lib = tmp_path / "lib"
    run = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK, "--library", str(lib), "import", str(src), "--wait"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "CONNECTS 0 []" in run.stdout, run.stdout
    record.update(connections=0, ok=True)


def test_logs_hold_no_file_contents(tmp_path: Path, record: dict[str, Any]) -> None:
    """A document's text read (and a broken file whose bytes carry the same words)
    leave nothing of their contents in the logs — only names, ids and reasons."""
    from engine.cli import main

    src = tmp_path / "src"
    write_text_pdf(src / "letter.pdf", [["Dear reader", SECRET, "Regards"]])
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + SECRET.encode() * 50)
    (src / "broken.pdf").write_bytes(b"%PDF-1.7\n" + SECRET.encode() * 50)
    lib = tmp_path / "lib"
    assert main(["--library", str(lib), "config", "set", "ocr.enabled", "true"]) == 0
    assert main(["--library", str(lib), "import", str(src), "--wait"]) == 0
    from engine.library import Library

    with Library(lib) as library:
        pages = library.catalog.read("SELECT text FROM ocr_pages")
        failed = library.catalog.read("SELECT COUNT(*) FROM jobs WHERE state = 'failed'")[0][0]
    assert any(SECRET in str(r[0]) for r in pages), "the letter was read"
    assert failed >= 2, "the broken files failed (and were logged)"
    logs = list((lib / "logs").rglob("*"))
    assert logs, "a log was written"
    files = [path for path in logs if path.is_file()]
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    record.update(log_files=len(files), logs_with_contents=0, ok=True)
