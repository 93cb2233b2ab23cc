"""Fixtures for OAuth clients: the real app on both backends with a test-only route
that runs client authentication, administrators signed in over HTTP, and key pairs
and client assertions (RFC 7523) made with PyJWT, the way a client library makes them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authgate.gateway import app as app_mod
from authgate.gateway import appkeys
from authgate.gateway.oauth import clientauth, clients
from authgate.identity import domain, ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
PASSWORD = "correct horse battery staple 42"
# Mounted by the tests only: client authentication before the token endpoint uses it.
PROBE = "/test/client-auth"


async def probe(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    client = await clientauth.authenticate_client(request, fields)
    return web.json_response({"client_id": client.id})


@pytest.fixture
def settings(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path,
        kek=(Fernet.generate_key(),),
        argon2_memory_kib=1024,
        argon2_time_cost=1,
    )


@pytest.fixture
async def client(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, store: Store
) -> Client:
    app = app_mod.create_app(settings, store=store)
    app.router.add_post(PROBE, probe)
    return await aiohttp_client(app)


async def sign_in(client: Client, email: str, *, admin: bool) -> dict[str, str]:
    """An account made in the store, signed in over HTTP; its bearer header."""
    store = client.app[appkeys.STORE]
    user = await store.users.create(email=email, is_admin=admin, email_verified=True)
    await store.users.set_password_hash(user.id, await client.app[appkeys.HASHER].hash(PASSWORD))
    response = await client.post("/auth/login", json={"login": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['access_token']}"}


@pytest.fixture
async def admin(client: Client) -> dict[str, str]:
    return await sign_in(client, "root@example.com", admin=True)


@pytest.fixture
async def user(client: Client) -> dict[str, str]:
    return await sign_in(client, "someone@example.com", admin=False)


async def register(client: Client, **metadata: Any) -> tuple[domain.OAuthClient, str | None]:
    """A client registered through the shared rules, straight into the app's store."""
    registration = clients.parse(metadata, client.app[appkeys.SETTINGS])
    return await clients.create(client.app[appkeys.STORE], registration)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: each part form-urlencoded, then HTTP Basic (RFC 7617)."""
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


async def authenticate(
    client: Client, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST to the probe: status, JSON body, headers."""
    response = await client.post(PROBE, data=form, headers=headers or {})
    return response.status, await response.json(), dict(response.headers)


# --- keys and client assertions (RFC 7523) ------------------------------------------


@dataclasses.dataclass
class KeyPair:
    alg: str
    private_key: Any
    kid: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def key_pair(alg: str = "RS256", kid: str | None = None) -> KeyPair:
    private_key: Any
    if alg in {"RS256", "PS256"}:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
    return KeyPair(alg=alg, private_key=private_key, kid=kid or ids.token(6))


def token_url(settings: settings_mod.Settings) -> str:
    return f"{settings.issuer}/oauth2/token"


def assertion(
    keys: KeyPair,
    client_id: str,
    audience: str | list[str],
    *,
    lifetime: int = 60,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion as RFC 7523 §3 describes it; ``claims`` override or, as
    ``None``, remove the defaults."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": ids.token(16),
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(
        body, keys.private_key, algorithm=keys.alg, headers={"kid": keys.kid, **(headers or {})}
    )


def assertion_form(token: str, **extra: str) -> dict[str, str]:
    return {
        "client_assertion_type": clientauth.ASSERTION_TYPE,
        "client_assertion": token,
        **extra,
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}."
