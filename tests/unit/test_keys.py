"""Signing keys without a database: generation, kid, key-ring states."""

from __future__ import annotations

import dataclasses
import datetime as dt

import jwt
import pytest
from cryptography.fernet import Fernet

from authgate.identity import domain, keys, secrets
from authgate.identity.settings import SigningAlg

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ENCRYPTOR = secrets.Encryptor((Fernet.generate_key(),))


def test_the_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 §3.1's worked example.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert keys.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", list(SigningAlg))
def test_a_generated_key_signs_tokens_its_published_jwk_verifies(alg: SigningAlg) -> None:
    stored = keys.generate(alg, encryptor=ENCRYPTOR, created_at=T0, signs_from=T0)
    assert stored.public_jwk["kid"] == stored.kid == keys.thumbprint(stored.public_jwk)
    assert stored.public_jwk["alg"] == alg.value
    assert stored.public_jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & stored.public_jwk.keys()
    assert b"PRIVATE KEY" not in stored.private_key_enc
    ring = keys.load([stored], ENCRYPTOR)
    signer = ring.signer(alg.value, T0)
    assert signer is not None
    token = jwt.encode(
        {"sub": "x"}, signer.private_key, algorithm=alg.value, headers={"kid": signer.kid}
    )
    verifier = jwt.PyJWK(ring.jwks(T0)["keys"][0])
    assert jwt.decode(token, verifier.key, algorithms=[alg.value]) == {"sub": "x"}


def test_a_key_cannot_be_loaded_with_another_kek() -> None:
    stored = keys.generate(SigningAlg.ES256, encryptor=ENCRYPTOR, created_at=T0, signs_from=T0)
    other = secrets.Encryptor((Fernet.generate_key(),))
    with pytest.raises(secrets.KeyMaterialError, match="AUTHGATE_KEK"):
        keys.load([stored], other)


def test_a_kek_list_decrypts_with_any_of_its_keys() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    stored = keys.generate(
        SigningAlg.ES256, encryptor=secrets.Encryptor((old,)), created_at=T0, signs_from=T0
    )
    assert keys.load([stored], secrets.Encryptor((new, old))).keys[0].kid == stored.kid


def _key(
    kid: str, signs_from: dt.datetime, expires_at: dt.datetime | None = None
) -> domain.SigningKey:
    base = keys.generate(
        SigningAlg.ES256, encryptor=ENCRYPTOR, created_at=T0, signs_from=signs_from
    )
    jwk = {**base.public_jwk, "kid": kid}
    return dataclasses.replace(base, kid=kid, public_jwk=jwk, expires_at=expires_at)


def test_states_follow_the_timestamps() -> None:
    hour = dt.timedelta(hours=1)
    old = _key("old", T0, expires_at=T0 + 30 * hour)
    new = _key("new", T0 + 2 * hour)
    ring = keys.load([old, new], ENCRYPTOR)
    at = {"before": T0 + hour, "after": T0 + 3 * hour, "expired": T0 + 31 * hour}
    assert [keys.state(k, [old, new], at["before"]) for k in (old, new)] == ["signing", "next"]
    assert [keys.state(k, [old, new], at["after"]) for k in (old, new)] == ["retiring", "signing"]
    assert [keys.state(k, [old, new], at["expired"]) for k in (old, new)] == ["expired", "signing"]
    assert ring.signer("ES256", at["before"]).kid == "old"  # type: ignore[union-attr]
    assert ring.signer("ES256", at["after"]).kid == "new"  # type: ignore[union-attr]
    assert {k["kid"] for k in ring.jwks(at["before"])["keys"]} == {"old", "new"}
    assert {k["kid"] for k in ring.jwks(at["expired"])["keys"]} == {"new"}
    assert ring.by_kid("old", at["expired"]) is None
    assert ring.signer("RS256", at["after"]) is None
