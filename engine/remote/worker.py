"""`shoebox worker`: a headless worker host on another machine.

It never opens a catalog. It takes jobs from the library's `compute-<lane>` queues of
the lanes it serves (`--lanes`), checks each message's signature (the library's
dispatch key, from its token), runs the stage — a batch of jobs in one `run_batch`
call, on this machine's device — on the files the owner attached (previews) or on the
originals through `--map`, and sends the signed results, one message a batch, to the
`ingest` queue, which only the owner reads. A job it cannot do (the file is not
readable here, the model or tesseract is missing) is refused, and runs elsewhere. While
a job runs its lease is renewed every 10 s; a worker killed mid-job simply stops
renewing, and the owner runs the job elsewhere when the lease expires.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.config import Settings, parse_settings
from engine.errors import PermanentError, WaitingError
from engine.jobs.host import EmbeddedConsumer
from engine.jobs.metrics import MemoryMetrics
from engine.jobs.resources import ResourcePool
from engine.pipeline.registry import StageRegistry, default_registry
from engine.pipeline.types import ItemRef, Stage, StageContext
from engine.remote import codec
from engine.remote import protocol as P
from engine.remote.codec import CodecError
from engine.remote.signing import Rejected, Verifier, WorkerToken, sign

log = logging.getLogger("shoebox.worker")

RegistryFactory = Callable[[Settings], StageRegistry]


def extra_stages_registry(settings: Settings) -> StageRegistry:
    """The library's stages, plus those `SHOEBOX_EXTRA_STAGES=module:function` adds
    (tests and benchmarks: a stage both the owner and its workers know)."""
    registry = default_registry(settings)
    spec = os.environ.get("SHOEBOX_EXTRA_STAGES", "")
    if not spec:
        return registry
    import importlib

    module, _, name = spec.partition(":")
    extra = getattr(importlib.import_module(module), name)()
    return StageRegistry([*registry.stages(), *extra])


@dataclass
class WorkerStats:
    done: int = 0
    errors: int = 0
    refused: int = 0
    rejected: int = 0
    current: dict[int, int] = field(default_factory=dict)  # job -> token


@dataclass
class _Entry:
    """One job of a message, as this worker runs it."""

    job: int
    token: int
    item: ItemRef
    payload: dict[str, Any]


class RemoteWorker:
    """One worker host process's work: the compute consumers, leases and heartbeats."""

    def __init__(
        self,
        broker: str,
        token: WorkerToken,
        *,
        slots: int = 1,
        lanes: tuple[str, ...] = P.REMOTE_LANES,
        path_map: list[tuple[str, str]] | None = None,
        device: str = "auto",
        registry_factory: RegistryFactory = extra_stages_registry,
        scratch_dir: Any = None,
    ) -> None:
        self.broker = broker
        self.token = token
        self.slots = slots
        self.lanes = lanes
        self.path_map = path_map or []
        self.device = device
        self.registry_factory = registry_factory
        self.stats = WorkerStats()
        self.metrics = MemoryMetrics()  # `--metrics-port`: this machine's own figures
        self.resources = ResourcePool()  # one copy of each model in this process
        self.computes = {
            lane: P.remote_huey(broker, token.library_id, P.compute_queue(lane)) for lane in lanes
        }
        self.ingest = P.remote_huey(broker, token.library_id, "ingest")
        self.verifier = Verifier(
            lambda kid: token.dispatch if kid == token.dispatch.key_id else None
        )
        self._send_ingest = self.ingest.task(name=P.INGEST_TASK)(P.task_function(_never_here))
        for huey in self.computes.values():
            huey.task(name=P.JOB_TASK)(P.task_function(self._on_job))
        self._slots = threading.BoundedSemaphore(slots)  # across lanes: `slots` at a time
        self._registries: dict[str, StageRegistry] = {}
        self.batch: dict[str, int] = {}  # stage -> this worker's batch size (heartbeats)
        self.unavailable: dict[str, str] = {}  # stage -> why it cannot run here
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._consumers: list[EmbeddedConsumer] = []
        import tempfile

        self.scratch = Path(scratch_dir or tempfile.mkdtemp(prefix="shoebox-worker-"))

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        # the host's embedded consumer: no signal handlers, a graceful request_stop
        targets: list[tuple[Callable[[], None], str]] = []
        for lane, huey in self.computes.items():
            consumer = EmbeddedConsumer(huey, self.slots, threading.Event())
            self._consumers.append(consumer)
            targets.append((consumer.run, f"compute-{lane}"))
        targets += [(self._lease_loop, "leases"), (self._heartbeat_loop, "heartbeat")]
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for consumer in self._consumers:
            consumer.request_stop()
        for thread in self._threads:
            thread.join(timeout=15)
        self._heartbeat(final=True)

    # -- jobs --------------------------------------------------------------------

    def _on_job(self, message: str) -> None:
        try:
            env = self.verifier.verify(message, kinds=frozenset({"job"}))
        except Rejected as exc:
            self.stats.rejected += 1
            log.warning("refused a job message (%s)", exc)
            return
        body = env.body
        if body.get("lib") != self.token.library_id:
            self.stats.rejected += 1
            log.warning("refused a job of another library (%s)", body.get("lib"))
            return
        try:
            pairs = [(int(j["job"]), int(j["token"])) for j in body["jobs"]]
        except (KeyError, TypeError, ValueError):
            self.stats.rejected += 1
            log.warning("refused a job message without its jobs")
            return
        with self._slots:  # a slot per message: a batch runs as one
            with self._lock:
                self.stats.current.update(pairs)
            try:
                self._send("lease", {"jobs": [list(p) for p in pairs]})  # started: seen now
                workdir = self.scratch / f"m-{env.nonce[:16]}"
                try:
                    self._run(body, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
            finally:
                with self._lock:
                    for job, _ in pairs:
                        self.stats.current.pop(job, None)

    def _run(self, body: dict[str, Any], workdir: Path) -> None:
        jobs = body["jobs"]
        try:
            stage = self._stage(body)
        except PermanentError as exc:  # another version: none of these can run here
            self._results([_error(j, str(exc), True) for j in jobs])
            return
        except Exception as exc:  # this machine's fault (its stages do not build): elsewhere
            log.exception("cannot run %s here", body.get("stage"))
            name = str(body.get("stage"))
            self._note_unavailable(name, f"cannot run {name}: {exc}")
            self._refuse([(int(j["job"]), int(j["token"])) for j in jobs],
                         self.unavailable[name], "elsewhere")  # fmt: skip
            return
        why = self._unavailable(stage)
        if why:
            self._refuse([(int(j["job"]), int(j["token"])) for j in jobs], why, "elsewhere")
            return
        ctx = StageContext(workdir, resources=self.resources)
        results: list[dict[str, Any]] = []
        entries: list[_Entry] = []
        unreadable: list[tuple[int, int]] = []
        for raw in jobs:
            job, token = int(raw["job"]), int(raw["token"])
            try:
                item = self._materialise(raw, workdir)
            except CodecError as exc:
                results.append(_error(raw, f"the job's data does not decode ({exc})", True))
                continue
            if stage.reads_original and not any(os.access(p, os.R_OK) for p in item.paths):
                unreadable.append((job, token))
                continue
            entries.append(_Entry(job, token, item, dict(raw.get("payload") or {})))
        if unreadable:
            first = jobs[0]["item"]["paths"][0] if jobs[0]["item"].get("paths") else "?"
            why = f"{socket.gethostname()} cannot read the file (such as {first})"
            self._refuse(unreadable, why, "original")
        prepared: list[tuple[_Entry, Any]] = []
        waiting: list[tuple[int, int]] = []
        for entry in entries:
            try:
                prepared.append((entry, codec.prepare(stage, entry.item, entry.payload, ctx)))
            except WaitingError as exc:
                waiting.append((entry.job, entry.token))
                self._note_unavailable(stage.name, str(exc))
            except Exception as exc:
                results.append(self._failure(stage, entry, exc))
        started = time.monotonic()
        outputs = _run_bisected(stage, [p for _, p in prepared], ctx)
        share = (time.monotonic() - started) / max(1, len(prepared))
        if prepared:
            self.metrics.recorder.duration(stage.name, share, len(prepared))
        for (entry, _), out in zip(prepared, outputs, strict=True):
            if isinstance(out, WaitingError):
                waiting.append((entry.job, entry.token))
                self._note_unavailable(stage.name, str(out))
                continue
            if isinstance(out, BaseException):
                results.append(self._failure(stage, entry, out))
                continue
            try:
                encoded = codec.encode(stage, out)
                json.dumps(encoded, allow_nan=False)  # what cannot travel fails here
            except Exception as exc:
                results.append(self._failure(stage, entry, exc))
                continue
            self.stats.done += 1
            self.metrics.recorder.outcome(stage.name, True)
            results.append({"job": entry.job, "token": entry.token, "ok": True,
                            "output": encoded, "seconds": round(share, 4)})  # fmt: skip
        if waiting:
            self._refuse(waiting, self.unavailable.get(stage.name, "not ready here"), "elsewhere")
        if results:
            self._results(results)

    def _materialise(self, raw: dict[str, Any], workdir: Path) -> ItemRef:
        """The job's item, with the files the owner attached written under `workdir`."""
        item = P.item_from_json(raw["item"], self.path_map)
        files = raw.get("files") or {}
        if not isinstance(files, dict):
            raise CodecError("files that are not a table")
        for relpath, content in files.items():
            data = codec.unb64(content)
            if relpath == codec.ORIGINAL:
                target = workdir / "originals" / f"{item.hash}.{item.format or 'bin'}"
                item = replace(item, paths=(str(target),), path_stats=())
            else:
                target = workdir.joinpath(*codec.safe_relpath(str(relpath)).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return item

    def _failure(self, stage: Stage, entry: _Entry, exc: BaseException) -> dict[str, Any]:
        self.stats.errors += 1
        self.metrics.recorder.outcome(stage.name, False)
        if isinstance(exc, PermanentError):
            return {"job": entry.job, "token": entry.token, "ok": False, "error": str(exc),
                    "permanent": True}  # fmt: skip
        log.error("job %s (%s) failed: %s: %s", entry.job, stage.name, type(exc).__name__, exc)
        return {"job": entry.job, "token": entry.token, "ok": False,
                "error": f"{type(exc).__name__}: {exc}", "permanent": False}  # fmt: skip

    def _unavailable(self, stage: Stage) -> str | None:
        check = getattr(stage, "availability", None)
        why = check() if check is not None else None
        if why:
            self._note_unavailable(stage.name, str(why))
        else:
            with self._lock:
                self.unavailable.pop(stage.name, None)
        return str(why) if why else None

    def _note_unavailable(self, stage: str, why: str) -> None:
        with self._lock:
            self.unavailable[stage] = f"{socket.gethostname()}: {why}"

    def _stage(self, body: dict[str, Any]) -> Stage:
        # This machine's device, not the owner's: a laptop set to "cpu" still gets a GPU
        # worker's GPU.
        settings_table = dict(body["settings"])
        settings_table["general"] = {
            **dict(settings_table.get("general", {})),
            "device": self.device,
        }
        settings_json = json.dumps(settings_table, sort_keys=True)
        key = hashlib.sha256(settings_json.encode()).hexdigest()
        with self._lock:
            registry = self._registries.get(key)
            if registry is None:
                registry = self.registry_factory(
                    parse_settings(settings_table, "the owner's settings")
                )
                self._registries[key] = registry
        stage = registry.get(str(body["stage"]))
        if stage.version != body["version"]:
            raise PermanentError(
                f"this worker runs {stage.name} version {stage.version}, the library asks "
                f"for {body['version']}: update Shoebox on {socket.gethostname()}"
            )
        with self._lock:
            self.batch[stage.name] = max(1, int(stage.batch_size))
        return stage

    def _results(self, results: list[dict[str, Any]]) -> None:
        self._send("result", {"results": results}, token=int(results[0]["token"]))

    def _refuse(self, pairs: list[tuple[int, int]], why: str, need: str) -> None:
        self.stats.refused += len(pairs)
        self._send("refusal", {"jobs": [list(p) for p in pairs], "why": why, "need": need})

    def _send(self, kind: str, body: dict[str, Any], token: int | None = None) -> None:
        full = {"lib": self.token.library_id, "worker": self.token.worker.name, **body}
        raw = sign(self.token.worker, kind, full, token=token, ttl_s=P.WORKER_TTL_S)
        priority = 0 if kind == "result" else 10  # leases and refusals go first
        self._send_ingest(raw.decode("utf-8"), priority=priority)

    # -- leases and heartbeats ---------------------------------------------------

    def _lease_loop(self) -> None:
        while not self._stop.wait(P.LEASE_RENEW_S):
            with self._lock:
                jobs = [[j, t] for j, t in self.stats.current.items()]
            if jobs:
                try:
                    self._send("lease", {"jobs": jobs})
                except Exception:
                    log.warning("could not renew %d leases; trying again", len(jobs))

    def _heartbeat_loop(self) -> None:
        at = time.monotonic()
        while not self._stop.is_set():
            self._heartbeat()
            self._stop.wait(P.HEARTBEAT_S)
            now = time.monotonic()
            self.metrics.recorder.capacity((now - at) * self.slots)  # for utilisation
            at = now

    def _heartbeat(self, final: bool = False) -> None:
        with self._lock:
            current = sorted(self.stats.current)
            batch = dict(self.batch)
            unavailable = dict(self.unavailable)
        try:
            self._send(
                "heartbeat",
                {
                    "host": socket.gethostname(),
                    "device": self.device,
                    "slots": 0 if final else self.slots,
                    "lanes": list(self.lanes),
                    "current": current,
                    "done": self.stats.done,
                    "errors": self.stats.errors,
                    "batch": batch,
                    "unavailable": unavailable,
                    "stopping": final,
                },
            )
        except Exception:
            log.warning("the broker %s cannot be reached; trying again", self.broker)


def _error(raw: dict[str, Any], error: str, permanent: bool) -> dict[str, Any]:
    return {"job": int(raw["job"]), "token": int(raw["token"]), "ok": False, "error": error,
            "permanent": permanent}  # fmt: skip


def _run_bisected(stage: Stage, inputs: list[Any], ctx: StageContext) -> list[Any]:
    """`run_batch`; a call that fails as a whole is halved until the bad input fails alone
    (as the local host does)."""
    if not inputs:
        return []
    try:
        results = stage.run_batch(inputs, ctx)
        if len(results) != len(inputs):
            raise RuntimeError(f"{stage.name} returned {len(results)} results for {len(inputs)}")
        return list(results)
    except Exception as exc:
        if len(inputs) == 1:
            return [exc]
        mid = len(inputs) // 2
        return _run_bisected(stage, inputs[:mid], ctx) + _run_bisected(stage, inputs[mid:], ctx)


def _never_here(message: str) -> None:  # a sender's side of a task: never run here
    raise RuntimeError("this side only sends on that queue")


def run_worker_forever(worker: RemoteWorker, stop: threading.Event) -> int:
    worker.start()
    log.info("worker %s serving library %s", worker.token.worker.name, worker.token.library_id)
    while not stop.wait(0.5):
        pass
    worker.stop()
    return 0


__all__ = ["RemoteWorker", "extra_stages_registry", "run_worker_forever"]
