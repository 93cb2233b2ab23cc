"""The gateway skeleton through its real factory, on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from authgate.gateway import app as app_mod
from authgate.gateway import appkeys
from authgate.identity import errors, keys
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
def settings(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.Settings(data_dir=tmp_path, kek=(Fernet.generate_key(),))


@pytest.fixture
def app(settings: settings_mod.Settings, store: Store) -> web.Application:
    return app_mod.create_app(settings, store=store)


@pytest.fixture
async def client(aiohttp_client: MakeClient, app: web.Application) -> Client:
    return await aiohttp_client(app)


def assert_error_shape(body: object, error: str) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]


async def test_healthz_answers_with_security_headers_and_a_request_id(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server" not in response.headers
    assert len(response.headers["X-Request-Id"]) == 16


async def test_a_safe_incoming_request_id_is_kept_and_an_unsafe_one_replaced(
    client: Client,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-Id": "ingress-1234.abc"})
    assert kept.headers["X-Request-Id"] == "ingress-1234.abc"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "x" * 500})
    assert replaced.headers["X-Request-Id"] != "x" * 500
    injected = await client.get("/healthz", headers={"X-Request-Id": 'a b"c'})
    assert injected.headers["X-Request-Id"] != 'a b"c'


async def test_readyz_reports_store_and_keys(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"store": "ok", "keys": "ok"}


async def test_readyz_is_503_in_the_error_shape_when_the_store_is_gone(
    client: Client, app: web.Application
) -> None:
    await app[appkeys.STORE].db.close()
    response = await client.get("/readyz")
    assert response.status == 503
    assert_error_shape(await response.json(), "not_ready")
    assert (await client.get("/healthz")).status == 200


async def test_jwks_publishes_the_signing_key_with_a_cache_lifetime(
    client: Client, settings: settings_mod.Settings
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    assert response.content_type == "application/jwk-set+json"
    assert response.headers["Cache-Control"] == f"public, max-age={settings.jwks_max_age}"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    [jwk] = json.loads(await response.text())["keys"]
    assert jwk["kid"]
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()


async def test_discovery_names_the_issuer_and_jwks_uri(
    client: Client, settings: settings_mod.Settings
) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = await (await client.get(path)).json()
        assert document["issuer"] == settings.issuer
        assert document["jwks_uri"] == f"{settings.issuer}/.well-known/jwks.json"
        assert "RS256" in document["id_token_signing_alg_values_supported"]


async def test_unknown_routes_and_methods_get_the_error_shape(client: Client) -> None:
    missing = await client.get("/no/such/thing")
    assert missing.status == 404
    assert_error_shape(await missing.json(), "not_found")
    wrong = await client.delete("/healthz")
    assert wrong.status == 405
    assert "GET" in wrong.headers["Allow"]
    assert_error_shape(await wrong.json(), "method_not_allowed")


async def test_an_oversized_body_is_refused_before_it_is_read(
    client: Client, settings: settings_mod.Settings
) -> None:
    response = await client.post("/healthz", data=b"x" * (settings.max_body_size + 1))
    assert response.status == 413
    assert_error_shape(await response.json(), "request_too_large")


async def test_an_unexpected_failure_is_a_500_that_reveals_nothing(
    aiohttp_client: MakeClient, app: web.Application
) -> None:
    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2")

    async def store_down(request: web.Request) -> web.Response:
        raise errors.StoreUnavailable("connection refused")

    app.router.add_get("/explode", explode)
    app.router.add_get("/store-down", store_down)
    client = await aiohttp_client(app)
    response = await client.get("/explode")
    assert response.status == 500
    body = await response.text()
    assert "hunter2" not in body
    assert_error_shape(json.loads(body), "server_error")
    unavailable = await client.get("/store-down")
    assert unavailable.status == 503
    assert unavailable.headers["Retry-After"] == "5"
    assert_error_shape(await unavailable.json(), "temporarily_unavailable")


async def test_metrics_count_requests_by_route_template(client: Client) -> None:
    await client.get("/healthz")
    await client.get("/nowhere")
    text = await (await client.get("/metrics")).text()
    assert 'authgate_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "authgate_signing_keys_published 1.0" in text
    assert 'authgate_signing_key_age_seconds{alg="RS256"}' in text


async def test_a_key_another_replica_adds_is_published_after_a_refresh(
    client: Client, app: web.Application, store: Store
) -> None:
    settings = app[appkeys.SETTINGS]
    [added] = await keys.rotate_if_due(store, settings, app[appkeys.ENCRYPTOR], force=True)
    await app_mod.refresh_keys(app)
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert added.kid in {k["kid"] for k in jwks["keys"]}
    assert len(jwks["keys"]) == 2


async def test_the_gateway_rotates_keys_by_itself_when_they_are_due(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, store: Store
) -> None:
    fast = dataclasses.replace(
        settings, jwks_max_age=0, key_publish_ahead=1, key_rotation_period=2, key_check_interval=1
    )
    client = await aiohttp_client(app_mod.create_app(fast, store=store))
    first = {k["kid"] for k in (await (await client.get("/.well-known/jwks.json")).json())["keys"]}
    for _ in range(100):
        await asyncio.sleep(0.1)
        jwks = await (await client.get("/.well-known/jwks.json")).json()
        if len(jwks["keys"]) > 1:
            break
    assert first < {k["kid"] for k in jwks["keys"]}
