"""Signed messages between a library's owner and its remote workers (engine/remote).

Each kind of bad message is refused with its own reason: forged, replayed, expired,
signed with a revoked or unknown key, or malformed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.library import Library
from engine.remote import enrol
from engine.remote.signing import (
    CLOCK_SKEW_S,
    MAX_MESSAGE_BYTES,
    Key,
    Rejected,
    TokenError,
    Verifier,
    WorkerToken,
    sign,
)

NOW = 1_800_000_000.0
RESULT = {"job": 41, "attempt": 1, "stage": "thumbnail", "output": {"width": 640}}


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    yield library
    library.close()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def enrolled(lib: Library, name: str = "closet-gpu") -> WorkerToken:
    with lib.catalog.write() as conn:
        return enrol.add_worker(conn, name, now=NOW)


def verifier(lib: Library, clock: Clock | None = None) -> Verifier:
    return Verifier(enrol.key_lookup(lib.catalog.conn), clock=clock or Clock())


def reason(v: Verifier, raw: bytes | str) -> str:
    with pytest.raises(Rejected) as caught:
        v.verify(raw)
    return caught.value.reason


def test_a_signed_result_is_accepted_once_with_what_was_signed(lib: Library) -> None:
    token = enrolled(lib)
    raw = sign(token.worker, "result", RESULT, token=7, now=NOW)
    env = verifier(lib).verify(raw)
    assert (env.kind, env.key_id, env.token, env.body) == ("result", token.worker.key_id, 7, RESULT)


def test_a_forged_message_is_refused(lib: Library) -> None:
    token = enrolled(lib)
    v = verifier(lib)
    raw = json.loads(sign(token.worker, "result", RESULT, token=7, now=NOW))
    raw["env"]["body"]["output"]["width"] = 99999  # changed on the way
    assert reason(v, json.dumps(raw)) == "forged"
    raw = json.loads(sign(token.worker, "result", RESULT, token=7, now=NOW))
    raw["env"]["token"] = 8  # a job token it was not given
    assert reason(v, json.dumps(raw)) == "forged"
    impostor = Key(token.worker.key_id, b"\x00" * 32, name="closet-gpu")  # right id, wrong key
    assert reason(v, sign(impostor, "result", RESULT, now=NOW)) == "forged"
    # the library's dispatch key is not a worker's: it cannot sign results
    assert reason(v, sign(token.dispatch, "result", RESULT, now=NOW)) == "unknown key"


def test_a_replayed_message_is_refused(lib: Library) -> None:
    token = enrolled(lib)
    v = verifier(lib)
    raw = sign(token.worker, "result", RESULT, token=7, now=NOW)
    v.verify(raw)
    assert reason(v, raw) == "replayed"
    assert reason(v, raw) == "replayed"
    v.verify(sign(token.worker, "result", RESULT, token=7, now=NOW))  # a new one is fine


def test_an_expired_message_is_refused(lib: Library) -> None:
    token = enrolled(lib)
    clock = Clock()
    v = verifier(lib, clock)
    raw = sign(token.worker, "lease", {"jobs": [41]}, ttl_s=30, now=NOW)
    clock.now = NOW + 30 + CLOCK_SKEW_S + 1
    assert reason(v, raw) == "expired"
    far = sign(token.worker, "lease", {"jobs": [41]}, ttl_s=10 * 24 * 3600, now=NOW)
    assert reason(verifier(lib), far) == "malformed"


def test_a_removed_workers_messages_are_refused_even_those_signed_before(lib: Library) -> None:
    token = enrolled(lib)
    other = enrolled(lib, "laptop")
    before = sign(token.worker, "result", RESULT, token=7, now=NOW)
    with lib.catalog.write() as conn:
        enrol.remove_worker(conn, "closet-gpu", now=NOW)
    v = verifier(lib)
    assert reason(v, before) == "revoked key"
    assert reason(v, sign(token.worker, "heartbeat", {}, now=NOW)) == "revoked key"
    v.verify(sign(other.worker, "heartbeat", {}, now=NOW))  # the others go on
    # enrolled again: a new key; the old one stays revoked
    again = enrolled(lib)
    assert again.worker.key_id != token.worker.key_id
    assert reason(v, sign(token.worker, "heartbeat", {}, now=NOW)) == "unknown key"
    v.verify(sign(again.worker, "heartbeat", {}, now=NOW))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x81 not utf-8",
        b"not json",
        b"[]",
        b'{"env": {}, "mac": "00"}',
        b'{"env": {"v": 1}, "mac": "' + b"0" * 64 + b'"}',
        b'{"env": {"v": 1, "kind": "result"}, "mac": "' + b"0" * 64 + b'", "x": 1}',
    ],
)
def test_malformed_messages_are_refused(lib: Library, raw: bytes) -> None:
    enrolled(lib)
    assert reason(verifier(lib), raw) == "malformed"


def test_wrong_field_types_a_nan_and_an_oversized_message_are_malformed(lib: Library) -> None:
    token = enrolled(lib)
    v = verifier(lib)
    good = json.loads(sign(token.worker, "result", RESULT, token=7, now=NOW))
    for field, value in (("token", -1), ("token", "7"), ("exp", True), ("body", []), ("v", 2)):
        bad = json.loads(json.dumps(good))
        bad["env"][field] = value
        assert reason(v, json.dumps(bad)) == "malformed", field
    nan = json.dumps(good).replace('"width": 640', '"width": NaN')
    assert "NaN" in nan
    assert reason(v, nan) == "malformed"
    assert reason(v, b" " * (MAX_MESSAGE_BYTES + 1)) == "malformed"
    job = sign(token.worker, "job", {}, now=NOW)
    with pytest.raises(Rejected) as caught:
        v.verify(job, kinds=frozenset({"result"}))  # a job is not what the ingest takes
    assert caught.value.reason == "malformed"


def test_the_token_carries_both_keys_and_a_damaged_one_is_named(lib: Library) -> None:
    token = enrolled(lib)
    text = token.encode()
    assert text.startswith("sbw1.") and "\n" not in text
    back = WorkerToken.decode(text)
    assert back == token
    with lib.catalog.write() as conn:
        library_id, dispatch = enrol.identity(conn)
    assert (back.library_id, back.dispatch) == (library_id, dispatch)
    with pytest.raises(TokenError, match="starts with"):
        WorkerToken.decode("hello")
    with pytest.raises(TokenError, match="damaged"):
        WorkerToken.decode(text[:-10])


def test_enrolment_rules(lib: Library) -> None:
    enrolled(lib)
    with pytest.raises(enrol.WorkerError, match="already enrolled"):
        enrolled(lib)
    with pytest.raises(enrol.WorkerError, match="not a worker name"):
        enrolled(lib, "../etc")
    with lib.catalog.write() as conn, pytest.raises(enrol.WorkerError, match="not enrolled"):
        enrol.remove_worker(conn, "nobody")
    with lib.catalog.write() as conn:
        enrol.remove_worker(conn, "closet-gpu")
    with lib.catalog.write() as conn, pytest.raises(enrol.WorkerError, match="removed already"):
        enrol.remove_worker(conn, "closet-gpu")
    names = [(w.name, w.revoked_at is not None) for w in enrol.list_workers(lib.catalog.conn)]
    assert names == [("closet-gpu", True)]
