"""One test per attack on the authorization server (RFC 9700, RFC 8725), both backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authgate.gateway import appkeys
from authgate.identity import domain
from tests.integration.oauth import flows
from tests.integration.oauth.conftest import Client, basic, register

REDIRECT = "https://app.example.com/callback"


async def _web_client(client: Client, **extra: Any) -> tuple[domain.OAuthClient, str]:
    registered, secret = await register(
        client,
        name="web",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[REDIRECT],
        scopes=["openid", "email", "orders:read", "orders:write"],
        **extra,
    )
    assert secret is not None
    return registered, secret


async def _service(client: Client) -> tuple[domain.OAuthClient, str]:
    registered, secret = await register(
        client, name="svc", grant_types=["client_credentials"], scopes=["a"]
    )
    assert secret is not None
    return registered, secret


def _authorize_url(client_id: str, **params: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, **params}
    return "/oauth2/authorize?" + urllib.parse.urlencode(query)


async def _code(client: Client, client_id: str, **params: str) -> str:
    location = await flows.authorize(client, _authorize_url(client_id, **params))
    query = flows.query_of(location)
    assert "code" in query, location
    return query["code"]


async def _token(
    client: Client, form: dict[str, str], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    response = await client.post("/oauth2/token", data=form, headers=headers)
    return response.status, await response.json()


async def _introspect(client: Client, token: str, auth: dict[str, str]) -> bool:
    response = await client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert response.status == 200
    active: bool = (await response.json())["active"]
    return active


async def test_a_replayed_code_fails_and_revokes_what_the_first_use_issued(client: Client) -> None:
    web, secret = await _web_client(client)
    await flows.sign_in_browser(client, "ada@example.com")
    verifier, challenge = flows.pkce_pair()
    code = await _code(
        client,
        web.id,
        scope="openid orders:read",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    auth = basic(web.id, secret)
    status, first = await _token(client, form, auth)
    assert status == 200
    status, second = await _token(client, form, auth)
    assert (status, second["error"]) == (400, "invalid_grant")
    assert not await _introspect(client, first["access_token"], auth)
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert (await _token(client, refresh, auth))[0] == 400


@pytest.mark.parametrize(
    ("params", "verifier_kind"),
    [
        (
            {},
            "none",
        ),  # PKCE missing at both ends: confidential client, redirect_uri given: fine below
        ({"code_challenge": "CHALLENGE", "code_challenge_method": "S256"}, "missing"),
        ({"code_challenge": "CHALLENGE", "code_challenge_method": "S256"}, "wrong"),
        ({}, "downgrade"),  # a verifier for a code that had no challenge
    ],
)
async def test_pkce_must_match(client: Client, params: dict[str, str], verifier_kind: str) -> None:
    web, secret = await _web_client(client)
    await flows.sign_in_browser(client, "bob@example.com")
    verifier, challenge = flows.pkce_pair()
    params = {k: (challenge if v == "CHALLENGE" else v) for k, v in params.items()}
    code = await _code(client, web.id, scope="orders:read", **params)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier_kind == "wrong":
        form["code_verifier"] = flows.pkce_pair()[0]
    elif verifier_kind == "downgrade":
        form["code_verifier"] = verifier
    status, body = await _token(client, form, basic(web.id, secret))
    if verifier_kind == "none":
        assert status == 200
    else:
        assert (status, body["error"]) == (400, "invalid_grant")


async def test_pkce_plain_is_refused_and_public_clients_must_use_pkce(client: Client) -> None:
    public, _ = await register(
        client, name="spa", grant_types=["authorization_code"], redirect_uris=[REDIRECT],
        scopes=["orders:read"], token_endpoint_auth_method="none",
    )  # fmt: skip
    await flows.sign_in_browser(client, "cat@example.com")
    without = flows.query_of(await flows.authorize(client, _authorize_url(public.id)))
    assert without["error"] == "invalid_request"
    plain = flows.query_of(
        await flows.authorize(
            client,
            _authorize_url(public.id, code_challenge="x" * 43, code_challenge_method="plain"),
        )
    )
    assert plain["error"] == "invalid_request"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com/callback/extra",  # prefix
        "https://app.example.com/call",  # truncated
        "https://APP.example.com/callback",  # case
        "https://app.example.com/Callback",
        "https://app.example.com/callback/",  # trailing slash
        "https://app.example.com/callback?x=1",  # extra query
        "https://app.example.com/callback#frag",
        "https://app.example.com@evil.example/callback",  # userinfo trick
        "https://evil.example/?https://app.example.com/callback",
        "https://app.example.com.evil.example/callback",
        "http://app.example.com/callback",  # scheme
        "https://app.example.com:443/callback",  # explicit port
        "//app.example.com/callback",
    ],
)
async def test_a_redirect_uri_that_is_not_registered_exactly_is_an_error_page(
    client: Client, redirect_uri: str
) -> None:
    web, _ = await _web_client(client)
    await flows.sign_in_browser(client, "dan@example.com")
    url = "/oauth2/authorize?" + urllib.parse.urlencode(
        {"response_type": "code", "client_id": web.id, "redirect_uri": redirect_uri}
    )
    response = await client.get(url, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.content_type == "text/html"


async def test_unknown_clients_get_an_error_page_not_a_redirect(client: Client) -> None:
    url = _authorize_url("no-such-client")
    response = await client.get(url, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers


async def test_a_code_redeemed_by_another_client_fails_and_stays_usable(client: Client) -> None:
    web, secret = await _web_client(client)
    thief, thief_secret = await _web_client(client)
    await flows.sign_in_browser(client, "eve@example.com")
    code = await _code(client, web.id, scope="orders:read")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    status, body = await _token(client, form, basic(thief.id, thief_secret))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await _token(client, form, basic(web.id, secret)))[0] == 200


async def test_a_wrong_client_secret_is_invalid_client_with_a_challenge(client: Client) -> None:
    svc, _ = await _service(client)
    response = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(svc.id, "wrong")
    )
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Cache-Control"] == "no-store"


async def test_refresh_token_reuse_revokes_the_family(client: Client) -> None:
    web, secret = await _web_client(client)
    await flows.sign_in_browser(client, "fay@example.com")
    code = await _code(client, web.id, scope="orders:read")
    auth = basic(web.id, secret)
    _, tokens = await _token(
        client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, auth
    )
    _, rotated = await _token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth
    )
    status, body = await _token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (
        await _token(
            client, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}, auth
        )
    )[0] == 400
    assert not await _introspect(client, rotated["access_token"], auth)


async def test_scope_can_narrow_on_refresh_but_never_widen(client: Client) -> None:
    web, secret = await _web_client(client)
    await flows.sign_in_browser(client, "gus@example.com")
    code = await _code(client, web.id, scope="orders:read")
    auth = basic(web.id, secret)
    _, tokens = await _token(
        client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, auth
    )
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "scope": "orders:read orders:write",
    }
    status, body = await _token(client, form, auth)
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_scope_escalation_in_client_credentials_is_refused(client: Client) -> None:
    svc, secret = await _service(client)
    status, body = await _token(
        client, {"grant_type": "client_credentials", "scope": "a admin"}, basic(svc.id, secret)
    )
    assert (status, body["error"]) == (400, "invalid_scope")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _forged_tokens(client: Client, svc: domain.OAuthClient, secret: str) -> dict[str, str]:
    """Tokens an attacker could present, built from a real one."""
    _, issued = await _token(client, {"grant_type": "client_credentials"}, basic(svc.id, secret))
    real = issued["access_token"]
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    app = client.app
    now = app[appkeys.STORE].now()
    signer = app[appkeys.KEYS].ring.signer("RS256", now)
    assert signer is not None
    public_pem = signer.private_key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )

    def sign(changes: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            {**claims, **changes},
            signer.private_key,
            algorithm="RS256",
            headers={"kid": signer.kid, "typ": "at+jwt", **(headers or {})},
        )

    hmac_token = _hs256_with(public_pem, claims, header["kid"])
    stamp = int(time.time())
    return {
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': header['kid']})}."
        f"{_b64(claims)}.",
        "hs256_with_public_key": hmac_token,
        "unknown_kid": sign({}, {"kid": "not-a-key"}),
        "expired": sign({"exp": stamp - 3600, "iat": stamp - 7200, "nbf": stamp - 7200}),
        "not_yet_valid": sign({"nbf": stamp + 3600, "iat": stamp + 3600, "exp": stamp + 7200}),
        "wrong_iss": sign({"iss": "https://evil.example"}),
        "wrong_typ": jwt.encode(
            claims, signer.private_key, algorithm="RS256", headers={"kid": signer.kid, "typ": "JWT"}
        ),
        "tampered": real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB"),
        "wrong_aud": sign({"aud": ["https://other.example"]}),
    }


def _hs256_with(key: bytes, claims: dict[str, Any], kid: str) -> str:
    """HS256 over the public key, built by hand: PyJWT rightly refuses to make it."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{_b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "kind",
    [
        "alg_none",
        "hs256_with_public_key",
        "unknown_kid",
        "expired",
        "not_yet_valid",
        "wrong_iss",
        "wrong_typ",
        "tampered",
    ],
)
async def test_forged_or_stale_access_tokens_are_never_active(client: Client, kind: str) -> None:
    svc, secret = await _service(client)
    forged = (await _forged_tokens(client, svc, secret))[kind]
    assert not await _introspect(client, forged, basic(svc.id, secret))
    userinfo = await client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {forged}"})
    assert userinfo.status == 401


async def test_a_token_for_another_audience_is_refused_by_the_account_api(client: Client) -> None:
    svc, secret = await _service(client)
    forged = (await _forged_tokens(client, svc, secret))["wrong_aud"]
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401


async def test_token_errors_follow_rfc6749(client: Client) -> None:
    svc, secret = await _service(client)
    auth = basic(svc.id, secret)
    cases = [
        ({"grant_type": "magic"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "x", "password": "y"}, 400, "unauthorized_client"),
        ({}, 400, "invalid_request"),
    ]
    for form, status, error in cases:
        response = await client.post("/oauth2/token", data=form, headers=auth)
        assert response.status == status
        body = await response.json()
        assert body["error"] == error
        assert response.headers["Cache-Control"] == "no-store"
    duplicated = await client.post(
        "/oauth2/token", data="grant_type=client_credentials&grant_type=client_credentials",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert (await duplicated.json())["error"] == "invalid_request"
    as_json = await client.post(
        "/oauth2/token", json={"grant_type": "client_credentials"}, headers=auth
    )
    assert as_json.status == 400
