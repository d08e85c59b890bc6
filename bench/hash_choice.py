"""Why BLAKE3: hash throughput next to the cost of decoding the same photo.

Prints JSON with GB/s for xxh3-128, BLAKE3 and SHA-256 over 64 MB in memory, and
the time to hash vs draft-decode one 12-MP JPEG.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from _common import OUT, emit

from engine.importing.hashing import hash_file
from engine.pipeline.thumbnail import decode_photo
from engine.pipeline.types import ItemRef
from tests.corpus import write_large_jpegs


def gbps(fn: Callable[[bytes], object], data: bytes, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - start)
    return round(len(data) / best / 1e9, 2)


def main() -> None:
    from blake3 import blake3

    data = os.urandom(64 << 20)
    result: dict[str, object] = {"benchmark": "hash_choice"}
    try:
        import xxhash

        result["xxh3_128_gbps"] = gbps(lambda d: xxhash.xxh3_128(d).digest(), data)
    except ImportError:
        result["xxh3_128_gbps"] = None
    result["blake3_gbps"] = gbps(lambda d: blake3(d).digest(), data)
    result["sha256_gbps"] = gbps(lambda d: hashlib.sha256(d).digest(), data)

    [photo] = write_large_jpegs(OUT / "jpeg12mp", 1)
    start = time.perf_counter()
    digest, _, size = hash_file(photo)
    result["hash_12mp_ms"] = round((time.perf_counter() - start) * 1000, 2)
    ref = ItemRef(1, digest, "photo", "jpeg", size, (str(photo),))
    start = time.perf_counter()
    decode_photo(ref)
    result["draft_decode_12mp_ms"] = round((time.perf_counter() - start) * 1000, 2)
    emit(result)


if __name__ == "__main__":
    main()
