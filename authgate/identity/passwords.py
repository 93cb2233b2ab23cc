"""Password hashing (argon2id) and the password policy.

argon2id with OWASP's minimum parameters by default (19 MiB, t=2, p=1: ~40 ms here);
hashes made with other parameters verify as before and are flagged for re-hashing,
which the login path does with the plaintext it has just verified. argon2 releases the
GIL, so hashing runs in a small thread pool and never blocks the event loop; the pool
is bounded so a login flood queues instead of exhausting memory (each hash holds
``memory_kib``).

Unknown users are verified against a dummy hash made with the same parameters, so a
wrong email costs the same time as a wrong password and answers the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import argon2
import zxcvbn

from authgate.identity import domain
from authgate.identity import settings as settings_mod

_T = TypeVar("_T")
MAX_LENGTH = 256  # longer inputs are refused before any hashing: an easy DoS otherwise
_ZXCVBN_MAX = 72  # the estimator's own limit; longer passwords are scored on a prefix


@dataclasses.dataclass(frozen=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


class PolicyError(ValueError):
    """The new password is refused; the message says why, for the person choosing it."""


class Hasher:
    def __init__(self, settings: settings_mod.Settings, *, workers: int | None = None) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or min(4, os.cpu_count() or 1), thread_name_prefix="argon2"
        )
        self._dummy = self._hasher.hash(os.urandom(16).hex())
        self._settings = settings

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, normalize(password))

    async def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check ``password``; with ``stored_hash`` None (no such user, or no password)
        spend the same time on the dummy and fail."""
        return await self._run(self._verify_sync, stored_hash, normalize(password))

    def _verify_sync(self, stored_hash: str | None, password: str) -> Verification:
        try:
            self._hasher.verify(stored_hash or self._dummy, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return Verification(ok=False)
        if stored_hash is None:
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))

    async def check_policy(self, password: str, *, personal: tuple[str, ...] = ()) -> None:
        """Raise :class:`PolicyError` for a password the policy refuses."""
        await self._run(check_policy, self._settings, password, personal)

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def normalize(password: str) -> str:
    """NFKC, so the same password typed on two keyboards is the same (NIST 800-63B
    §5.1.1.2 asks for normalisation)."""
    return unicodedata.normalize("NFKC", password)


def check_policy(
    settings: settings_mod.Settings, password: str, personal: tuple[str, ...] = ()
) -> None:
    text = normalize(password)
    if len(text) < settings.password_min_length:
        raise PolicyError(f"the password needs at least {settings.password_min_length} characters")
    if len(text) > MAX_LENGTH:
        raise PolicyError(f"the password may have at most {MAX_LENGTH} characters")
    folded = domain.fold(text)
    for value in personal:
        for part in _personal_parts(value):
            if len(part) >= 4 and part in folded:
                raise PolicyError("the password must not contain your email address or name")
    if settings.password_min_strength:
        estimate = zxcvbn.zxcvbn(text[:_ZXCVBN_MAX], user_inputs=list(personal))
        if estimate["score"] < settings.password_min_strength:
            feedback = estimate.get("feedback", {})
            hint = feedback.get("warning") or " ".join(feedback.get("suggestions", []))
            raise PolicyError(
                "the password is too easy to guess" + (f": {hint.rstrip('.')}" if hint else "")
            )


def _personal_parts(value: str) -> list[str]:
    """An email's local part and domain label, a name's words: what people reuse."""
    folded = domain.fold(value)
    local, _, host = folded.partition("@")
    parts = [folded, local, host.split(".")[0] if host else ""]
    parts.extend(folded.replace("@", " ").replace(".", " ").split())
    return [part for part in parts if part]
