"""Identifiers: time-ordered UUIDs (RFC 9562 version 7) and opaque secrets."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, 12-bit counter) of the previous id


def uuid7() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, a 12-bit counter, 62 random bits.

    Time order keeps B-tree inserts at the right-hand edge of the index and makes ids
    sort by creation, which is what listing endpoints want. Within one millisecond the
    counter (RFC 9562 §6.2, method 1) keeps ids of this process strictly increasing.
    """
    global _last  # noqa: PLW0603  (the monotonic state is the point)
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, counter = _last
        if millis <= last_millis:
            millis, counter = last_millis, counter + 1
            if counter > 0xFFF:
                millis, counter = millis + 1, 0
        else:
            counter = secrets.randbelow(0x800)  # leave room to count up
        _last = (millis, counter)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a, used as the counter
    value |= 0b10 << 62  # variant
    value |= secrets.randbits(62)  # rand_b
    return str(uuid.UUID(int=value))


def token(nbytes: int = 32) -> str:
    """An opaque bearer secret (refresh token, code, reset token), URL-safe."""
    return secrets.token_urlsafe(nbytes)


def token_hash(value: str) -> str:
    """How opaque secrets are stored: they carry 256 bits of entropy, so a plain SHA-256
    is enough and keeps look-ups an indexed equality (DESIGN.md, performance facts)."""
    return hashlib.sha256(value.encode()).hexdigest()


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in canonical text form.

    Repositories check ids with this before querying, so a malformed id is "not found"
    on both backends instead of a type error from PostgreSQL's ``uuid`` column.
    """
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
