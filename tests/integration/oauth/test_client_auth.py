"""Client authentication (RFC 6749 §2.3, RFC 7523) through a test-only route, on both
backends: every method, and one test per attack on it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization

from authgate.gateway import app as app_mod
from authgate.gateway import appkeys
from authgate.gateway.oauth import clientauth, clients
from authgate.identity import ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from authgate.identity.store.db import Database
from tests.integration import processes
from tests.integration.conftest import FakeClock
from tests.integration.oauth.conftest import (
    PROBE,
    Client,
    KeyPair,
    MakeClient,
    assertion,
    assertion_form,
    authenticate,
    b64url,
    basic,
    key_pair,
    probe,
    register,
    token_url,
    unsigned_jwt,
)

REFUSED = {"error": "invalid_client", "error_description": "client authentication failed"}


def _refused(status: int, body: dict[str, object], headers: dict[str, str]) -> None:
    """The one answer of every failed authentication (RFC 6749 §5.2)."""
    assert (status, body) == (401, REFUSED)
    assert headers["WWW-Authenticate"] == 'Basic realm="authgate"'
    assert headers["Cache-Control"] == "no-store"


async def _refuses(
    client: Client, form: dict[str, str], headers: dict[str, str] | None = None, *, reason: str
) -> None:
    """Refused with the one answer, and for ``reason`` (the log says which), so an attack
    test cannot pass by failing on something else."""
    with structlog.testing.capture_logs() as logged:
        answer = await authenticate(client, form, headers)
    _refused(*answer)
    failures = [e["reason"] for e in logged if e["event"] == "client_authentication_failed"]
    assert failures == [reason]


async def _confidential(
    client: Client, method: str = clients.CLIENT_SECRET_BASIC
) -> tuple[str, str]:
    registered, secret = await register(
        client, name="svc", grant_types=["client_credentials"], token_endpoint_auth_method=method
    )
    assert secret is not None
    return registered.id, secret


async def _public(client: Client) -> str:
    registered, secret = await register(
        client, name="spa", public=True, redirect_uris=["https://app.example.com/cb"]
    )
    assert secret is None
    return registered.id


async def _keyed(client: Client, keys: KeyPair, **metadata: object) -> str:
    registered, secret = await register(
        client,
        name="signed",
        grant_types=["client_credentials"],
        token_endpoint_auth_method=clients.PRIVATE_KEY_JWT,
        **({"jwks": keys.jwks} | metadata),
    )
    assert secret is None
    return registered.id


# --- client_secret_basic and client_secret_post -------------------------------------


async def test_client_secret_basic_authenticates(client: Client) -> None:
    client_id, secret = await _confidential(client)
    status, body, _ = await authenticate(client, {}, basic(client_id, secret))
    assert (status, body) == (200, {"client_id": client_id})


async def test_basic_credentials_are_form_urlencoded_before_base64(client: Client) -> None:
    registered, secret = await register(
        client, client_id="team:svc+1", name="svc", grant_types=["client_credentials"]
    )
    assert secret is not None
    status, body, _ = await authenticate(client, {}, basic(registered.id, secret))
    assert (status, body) == (200, {"client_id": "team:svc+1"})


async def test_basic_with_a_matching_client_id_in_the_form_authenticates(client: Client) -> None:
    client_id, secret = await _confidential(client)
    status, _, _ = await authenticate(client, {"client_id": client_id}, basic(client_id, secret))
    assert status == 200


async def test_basic_with_another_client_id_in_the_form_is_refused(client: Client) -> None:
    client_id, secret = await _confidential(client)
    other, _ = await _confidential(client)
    status, body, _ = await authenticate(client, {"client_id": other}, basic(client_id, secret))
    assert (status, body["error"]) == (401, "invalid_client")


async def test_client_secret_post_authenticates(client: Client) -> None:
    client_id, secret = await _confidential(client, clients.CLIENT_SECRET_POST)
    form = {"client_id": client_id, "client_secret": secret}
    status, body, _ = await authenticate(client, form)
    assert (status, body) == (200, {"client_id": client_id})


@pytest.mark.parametrize("method", [clients.CLIENT_SECRET_BASIC, clients.CLIENT_SECRET_POST])
async def test_a_wrong_secret_answers_exactly_like_an_unknown_client(
    client: Client, method: str
) -> None:
    client_id, secret = await _confidential(client, method)

    async def attempt(cid: str, sec: str) -> tuple[int, dict[str, object], dict[str, str]]:
        if method == clients.CLIENT_SECRET_BASIC:
            return await authenticate(client, {}, basic(cid, sec))
        return await authenticate(client, {"client_id": cid, "client_secret": sec})

    wrong = await attempt(client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    unknown = await attempt("no-such-client", secret)
    _refused(*wrong)
    _refused(*unknown)
    drop = {"date", "x-request-id"}
    assert {k.lower(): v for k, v in wrong[2].items() if k.lower() not in drop} == {
        k.lower(): v for k, v in unknown[2].items() if k.lower() not in drop
    }


@pytest.mark.parametrize(
    ("secret", "reason"), [("", "wrong_secret"), ("x" * 5000, "secret_too_long")]
)
async def test_empty_and_oversized_secrets_are_refused(
    client: Client, secret: str, reason: str
) -> None:
    client_id, _ = await _confidential(client, clients.CLIENT_SECRET_POST)
    form = {"client_id": client_id, "client_secret": secret}
    await _refuses(client, form, reason=reason)


async def test_a_basic_client_using_post_is_refused(client: Client) -> None:
    client_id, secret = await _confidential(client, clients.CLIENT_SECRET_BASIC)
    await _refuses(
        client,
        {"client_id": client_id, "client_secret": secret},
        reason="method_mismatch:client_secret_basic",
    )


async def test_a_post_client_using_basic_is_refused(client: Client) -> None:
    client_id, secret = await _confidential(client, clients.CLIENT_SECRET_POST)
    await _refuses(
        client, {}, basic(client_id, secret), reason="method_mismatch:client_secret_post"
    )


async def test_a_confidential_client_without_its_secret_is_refused(client: Client) -> None:
    client_id, _ = await _confidential(client)
    await _refuses(client, {"client_id": client_id}, reason="method_mismatch:client_secret_basic")


async def test_using_basic_and_post_at_once_is_an_invalid_request(client: Client) -> None:
    client_id, secret = await _confidential(client)
    status, body, headers = await authenticate(
        client, {"client_id": client_id, "client_secret": secret}, basic(client_id, secret)
    )
    # RFC 6749 §5.2 lists "more than one mechanism" under invalid_request.
    assert (status, body["error"]) == (400, "invalid_request")
    assert headers["Cache-Control"] == "no-store"


async def test_a_secret_and_an_assertion_at_once_are_an_invalid_request(client: Client) -> None:
    client_id, secret = await _confidential(client, clients.CLIENT_SECRET_POST)
    form = assertion_form("a.b.c", client_id=client_id, client_secret=secret)
    status, body, _ = await authenticate(client, form)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_a_rotated_secret_stops_working_at_once(client: Client) -> None:
    client_id, old = await _confidential(client)
    store = client.app[appkeys.STORE]
    new = await clients.rotate_secret(store, await store.clients.get(client_id))
    await _refuses(client, {}, basic(client_id, old), reason="wrong_secret")
    assert (await authenticate(client, {}, basic(client_id, new)))[0] == 200


async def test_only_the_secrets_sha256_is_stored(client: Client) -> None:
    client_id, secret = await _confidential(client)
    stored = await client.app[appkeys.STORE].clients.secret_hash(client_id)
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert len(secret) >= 43  # 256 bits, base64url


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + b64url(b"no-colon"),
        "Basic " + b64url(b":secret-without-id"),
        "Basic " + b64url(b"\xff\xfe:\xff"),
        "Basic " + b64url(b"id%ZZ:s"),
        "Bearer some-token",
        "Basic",
    ],
)
async def test_malformed_authorization_headers_are_refused(client: Client, header: str) -> None:
    status, body, headers = await authenticate(client, {}, {"Authorization": header})
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" in headers


async def test_no_credentials_at_all_are_refused(client: Client) -> None:
    status, body, headers = await authenticate(client, {})
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"] == 'Basic realm="authgate"'


# --- none (public clients) ----------------------------------------------------------


async def test_a_public_client_authenticates_with_its_client_id_alone(client: Client) -> None:
    client_id = await _public(client)
    status, body, _ = await authenticate(client, {"client_id": client_id})
    assert (status, body) == (200, {"client_id": client_id})


async def test_a_public_client_sending_a_secret_is_refused(client: Client) -> None:
    client_id = await _public(client)
    await _refuses(
        client, {"client_id": client_id, "client_secret": "guess"}, reason="method_mismatch:none"
    )
    await _refuses(client, {}, basic(client_id, "guess"), reason="method_mismatch:none")
    await _refuses(client, {}, basic(client_id, ""), reason="method_mismatch:none")


async def test_an_unknown_public_client_is_refused(client: Client) -> None:
    await _refuses(client, {"client_id": "nobody"}, reason="unknown_client")


# --- private_key_jwt (RFC 7523) -----------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_private_key_jwt_authenticates_with_each_asymmetric_algorithm(
    client: Client, alg: str
) -> None:
    keys = key_pair(alg)
    client_id = await _keyed(client, keys)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]))
    status, body, _ = await authenticate(client, assertion_form(token))
    assert (status, body) == (200, {"client_id": client_id})


async def test_the_issuer_is_an_accepted_audience_too(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    settings = client.app[appkeys.SETTINGS]
    token = assertion(keys, client_id, ["https://elsewhere.example", settings.issuer])
    assert (await authenticate(client, assertion_form(token, client_id=client_id)))[0] == 200


async def test_an_assertion_without_kid_is_tried_on_each_fitting_key(client: Client) -> None:
    first, second = key_pair(), key_pair()
    client_id = await _keyed(client, second, jwks={"keys": [first.public_jwk, second.public_jwk]})
    settings = client.app[appkeys.SETTINGS]
    token_without_kid = _drop_kid(assertion(second, client_id, token_url(settings)), second)
    assert (await authenticate(client, assertion_form(token_without_kid)))[0] == 200


def _drop_kid(token: str, keys: KeyPair) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, keys.private_key, algorithm=keys.alg)


async def test_a_replayed_assertion_is_refused(client: Client) -> None:
    keys = key_pair("ES256")
    client_id = await _keyed(client, keys)
    form = assertion_form(assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS])))
    assert (await authenticate(client, form))[0] == 200
    await _refuses(client, form, reason="assertion_replayed")


async def test_a_jti_is_refused_twice_even_in_a_new_assertion(client: Client) -> None:
    keys = key_pair("ES256")
    client_id = await _keyed(client, keys)
    url = token_url(client.app[appkeys.SETTINGS])
    first = assertion(keys, client_id, url, jti="fixed-jti")
    second = assertion(keys, client_id, url, jti="fixed-jti", lifetime=120)
    assert (await authenticate(client, assertion_form(first)))[0] == 200
    await _refuses(client, assertion_form(second), reason="assertion_replayed")


async def test_the_same_assertion_sent_twice_at_once_passes_once(client: Client) -> None:
    keys = key_pair("ES256")
    client_id = await _keyed(client, keys)
    form = assertion_form(assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS])))
    results = await asyncio.gather(*(authenticate(client, form) for _ in range(5)))
    assert sorted(status for status, _, _ in results) == [200, 401, 401, 401, 401]


@pytest.mark.parametrize(
    "audience", ["https://other.example/oauth2/token", ["https://a.example", "https://b.example"]]
)
async def test_an_assertion_for_another_audience_is_refused(
    client: Client, audience: str | list[str]
) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    await _refuses(
        client,
        assertion_form(assertion(keys, client_id, audience)),
        reason="assertion_wrong_audience",
    )


async def test_an_expired_assertion_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    url = token_url(client.app[appkeys.SETTINGS])
    now = int(time.time())
    token = assertion(keys, client_id, url, iat=now - 600, exp=now - 120)
    await _refuses(client, assertion_form(token), reason="assertion_expired")


async def test_an_assertion_valid_for_more_than_five_minutes_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    url = token_url(client.app[appkeys.SETTINGS])
    too_long = assertion(keys, client_id, url, lifetime=3600)
    await _refuses(client, assertion_form(too_long), reason="assertion_lives_too_long")
    assert (
        await authenticate(client, assertion_form(assertion(keys, client_id, url, lifetime=295)))
    )[0] == 200


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": None}, "assertion_missing_exp"),
        ({"jti": None}, "assertion_missing_jti"),
        ({"aud": None}, "assertion_missing_aud"),
        ({"exp": "tomorrow"}, "assertion_malformed_exp"),
        ({"exp": True}, "assertion_malformed_exp"),
        ({"jti": ""}, "assertion_malformed_jti"),
        ({"jti": "j" * 300}, "assertion_malformed_jti"),
        ({"nbf": int(time.time()) + 3600}, "assertion_nbf_in_future"),
        ({"iat": int(time.time()) + 3600}, "assertion_iat_in_future"),
        ({"iss": "someone-else"}, "assertion_iss_sub_mismatch"),
        ({"sub": "someone-else"}, "assertion_iss_sub_mismatch"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_assertions_with_missing_or_bad_claims_are_refused(
    client: Client, claims: dict[str, Any], reason: str
) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]), **claims)
    await _refuses(client, assertion_form(token), reason=reason)


@pytest.mark.parametrize("exp", [float("nan"), float("inf")])
async def test_an_exp_that_is_not_a_finite_number_is_refused(client: Client, exp: float) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]), exp=exp)
    await _refuses(client, assertion_form(token), reason="assertion_malformed_exp")


async def test_an_assertion_with_alg_none_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url(client.app[appkeys.SETTINGS]),
        "exp": now + 60,
        "jti": ids.token(8),
    }
    for alg in ("none", "None", "NONE"):
        token = unsigned_jwt({"alg": alg, "kid": keys.kid}, claims)
        await _refuses(client, assertion_form(token), reason="assertion_algorithm_not_allowed")


async def test_an_hs256_assertion_keyed_with_the_public_key_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url(client.app[appkeys.SETTINGS]),
        "exp": now + 60,
        "jti": ids.token(8),
    }
    # The classic confusion: the client's public key (as PEM, or its JWK JSON) used as
    # an HMAC secret, which anyone can do.
    pem = keys.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, json.dumps(keys.public_jwk).encode()):
        header = b64url(json.dumps({"alg": "HS256", "kid": keys.kid, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64url(signature)}"
        await _refuses(client, assertion_form(token), reason="assertion_algorithm_not_allowed")


async def test_an_assertion_signed_by_another_key_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    impostor = dataclasses.replace(key_pair(), kid=keys.kid)
    token = assertion(impostor, client_id, token_url(client.app[appkeys.SETTINGS]))
    await _refuses(client, assertion_form(token), reason="assertion_bad_signature")


async def test_an_assertion_naming_an_unknown_kid_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    token = assertion(
        keys, client_id, token_url(client.app[appkeys.SETTINGS]), headers={"kid": "other"}
    )
    await _refuses(client, assertion_form(token), reason="assertion_unknown_key")


async def test_an_assertion_for_another_client_than_the_form_names_is_refused(
    client: Client,
) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]))
    await _refuses(
        client,
        assertion_form(token, client_id="someone-else"),
        reason="assertion_client_id_mismatch",
    )


async def test_a_secret_client_cannot_authenticate_with_an_assertion(client: Client) -> None:
    keys = key_pair()
    client_id, _ = await _confidential(client)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]))
    await _refuses(client, assertion_form(token), reason="method_mismatch:client_secret_basic")


async def test_a_key_client_cannot_authenticate_with_client_id_alone(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    await _refuses(client, {"client_id": client_id}, reason="method_mismatch:private_key_jwt")


@pytest.mark.parametrize(
    "form",
    [
        {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
         "client_assertion": "x.y.z"},
        {"client_assertion_type": clientauth.ASSERTION_TYPE},
        {"client_assertion": "x.y.z"},
        {"client_assertion_type": clientauth.ASSERTION_TYPE, "client_assertion": "not a jwt"},
        {"client_assertion_type": clientauth.ASSERTION_TYPE, "client_assertion": "x" * 20000},
    ],
)  # fmt: skip
async def test_malformed_assertion_requests_are_refused(
    client: Client, form: dict[str, str]
) -> None:
    status, body, headers = await authenticate(client, form)
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" in headers


async def test_an_assertion_of_a_deleted_client_is_refused(client: Client) -> None:
    keys = key_pair()
    client_id = await _keyed(client, keys)
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]))
    await clients.delete(client.app[appkeys.STORE], client.app[appkeys.SETTINGS], client_id)
    await _refuses(client, assertion_form(token), reason="unknown_client")


async def test_assertion_times_follow_the_stores_clock(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, database: Database
) -> None:
    """A replica whose store clock says ten minutes later sees the assertion expired."""
    late = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    app = app_mod.create_app(settings, store=Store(database, late))
    app.router.add_post(PROBE, probe)
    later = await aiohttp_client(app)
    keys = key_pair()
    client_id = await _keyed(later, keys)
    token = assertion(keys, client_id, token_url(settings), lifetime=120)
    await _refuses(later, assertion_form(token), reason="assertion_expired")


# --- jwks_uri -----------------------------------------------------------------------


class JwksServer:
    """The client's own JWKS endpoint on a loopback port; counts what it serves."""

    def __init__(self) -> None:
        self.body: bytes = b'{"keys": []}'
        self.requests = 0
        self.status = 200
        self.delay = 0.0
        self.redirect_to: str | None = None
        app = web.Application()
        app.router.add_get("/jwks.json", self._serve)
        self.server = TestServer(app)

    def publish(self, *pairs: KeyPair, extra: list[dict[str, Any]] | None = None) -> None:
        self.body = json.dumps({"keys": [*(extra or []), *(p.public_jwk for p in pairs)]}).encode()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=self.body, status=self.status, content_type="application/json")

    @property
    def url(self) -> str:
        return str(self.server.make_url("/jwks.json"))


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    served = JwksServer()
    await served.server.start_server()
    try:
        yield served
    finally:
        await served.server.close()


class Ticks:
    """The fetcher's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _by_uri(client: Client, served: JwksServer, keys: KeyPair) -> tuple[str, Ticks]:
    served.publish(keys)
    client_id = await _keyed(client, keys, jwks=None, jwks_uri=served.url)
    ticks = Ticks()
    clientauth.jwks_fetcher(client.app).clock = ticks
    return client_id, ticks


async def _try(client: Client, keys: KeyPair, client_id: str) -> int:
    token = assertion(keys, client_id, token_url(client.app[appkeys.SETTINGS]))
    return (await authenticate(client, assertion_form(token)))[0]


async def test_keys_from_jwks_uri_are_fetched_once_and_cached(
    client: Client, jwks_server: JwksServer
) -> None:
    keys = key_pair("ES256")
    client_id, ticks = await _by_uri(client, jwks_server, keys)
    assert [await _try(client, keys, client_id) for _ in range(3)] == [200, 200, 200]
    assert jwks_server.requests == 1
    ticks.now += clientauth.JWKS_CACHE_SECONDS + 1
    assert await _try(client, keys, client_id) == 200
    assert jwks_server.requests == 2


async def test_a_new_kid_refetches_the_set_but_not_more_often_than_allowed(
    client: Client, jwks_server: JwksServer
) -> None:
    old = key_pair("ES256")
    client_id, ticks = await _by_uri(client, jwks_server, old)
    assert await _try(client, old, client_id) == 200
    new = key_pair("ES256")
    jwks_server.publish(old, new)
    assert await _try(client, new, client_id) == 401  # the set is seconds old: no refetch
    assert jwks_server.requests == 1
    ticks.now += clientauth.JWKS_REFETCH_AFTER + 1
    assert await _try(client, new, client_id) == 200
    assert jwks_server.requests == 2


async def test_keys_dropped_from_the_set_stop_working_after_the_cache_expires(
    client: Client, jwks_server: JwksServer
) -> None:
    keys = key_pair()
    client_id, ticks = await _by_uri(client, jwks_server, keys)
    assert await _try(client, keys, client_id) == 200
    jwks_server.publish(key_pair())
    ticks.now += clientauth.JWKS_CACHE_SECONDS + 1
    assert await _try(client, keys, client_id) == 401


async def test_unusable_keys_in_a_fetched_set_are_skipped(
    client: Client, jwks_server: JwksServer
) -> None:
    keys = key_pair()
    client_id, _ = await _by_uri(client, jwks_server, keys)
    jwks_server.publish(
        keys,
        extra=[
            {"kty": "oct", "k": "c2VjcmV0", "kid": keys.kid},
            {"kty": "RSA", "use": "enc", "n": "x", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "x": "x", "y": "y"},
            "not a key",  # type: ignore[list-item]
        ],
    )
    assert await _try(client, keys, client_id) == 200


@pytest.mark.parametrize("problem", ["status", "too_large", "not_json", "not_a_set", "redirect"])
async def test_a_jwks_uri_that_does_not_answer_with_a_set_fails_closed(
    client: Client, jwks_server: JwksServer, problem: str
) -> None:
    keys = key_pair()
    client_id, _ = await _by_uri(client, jwks_server, keys)
    if problem == "status":
        jwks_server.status = 500
    elif problem == "too_large":
        jwks_server.body = json.dumps(
            {"keys": [keys.public_jwk], "padding": "x" * (64 * 1024)}
        ).encode()
    elif problem == "not_json":
        jwks_server.body = b"<html>keys</html>"
    elif problem == "not_a_set":
        jwks_server.body = b'[{"kty": "RSA"}]'
    else:
        jwks_server.redirect_to = "/elsewhere.json"
    assert await _try(client, keys, client_id) == 401
    assert jwks_server.requests == 1


async def test_a_slow_jwks_uri_times_out(client: Client, jwks_server: JwksServer) -> None:
    keys = key_pair()
    client_id, _ = await _by_uri(client, jwks_server, keys)
    clientauth.jwks_fetcher(client.app).timeout = 0.2
    jwks_server.delay = 2.0
    started = time.monotonic()
    assert await _try(client, keys, client_id) == 401
    assert time.monotonic() - started < 1.5


async def test_an_unreachable_jwks_uri_fails_closed(client: Client) -> None:
    keys = key_pair()
    port = processes.free_port()
    client_id = await _keyed(client, keys, jwks=None, jwks_uri=f"http://127.0.0.1:{port}/jwks")
    assert await _try(client, keys, client_id) == 401
