"""`shoebox worker`: a headless worker host on another machine.

It never opens a catalog. It takes jobs from the library's `compute` queue on the
broker, checks each one's signature (the library's dispatch key, from its token), runs
the stage on the file (through `--map` when the folders are mounted elsewhere here),
and sends the signed result to the `ingest` queue, which only the owner reads. While
a job runs its lease is renewed every 10 s; a worker killed mid-job simply stops
renewing, and the owner runs the job elsewhere when the lease expires.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.config import Settings, parse_settings
from engine.errors import PermanentError
from engine.jobs.host import EmbeddedConsumer
from engine.pipeline.registry import StageRegistry, default_registry
from engine.pipeline.types import Stage, StageContext, StageOutput
from engine.remote import protocol as P
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


class RemoteWorker:
    """One worker host process's work: the compute consumer, leases and heartbeats."""

    def __init__(
        self,
        broker: str,
        token: WorkerToken,
        *,
        slots: int = 1,
        path_map: list[tuple[str, str]] | None = None,
        device: str = "auto",
        registry_factory: RegistryFactory = extra_stages_registry,
        scratch_dir: Any = None,
    ) -> None:
        self.broker = broker
        self.token = token
        self.slots = slots
        self.path_map = path_map or []
        self.device = device
        self.registry_factory = registry_factory
        self.stats = WorkerStats()
        self.compute = P.remote_huey(broker, token.library_id, "compute")
        self.ingest = P.remote_huey(broker, token.library_id, "ingest")
        self.verifier = Verifier(
            lambda kid: token.dispatch if kid == token.dispatch.key_id else None
        )
        self._send_ingest = self.ingest.task(name=P.INGEST_TASK)(P.task_function(_never_here))
        self.compute.task(name=P.JOB_TASK)(P.task_function(self._on_job))
        self._registries: dict[str, StageRegistry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._consumer: EmbeddedConsumer | None = None
        import tempfile
        from pathlib import Path

        self.scratch = Path(scratch_dir or tempfile.mkdtemp(prefix="shoebox-worker-"))

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        # the host's embedded consumer: no signal handlers, a graceful request_stop
        self._consumer = EmbeddedConsumer(self.compute, self.slots, threading.Event())
        for target, name in (
            (self._consumer.run, "compute"),
            (self._lease_loop, "leases"),
            (self._heartbeat_loop, "heartbeat"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            self._consumer.request_stop()
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
        job, token = int(body["job"]), int(body["token"])
        with self._lock:
            self.stats.current[job] = token
        try:
            self._send("lease", {"jobs": [[job, token]]})  # started: the owner sees it now
            self._run(body, job, token)
        finally:
            with self._lock:
                self.stats.current.pop(job, None)

    def _run(self, body: dict[str, Any], job: int, token: int) -> None:
        stage = self._stage(body)
        item = P.item_from_json(body["item"], self.path_map)
        if stage.reads_original and not any(os.access(p, os.R_OK) for p in item.paths):
            self.stats.refused += 1
            why = f"{socket.gethostname()} cannot read {item.paths[0] if item.paths else '?'}"
            self._send("refusal", {"job": job, "token": token, "why": why})
            return
        ctx = StageContext(self.scratch)
        try:
            prepared = stage.prepare(item, ctx)
            out = stage.run_batch([prepared], ctx)[0]
            if isinstance(out, BaseException):
                raise out
            if type(out) is not StageOutput:
                raise TypeError(f"{stage.name} output is not plain JSON data")
            json.dumps(out.data, allow_nan=False)  # what cannot travel fails here
        except PermanentError as exc:
            self.stats.errors += 1
            self._result(job, token, ok=False, error=str(exc), permanent=True)
            return
        except Exception as exc:
            self.stats.errors += 1
            log.exception("job %s (%s) failed", job, stage.name)
            error = f"{type(exc).__name__}: {exc}"
            self._result(job, token, ok=False, error=error, permanent=False)
            return
        self.stats.done += 1
        self._result(job, token, ok=True, output=out.data)

    def _stage(self, body: dict[str, Any]) -> Stage:
        settings_json = json.dumps(body["settings"], sort_keys=True)
        key = hashlib.sha256(settings_json.encode()).hexdigest()
        with self._lock:
            registry = self._registries.get(key)
            if registry is None:
                registry = self.registry_factory(
                    parse_settings(body["settings"], "the owner's settings")
                )
                self._registries[key] = registry
        stage = registry.get(str(body["stage"]))
        if stage.version != body["version"]:
            raise PermanentError(
                f"this worker runs {stage.name} version {stage.version}, the library asks "
                f"for {body['version']}: update Shoebox on {socket.gethostname()}"
            )
        return stage

    def _result(self, job: int, token: int, *, ok: bool, **rest: Any) -> None:
        self._send("result", {"job": job, "token": token, "ok": ok, **rest}, token=token)

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
        while not self._stop.is_set():
            self._heartbeat()
            self._stop.wait(P.HEARTBEAT_S)

    def _heartbeat(self, final: bool = False) -> None:
        with self._lock:
            current = sorted(self.stats.current)
        try:
            self._send(
                "heartbeat",
                {
                    "host": socket.gethostname(),
                    "device": self.device,
                    "slots": 0 if final else self.slots,
                    "current": current,
                    "done": self.stats.done,
                    "errors": self.stats.errors,
                    "stopping": final,
                },
            )
        except Exception:
            log.warning("the broker %s cannot be reached; trying again", self.broker)


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
