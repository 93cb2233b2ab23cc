"""Secrets at rest: the key-encryption key (KEK) and what it encrypts.

Private signing keys and TOTP seeds are encrypted with Fernet (AES-128-CBC with
HMAC-SHA256) under the KEK. ``AUTHGATE_KEK`` may list several keys: the first encrypts,
every one decrypts, which is how a KEK is rotated without downtime. The embedded
default, with no KEK configured, generates one into ``<data dir>/kek`` (mode 0600) on
first start and reads it back afterwards, so a restart decrypts the same keys.
"""

from __future__ import annotations

import hmac
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from authgate.identity import settings as settings_mod


class KeyMaterialError(Exception):
    """The KEK is missing, unreadable, or not the one the data was encrypted with."""


class Encryptor:
    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise KeyMaterialError("no key-encryption key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes, *, what: str) -> bytes:
        try:
            return self._fernet.decrypt(ciphertext)
        except InvalidToken:
            raise KeyMaterialError(
                f"cannot decrypt {what}: AUTHGATE_KEK is not the key it was encrypted with"
            ) from None


def load_kek(settings: settings_mod.Settings) -> tuple[bytes, ...]:
    """The configured KEK, or the embedded default's own (generated on first use)."""
    if settings.kek:
        return settings.kek
    if settings.database_kind is not settings_mod.DatabaseKind.SQLITE:
        raise KeyMaterialError("AUTHGATE_KEK is required with PostgreSQL")
    return (_read_or_create(settings.kek_path),)


def _read_or_create(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return _create(path)
    except OSError as error:
        raise KeyMaterialError(f"cannot read {path}: {error.strerror}") from None
    try:
        Fernet(key)
    except ValueError:
        raise KeyMaterialError(
            f"{path} does not hold a Fernet key; restore it from backup "
            "(without it the stored signing keys cannot be decrypted)"
        ) from None
    return key


def _create(path: Path) -> bytes:
    key = Fernet.generate_key()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".kek-", delete=False) as file:
            file.write(key + b"\n")
            file.flush()
            os.fsync(file.fileno())  # mkstemp made it 0600
        try:
            # link() publishes the complete file atomically and fails if another
            # process got there first: then use theirs, never overwrite it.
            os.link(file.name, path)
        except FileExistsError:
            return _read_or_create(path)
        finally:
            os.unlink(file.name)
    except OSError as error:
        raise KeyMaterialError(f"cannot create {path}: {error.strerror}") from None
    return key


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking, through timing, how much of them matched."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
