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
from engine.pipeline.types import ItemRef, Stage
from engine.remote import codec
from engine.remote import protocol as P
from engine.remote.codec import CodecError
from engine.remote.enrol import identity, key_lookup
from engine.remote.signing import Envelope, Rejected, Verifier, sign
from engine.remote.worker import _never_here
from engine.store.db import next_seq


def _read_original(item: ItemRef) -> bytes:
    """The first of the item's paths that reads (existing paths come first)."""
    error: OSError = FileNotFoundError(f"no path of item {item.id} can be read")
    for path in item.paths:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            error = exc
    raise error


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
        self.computes = {
            lane: P.remote_huey(url, library_id, P.compute_queue(lane)) for lane in P.REMOTE_LANES
        }
        self.ingest = P.remote_huey(url, library_id, "ingest")
        self._senders = {
            lane: huey.task(name=P.JOB_TASK)(P.task_function(_never_here))
            for lane, huey in self.computes.items()
        }
        self.ingest.task(name=P.INGEST_TASK)(P.task_function(self.on_message))
        with host.catalog.write() as conn:
            _, self.dispatch_key = identity(conn)
        self.verifier = Verifier(lambda kid: key_lookup(host.catalog.conn)(kid))
        self.rejected: Counter[str] = Counter()
        self.stale = 0
        self.live: dict[str, dict[str, Any]] = {}  # worker -> its last heartbeat (+ "at")
        self.local_only: set[int] = set()  # jobs no worker can do: run them here
        self.attach_original: set[int] = set()  # jobs a worker could not read: send the file
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

    def remote_stages(self) -> dict[str, Stage]:
        return {s.name: s for s in self.host.registry.stages() if codec.is_remote(s)}

    def _live(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            return [hb for hb in self.live.values() if now - float(hb["at"]) < P.LIVE_S]

    def live_slots(self, now: float, lane: str | None = None, stage: str | None = None) -> int:
        """Slots of the live workers serving `lane` that can run `stage` (None: any)."""
        total = 0
        for hb in self._live(now):
            lanes = hb.get("lanes") or P.REMOTE_LANES
            if lane is not None and lane not in lanes:
                continue
            if stage is not None and stage in (hb.get("unavailable") or {}):
                continue
            total += int(hb.get("slots") or 0)
        return total

    def batch_size(self, stage: Stage, now: float) -> int:
        """A message's jobs: the live workers' own batch size for the stage (their device
        decides it), else ours."""
        sizes = [int((hb.get("batch") or {}).get(stage.name, 0)) for hb in self._live(now)]
        known = [n for n in sizes if n > 0]
        return max(known) if known else max(1, int(stage.batch_size))

    def takes(self, lane: str, now: float) -> set[str]:
        """The stages of `lane` the local feeder leaves to the workers now."""
        if lane not in P.REMOTE_LANES:
            return set()
        return {name for name in self.remote_stages() if self.live_slots(now, lane, name) > 0}

    def feed(self, active_lanes: list[str], now: float) -> int:
        stages = self.remote_stages()
        if not stages or self.live_slots(now) <= 0:
            return 0
        conn = self.host.catalog.conn
        in_flight: Counter[tuple[str, str]] = Counter()
        for lane, stage, n in conn.execute(
            """SELECT lane, stage, count(*) FROM jobs INDEXED BY jobs_running
               WHERE state = 'running' AND owner LIKE 'remote:%' GROUP BY lane, stage"""
        ):
            in_flight[(str(lane), str(stage))] = int(n)
        paused = ledger.paused_sessions(conn)
        wanted: list[tuple[str, Stage, list[int], int]] = []  # lane, stage, jobs, batch
        for lane in active_lanes:
            if lane not in P.REMOTE_LANES:
                continue
            room: dict[str, int] = {}
            for name, stage in stages.items():
                slots = self.live_slots(now, lane, name)
                if slots > 0:
                    size = self.batch_size(stage, now)
                    room[name] = slots * DEPTH_PER_SLOT * size - in_flight[(lane, name)]
            if not any(n > 0 for n in room.values()):
                continue
            ready = ledger.ready_jobs(conn, lane, min(sum(room.values()) * 4, 8192), now, paused)
            picked: dict[str, list[int]] = {}
            for j in ready:
                if room.get(j.stage, 0) > 0 and j.id not in self.local_only:
                    picked.setdefault(j.stage, []).append(j.id)
                    room[j.stage] -= 1
            for name, ids in picked.items():
                wanted.append((lane, stages[name], ids, self.batch_size(stages[name], now)))
        sent = 0
        for lane, stage, ids, size in wanted:
            claimed = self._claim(ids, now)
            for group in self._messages(stage, claimed, size):
                sent += self._dispatch(lane, stage, group)
        return sent

    def _claim(self, ids: list[int], now: float) -> list[tuple[ledger.ClaimedJob, ItemRef]]:
        from engine.jobs.host import load_item_refs

        with self.host.catalog.write() as wconn:
            jobs = [
                job
                for job_id, token in ledger.mark_dispatched(wconn, ids)
                if (job := ledger.claim(wconn, job_id, token, REMOTE_OWNER, now, P.LEASE_S))
                is not None
            ]
            items = load_item_refs(self.host.catalog, [j.item_id for j in jobs if j.item_id], wconn)
        out = []
        for job in jobs:
            item = items.get(job.item_id or -1)
            if item is None:  # removed meanwhile: runs here, where that is handled
                self._hand_back(job.id, local=True)
                continue
            out.append((job, item))
        return out

    def _messages(
        self, stage: Stage, claimed: list[tuple[ledger.ClaimedJob, ItemRef]], size: int
    ) -> list[list[dict[str, Any]]]:
        """The jobs as messages: `size` jobs each, fewer when their files are large."""
        library = self.host.library_dir
        messages: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        current_bytes = 0
        for job, item in claimed:
            files: dict[str, str] = {}
            try:
                for relpath in codec.files_for(stage, item):
                    path = library / relpath
                    if path.is_file():
                        files[relpath] = codec.b64(path.read_bytes())
                if job.id in self.attach_original:
                    files[codec.ORIGINAL] = codec.b64(_read_original(item))
                payload = codec.payload_for(stage, self.host.catalog.conn, item)
            except OSError as exc:  # the owner cannot read it either: let the local host say why
                log.info("job %s runs here: %s", job.id, exc)
                self._hand_back(job.id, local=True)
                continue
            n = sum(len(v) for v in files.values())
            if current and (
                len(current) >= size or current_bytes + n > codec.MAX_ATTACHED_PER_MESSAGE
            ):
                messages.append(current)
                current, current_bytes = [], 0
            entry = {"job": job.id, "token": job.token, "attempt": job.attempts,
                     "item": P.item_to_json(item), "files": files, "payload": payload}  # fmt: skip
            current.append(entry)
            current_bytes += n
        if current:
            messages.append(current)
        return messages

    def _dispatch(self, lane: str, stage: Stage, jobs: list[dict[str, Any]]) -> int:
        body = {
            "lib": self.library_id,
            "stage": stage.name,
            "version": stage.version,
            "lane": lane,
            "settings": self.host.settings.to_toml_dict(),
            "lease_s": P.LEASE_S,
            "jobs": jobs,
        }
        raw = sign(self.dispatch_key, "job", body, token=jobs[0]["token"], ttl_s=P.JOB_TTL_S)
        try:
            self._senders[lane](raw.decode("utf-8"))
            return 1
        except Exception:
            log.warning("could not send %d %s jobs to the workers; they run again later",
                        len(jobs), stage.name)  # fmt: skip
            for job in jobs:
                self._hand_back(int(job["job"]))
            return 0

    def _hand_back(self, job_id: int, local: bool = False) -> None:
        if local:
            with self._lock:
                self.local_only.add(job_id)
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
            self._reject(exc)
            return
        handler = getattr(self, f"_on_{env.kind}")
        try:
            handler(env, worker.name)
        except (KeyError, TypeError, ValueError) as exc:  # signed, but not what we sent for
            self._reject(Rejected("malformed", f"{env.kind} from {worker.name}: {exc}"))
            return
        self.host._feed_wake.set()  # a finished job may unblock others

    def _reject(self, exc: Rejected) -> None:
        with self._lock:
            self.rejected[exc.reason] += 1
        log.warning("refused a message on the ingest queue: %s", exc)

    def _on_heartbeat(self, env: Envelope, worker: str) -> None:
        now = time.time()
        keys = ("host", "device", "slots", "lanes", "current", "done", "errors", "batch",
                "unavailable", "stopping")  # fmt: skip
        info = {k: env.body.get(k) for k in keys}
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
        """The worker cannot do these: send the original with them next time (when it is
        small enough to travel), else run them here."""
        need = str(env.body.get("need", "elsewhere"))
        why = str(env.body.get("why", ""))
        pairs = [(int(j), int(t)) for j, t in env.body["jobs"]]
        log.info("worker %s refused %d jobs (%s): %s", worker, len(pairs), need, why)
        with self.host.catalog.write() as conn:
            for job_id, token in pairs:
                job = self._running_remote(conn, job_id, token)
                if job is None:
                    continue
                size = conn.execute(
                    "SELECT size FROM items WHERE id = ?", (job.item_id,)
                ).fetchone()
                with self._lock:
                    travels = need == "original" and job_id not in self.attach_original
                    if travels and size is not None and int(size[0]) <= codec.MAX_ATTACHED_ORIGINAL:
                        self.attach_original.add(job_id)
                    else:
                        self.local_only.add(job_id)
                ledger.hand_back(conn, [job])

    def _on_result(self, env: Envelope, worker: str) -> None:
        from engine.jobs import freshness
        from engine.jobs.host import _Outcome, load_item_refs

        host = self.host
        results = list(env.body["results"])
        changed: list[tuple[ledger.ClaimedJob, _Outcome]] = []
        with host.catalog.write() as conn:
            by_stage: dict[str, list[tuple[ledger.ClaimedJob, _Outcome]]] = {}
            jobs: list[tuple[ledger.ClaimedJob, dict[str, Any]]] = []
            for result in results:
                job = self._running_remote(conn, int(result["job"]), int(result["token"]))
                if job is None:  # a duplicate, or too late: the job moved on
                    self.stale += 1
                    continue
                jobs.append((job, result))
            items = load_item_refs(host.catalog, [j.item_id for j, _ in jobs if j.item_id], conn)
            errors = 0
            for job, result in jobs:
                stage = host.registry.get(job.stage)
                outcome = self._outcome(stage, job, result, items.get(job.item_id or -1), worker)
                if outcome.kind == "done" and stage.reads_original and outcome.item is not None:
                    fresh = freshness.check(outcome.item, host.catalog)
                    if not fresh.ok:
                        outcome = _Outcome("changed", changed=fresh.changed, intact=fresh.intact)
                        changed.append((job, outcome))
                errors += outcome.kind == "error"
                by_stage.setdefault(stage.name, []).append((job, outcome))
                with self._lock:
                    self.attach_original.discard(job.id)
            for name, pairs in by_stage.items():
                host._write_batch(conn, host.registry.get(name), pairs, worker)
            for job, result in jobs:  # the worker's own timing: its share of the batch
                seconds = result.get("seconds")
                if isinstance(seconds, (int, float)) and 0 <= seconds < 86400:
                    host.metrics.duration(job.stage, float(seconds), host=worker)
            done = sum(len(p) for p in by_stage.values()) - errors
            conn.execute(
                "UPDATE workers SET jobs_done = jobs_done + ?, errors = errors + ? WHERE name = ?",
                (done, errors, worker),
            )
        for job, outcome in changed:
            host._content_changed(job, outcome)

    def _outcome(
        self,
        stage: Stage,
        job: ledger.ClaimedJob,
        result: dict[str, Any],
        item: ItemRef | None,
        worker: str,
    ) -> Any:
        from engine.jobs.host import _Outcome

        if item is None:
            return _Outcome(
                "error", reason="The item was removed from the catalog.", permanent=True
            )
        if not result.get("ok"):
            reason = str(result.get("error") or f"the worker {worker} reported a failure")
            return _Outcome("error", reason=reason, permanent=bool(result.get("permanent")))
        try:
            output = codec.decode(stage, result.get("output"))
        except CodecError as exc:
            log.warning("worker %s sent a %s result that does not decode: %s", worker,
                        stage.name, exc)  # fmt: skip
            return _Outcome("error", reason=f"The worker host {worker} sent a result that "
                            "does not decode; it runs again.")  # fmt: skip
        return _Outcome("done", output=output, version=stage.version, item=item)

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
