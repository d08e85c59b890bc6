"""Huey messages as JSON, never pickle.

Huey pickles its messages by default, and unpickling runs code: anything that can
write to the broker (a local queue.db; later a Redis on the network) could run code
in every worker. Shoebox's messages carry only ids and names — `run_jobs(lane,
stage, [[job_id, token], …])` — so they fit JSON; anything else is refused when it
is enqueued, not discovered when it is run.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer

_DATETIME = "__datetime__"


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a queue message's mapping keys must be strings")
        return {k: _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"a queue message may carry only JSON values, not {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_DATETIME}:
            return dt.datetime.fromisoformat(value[_DATETIME])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class JsonSerializer(Serializer):  # type: ignore[misc]
    """Serialises huey's `Message` field by field as JSON; refuses anything else."""

    def _serialize(self, data: Any) -> bytes:
        if not isinstance(data, Message):
            raise TypeError(f"only huey messages are queued, not {type(data).__name__}")
        fields = {name: _encode(getattr(data, name)) for name in Message._fields}
        fields["args"] = _encode(tuple(data.args or ()))
        return json.dumps(fields, separators=(",", ":")).encode("utf-8")

    def _deserialize(self, data: bytes) -> Message:
        fields = json.loads(data.decode("utf-8"))
        if not isinstance(fields, dict):
            raise ValueError("a queue message must be a JSON object")
        values = {name: _decode(fields.get(name)) for name in Message._fields}
        values["args"] = tuple(values["args"] or ())
        values["kwargs"] = values["kwargs"] or {}
        return Message(**values)
