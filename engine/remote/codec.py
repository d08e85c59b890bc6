"""How a stage's work travels to a worker on another machine, and its result back.

A stage opts in with `remote = True`. Everything else is optional, duck-typed, and
falls back to what a plain per-item stage needs (its item, its JSON `data`):

- `remote_files(item) -> [relpath]`: files under the library folder the stage reads
  (the content-addressed preview). The owner attaches them, so a worker that cannot
  see the library still helps.
- `remote_payload(conn, item) -> dict`: catalog data the stage's `prepare` would read
  (a document's page text), read by the owner; the worker hands it to
  `prepare_remote(item, payload, ctx)`.
- `encode_remote(output) -> dict` / `decode_remote(data) -> StageOutput`: outputs
  that carry more than JSON (vectors, boxes, pages). Arrays travel as base64 of their
  little-endian bytes with dtype and shape — never pickled.

Stages that read the original (`reads_original`) get the file through the worker's
path map; a worker that cannot read it refuses, and the owner sends the original
itself with the job (up to `MAX_ATTACHED_ORIGINAL` bytes) or runs it locally.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from engine.pipeline.types import ItemRef, StageContext, StageOutput

if TYPE_CHECKING:
    import numpy as np

MAX_ATTACHED_ORIGINAL = 32 * 2**20
MAX_ATTACHED_PER_MESSAGE = 40 * 2**20  # base64 of this stays well inside the 64 MiB limit
ORIGINAL = "@original"  # the `files` key of an attached original
_DTYPES = {"float32", "float16", "float64", "int32", "int64", "uint8"}


class CodecError(ValueError):
    """Data from the network that does not decode (it is treated as malformed)."""


# Stages are duck-typed here (`Any`): a stage's `batch_size` may be a property, which
# the `Stage` protocol's plain attribute does not admit.


def is_remote(stage: Any) -> bool:
    return bool(getattr(stage, "remote", False)) and hasattr(stage, "prepare")


def files_for(stage: Any, item: ItemRef) -> list[str]:
    fn = getattr(stage, "remote_files", None)
    return list(fn(item)) if fn is not None else []


def payload_for(stage: Any, conn: sqlite3.Connection, item: ItemRef) -> dict[str, Any]:
    fn = getattr(stage, "remote_payload", None)
    return dict(fn(conn, item)) if fn is not None else {}


def prepare(stage: Any, item: ItemRef, payload: dict[str, Any], ctx: StageContext) -> Any:
    fn = getattr(stage, "prepare_remote", None)
    return fn(item, payload, ctx) if fn is not None else stage.prepare(item, ctx)


def encode(stage: Any, output: StageOutput) -> dict[str, Any]:
    fn = getattr(stage, "encode_remote", None)
    if fn is not None:
        encoded: dict[str, Any] = fn(output)
        return encoded
    if type(output) is not StageOutput:
        raise TypeError(f"{stage.name} output is not plain JSON data: give it encode_remote")
    return {"data": output.data}


def decode(stage: Any, encoded: Any) -> StageOutput:
    if not isinstance(encoded, dict) or not isinstance(encoded.get("data"), dict):
        raise CodecError("a result without its data")
    fn = getattr(stage, "decode_remote", None)
    try:
        return fn(encoded) if fn is not None else StageOutput(data=encoded["data"])
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CodecError(f"the {stage.name} result does not decode ({exc})") from exc


def safe_relpath(relpath: str) -> PurePosixPath:
    """A library-relative path from the network: relative, no `..`, nothing odd."""
    path = PurePosixPath(relpath)
    if (
        path.is_absolute()
        or not path.parts
        or any(part in ("", ".", "..") for part in relpath.split("/"))
        or "\\" in relpath
        or "\x00" in relpath
    ):
        raise CodecError(f"not a library path: {relpath!r}")
    return path


# -- arrays ------------------------------------------------------------------------------


def pack_array(array: np.ndarray) -> dict[str, Any]:
    import numpy as np

    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": str(array.dtype.name),
        "shape": list(array.shape),
        "b64": base64.b64encode(np.ascontiguousarray(little).tobytes()).decode("ascii"),
    }


def unpack_array(data: Any) -> np.ndarray:
    import numpy as np

    if not isinstance(data, dict):
        raise CodecError("an array that is not one")
    dtype, shape = data.get("dtype"), data.get("shape")
    if dtype not in _DTYPES or not isinstance(shape, list):
        raise CodecError(f"an array of {dtype!r}")
    if not all(isinstance(n, int) and 0 <= n < 2**31 for n in shape):
        raise CodecError("an array with a bad shape")
    raw = unb64(data.get("b64", ""))
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    count = 1
    for n in shape:
        count *= n
    if array.size != count:
        raise CodecError(f"an array of {array.size} values for shape {shape}")
    out: np.ndarray = array.reshape(shape).astype(np.dtype(dtype), copy=True)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise CodecError("an array with NaN or infinity")
    return out


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise CodecError("file contents that are not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CodecError("file contents that are not base64") from exc
