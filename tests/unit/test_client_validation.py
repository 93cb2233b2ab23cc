"""The client registration rules (no I/O): what is accepted, what is refused and why,
and -- by property -- that no metadata at all gets past them half-checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from authgate.gateway.oauth import authorize, clients
from authgate.identity import domain, ids
from authgate.identity import settings as settings_mod

SETTINGS = settings_mod.Settings()  # issuer http://127.0.0.1:8080: the development default
HTTPS = settings_mod.Settings(issuer="https://auth.example.com")
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _rsa_jwk(bits: int = 2048) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)


def _ec_jwk(curve: ec.EllipticCurve | None = None) -> dict[str, Any]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)


def _ed_jwk() -> dict[str, Any]:
    key = ed25519.Ed25519PrivateKey.generate()
    return jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)


RSA_JWK = _rsa_jwk()
EC_JWK = _ec_jwk()
ED_JWK = _ed_jwk()


def _stored(registration: clients.Registration, **overrides: Any) -> domain.OAuthClient:
    values = {
        field.name: getattr(registration, field.name)
        for field in dataclasses.fields(registration)
        if field.name != "client_id"
    }
    values = {
        "id": registration.client_id or ids.uuid7(),
        "public": registration.public,
        "created_at": NOW,
        "updated_at": NOW,
        **values,
        **overrides,
    }
    return domain.OAuthClient(**values)


# --- defaults -----------------------------------------------------------------------


def test_a_bare_registration_is_a_confidential_service_client() -> None:
    registration = clients.parse({"name": "svc"}, SETTINGS)
    assert registration.grant_types == ("client_credentials",)
    assert registration.token_endpoint_auth_method == "client_secret_basic"
    assert (registration.public, registration.uses_secret) == (False, True)
    assert registration.client_id is None


def test_a_client_with_redirect_uris_defaults_to_the_code_flow() -> None:
    registration = clients.parse(
        {"name": "web", "redirect_uris": ["https://app.example.com/cb"]}, SETTINGS
    )
    assert registration.grant_types == ("authorization_code",)


def test_public_true_means_token_endpoint_auth_method_none() -> None:
    registration = clients.parse(
        {"name": "spa", "public": True, "redirect_uris": ["https://spa.example/cb"]}, SETTINGS
    )
    assert (registration.token_endpoint_auth_method, registration.public) == ("none", True)
    assert registration.grant_types == ("authorization_code",)
    assert not registration.uses_secret


def test_lists_keep_their_order_and_drop_duplicates() -> None:
    registration = clients.parse(
        {"name": "svc", "scopes": ["b", "a", "b", " a "], "audience": ["x", "x"]}, SETTINGS
    )
    assert (registration.scopes, registration.audience) == (("b", "a"), ("x",))


# --- grant types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grants", "public", "accepted"),
    [
        (["client_credentials"], False, True),
        (["authorization_code", "refresh_token"], False, True),
        (["password", "refresh_token"], False, True),
        (["authorization_code", "client_credentials", "refresh_token", "password"], False, True),
        (["authorization_code", "refresh_token"], True, True),
        (["refresh_token"], False, False),
        (["client_credentials", "refresh_token"], False, False),
        (["client_credentials"], True, False),
        (["authorization_code", "password"], True, False),
        (["refresh_token"], True, False),
        (["implicit"], False, False),
        (["urn:ietf:params:oauth:grant-type:device_code"], False, False),
        ([], False, False),
    ],
)
def test_grant_type_combinations(grants: list[str], public: bool, accepted: bool) -> None:
    body = {
        "name": "c",
        "grant_types": grants,
        "public": public,
        "redirect_uris": ["https://app.example.com/cb"],
    }
    if accepted:
        assert clients.parse(body, SETTINGS).grant_types == tuple(grants)
    else:
        with pytest.raises(clients.Refused) as refused:
            clients.parse(body, SETTINGS)
        assert refused.value.error == "invalid_client_metadata"


def test_the_code_flow_needs_a_redirect_uri() -> None:
    with pytest.raises(clients.Refused) as refused:
        clients.parse({"name": "c", "grant_types": ["authorization_code"]}, SETTINGS)
    assert refused.value.error == "invalid_redirect_uri"


# --- redirect URIs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback",
        "https://app.example.com:8443/cb?tenant=a&x=1",
        "https://192.0.2.10/cb",
        "http://127.0.0.1/cb",
        "http://127.0.0.1:51004/oauth2redirect",
        "http://[::1]:8080/cb",
        "http://localhost:3000/cb",
        "HTTPS://App.Example.com/cb",
        "com.example.app:/oauth2redirect/example-provider",
        "com.googleusercontent.apps.123:/oauth2redirect",
    ],
)
def test_redirect_uris_that_are_accepted(uri: str) -> None:
    clients.check_redirect_uri(uri)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://app.example.com/cb", "https"),
        ("http://127.0.0.1.evil.example/cb", "https"),
        ("http://localhost.evil.example/cb", "https"),
        ("http://10.0.0.1/cb", "https"),
        ("https://app.example.com/cb#", "fragment"),
        ("https://app.example.com/cb#x", "fragment"),
        ("/cb", "absolute"),
        ("app.example.com/cb", "absolute"),
        ("//app.example.com/cb", "absolute"),
        ("https:///cb", "host"),
        ("https://user:pass@app.example.com/cb", "user-info"),
        ("https://app.example.com@evil.example/cb", "user-info"),
        ("https://*.example.com/cb", "wildcard"),
        ("https://app.example.com:0/cb", "valid"),
        ("https://app.example.com:70000/cb", "valid"),
        ("https://[::1/cb", "valid"),
        ("https://app.example.com/a b", "white space"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,hi", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("myapp:/cb", "scheme"),
        ("com.example.app://cb", "private-use"),
        ("com.example.app:cb", "private-use"),
        ("1com.example:/cb", "absolute"),
    ],
)
def test_redirect_uris_that_are_refused(uri: str, why: str) -> None:
    with pytest.raises(clients.Refused, match=why):
        clients.check_redirect_uri(uri)


def test_a_refused_redirect_uri_names_the_field_and_the_uri() -> None:
    with pytest.raises(clients.Refused) as refused:
        clients.parse({"name": "c", "post_logout_redirect_uris": ["http://x.example/"]}, SETTINGS)
    assert refused.value.error == "invalid_redirect_uri"
    assert str(refused.value).startswith("post_logout_redirect_uris: 'http://x.example/'")


def test_too_many_redirect_uris_are_refused() -> None:
    uris = [f"https://app.example.com/{i}" for i in range(clients.MAX_URIS + 1)]
    with pytest.raises(clients.Refused, match="at most"):
        clients.parse({"name": "c", "redirect_uris": uris}, SETTINGS)


# --- scopes, audience, lifetimes, client ids ----------------------------------------


@pytest.mark.parametrize("scope", ["openid", "api:read", "https://api.example.com/x", "a!#[]~"])
def test_scope_tokens_that_are_accepted(scope: str) -> None:
    assert clients.parse({"name": "c", "scopes": [scope]}, SETTINGS).scopes == (scope,)


@pytest.mark.parametrize("scope", ["two words", 'q"uote', "back\\slash", "caf\u00e9", "t\tab"])
def test_scope_tokens_that_are_refused(scope: str) -> None:
    with pytest.raises(clients.Refused):
        clients.parse({"name": "c", "scopes": [scope]}, SETTINGS)


def test_access_and_id_token_lifetimes_are_capped_by_the_setting() -> None:
    capped = settings_mod.Settings(max_token_lifetime=600)
    ok = clients.parse({"name": "c", "access_token_ttl": 600, "id_token_ttl": 1}, capped)
    assert (ok.access_token_ttl, ok.id_token_ttl) == (600, 1)
    for name in ("access_token_ttl", "id_token_ttl"):
        with pytest.raises(clients.Refused, match=f"{name} is a number of seconds from 1 to 600"):
            clients.parse({"name": "c", name: 601}, capped)


def test_refresh_token_lifetimes_may_exceed_the_access_token_cap() -> None:
    registration = clients.parse({"name": "c", "refresh_token_ttl": 30 * 86400}, SETTINGS)
    assert registration.refresh_token_ttl == 30 * 86400
    with pytest.raises(clients.Refused):
        clients.parse(
            {"name": "c", "refresh_token_ttl": clients.MAX_REFRESH_TOKEN_TTL + 1}, SETTINGS
        )


@pytest.mark.parametrize("client_id", ["svc", "web-app", "team:svc+1", "a.b_c~d@e", "x" * 255])
def test_client_ids_that_may_be_chosen(client_id: str) -> None:
    assert clients.check_client_id(client_id) == client_id


@pytest.mark.parametrize(
    "client_id", ["", "-svc", "a/b", "a b", "caf\u00e9", "a%2fb", "x" * 256, "authgate"]
)
def test_client_ids_that_may_not(client_id: str) -> None:
    with pytest.raises(clients.Refused, match="client_id"):
        clients.check_client_id(client_id)


# --- keys (private_key_jwt) ---------------------------------------------------------


@pytest.mark.parametrize(
    "key", [RSA_JWK, EC_JWK, ED_JWK, {**RSA_JWK, "alg": "PS256", "use": "sig", "kid": "k1"}]
)
def test_public_signing_keys_are_accepted(key: dict[str, Any]) -> None:
    registration = clients.parse(
        {"name": "c", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key]}},
        SETTINGS,
    )
    assert registration.jwks == {"keys": [key]}
    assert not registration.uses_secret


def _private_rsa_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return jwk


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (_private_rsa_jwk(), "private"),
        ({**EC_JWK, "d": "AAAA"}, "private"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "private or symmetric"),
        ({**RSA_JWK, "kty": "oct"}, "kty"),
        ({**RSA_JWK, "use": "enc"}, "use"),
        ({**RSA_JWK, "key_ops": ["encrypt"]}, "key_ops"),
        ({**RSA_JWK, "alg": "HS256"}, "alg"),
        ({**RSA_JWK, "alg": "none"}, "alg"),
        (_ec_jwk(ec.SECP384R1()), "P-256"),
        ({**ED_JWK, "crv": "X25519"}, "Ed25519"),
        (_rsa_jwk(1024), "2048"),
        ({**RSA_JWK, "n": "AQAB"}, "valid public key"),
        ({**EC_JWK, "y": EC_JWK["x"]}, "valid public key"),
        ({**RSA_JWK, "n": 5}, "valid public key"),
        ({**RSA_JWK, "kid": 7}, "kid"),
        ("a key", "JSON object"),
    ],
)
def test_keys_that_cannot_verify_assertions_are_refused(key: Any, why: str) -> None:
    with pytest.raises(clients.Refused, match=why):
        clients.check_jwk(key)


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        {"keys": [RSA_JWK] * (clients.MAX_JWKS_KEYS + 1)},
        {"keys": RSA_JWK},
        [RSA_JWK],
        {"keys": [RSA_JWK], "padding": "x" * clients.MAX_JWKS_BYTES},
    ],
)
def test_jwk_sets_that_are_refused(jwks: Any) -> None:
    with pytest.raises(clients.Refused, match="jwks"):
        clients.public_jwks(jwks)


def test_private_key_jwt_needs_exactly_one_of_jwks_and_jwks_uri() -> None:
    base = {"name": "c", "token_endpoint_auth_method": "private_key_jwt"}
    with pytest.raises(clients.Refused, match="jwks or jwks_uri"):
        clients.parse(base, SETTINGS)
    with pytest.raises(clients.Refused, match="not both"):
        clients.parse(
            {**base, "jwks": {"keys": [EC_JWK]}, "jwks_uri": "https://k.example/j"}, SETTINGS
        )
    with pytest.raises(clients.Refused, match="private_key_jwt"):
        clients.parse({"name": "c", "jwks": {"keys": [EC_JWK]}}, SETTINGS)


@pytest.mark.parametrize(
    ("uri", "settings", "accepted"),
    [
        ("https://keys.example.com/jwks.json", HTTPS, True),
        ("https://keys.example.com/jwks.json", SETTINGS, True),
        ("http://127.0.0.1:9000/jwks.json", SETTINGS, True),
        ("http://localhost:9000/jwks.json", SETTINGS, True),
        ("http://127.0.0.1:9000/jwks.json", HTTPS, False),
        ("http://keys.example.com/jwks.json", SETTINGS, False),
        ("https://keys.example.com/jwks.json#frag", HTTPS, False),
        ("https://user@keys.example.com/jwks.json", HTTPS, False),
        ("file:///etc/jwks.json", SETTINGS, False),
        ("https://keys.example.com:99999/", HTTPS, False),
        ("https:///jwks.json", HTTPS, False),
    ],
)
def test_jwks_uris(uri: str, settings: settings_mod.Settings, accepted: bool) -> None:
    if accepted:
        assert clients.check_jwks_uri(uri, settings) == uri
    else:
        with pytest.raises(clients.Refused, match="jwks_uri"):
            clients.check_jwks_uri(uri, settings)


# --- changes (PATCH) ----------------------------------------------------------------


def test_a_patch_is_checked_as_a_whole_and_keeps_the_id() -> None:
    current = _stored(
        clients.parse(
            {"name": "web", "client_id": "web", "redirect_uris": ["https://a.example/cb"]},
            SETTINGS,
        )
    )
    changed = clients.patched(current, {"name": "Web", "scopes": ["openid"]}, SETTINGS)
    assert (changed.client_id, changed.name, changed.scopes) == ("web", "Web", ("openid",))
    assert changed.redirect_uris == ("https://a.example/cb",)
    with pytest.raises(clients.Refused, match="redirect URI"):
        clients.patched(current, {"redirect_uris": None}, SETTINGS)


def test_a_patch_cannot_rename_or_switch_between_public_and_confidential() -> None:
    confidential = _stored(clients.parse({"name": "svc"}, SETTINGS))
    with pytest.raises(clients.Refused, match="cannot be changed"):
        clients.patched(confidential, {"client_id": "other"}, SETTINGS)
    assert clients.patched(confidential, {"client_id": confidential.id}, SETTINGS)
    with pytest.raises(clients.Refused, match="public"):
        clients.patched(
            confidential,
            {"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"],
             "redirect_uris": ["https://a.example/cb"]},
            SETTINGS,
        )  # fmt: skip


def test_metadata_of_a_stored_client_parses_back_to_the_same_registration() -> None:
    registration = clients.parse(
        {
            "name": "full",
            "client_id": "full",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://a.example/cb"],
            "scopes": ["openid"],
            "audience": ["api"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [EC_JWK]},
            "access_token_ttl": 60,
            "trusted": True,
        },
        SETTINGS,
    )
    assert clients.parse(clients.metadata(_stored(registration)), SETTINGS) == registration


def test_the_first_party_and_managed_clients_cannot_be_changed() -> None:
    registration = clients.parse({"name": "svc"}, SETTINGS)
    with pytest.raises(clients.NotChangeable, match="account service"):
        clients.check_changeable(_stored(registration, id="authgate"))
    with pytest.raises(clients.NotChangeable, match="custom resource"):
        clients.check_changeable(_stored(registration, owner="OAuthClient/ns/x"))
    clients.check_changeable(_stored(registration))


def test_client_json_never_shows_a_secret() -> None:
    shown = clients.client_json(_stored(clients.parse({"name": "svc"}, SETTINGS)))
    assert not {key for key in shown if "secret" in key or "hash" in key}


def test_new_secrets_carry_256_bits_and_are_stored_as_their_sha256() -> None:
    secret, secret_hash = clients.new_secret()
    assert len(secret) == 43
    assert secret_hash == ids.token_hash(secret)
    assert clients.new_secret()[0] != secret


# --- property: nothing gets past half-checked ---------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_plausible = {
    "name": st.text(max_size=30),
    "public": st.booleans(),
    "trusted": st.booleans(),
    "grant_types": st.lists(st.sampled_from([*clients.GRANT_TYPES, "implicit"]), max_size=4),
    "redirect_uris": st.lists(
        st.sampled_from(
            ["https://a.example/cb", "http://127.0.0.1/cb", "http://a.example/", "x:/y",
             "com.example.app:/cb", "https://a.example/#f"]
        ),
        max_size=3,
    ),
    "scopes": st.lists(st.text(max_size=8), max_size=3),
    "token_endpoint_auth_method": st.sampled_from([*clients.AUTH_METHODS, "bogus"]),
    "access_token_ttl": st.integers(-5, 200_000),
    "jwks": st.sampled_from([{"keys": [EC_JWK]}, {"keys": []}, None]),
    "jwks_uri": st.sampled_from(["https://k.example/j", "http://k.example/j"]),
}  # fmt: skip
_bodies = st.fixed_dictionaries({}, optional={**_plausible, "client_id": st.text(max_size=10)}) | (
    st.dictionaries(st.sampled_from(sorted(clients.FIELDS)), _values, max_size=6)
)


def _outcome(body: dict[str, Any]) -> clients.Registration | clients.Refused:
    try:
        return clients.parse(body, SETTINGS)
    except clients.Refused as refused:
        return refused


@given(body=_bodies)
def test_any_metadata_is_refused_cleanly_or_meets_every_rule(body: dict[str, Any]) -> None:
    registration = _outcome(body)
    if isinstance(registration, clients.Refused):
        assert registration.error in {"invalid_client_metadata", "invalid_redirect_uri"}
        assert str(registration)
        return
    grants = set(registration.grant_types)
    assert grants
    assert grants <= set(clients.GRANT_TYPES)
    if registration.public:
        assert not grants & {"client_credentials", "password"}
        assert "authorization_code" in grants
    if "authorization_code" in grants:
        assert registration.redirect_uris
    if "refresh_token" in grants:
        assert grants & {"authorization_code", "password"}
    for uri in registration.redirect_uris:
        clients.check_redirect_uri(uri)
    assert (registration.jwks is not None or registration.jwks_uri is not None) == (
        registration.token_endpoint_auth_method == "private_key_jwt"
    )
    assert registration.name.strip()


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("https://app.example.com/cb", True),
        ("https://app.example.com/cb/", False),
        ("http://127.0.0.1:51004/cb", True),  # RFC 8252 §7.3: any port on loopback IP
        ("http://127.0.0.1/cb", True),
        ("http://[::1]:8000/cb", True),
        ("http://127.0.0.1:51004/cb?x=1", False),
        ("http://127.0.0.1:51004/other", False),
        ("https://127.0.0.1:51004/cb", False),
        ("http://localhost:51004/cb", False),  # names are not IPs: exact only
        ("http://127.0.0.1:abc/cb", False),
        ("http://127.0.0.1.evil.example:80/cb", False),
    ],
)
def test_loopback_redirects_may_take_any_port_and_nothing_else_bends(
    uri: str, allowed: bool
) -> None:
    registered = ("https://app.example.com/cb", "http://127.0.0.1:8400/cb", "http://[::1]/cb")
    assert authorize.redirect_registered(uri, registered) is allowed
