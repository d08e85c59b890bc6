"""Where the worker host's Huey queues live: SQLite beside the catalog, or Redis.

`queue.broker` in the library's settings (or `--broker URL` before the command, or
`SHOEBOX_BROKER`): "" keeps the embedded default, `queue.db` in the library; a
`redis://`, `rediss://` (TLS) or `unix://` URL puts the queues on that Redis server,
with a password or ACL user in the URL (`redis://shoebox:PASSWORD@nas:6379/0`).

Either way the ledger is the truth and a message carries only job ids and tokens, as
JSON (engine/jobs/serializer.py): losing the broker's contents loses no work. A Redis
server that restarted without its data is noticed by its `run_id` changing, and the
messages sent before are handed back to the feeder (`WorkerHost._check_broker`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from engine.errors import ShoeboxError

if TYPE_CHECKING:  # huey is imported when a queue is made: `status` stays light
    from huey import Huey

BROKER_ENV = "SHOEBOX_BROKER"
REDIS_SCHEMES = ("redis", "rediss", "unix")


class BrokerUnavailable(ShoeboxError):
    """The Redis broker cannot be reached (or refuses us) when the host starts."""

    def __init__(self, where: str, exc: BaseException) -> None:
        super().__init__(
            f"cannot reach the job queue's broker {where} ({type(exc).__name__}: {exc}); "
            "check that Redis runs there and that the URL's password is right "
            "(queue.broker, --broker, SHOEBOX_BROKER)"
        )


def broker_ok(url: str) -> bool:
    return url == "" or urlsplit(url).scheme in REDIS_SCHEMES


def effective_broker(setting: str, override: str | None = None) -> str:
    """`--broker` wins, then SHOEBOX_BROKER, then the library's `queue.broker`."""
    if override:
        return override
    return os.environ.get(BROKER_ENV, "").strip() or setting


def is_redis(url: str) -> bool:
    return bool(url) and urlsplit(url).scheme in REDIS_SCHEMES


def redacted(url: str) -> str:
    """The URL without its password, for logs and the status line."""
    if not url:
        return "embedded (queue.db)"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def make_huey(name: str, library_dir: Path, url: str, library_id: str) -> Huey:
    """One queue (`interactive` or `pool`). On Redis its keys are named after the
    library, so several libraries can share one server."""
    from huey import SqliteHuey

    from engine.jobs.serializer import JsonSerializer

    serializer = JsonSerializer()  # never pickle (engine/jobs/serializer.py)
    if not is_redis(url):
        return SqliteHuey(
            name=name,
            filename=str(library_dir / "queue.db"),
            results=False,
            fsync=False,
            serializer=serializer,
        )
    # Not blocking: idle workers wait on the feeder's wake event, as with SQLite, so a
    # stop never waits for a blocked pop and dispatch stays immediate.
    return redis_huey(url, f"shoebox_{library_id}_{name}", blocking=False)


def redis_huey(url: str, name: str, *, blocking: bool) -> Huey:
    """A priority queue on the Redis server at `url`, JSON messages, no results kept."""
    from huey import PriorityRedisHuey
    from redis import ConnectionPool

    from engine.jobs.serializer import JsonSerializer

    # Timeouts: a broker that went away is an error in seconds, never a hung worker.
    pool = ConnectionPool.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10
    )
    return PriorityRedisHuey(
        name=name,
        connection_pool=pool,
        results=False,
        serializer=JsonSerializer(),
        blocking=blocking,
        read_timeout=1,
    )


def broker_epoch(huey: Huey) -> str | None:
    """An id that changes when the broker restarts (Redis `run_id`); None for SQLite
    (queue.db is ours: it does not restart behind our back) or when it cannot be read."""
    conn: Any = getattr(huey.storage, "conn", None)
    if conn is None or not hasattr(conn, "info"):
        return None
    try:
        return str(conn.info("server")["run_id"])
    except Exception:  # unreachable right now: asked again later
        return None
