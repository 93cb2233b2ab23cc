"""Real nginx (``auth_request``) and real Caddy (``forward_auth``) in front of an upstream
that echoes what it receives, with the gateway answering their checks.

The proxies' configurations are the ones docs/proxies.md prints (tests/integration/
check/proxies.py writes them). SQLite only: this is about the proxies' contracts, and
the store's backends are covered by test_http_adapters.py.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from authgate.identity import ids
from authgate.identity.store import Store, migrations
from authgate.identity.store.sqlite import SqliteDatabase
from tests.integration import processes
from tests.integration.check import proxies
from tests.integration.check.common import (
    HOST,
    IDENTITY,
    Client,
    MakeClient,
    access_token,
    gateway_client,
)

MakeServer = Callable[..., Awaitable[TestServer]]


class Ports(TypedDict):
    """The keyword arguments of proxies.nginx and proxies.caddy."""

    authgate_port: int
    upstream_port: int


SEEN = web.AppKey("seen", list[dict[str, Any]])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = await SqliteDatabase.open(tmp_path / "store.db")
    try:
        await migrations.migrate(db)
        yield Store(db)
    finally:
        await db.close()


@pytest.fixture
async def gateway(aiohttp_client: MakeClient, tmp_path: Path, store: Store) -> Client:
    """The gateway on a fixed loopback port that is also its issuer."""
    port = processes.free_port()
    return await gateway_client(
        aiohttp_client, tmp_path, store, port=port, issuer=f"http://127.0.0.1:{port}"
    )


async def _echo(request: web.Request) -> web.Response:
    seen = {"method": request.method, "path_qs": request.path_qs, "headers": dict(request.headers)}
    request.app[SEEN].append(seen)
    return web.json_response(seen)


@pytest.fixture
async def upstream(aiohttp_server: MakeServer) -> TestServer:
    """A small app that answers every request with the method, path and headers it got."""
    app = web.Application()
    app[SEEN] = []
    app.router.add_route("*", "/{tail:.*}", _echo)
    return await aiohttp_server(app, port=processes.free_port())


@pytest.fixture
def ports(gateway: Client, upstream: TestServer) -> Ports:
    """The keyword arguments of proxies.nginx and proxies.caddy."""
    assert gateway.port is not None
    assert upstream.port is not None
    return Ports(authgate_port=gateway.port, upstream_port=upstream.port)


@pytest.fixture(params=["nginx", "caddy"])
async def proxy(request: pytest.FixtureRequest, tmp_path: Path, ports: Ports) -> AsyncIterator[str]:
    """The base URL of a real proxy in front of ``upstream``, checking with ``gateway``."""
    start = proxies.nginx if request.param == "nginx" else proxies.caddy
    async with start(tmp_path / request.param, **ports) as base:
        yield base


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _seen(upstream: TestServer) -> list[dict[str, Any]]:
    return upstream.app[SEEN]


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    async with http.request(
        method, url, headers={"Host": HOST, **headers}, allow_redirects=False
    ) as response:
        return response.status, dict(response.headers), await response.text()


async def test_a_valid_token_reaches_the_upstream_with_the_identity(
    proxy: str, gateway: Client, upstream: TestServer, http: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": f"Bearer {access_token(gateway)}"}
    for method in ("GET", "POST", "DELETE"):
        status, _, _ = await _get(http, f"{proxy}/api/orders?x=1", auth, method)
        assert status == 200
    assert [(s["method"], s["path_qs"]) for s in _seen(upstream)] == [
        ("GET", "/api/orders?x=1"),
        ("POST", "/api/orders?x=1"),
        ("DELETE", "/api/orders?x=1"),
    ]
    headers = _seen(upstream)[0]["headers"]
    assert headers["X-Auth-Subject"] == "svc-1"
    assert headers["X-Auth-Scopes"] == "orders:read"
    assert headers["X-Auth-Client-Id"] == "svc-1"
    assert headers.get("X-Auth-Email", "") == ""  # a client credential has no email


async def test_spoofed_identity_headers_never_reach_the_upstream(
    proxy: str, gateway: Client, upstream: TestServer, http: aiohttp.ClientSession
) -> None:
    spoofed = dict.fromkeys(IDENTITY, "admin")
    auth = {"Authorization": f"Bearer {access_token(gateway)}"}
    assert (await _get(http, f"{proxy}/api/orders", {**spoofed, **auth}))[0] == 200
    assert (await _get(http, f"{proxy}/public/logo.png", spoofed))[0] == 200
    with_token, public = (s["headers"] for s in _seen(upstream))
    assert with_token["X-Auth-Subject"] == "svc-1"
    for name in IDENTITY:
        assert with_token.get(name) != "admin", name
        assert public.get(name, "") == "", name  # absent or empty, never the client's


async def test_a_client_cannot_describe_a_different_original_request(
    proxy: str, upstream: TestServer, http: aiohttp.ClientSession
) -> None:
    """The proxy, not the client, tells authgate which request it is checking."""
    forged = {
        "X-Original-URL": f"http://{HOST}/public/x",
        "X-Original-Method": "GET",
        "X-Forwarded-Uri": "/public/x",
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Host": HOST,
        "Accept": "application/json",
    }
    status, _, _ = await _get(http, f"{proxy}/api/orders", forged)
    assert status == 401
    assert _seen(upstream) == []


async def test_no_credentials_on_an_api_is_401_with_the_challenge(
    proxy: str, upstream: TestServer, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await _get(http, f"{proxy}/api/orders", {"Accept": "application/json"})
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer realm="authgate"')
    bad = {"Authorization": "Bearer not.a.token", "Accept": "application/json"}
    status, headers, _ = await _get(http, f"{proxy}/api/orders", bad)
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert _seen(upstream) == []


async def test_insufficient_scope_and_unmatched_routes_are_403(
    proxy: str, gateway: Client, upstream: TestServer, http: aiohttp.ClientSession
) -> None:
    weak = {"Authorization": f"Bearer {access_token(gateway, scope='other')}"}
    assert (await _get(http, f"{proxy}/api/orders", weak))[0] == 403
    strong = {"Authorization": f"Bearer {access_token(gateway)}"}
    assert (await _get(http, f"{proxy}/secret", strong))[0] == 403  # default: deny
    assert _seen(upstream) == []


async def test_the_browser_flow_signs_in_and_then_passes(
    proxy: str,
    gateway: Client,
    store: Store,
    upstream: TestServer,
    http: aiohttp.ClientSession,
) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml"}
    status, headers, _ = await _get(http, f"{proxy}/app/cart?id=3", browser)
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"http://127.0.0.1:{gateway.port}/login"
    )
    assert urllib.parse.parse_qs(location.query) == {"rd": [f"http://{HOST}/app/cart?id=3"]}
    assert _seen(upstream) == []

    user = await store.users.create(email="ada@example.com", email_verified=True)
    cookie = ids.token()
    await store.sessions.create(ids.token_hash(cookie), user.id, ttl=dt.timedelta(hours=1))
    signed_in = {**browser, "Cookie": f"authgate_session={cookie}", "X-Auth-Email": "eve@x"}
    status, _, _ = await _get(http, f"{proxy}/app/cart?id=3", signed_in)
    assert status == 200
    (seen,) = _seen(upstream)
    assert seen["path_qs"] == "/app/cart?id=3"
    assert seen["headers"]["X-Auth-Email"] == "ada@example.com"
    assert seen["headers"]["X-Auth-Subject"] == user.id


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
async def test_nginx_redirects_every_401_under_a_location_with_error_page(
    tmp_path: Path, gateway: Client, ports: Ports, http: aiohttp.ClientSession, accept: str
) -> None:
    """nginx cannot tell a browser from an API: error_page turns every 401 of its location
    into the redirect, so pages and APIs get separate locations (docs/proxies.md)."""
    async with proxies.nginx(tmp_path / "nginx", **ports) as base:
        status, headers, _ = await _get(http, f"{base}/app/x", {"Accept": accept})
    assert status == 302
    assert headers["Location"].startswith(f"http://127.0.0.1:{gateway.port}/login?rd=")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Accept": "application/json"}, 401),
        ({"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, 401),
        ({"Accept": "text/html"}, 302),
    ],
)
async def test_caddy_redirects_browsers_and_answers_401_to_apis(
    tmp_path: Path,
    ports: Ports,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
) -> None:
    async with proxies.caddy(tmp_path / "caddy", **ports) as base:
        got, _, _ = await _get(http, f"{base}/app/x", headers)
        post, _, _ = await _get(http, f"{base}/app/x", {"Accept": "text/html"}, "POST")
    assert got == status
    assert post == 303


@pytest.mark.parametrize(
    ("method", "accept", "status"),
    [("GET", "text/html", 302), ("POST", "text/html", 303), ("GET", "application/json", 401)],
)
async def test_nginx_can_let_authgate_answer_the_sign_in(
    tmp_path: Path,
    ports: Ports,
    http: aiohttp.ClientSession,
    *,
    method: str,
    accept: str,
    status: int,
) -> None:
    """The variant whose @signin asks /authz/forward: rd is escaped (nginx cannot escape
    it), and APIs under the same location get their 401."""
    async with proxies.nginx(tmp_path / "nginx", **ports, signin_by_authgate=True) as base:
        got, headers, _ = await _get(
            http, f"{base}/app/search?q=a&page=2", {"Accept": accept}, method
        )
    assert got == status
    if status != 401:
        location = urllib.parse.urlsplit(headers["Location"])
        assert location.path == "/login"
        assert urllib.parse.parse_qs(location.query) == {
            "rd": [f"http://{HOST}/app/search?q=a&page=2"]
        }
    else:
        assert headers["WWW-Authenticate"].startswith('Bearer realm="authgate"')
