"""The check path's lean :class:`tokens.Verifier` against PyJWT's
:func:`tokens.verify_access_token`: for every token below -- good ones and each way a
token can be wrong -- both accept with the same claims, or both refuse with the same
reason. A difference is a bug in the lean one: it must never let pass what the
reference refuses."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from authgate.gateway import tokens
from authgate.identity import keys
from authgate.identity import settings as settings_mod

ISSUER = "https://id.example.com"
NOW = dt.datetime.now(dt.UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _loaded(kid: str, alg: str) -> keys.LoadedKey:
    private = keys._new_private_key(settings_mod.SigningAlg(alg))
    return keys.LoadedKey(
        kid=kid,
        alg=alg,
        public_jwk={},
        private_key=private,
        created_at=NOW - dt.timedelta(hours=2),
        signs_from=NOW - dt.timedelta(hours=1),
        expires_at=None,
    )


RSA = _loaded("rsa-1", "RS256")
EC = _loaded("ec-1", "ES256")
ED = _loaded("ed-1", "EdDSA")


def _retired() -> keys.LoadedKey:
    key = _loaded("old-1", "RS256")
    return keys.LoadedKey(
        kid=key.kid,
        alg=key.alg,
        public_jwk={},
        private_key=key.private_key,
        created_at=NOW - dt.timedelta(days=3),
        signs_from=NOW - dt.timedelta(days=2),
        expires_at=NOW - dt.timedelta(hours=1),
    )


OLD = _retired()
RING = keys.KeyRing((RSA, EC, ED, OLD))


def _raw_sign(key: keys.LoadedKey, alg: str, message: bytes) -> bytes:
    private: Any = key.private_key
    if alg == "RS256":
        signed: bytes = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return signed
    if alg == "ES256":
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return bytes(private.sign(message))
    raise AssertionError(alg)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": [ISSUER],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "client_id": "svc-1",
        "scope": "orders:read",
    }
    for name, value in changes.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_DROP = object()


def _token(
    *,
    key: keys.LoadedKey = RSA,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    payload: bytes | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    alg = alg or key.alg
    head = {"alg": alg, "kid": key.kid, "typ": "at+jwt"} if header is None else header
    body = payload if payload is not None else json.dumps(claims or _claims()).encode()
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(body)}"
    signature = (sign or (lambda m: _raw_sign(key, alg, m)))(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def _hs256_with_public_pem(message: bytes) -> bytes:
    """The classic confusion: the RSA public key's PEM used as an HMAC secret."""
    pem = RSA.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mac = hmac.HMAC(pem, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


def _flip_last(token: str) -> str:
    head, _, last = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(last + "=" * (-len(last) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{_b64(bytes(raw))}"


def _cases() -> dict[str, tuple[str, str | None]]:
    """name -> (token, the reason it is refused for, or None when it is good)."""
    good = _token()
    head, payload, sig = good.split(".")
    now = int(time.time())
    cases: dict[str, tuple[str, str | None]] = {
        "good_rs256": (good, None),
        "good_es256": (_token(key=EC), None),
        "good_eddsa": (_token(key=ED), None),
        "good_typ_media_type": (
            _token(header={"alg": "RS256", "kid": RSA.kid, "typ": "Application/AT+JWT"}),
            None,
        ),
        "good_aud_string": (_token(claims=_claims(aud=ISSUER)), None),
        "good_aud_among_others": (_token(claims=_claims(aud=["other", ISSUER])), None),
        "good_no_nbf": (_token(claims=_claims(nbf=_DROP)), None),
        "good_crit_b64_true": (
            _token(
                header={
                    "alg": "RS256",
                    "kid": RSA.kid,
                    "typ": "at+jwt",
                    "crit": ["b64"],
                    "b64": True,
                }
            ),
            None,
        ),
        "good_exp_as_numeric_string": (_token(claims=_claims(exp=str(now + 600))), None),
        "good_float_times": (_token(claims=_claims(exp=now + 600.5, iat=now + 0.5)), None),
        # --- algorithms
        "alg_none": (
            _token(header={"alg": "none", "kid": RSA.kid, "typ": "at+jwt"}, sign=lambda m: b""),
            "algorithm_not_allowed",
        ),
        "alg_none_capitalised": (
            _token(header={"alg": "None", "kid": RSA.kid, "typ": "at+jwt"}, sign=lambda m: b""),
            "algorithm_not_allowed",
        ),
        "alg_hs256_with_public_key": (
            _token(
                header={"alg": "HS256", "kid": RSA.kid, "typ": "at+jwt"},
                sign=_hs256_with_public_pem,
            ),
            "algorithm_not_allowed",
        ),
        "alg_missing": (_token(header={"kid": RSA.kid, "typ": "at+jwt"}), "algorithm_not_allowed"),
        "alg_not_a_string": (
            _token(header={"alg": ["RS256"], "kid": RSA.kid, "typ": "at+jwt"}),
            "algorithm_not_allowed",
        ),
        "alg_of_another_key": (
            _token(key=EC, header={"alg": "ES256", "kid": RSA.kid, "typ": "at+jwt"}),
            "algorithm_mismatch",
        ),
        # --- type and key
        "typ_jwt": (_token(header={"alg": "RS256", "kid": RSA.kid, "typ": "JWT"}), "wrong_type"),
        "typ_missing": (_token(header={"alg": "RS256", "kid": RSA.kid}), "wrong_type"),
        "kid_unknown": (
            _token(header={"alg": "RS256", "kid": "nope", "typ": "at+jwt"}),
            "unknown_key",
        ),
        "kid_missing": (_token(header={"alg": "RS256", "typ": "at+jwt"}), "unknown_key"),
        "kid_of_an_expired_key": (_token(key=OLD), "unknown_key"),
        "kid_not_a_string": (
            _token(header={"alg": "RS256", "kid": 7, "typ": "at+jwt"}),
            "malformed",
        ),
        # --- signatures
        "signature_flipped_rs256": (_flip_last(good), "bad_signature"),
        "signature_flipped_es256": (_flip_last(_token(key=EC)), "bad_signature"),
        "signature_flipped_eddsa": (_flip_last(_token(key=ED)), "bad_signature"),
        "signature_short_es256": (
            _token(key=EC, sign=lambda m: _raw_sign(EC, "ES256", m)[:63]),
            "bad_signature",
        ),
        "signature_short_eddsa": (
            _token(key=ED, sign=lambda m: _raw_sign(ED, "EdDSA", m)[:63]),
            "bad_signature",
        ),
        "signature_empty": (_token(sign=lambda m: b""), "bad_signature"),
        "signature_of_another_payload": (f"{head}.{_b64(b'{}')}.{sig}", "bad_signature"),
        # --- times
        "expired": (_token(claims=_claims(exp=now - 120)), "expired"),
        "nbf_in_the_future": (_token(claims=_claims(nbf=now + 600)), "not_yet_valid"),
        "iat_in_the_future": (_token(claims=_claims(iat=now + 600)), "not_yet_valid"),
        "exp_not_a_number": (_token(claims=_claims(exp="soon")), "malformed"),
        "iat_not_a_number": (_token(claims=_claims(iat=[1])), "malformed"),
        "nbf_not_a_number": (_token(claims=_claims(nbf={})), "malformed"),
        # --- issuer and audience
        "iss_wrong": (_token(claims=_claims(iss="https://evil.example.com")), "wrong_issuer"),
        "iss_not_a_string": (_token(claims=_claims(iss=[ISSUER])), "wrong_issuer"),
        "aud_wrong": (_token(claims=_claims(aud=["https://api.other.com"])), "wrong_audience"),
        "aud_not_strings": (_token(claims=_claims(aud=[ISSUER, 3])), "wrong_audience"),
        "aud_an_object": (_token(claims=_claims(aud={"a": ISSUER})), "wrong_audience"),
        "aud_empty": (_token(claims=_claims(aud=[])), "missing_claim"),
        # --- claims
        "sub_not_a_string": (_token(claims=_claims(sub=42)), "malformed"),
        "jti_not_a_string": (_token(claims=_claims(jti=42)), "malformed"),
        "client_id_null": (_token(claims=_claims(client_id=None)), "missing_claim"),
        # --- shape
        "two_segments": (f"{head}.{payload}", "malformed"),
        "one_segment": (head, "malformed"),
        "empty": ("", "malformed"),
        "four_segments": (f"{good}.{sig}", "malformed"),
        "bad_base64_characters": (f"{head}.{payload}!.{sig}", "malformed"),
        "padding_on_a_partial_quantum": (f"{head}.{payload}=.{sig}", "malformed"),
        "too_much_padding": (f"{head}===.{payload}.{sig}", "malformed"),
        # 256 signature bytes take 342 characters, the last carrying 4 unused bits.
        "non_canonical_base64": (
            f"{head}.{payload}.{sig[:-1]}{_noncanonical(sig[-1])}",
            "malformed",
        ),
        "length_one_mod_four": (f"{head}.{payload}A.{sig}", "malformed"),
        "non_ascii": (f"{head}.{payload}é.{sig}", "malformed"),
        "header_not_json": (f"{_b64(b'not json')}.{payload}.{sig}", "malformed"),
        "header_a_list": (f"{_b64(b'[1]')}.{payload}.{sig}", "malformed"),
        "payload_not_json": (_token(payload=b"not json"), "malformed"),
        "payload_a_list": (_token(payload=b"[1, 2]"), "malformed"),
        "crit_unknown": (
            _token(header={"alg": "RS256", "kid": RSA.kid, "typ": "at+jwt", "crit": ["exp"]}),
            "malformed",
        ),
        "crit_empty": (
            _token(header={"alg": "RS256", "kid": RSA.kid, "typ": "at+jwt", "crit": []}),
            "malformed",
        ),
        "b64_false_with_payload": (
            _token(header={"alg": "RS256", "kid": RSA.kid, "typ": "at+jwt", "b64": False}),
            "malformed",
        ),
        "b64_false_detached": (
            _detached(
                {"alg": "RS256", "kid": RSA.kid, "typ": "at+jwt", "b64": False, "crit": ["b64"]}
            ),
            "malformed",
        ),
        "b64_false_detached_bad_alg": (
            _detached({"alg": "HS256", "kid": RSA.kid, "typ": "at+jwt", "b64": False}),
            "algorithm_not_allowed",
        ),
    }
    for name in ("exp", "iat", "sub", "jti", "iss", "aud", "client_id"):
        cases[f"missing_{name}"] = (_token(claims=_claims(**{name: _DROP})), "missing_claim")
    return cases


def _noncanonical(last: str) -> str:
    """The same bytes under another spelling: flip a bit the decoder ignores."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(last) ^ 1]


def _detached(header: dict[str, Any]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}."
    return f"{signing_input}.{_b64(_raw_sign(RSA, 'RS256', signing_input.encode()))}"


CASES = _cases()


def _case(name: str) -> tuple[str, str | None]:
    """Tokens whose validity hangs on the clock are signed when the test runs: the
    matrix is built at collection, maybe long before."""
    if name == "good_expired_within_leeway":
        return _token(claims=_claims(exp=int(time.time()) - 10)), None
    return CASES[name]


def _settings(tmp_path: Path, alg: str) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path,
        kek=(Fernet.generate_key(),),
        issuer=ISSUER,
        signing_alg=settings_mod.SigningAlg(alg),
    )


def _outcome(verify: Callable[[], dict[str, Any]]) -> tuple[str, Any]:
    try:
        return "ok", verify()
    except tokens.InvalidToken as invalid:
        return "refused", invalid.reason


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
@pytest.mark.parametrize("name", sorted({*CASES, "good_expired_within_leeway"}))
def test_the_lean_verifier_answers_as_pyjwt_does(tmp_path: Path, alg: str, name: str) -> None:
    token, _ = _case(name)
    settings = _settings(tmp_path, alg)
    audiences = [ISSUER]
    reference = _outcome(
        lambda: tokens.verify_access_token(token, RING, settings, NOW, audiences=audiences)
    )
    lean = _outcome(lambda: tokens.Verifier(RING, settings, audiences=audiences).verify(token, NOW))
    assert lean == reference


@pytest.mark.parametrize("name", sorted({*CASES, "good_expired_within_leeway"}))
def test_each_case_is_refused_for_its_reason(tmp_path: Path, name: str) -> None:
    """The matrix above means what its names say (with ES256 configured, RS256 and ES256
    are both allowed; EdDSA is not)."""
    token, reason = _case(name)
    verifier = tokens.Verifier(RING, _settings(tmp_path, "ES256"))
    if name in {"good_eddsa", "signature_flipped_eddsa", "signature_short_eddsa"}:
        reason = "algorithm_not_allowed"
    outcome = _outcome(lambda: verifier.verify(token, NOW))
    if reason is None:
        assert outcome[0] == "ok"
    else:
        assert outcome == ("refused", reason)


def test_eddsa_tokens_pass_when_eddsa_signs(tmp_path: Path) -> None:
    verifier = tokens.Verifier(RING, _settings(tmp_path, "EdDSA"))
    assert verifier.verify(CASES["good_eddsa"][0], NOW)["sub"] == "user-1"
    with pytest.raises(tokens.InvalidToken, match="bad_signature"):
        verifier.verify(CASES["signature_flipped_eddsa"][0], NOW)


def test_configured_audiences_replace_the_issuer(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "RS256")
    token = _token(claims=_claims(aud=["https://api.example.com"]))
    assert tokens.Verifier(RING, settings, audiences=["https://api.example.com"]).verify(token, NOW)
    with pytest.raises(tokens.InvalidToken, match="wrong_audience"):
        tokens.Verifier(RING, settings).verify(token, NOW)
