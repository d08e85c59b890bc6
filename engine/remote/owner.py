"""The owner's side of scale-out: dispatching to remote workers and ingesting results.

Lives in the library's worker host (the app's, or `shoebox work`) when the queue is on
Redis and at least one worker is enrolled. The owner is the only writer of the catalog:

- **Dispatch.** While workers are live (a heartbeat within `LIVE_S`), ready jobs of
  stages that can run remotely (`remote = True`, per item, plain JSON output) are
  claimed in the ledger for "remote:" — the attempt is counted — and sent, signed with
  the dispatch key, to the `compute` queue: at most two per live worker slot, so the
  broker never holds the backlog. The local feeder leaves those stages alone then.
- **Ingest.** One consumer reads `ingest`. Every message is verified (signing.py);
  rejected ones are logged and counted by reason, and nothing of theirs is written.
  A result is written only if its job is still running for a remote worker with the
  same token, in one transaction with the job's end, so a duplicate or a late copy
  writes nothing (idempotent by job, attempt and token).
- **Leases.** A worker's "started" lease names it as the job's owner; renewals move
  `lease_until`. A job whose lease expired goes back to the queue with the attempt
  counted, or dead after its attempts ("the worker … stopped answering"). Expiry waits
  until the ingest queue is drained, so results that waited in Redis while the owner
  slept are applied first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from engine.jobs import ledger
from engine.jobs.host import EmbeddedConsumer
from engine.pipeline.types import StageOutput
from engine.remote import protocol as P
from engine.remote.enrol import identity, key_lookup
from engine.remote.signing import Envelope, Rejected, Verifier, sign
from engine.remote.worker import _never_here
from engine.store.db import next_seq

if TYPE_CHECKING:
    from engine.jobs.host import WorkerHost

log = logging.getLogger("shoebox.remote")

REMOTE_OWNER = "remote:"
DEPTH_PER_SLOT = 2
STALL_REASON = (
    "The worker host {worker} stopped answering while working on this file ({n} times); "
    "retry it from the jobs panel or with `shoebox retry`."
)
_CLAIMED = """id, item_id, stage, version, lane, attempts, max_attempts, token,
              task_key, result_version, crashes, batch_n, session_id"""


class RemoteDispatcher:
    def __init__(self, host: WorkerHost, library_id: str) -> None:
        self.host = host
        self.library_id = library_id
        url = host.broker_url
        self.compute = P.remote_huey(url, library_id, "compute")
        self.ingest = P.remote_huey(url, library_id, "ingest")
        self._send_job = self.compute.task(name=P.JOB_TASK)(P.task_function(_never_here))
        self.ingest.task(name=P.INGEST_TASK)(P.task_function(self.on_message))
        with host.catalog.write() as conn:
            _, self.dispatch_key = identity(conn)
        self.verifier = Verifier(lambda kid: key_lookup(host.catalog.conn)(kid))
        self.rejected: Counter[str] = Counter()
        self.stale = 0
        self.live: dict[str, dict[str, Any]] = {}  # worker -> its last heartbeat (+ "at")
        self.local_only: set[int] = set()  # jobs a worker could not read: run them here
        self._lock = threading.Lock()
        self._consumer = EmbeddedConsumer(self.ingest, 1, threading.Event())
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._consumer.run, name="ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._consumer.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=15)

    # -- which work goes out ------------------------------------------------------

    def remote_stages(self) -> set[str]:
        return {
            s.name
            for s in self.host.registry.stages()
            if getattr(s, "remote", False) and s.batch_size == 1
        }

    def live_slots(self, now: float) -> int:
        with self._lock:
            return sum(
                int(hb.get("slots", 0))
                for hb in self.live.values()
                if now - float(hb["at"]) < P.LIVE_S
            )

    def takes(self, now: float) -> set[str]:
        """The stages the local feeder leaves to the workers now (none if none is live)."""
        return self.remote_stages() if self.live_slots(now) > 0 else set()

    def feed(self, active_lanes: list[str], now: float) -> int:
        stages = self.takes(now)
        if not stages:
            return 0
        conn = self.host.catalog.conn
        in_flight = int(
            conn.execute(
                "SELECT count(*) FROM jobs WHERE state = 'running' AND owner LIKE 'remote:%'"
            ).fetchone()[0]
        )
        room = self.live_slots(now) * DEPTH_PER_SLOT - in_flight
        if room <= 0:
            return 0
        paused = ledger.paused_sessions(conn)
        wanted: list[int] = []
        for lane in active_lanes:
            ready = ledger.ready_jobs(conn, lane, room * 8, now, paused)
            wanted += [j.id for j in ready if j.stage in stages and j.id not in self.local_only][
                : room - len(wanted)
            ]
            if len(wanted) >= room:
                break
        if not wanted:
            return 0
        from engine.jobs.host import load_item_ref

        messages: list[tuple[int, bytes]] = []
        settings = self.host.settings.to_toml_dict()
        with self.host.catalog.write() as wconn:
            for job_id, token in ledger.mark_dispatched(wconn, wanted):
                job = ledger.claim(wconn, job_id, token, REMOTE_OWNER, now, P.LEASE_S)
                if job is None or job.item_id is None:
                    continue
                item = load_item_ref(self.host.catalog, job.item_id, wconn)
                body = {
                    "lib": self.library_id,
                    "job": job.id,
                    "token": job.token,
                    "attempt": job.attempts,
                    "stage": job.stage,
                    "version": job.version,
                    "item": P.item_to_json(item),
                    "settings": settings,
                    "lease_s": P.LEASE_S,
                }
                raw = sign(self.dispatch_key, "job", body, token=job.token, ttl_s=P.JOB_TTL_S)
                messages.append((job.id, raw))
        sent = 0
        for job_id, raw in messages:
            try:
                self._send_job(raw.decode("utf-8"))
                sent += 1
            except Exception:
                log.warning("could not send job %s to the workers; it runs again later", job_id)
                self._hand_back(job_id)
        return sent

    def _hand_back(self, job_id: int) -> None:
        with self.host.catalog.write() as conn:
            job = self._running_remote(conn, job_id, None)
            if job is not None:
                ledger.hand_back(conn, [job])

    # -- what comes back ------------------------------------------------------------

    def on_message(self, message: str) -> None:
        try:
            env = self.verifier.verify(message, kinds=frozenset(P.INGEST_KINDS))
            if env.body.get("lib") != self.library_id:
                raise Rejected("malformed", f"for library {env.body.get('lib')!r}")
            worker = self.verifier.lookup(env.key_id)
            if worker is None or env.body.get("worker") != worker.name:
                raise Rejected("forged", "the worker named is not the key's")
        except Rejected as exc:
            with self._lock:
                self.rejected[exc.reason] += 1
            log.warning("refused a message on the ingest queue: %s", exc)
            return
        handler = getattr(self, f"_on_{env.kind}")
        handler(env, worker.name)
        self.host._feed_wake.set()  # a finished job may unblock others

    def _on_heartbeat(self, env: Envelope, worker: str) -> None:
        now = time.time()
        info = {k: env.body.get(k) for k in ("host", "device", "slots", "current", "done",
                                             "errors", "stopping")}  # fmt: skip
        # When it was sent (its expiry less the TTL), not when read: a heartbeat that
        # waited in the broker (the owner was away) does not make a worker live.
        sent = min(now, env.expires_at - P.WORKER_TTL_S)
        with self._lock:
            if worker not in self.live or sent >= float(self.live[worker]["at"]):
                self.live[worker] = {**info, "at": sent}
        with self.host.catalog.write() as conn:
            conn.execute(
                "UPDATE workers SET last_seen_at = ?, info = ? WHERE name = ?",
                (now, json.dumps(info), worker),
            )

    def _on_lease(self, env: Envelope, worker: str) -> None:
        until = time.time() + P.LEASE_S
        with self.host.catalog.write() as conn:
            for job_id, token in env.body.get("jobs", []):
                conn.execute(
                    """UPDATE jobs SET owner = ?, lease_until = ?
                       WHERE id = ? AND token = ? AND state = 'running'
                         AND owner LIKE 'remote:%'""",
                    (REMOTE_OWNER + worker, until, int(job_id), int(token)),
                )

    def _on_refusal(self, env: Envelope, worker: str) -> None:
        job_id = int(env.body["job"])
        log.info("worker %s cannot read job %s's file: it runs here", worker, job_id)
        with self._lock:
            self.local_only.add(job_id)
        with self.host.catalog.write() as conn:
            job = self._running_remote(conn, job_id, int(env.body["token"]))
            if job is not None:
                ledger.hand_back(conn, [job])

    def _on_result(self, env: Envelope, worker: str) -> None:
        body = env.body
        job_id, token = int(body["job"]), int(body["token"])
        now = time.time()
        host = self.host
        with host.catalog.write() as conn:
            job = self._running_remote(conn, job_id, token)
            if job is None:  # a duplicate, or too late: the job moved on
                self.stale += 1
                return
            if body.get("ok"):
                output = body.get("output")
                if not isinstance(output, dict):
                    raise_reason = f"the worker {worker} sent no result data"
                    ledger.finish_error(conn, job, raise_reason, permanent=False,
                                        settings=host.settings, now=now,
                                        registry=host.registry)  # fmt: skip
                    return
                from engine.jobs.host import load_item_ref

                seq = next_seq(conn)
                if ledger.finish_done(conn, job, seq, now, registry=host.registry):
                    assert job.item_id is not None
                    item = load_item_ref(host.catalog, job.item_id, conn)
                    stage = host.registry.get(job.stage)
                    stage.store_many(conn, [(item, StageOutput(data=output))], seq)
                    host.stats.done += 1
                conn.execute("UPDATE workers SET jobs_done = jobs_done + 1 WHERE name = ?",
                             (worker,))  # fmt: skip
                return
            reason = str(body.get("error") or "the worker reported a failure")
            state = ledger.finish_error(conn, job, reason, permanent=bool(body.get("permanent")),
                                        settings=host.settings, now=now,
                                        registry=host.registry)  # fmt: skip
            conn.execute("UPDATE workers SET errors = errors + 1 WHERE name = ?", (worker,))
            if state == "dead":
                host.stats.dead += 1

    def _running_remote(
        self, conn: Any, job_id: int, token: int | None
    ) -> ledger.ClaimedJob | None:
        sql = f"SELECT {_CLAIMED} FROM jobs WHERE id = ? AND state = 'running'"
        sql += " AND owner LIKE 'remote:%'"
        params: tuple[Any, ...] = (job_id,)
        if token is not None:
            sql += " AND token = ?"
            params = (job_id, token)
        row = conn.execute(sql, params).fetchone()
        return None if row is None else ledger.ClaimedJob(*row)

    # -- leases ----------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Remote jobs whose lease ran out, once what waited in the ingest queue is in."""
        try:
            if self.ingest.pending_count():
                return 0
        except Exception:
            return 0  # the broker is away: nothing can be told apart now
        with self.host.catalog.write() as conn:
            rows = conn.execute(
                f"""SELECT {_CLAIMED}, owner FROM jobs INDEXED BY jobs_running
                    WHERE state = 'running' AND owner LIKE 'remote:%' AND lease_until < ?""",
                (now,),
            ).fetchall()
            for row in rows:
                job = ledger.ClaimedJob(*row[:-1])
                worker = str(row[-1])[len(REMOTE_OWNER) :] or "that took it"
                reason = STALL_REASON.format(worker=worker, n=job.crashes + 1)
                if job.attempts >= job.max_attempts:
                    seq = next_seq(conn)
                    conn.execute(
                        """UPDATE jobs SET state = 'dead', crashes = crashes + 1, error = ?,
                                           finished_at = ?, owner = NULL, lease_until = NULL,
                                           dispatched = 0, suspect = 0, seq = ?
                           WHERE id = ? AND state = 'running' AND token = ?""",
                        (reason, now, seq, job.id, job.token),
                    )
                    if job.item_id is not None:
                        ledger.skip_dependents(conn, self.host.registry, job.item_id,
                                               job.stage, reason, seq, now)  # fmt: skip
                else:
                    conn.execute(
                        """UPDATE jobs SET state = 'queued', crashes = crashes + 1, owner = NULL,
                                           lease_until = NULL, dispatched = 0, token = token + 1,
                                           error = ?, seq = ?
                           WHERE id = ? AND state = 'running' AND token = ?""",
                        (f"The worker host {worker} stopped answering; it runs again.",
                         next_seq(conn), job.id, job.token),
                    )  # fmt: skip
        if rows:
            log.warning("%d remote jobs' leases expired: they run again", len(rows))
        return len(rows)

    def status(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"name": name, **{k: v for k, v in hb.items() if k != "at"},
                 "last_heartbeat": hb["at"], "live": now - float(hb["at"]) < P.LIVE_S}
                for name, hb in sorted(self.live.items())
            ]  # fmt: skip
