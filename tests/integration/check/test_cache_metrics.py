"""The check engine's caches: their hit ratio on /metrics, and that a cached decision
never outlives what it was decided on (policy, identity data, revocation)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest

from authgate.gateway import policy as policy_mod
from authgate.gateway.check import http as check_http
from authgate.identity import domain, ids
from authgate.identity.store import Store
from tests.integration.check.common import (
    HOST,
    Client,
    MakeClient,
    access_token,
    bearer,
    gateway_client,
)


@pytest.fixture
async def client(aiohttp_client: MakeClient, tmp_path: Path, store: Store) -> Client:
    return await gateway_client(aiohttp_client, tmp_path, store)


async def _counts(client: Client) -> dict[tuple[str, str], float]:
    text = await (await client.get("/metrics")).text()
    found = re.findall(r'^authgate_check_cache_(\w+)\{cache="(\w+)"\} ([\d.e+]+)$', text, re.M)
    return {(kind, cache): float(value) for kind, cache, value in found}


async def test_cache_hits_and_misses_are_on_metrics_and_move(client: Client) -> None:
    before = await _counts(client)
    for cache in ("token", "session", "decision"):
        assert before[("hits_total", cache)] == 0
        assert before[("misses_total", cache)] == 0
    headers = bearer(access_token(client))
    for _ in range(3):
        assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    after = await _counts(client)
    assert after[("misses_total", "decision")] == 1
    assert after[("hits_total", "decision")] == 2
    assert after[("misses_total", "token")] == 1  # verified once
    assert after[("entries", "decision")] == 1
    # Another route with the same token: a decision miss, a token-cache hit.
    assert (await client.get("/authz/envoy/api/other", headers=headers)).status == 200
    last = await _counts(client)
    assert last[("misses_total", "decision")] == 2
    assert last[("hits_total", "token")] == 1


async def test_a_policy_change_drops_cached_allows(client: Client) -> None:
    headers = bearer(access_token(client))
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    client.app[check_http.ENGINE].policy = policy_mod.Policy(default="deny")
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 403


async def test_a_decision_worked_out_across_a_policy_change_is_not_kept(client: Client) -> None:
    """The policy is read before the awaits of authentication; if it changes meanwhile
    the answer in flight is the old policy's, but it must not be cached."""
    engine = client.app[check_http.ENGINE]
    email = engine._email

    async def email_while_the_policy_changes(user_id: str) -> str:
        engine.policy = policy_mod.Policy(default="deny")
        return await email(user_id)

    engine._email = email_while_the_policy_changes  # type: ignore[method-assign]
    # A user's token: its email is looked up.
    headers = bearer(access_token(client, subject="user-1"))
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 403


async def test_identity_changes_drop_cached_decisions(client: Client) -> None:
    engine = client.app[check_http.ENGINE]
    headers = bearer(access_token(client))
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    assert engine.cache_stats()["decision"].size == 1
    engine.forget(domain.Change(id=1, topic="users", key="u", created_at=dt.datetime.now(dt.UTC)))
    assert engine.cache_stats()["decision"].size == 0


async def test_a_bearer_decision_is_not_one_for_the_same_string_as_a_cookie(
    client: Client,
) -> None:
    headers = bearer(access_token(client))
    assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 200
    token = headers["Authorization"].removeprefix("Bearer ")
    as_cookie = {"Host": HOST, "Cookie": f"authgate_session={token}"}
    assert (await client.get("/authz/envoy/api/orders", headers=as_cookie)).status == 401


async def test_a_cached_session_decision_ends_with_the_session(
    client: Client, store: Store
) -> None:
    user = await store.users.create(email="ada@example.com", email_verified=True)
    cookie = ids.token()
    session = await store.sessions.create(
        ids.token_hash(cookie), user.id, ttl=dt.timedelta(hours=1)
    )
    headers = {"Host": HOST, "Cookie": f"authgate_session={cookie}"}
    assert (await client.get("/authz/envoy/app/home", headers=headers)).status == 200
    assert (await client.get("/authz/envoy/app/home", headers=headers)).status == 200
    await store.revocations.revoke(
        "session",
        session.id,
        revoked_at=store.now(),
        expires_at=store.now() + dt.timedelta(hours=1),
    )
    status = 200
    for _ in range(40):  # the feed's requirement: within 2 s
        await asyncio.sleep(0.05)
        status = (await client.get("/authz/envoy/app/home", headers=headers)).status
        if status == 401:
            break
    assert status == 401
