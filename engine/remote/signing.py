"""Signed JSON messages between a library's owner and its remote workers.

A message on the wire is one JSON object `{"env": ENVELOPE, "mac": HEX}`:

    ENVELOPE = {"v": 1, "kind": "result", "kid": "k_…", "exp": 1764…, "nonce": "…",
                "token": 17, "body": {…}}

`mac` is HMAC-SHA256, with the secret of key `kid`, over the envelope's canonical JSON
(sorted keys, no spaces, UTF-8). The verifier checks, in this order, and names the first
that fails: well-formed → known key → not revoked → MAC → not expired (and not dated
implausibly far ahead) → nonce not seen before. Seen nonces are kept until their
message would have expired anyway, so the replay window is the expiry.

Huey's own `SignedSerializer` is not used: it is HMAC-SHA1 with one shared key over
pickles, with no key id, expiry or replay protection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 2**20  # a batch of previews travels as one message
MAX_TTL_S = 8 * 24 * 3600.0  # an expiry further ahead than this is not believed
CLOCK_SKEW_S = 300.0  # machines' clocks may disagree by this much
DEFAULT_TTL_S = 3600.0
TOKEN_PREFIX = "sbw1."
KINDS = frozenset({"job", "result", "lease", "heartbeat", "refusal"})


class Rejected(Exception):
    """A message the verifier refused; `reason` is one of REASONS."""

    REASONS = ("malformed", "unknown key", "revoked key", "forged", "expired", "replayed")

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in self.REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TokenError(ValueError):
    """A worker token that cannot be read."""


@dataclass(frozen=True)
class Key:
    """One signing key: a worker's (results) or the library's dispatch key (jobs)."""

    key_id: str
    secret: bytes
    name: str = ""  # the worker's name; "" for the dispatch key
    revoked: bool = False


def new_key(name: str = "") -> Key:
    return Key(key_id="k_" + secrets.token_hex(8), secret=secrets.token_bytes(32), name=name)


@dataclass(frozen=True)
class Envelope:
    kind: str
    key_id: str
    expires_at: float
    nonce: str
    token: int | None
    body: dict[str, Any]


def canonical(envelope: Mapping[str, Any]) -> bytes:
    return json.dumps(
        envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(
    key: Key,
    kind: str,
    body: dict[str, Any],
    *,
    token: int | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> bytes:
    """The wire bytes of one signed message."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    now = time.time() if now is None else now
    envelope = {
        "v": VERSION,
        "kind": kind,
        "kid": key.key_id,
        "exp": round(now + ttl_s, 3),
        "nonce": secrets.token_hex(16),
        "token": token,
        "body": body,
    }
    mac = hmac.new(key.secret, canonical(envelope), hashlib.sha256).hexdigest()
    return json.dumps({"env": envelope, "mac": mac}, separators=(",", ":")).encode("utf-8")


KeyLookup = Callable[[str], Key | None]


class Verifier:
    """Checks messages against the keys `lookup` knows; remembers nonces it accepted.

    Thread-safe. The nonce memory is this process's; after a restart a message replayed
    within its expiry passes here, and the owner's write (keyed by job, attempt and
    token) is what makes it a no-op."""

    def __init__(self, lookup: KeyLookup, *, clock: Callable[[], float] = time.time) -> None:
        self.lookup = lookup
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, raw: bytes | str, *, kinds: frozenset[str] = KINDS) -> Envelope:
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if len(raw) > MAX_MESSAGE_BYTES:
            raise Rejected("malformed", f"{len(raw):,} bytes")
        try:
            outer = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected("malformed", "not JSON") from exc
        env, mac = _parts(outer)
        kind = env["kind"]
        if kind not in kinds:
            raise Rejected("malformed", f"a {kind!r} message is not expected here")
        key = self.lookup(env["kid"])
        if key is None:
            raise Rejected("unknown key", env["kid"])
        if key.revoked:
            raise Rejected("revoked key", f"{key.name or key.key_id}")
        try:
            signed = canonical(env)
        except ValueError as exc:  # NaN or Infinity somewhere in the body
            raise Rejected("malformed", "not canonical JSON") from exc
        expected = hmac.new(key.secret, signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, mac):
            raise Rejected("forged", f"signature does not match key {env['kid']}")
        now = self.clock()
        exp = float(env["exp"])
        if exp < now - CLOCK_SKEW_S:
            raise Rejected("expired", f"{now - exp:.0f} s ago")
        if exp > now + MAX_TTL_S + CLOCK_SKEW_S:
            raise Rejected("malformed", "expiry too far ahead")
        with self._lock:
            self._forget(now)
            if env["nonce"] in self._seen:
                raise Rejected("replayed", f"nonce {env['nonce'][:8]}…")
            self._seen[env["nonce"]] = exp + CLOCK_SKEW_S
        return Envelope(kind, env["kid"], exp, env["nonce"], env["token"], env["body"])

    def _forget(self, now: float) -> None:
        if len(self._seen) > 4096:
            self._seen = {n: until for n, until in self._seen.items() if until >= now}


def _parts(outer: Any) -> tuple[dict[str, Any], str]:
    if not isinstance(outer, dict) or set(outer) != {"env", "mac"}:
        raise Rejected("malformed", "not a signed message")
    env, mac = outer["env"], outer["mac"]
    if not isinstance(env, dict) or not isinstance(mac, str) or len(mac) != 64:
        raise Rejected("malformed", "not a signed message")
    fields = {"v", "kind", "kid", "exp", "nonce", "token", "body"}
    if set(env) != fields:
        raise Rejected("malformed", "envelope fields")
    if env["v"] != VERSION:
        raise Rejected("malformed", f"version {env['v']!r}")
    ok = (
        isinstance(env["kind"], str)
        and isinstance(env["kid"], str)
        and isinstance(env["exp"], int | float)
        and not isinstance(env["exp"], bool)
        and isinstance(env["nonce"], str)
        and 16 <= len(env["nonce"]) <= 64
        and (env["token"] is None or (isinstance(env["token"], int) and env["token"] >= 0))
        and isinstance(env["body"], dict)
    )
    if not ok:
        raise Rejected("malformed", "envelope field types")
    return env, mac


# -- worker tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerToken:
    """What `shoebox workers add NAME` prints: the worker's own key and the library's
    dispatch key (to check the jobs it is sent), and the library's id."""

    library_id: str
    worker: Key
    dispatch: Key

    def encode(self) -> str:
        data = {
            "lib": self.library_id,
            "name": self.worker.name,
            "kid": self.worker.key_id,
            "key": _b64(self.worker.secret),
            "dkid": self.dispatch.key_id,
            "dkey": _b64(self.dispatch.secret),
        }
        return TOKEN_PREFIX + _b64(json.dumps(data, separators=(",", ":")).encode())

    @classmethod
    def decode(cls, text: str) -> WorkerToken:
        text = text.strip()
        if not text.startswith(TOKEN_PREFIX):
            raise TokenError("not a Shoebox worker token (it starts with 'sbw1.')")
        try:
            data = json.loads(_unb64(text[len(TOKEN_PREFIX) :]))
            return cls(
                library_id=str(data["lib"]),
                worker=Key(str(data["kid"]), _unb64(data["key"]), name=str(data["name"])),
                dispatch=Key(str(data["dkid"]), _unb64(data["dkey"])),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise TokenError("the worker token is damaged: copy the whole line again") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
