from __future__ import annotations

import random
import time
from pathlib import Path

from engine.config import Settings
from engine.jobs import ledger, recovery
from engine.library import Library
from tests.engine.helpers import jpeg


def _lib_with_items(library: Library, tmp_path: Path, n: int) -> None:
    for i in range(n):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    library.import_paths([tmp_path / "src"])


def _state(library: Library, job_id: int) -> tuple[str, int, str | None]:
    row = library.catalog.read("SELECT state, attempts, error FROM jobs WHERE id = ?", (job_id,))[0]
    return row[0], row[1], row[2]


def test_attempt_is_counted_at_claim_and_stale_tokens_run_nothing(
    library: Library, tmp_path: Path
) -> None:
    _lib_with_items(library, tmp_path, 1)
    with library.catalog.write() as conn:
        [(job_id, token)] = ledger.take_for_dispatch(conn, "import", 1, time.time())
        assert ledger.claim(conn, job_id, token - 1, "me", time.time(), 60) is None
        job = ledger.claim(conn, job_id, token, "me", time.time(), 60)
        assert job is not None
        assert ledger.claim(conn, job_id, token, "me", time.time(), 60) is None  # not twice
    assert _state(library, job_id)[:2] == ("running", 1)


def test_transient_errors_back_off_then_die_permanent_fail_at_once(
    library: Library, tmp_path: Path
) -> None:
    _lib_with_items(library, tmp_path, 2)
    settings = Settings()
    now = time.time()
    with library.catalog.write() as conn:
        conn.execute("UPDATE jobs SET max_attempts = 2")
        (a, ta), (b, tb) = ledger.take_for_dispatch(conn, "import", 2, now)
        job_a = ledger.claim(conn, a, ta, "me", now, 60)
        job_b = ledger.claim(conn, b, tb, "me", now, 60)
        assert job_a and job_b
        assert (
            ledger.finish_error(
                conn, job_a, "disk hiccup", permanent=False, settings=settings, now=now
            )
            == "queued"
        )
        assert (
            ledger.finish_error(
                conn,
                job_b,
                "The file is empty (0 bytes).",
                permanent=True,
                settings=settings,
                now=now,
            )
            == "failed"
        )
    not_before = library.catalog.read("SELECT not_before FROM jobs WHERE id = ?", (a,))[0][0]
    assert now + 1.0 <= not_before <= now + 2.0  # base 2 s, jitter in [1, 2]
    assert _state(library, b) == ("failed", 1, "The file is empty (0 bytes).")
    with library.catalog.write() as conn:  # not ready before its backoff
        assert ledger.take_for_dispatch(conn, "import", 5, now) == [(3, 1), (4, 1)]
        [(a2, ta2)] = [
            x for x in ledger.take_for_dispatch(conn, "import", 5, not_before) if x[0] == a
        ]
        job_a = ledger.claim(conn, a2, ta2, "me", not_before, 60)
        assert job_a is not None
        assert (
            ledger.finish_error(
                conn, job_a, "disk hiccup", permanent=False, settings=settings, now=now
            )
            == "dead"
        )
    state, attempts, error = _state(library, a)
    assert (state, attempts) == ("dead", 2)
    assert error == "disk hiccup (gave up after 2 attempts)"
    assert library.retry(dead_only=True) == 1
    assert _state(library, a) == ("queued", 0, None)


def test_backoff_is_exponential_jittered_and_capped() -> None:
    settings = Settings(retry_base_s=2, retry_cap_s=60)
    rng = random.Random(1)
    for attempts, ceiling in ((1, 2), (2, 4), (3, 8), (10, 60)):
        delays = [ledger.backoff_delay(attempts, settings, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # really jittered


def test_recovery_requeues_orphans_as_suspects_and_dead_letters_repeat_crashers(
    library: Library, tmp_path: Path
) -> None:
    _lib_with_items(library, tmp_path, 2)
    now = time.time()
    with library.catalog.write() as conn:
        taken = ledger.take_for_dispatch(conn, "import", 4, now)
        jobs = [ledger.claim(conn, j, t, "dead-host", now, 60) for j, t in taken[:2]]
        conn.execute(
            "UPDATE jobs SET attempts = max_attempts, crashes = 2 WHERE id = ?", (taken[1][0],)
        )
        counts = recovery.recover(conn, now)
    assert counts == {"dead": 1, "requeued": 1, "refunded": 0, "undispatched": 2}
    assert jobs[0] is not None
    state, _, _ = _state(library, jobs[0].id)
    assert state == "queued"
    state, _, error = _state(library, taken[1][0])
    assert state == "dead" and error is not None and "(3 of its attempts ended that way" in error
    with library.catalog.write() as conn:
        # Suspects wait until nothing else is in flight, then run alone.
        ledger.take_for_dispatch(conn, "import", 1, now)
        assert recovery.take_suspects(conn, ["import"], now, {}) is None
        conn.execute("UPDATE jobs SET dispatched = 0")
        lane, pairs = recovery.take_suspects(conn, ["import"], now, {}) or ("", [])
    assert (lane, [job for job, _ in pairs]) == ("import", [jobs[0].id])


def test_pause_blocks_claims_and_cancel_stops_a_session(library: Library, tmp_path: Path) -> None:
    _lib_with_items(library, tmp_path, 3)
    now = time.time()
    with library.catalog.write() as conn:
        [(job_id, token)] = ledger.take_for_dispatch(conn, "import", 1, now)
    library.pause("import")
    with library.catalog.write() as conn:
        assert ledger.claim(conn, job_id, token, "me", now, 60) is None
    assert library.catalog.read("SELECT dispatched FROM jobs WHERE id = ?", (job_id,))[0][0] == 0
    assert library.pending_work() == 0  # paused work is not pending
    library.resume("import")
    assert library.pending_work() == 6
    assert library.cancel_session(1) == 6
    assert library.pending_work() == 0
    assert library.retry(include_cancelled=True) == 6


def test_prioritize_moves_waiting_jobs_to_the_interactive_lane(
    library: Library, tmp_path: Path
) -> None:
    _lib_with_items(library, tmp_path, 3)
    assert library.prioritize([2]) == 2
    lanes = dict(library.catalog.read("SELECT stage, lane FROM jobs WHERE item_id = 2"))
    assert lanes == {"metadata": "interactive", "thumbnail": "interactive"}
    assert library.status()["lanes"]["interactive"]["queued"] == 2
    assert library.status()["lanes"]["import"]["queued"] == 4
    with library.catalog.write() as conn:
        taken = ledger.take_for_dispatch(conn, "interactive", 5, time.time())
    assert [job for job, _ in taken] == [
        r[0] for r in library.catalog.read("SELECT id FROM jobs WHERE item_id = 2 ORDER BY id")
    ]
