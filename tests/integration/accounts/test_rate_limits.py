"""Rate limits in memory and in Redis (real server), and failing closed without Redis."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from authgate.gateway import ratelimit
from authgate.identity import settings as settings_mod
from tests.conftest import REDIS_URL
from tests.integration.accounts.conftest import Client, MakeApp, MakeClient

LOGIN = {"login": "someone@example.com", "password": "whatever it is"}


async def test_login_is_rate_limited_per_address(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp
) -> None:
    tight = dataclasses.replace(settings, rate_limits=(("login", 2, 60),), lockout_threshold=100)
    client: Client = await aiohttp_client(make_app(tight))
    statuses = [(await client.post("/auth/login", json=LOGIN)).status for _ in range(3)]
    assert statuses == [401, 401, 429]
    limited = await client.post("/auth/login", json=LOGIN)
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json())["error"] == "too_many_requests"


async def test_the_redis_limiter_shares_one_bucket_between_replicas() -> None:
    prefix = f"authgate-test:{secrets.token_hex(4)}:"
    replicas = [ratelimit.RedisLimiter(REDIS_URL, prefix=prefix) for _ in range(2)]
    rule = ratelimit.Rule(capacity=3, period=60)
    try:
        allowed = [(await replicas[n % 2].hit("login:1.2.3.4", rule)).allowed for n in range(5)]
    finally:
        for limiter in replicas:
            await limiter.close()
    assert allowed == [True, True, True, False, False]


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register", "/auth/forgot-password"])
async def test_an_unreachable_redis_fails_closed_with_503(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp, path: str
) -> None:
    down = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    client: Client = await aiohttp_client(make_app(down))
    body = {**LOGIN, "email": "someone@example.com"}
    response = await client.post(path, json=body)
    assert response.status == 503
    payload = await response.json()
    assert payload["error"] == "temporarily_unavailable"
    assert "Redis" in payload["error_description"]


async def test_login_through_redis_works_when_it_is_up(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp
) -> None:
    with_redis = dataclasses.replace(settings, redis_url=REDIS_URL)
    client: Client = await aiohttp_client(make_app(with_redis))
    assert (await client.post("/auth/login", json=LOGIN)).status == 401
