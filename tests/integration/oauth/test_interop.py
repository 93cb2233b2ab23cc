"""Interoperability with real third-party clients: Authlib's OAuth 2 client runs the
grants against a running gateway, and PyJWT's PyJWKClient verifies what it issued from
the JWKS URI alone. Both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from authlib.integrations.httpx_client import AsyncOAuth2Client
from cryptography.fernet import Fernet

from authgate.gateway import app as app_mod
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration import processes
from tests.integration.oauth import flows
from tests.integration.oauth.conftest import Client, register

LiveClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def live(aiohttp_client: LiveClient, tmp_path: Path, store: Store) -> Client:
    """The gateway on a fixed loopback port that is also its issuer."""
    port = processes.free_port()
    settings = settings_mod.Settings(
        data_dir=tmp_path,
        kek=(Fernet.generate_key(),),
        issuer=f"http://127.0.0.1:{port}",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
    )
    app: web.Application = app_mod.create_app(settings, store=store)
    return await aiohttp_client(app, server_kwargs={"port": port})


def _issuer(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def _verify(
    issuer: str, token: str, *, audience: str, typ: str | None = None
) -> dict[str, Any]:
    """Verify like a resource server that knows only the issuer: discovery -> JWKS."""

    def run() -> dict[str, Any]:
        jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")
        key = jwks.get_signing_key_from_jwt(token)
        if typ is not None:
            assert jwt.get_unverified_header(token)["typ"] == typ
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=["RS256"], audience=audience, issuer=issuer
        )
        return claims

    return await asyncio.to_thread(run)


async def test_client_credentials_with_authlib(live: Client) -> None:
    issuer = _issuer(live)
    client, secret = await register(
        live, name="svc", grant_types=["client_credentials"], scopes=["orders:read", "orders:x"],
        audience=["https://api.example.com"],
    )  # fmt: skip
    async with AsyncOAuth2Client(client.id, secret, scope="orders:read") as oauth:
        token = await oauth.fetch_token(f"{issuer}/oauth2/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert "refresh_token" not in token
    claims = await _verify(
        issuer, token["access_token"], audience="https://api.example.com", typ="at+jwt"
    )
    assert claims["sub"] == claims["client_id"] == client.id
    assert claims["scope"] == "orders:read"


async def test_authorization_code_with_pkce_refresh_revoke_and_introspect(live: Client) -> None:
    issuer = _issuer(live)
    redirect = "http://127.0.0.1:9/callback"
    app_client, secret = await register(
        live, name="web", grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[redirect], scopes=["openid", "profile", "email", "orders:read"],
    )  # fmt: skip
    user_id = await flows.sign_in_browser(live, "ada@example.com")
    verifier, _ = flows.pkce_pair()
    async with AsyncOAuth2Client(
        app_client.id, secret, scope="openid email orders:read", redirect_uri=redirect,
        code_challenge_method="S256",
    ) as oauth:  # fmt: skip
        url, state = oauth.create_authorization_url(
            f"{issuer}/oauth2/authorize", code_verifier=verifier, nonce="n-0S6_WzA2Mj"
        )
        callback = await flows.authorize(live, url)
        assert flows.query_of(callback)["state"] == state
        assert flows.query_of(callback)["iss"] == issuer
        token = await oauth.fetch_token(
            f"{issuer}/oauth2/token", authorization_response=callback, code_verifier=verifier
        )
        id_claims = await _verify(issuer, token["id_token"], audience=app_client.id)
        assert id_claims["sub"] == user_id
        assert id_claims["nonce"] == "n-0S6_WzA2Mj"
        assert id_claims["email"] == "ada@example.com"
        assert "auth_time" in id_claims
        assert "at_hash" in id_claims
        access = await _verify(issuer, token["access_token"], audience=issuer, typ="at+jwt")
        assert access["scope"] == "email openid orders:read"

        userinfo = await oauth.get(f"{issuer}/oauth2/userinfo")
        assert userinfo.json() == {
            "sub": user_id,
            "email": "ada@example.com",
            "email_verified": True,
        }

        refreshed = await oauth.refresh_token(f"{issuer}/oauth2/token")
        assert refreshed["refresh_token"] != token["refresh_token"]

        active = await oauth.introspect_token(
            f"{issuer}/oauth2/introspect", token=refreshed["access_token"]
        )
        assert active.json()["active"] is True
        assert active.json()["sub"] == user_id

        revoked = await oauth.revoke_token(
            f"{issuer}/oauth2/revoke",
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        after = await oauth.introspect_token(
            f"{issuer}/oauth2/introspect", token=refreshed["access_token"]
        )
        assert after.json() == {"active": False}


async def test_discovery_describes_what_the_server_does(live: Client) -> None:
    issuer = _issuer(live)
    document = await (await live.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == issuer
    for name in (
        "authorization",
        "token",
        "userinfo",
        "introspection",
        "revocation",
        "end_session",
    ):
        endpoint = document[f"{name}_endpoint"]
        assert endpoint.startswith(issuer)
        path = endpoint.removeprefix(issuer)
        assert (await live.post(path)).status != 404, path
    assert document["code_challenge_methods_supported"] == ["S256"]
