"""The check engine's caches hold nothing CPython's cyclic collector keeps tracking: a
full cache must cost a full collection nothing, or each one pauses every check for as
long as it takes to walk 100,000-odd entries."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authgate.gateway import appkeys
from authgate.gateway.check import engine as engine_mod
from authgate.gateway.check import http as check_http
from authgate.identity import ids
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


def _bearer(client: Client, subject: str) -> dict[str, str]:
    token = access_token(
        client,
        subject=subject,
        client_id=subject,  # a client's own token: its roles claim is taken as issued
        audience=[client.app[appkeys.SETTINGS].issuer, "https://other.example.com"],
        org="org-1",
        roles=["reader", "writer"],
        amr=["pwd", "otp"],
    )
    return bearer(token)


def _entries(engine: engine_mod.Engine) -> Iterator[tuple[str, Any]]:
    for name in ("_tokens", "_sessions", "_emails", "_memberships", "_decisions"):
        for key, value in getattr(engine, name).items():
            yield f"{name} key", key
            yield f"{name} value", value


async def _checks(client: Client, store: Store) -> None:
    for subject in ("svc-1", "svc-2"):
        headers = _bearer(client, subject)
        for path in ("/api/orders", "/api/orders?scopes=orders:read", "/app/home"):
            for _ in range(2):  # a miss, then a hit
                assert (await client.get(f"/authz/envoy{path}", headers=headers)).status == 200
    user = await store.users.create(email="ada@example.com", email_verified=True)
    cookie = ids.token()
    await store.sessions.create(ids.token_hash(cookie), user.id, ttl=dt.timedelta(hours=1))
    headers = {"Host": HOST, "Cookie": f"authgate_session={cookie}"}
    for _ in range(2):
        assert (await client.get("/authz/envoy/app/home", headers=headers)).status == 200
        assert (await client.get("/authz/envoy/api/orders", headers=headers)).status == 403


async def test_no_cache_entry_stays_tracked_by_the_collector(client: Client, store: Store) -> None:
    await _checks(client, store)
    engine = client.app[check_http.ENGINE]
    # A collection untracks one level of nested tuples; the young and the middle
    # generation's meet an entry before the oldest would, a full one then untracks the
    # last level of a session's answer.
    for _ in range(3):
        gc.collect()
    entries = list(_entries(engine))
    kinds = {where for where, _ in entries}
    assert {"_tokens value", "_sessions value", "_decisions key", "_decisions value"} <= kinds
    assert len(engine._decisions) == 8  # two tokens x three routes, a session x two
    tracked = [(where, entry) for where, entry in entries if gc.is_tracked(entry)]
    assert tracked == []


async def test_a_hit_whose_answer_fell_out_of_the_table_gives_the_same_answer(
    client: Client, store: Store
) -> None:
    headers = _bearer(client, "svc-1")
    first = await client.get("/authz/envoy/api/orders", headers=headers)
    engine = client.app[check_http.ENGINE]
    engine._answers.clear()
    again = await client.get("/authz/envoy/api/orders", headers=headers)
    assert engine._decisions.hits == 1
    assert again.status == first.status == 200
    names = client.app[appkeys.SETTINGS].identity_headers
    assert [again.headers[name] for name in names] == [first.headers[name] for name in names]
    assert first.headers[names[3]] == "reader,writer"  # roles, in the identity headers
