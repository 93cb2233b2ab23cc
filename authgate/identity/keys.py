"""Signing keys: generation, the in-memory key ring, and rotation.

Lifecycle of a key, all driven by timestamps so every replica reaches the same answer
without talking to the others:

* **published** from ``created_at``: it is in the JWKS, so verifiers that cache the
  JWKS (up to ``AUTHGATE_JWKS_MAX_AGE``) learn it before they see tokens it signed;
* **signing** from ``signs_from`` (``created_at + AUTHGATE_KEY_PUBLISH_AHEAD``; at once
  for the very first key, which nobody can have cached yet) until a newer key of the
  same algorithm starts signing;
* **retired** then, but still published until ``expires_at`` (successor's
  ``signs_from`` + ``AUTHGATE_MAX_TOKEN_LIFETIME`` + clock skew), when every token it
  signed has expired; then pruned.

A key is due for rotation when the newest key of its algorithm is older than
``AUTHGATE_KEY_ROTATION_PERIOD``. The new key is generated outside the transaction and
written by a compare-and-set (:meth:`SigningKeyRepository.add_if_newest_before`), so
two replicas never rotate twice (Dex's approach).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import algorithms

from authgate.identity import domain, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

RSA_KEY_BITS = 2048
CLOCK_SKEW = dt.timedelta(seconds=60)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(public_key: PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = algorithms.OKPAlgorithm.to_jwk(public_key, as_dict=True)
    return jwk


_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: the kid, stable and derived from the key itself."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _new_private_key(alg: settings_mod.SigningAlg) -> PrivateKey:
    if alg is settings_mod.SigningAlg.RS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg is settings_mod.SigningAlg.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def generate(
    alg: settings_mod.SigningAlg,
    *,
    encryptor: secrets.Encryptor,
    created_at: dt.datetime,
    signs_from: dt.datetime,
) -> domain.SigningKey:
    """A new key, its private half encrypted for storage."""
    private_key = _new_private_key(alg)
    jwk = _public_jwk(private_key.public_key())
    kid = thumbprint(jwk)
    jwk.pop("key_ops", None)  # RFC 7517 §4.3: "use" and "key_ops" should not both appear
    jwk.update(kid=kid, alg=alg.value, use="sig")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return domain.SigningKey(
        kid=kid,
        alg=alg.value,
        public_jwk=jwk,
        private_key_enc=encryptor.encrypt(pem),
        created_at=created_at,
        signs_from=signs_from,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedKey:
    """A key ready to use: the private half decrypted, in memory only."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key: PrivateKey = dataclasses.field(repr=False)
    created_at: dt.datetime
    signs_from: dt.datetime
    expires_at: dt.datetime | None

    def published(self, now: dt.datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """An immutable snapshot of the keys; the gateway swaps in a new one on reload."""

    keys: tuple[LoadedKey, ...] = ()

    def signer(self, alg: str, now: dt.datetime) -> LoadedKey | None:
        """The key that signs ``alg`` tokens now: the latest that has begun signing."""
        for key in self.keys:
            if key.alg == alg and state(key, self.keys, now) == "signing":
                return key
        return None

    def jwks(self, now: dt.datetime) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self.keys if k.published(now)]}

    def by_kid(self, kid: str, now: dt.datetime) -> LoadedKey | None:
        for key in self.keys:
            if key.kid == kid and key.published(now):
                return key
        return None


_KeyLike = LoadedKey | domain.SigningKey


def state(key: _KeyLike, among: Iterable[_KeyLike], now: dt.datetime) -> str:
    """``next`` (published, not yet signing), ``signing``, ``retiring`` (published for
    verification only) or ``expired``; ``among`` is every key, to find the signer."""
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.signs_from > now:
        return "next"
    ready = [
        k
        for k in among
        if k.alg == key.alg and k.signs_from <= now and (k.expires_at is None or now < k.expires_at)
    ]
    current = max(ready, key=lambda k: (k.signs_from, k.kid), default=None)
    return "signing" if current is not None and current.kid == key.kid else "retiring"


def load(stored: Iterable[domain.SigningKey], encryptor: secrets.Encryptor) -> KeyRing:
    loaded = []
    for key in stored:
        pem = encryptor.decrypt(key.private_key_enc, what=f"signing key {key.kid}")
        private_key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(
            private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise secrets.KeyMaterialError(f"signing key {key.kid} has an unsupported type")
        loaded.append(
            LoadedKey(
                kid=key.kid,
                alg=key.alg,
                public_jwk=key.public_jwk,
                private_key=private_key,
                created_at=key.created_at,
                signs_from=key.signs_from,
                expires_at=key.expires_at,
            )
        )
    return KeyRing(tuple(loaded))


def retire_after(settings: settings_mod.Settings) -> int:
    """Seconds an old key stays published after its successor starts signing."""
    return settings.max_token_lifetime + int(CLOCK_SKEW.total_seconds())


async def rotate_if_due(
    store: Store,
    settings: settings_mod.Settings,
    encryptor: secrets.Encryptor,
    *,
    force: bool = False,
    immediately: bool = False,
) -> list[domain.SigningKey]:
    """Add a key for every configured algorithm that needs one; return those added.

    ``force`` rotates even when not due (``authgate keys rotate``); ``immediately``
    lets the new key sign at once instead of after the publish-ahead period: for a
    compromised key, at the price of verifiers with a stale JWKS refusing new tokens
    until they refetch it.
    """
    added = []
    existing = await store.keys.list(include_expired=True)
    for alg in settings.signing_algs:
        mine = [key for key in existing if key.alg == alg.value]
        newest = max((key.created_at for key in mine), default=None)
        now = store.now()
        due = (
            newest is None
            or force
            or newest + dt.timedelta(seconds=settings.key_rotation_period) <= now
        )
        if not due:
            continue
        first = newest is None
        signs_from = (
            now if first or immediately else now + dt.timedelta(seconds=settings.key_publish_ahead)
        )
        key = generate(alg, encryptor=encryptor, created_at=now, signs_from=signs_from)
        if await store.keys.add_if_newest_before(
            key, newest_before=newest, retire_after=retire_after(settings)
        ):
            added.append(key)
    return added
