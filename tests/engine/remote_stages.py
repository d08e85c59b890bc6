"""A CPU-bound stage both an owner and its remote workers know (tests, bench/scaleout.py).

`SHOEBOX_EXTRA_STAGES=tests.engine.remote_stages:stages` adds it to a worker process's
stages; the owner's library is built with it (`library_with`)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from typing import Any

from engine.pipeline.types import ItemRef, ItemStage, StageContext, StageOutput, upsert_result

ROUNDS = int(os.environ.get("SHOEBOX_CRUNCH_ROUNDS", "20000"))


class Crunch(ItemStage):
    """Hashes a few thousand times per item (pure CPU, holds the GIL like decoding would)."""

    name = "crunch"
    version = "1"
    lane = "import"
    reads_original = False
    remote = True  # may run on a worker host on another machine

    def __init__(self, rounds: int = ROUNDS) -> None:
        self.rounds = rounds
        self.ran: list[int] = []
        self.lock = threading.Lock()

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        digest = item.hash.encode()
        for _ in range(self.rounds):
            digest = hashlib.sha256(digest).digest()
        with self.lock:
            self.ran.append(item.id)
        return StageOutput(data={"digest": digest.hex(), "pid": os.getpid()})

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        upsert_result(conn, item.id, self.name, self.version, output.data)


def stages() -> list[Any]:
    return [Crunch()]
