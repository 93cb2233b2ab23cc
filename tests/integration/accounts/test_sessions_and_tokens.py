"""Refresh rotation, sign-out, the session list and what ends access tokens."""

from __future__ import annotations

import dataclasses
import datetime as dt

import jwt
import pytest

from authgate.gateway import app as app_mod
from authgate.identity import ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration.accounts.conftest import (
    Account,
    Client,
    Inbox,
    MakeApp,
    MakeClient,
    login,
    login_elsewhere,
    signed_up,
)


async def _me(client: Client, account: Account) -> int:
    return (await client.get("/users/me", headers=account.auth)).status


async def test_refresh_rotates_and_the_old_token_is_dead(client: Client, inbox: Inbox) -> None:
    account = await signed_up(client, inbox, "ann@example.com")
    first = account.refresh_token
    response = await client.post("/auth/refresh", json={"refresh_token": first})
    assert response.status == 200
    pair = await response.json()
    assert pair["refresh_token"] != first
    assert pair["access_token"] != account.access_token
    again = await client.post("/auth/refresh", json={"refresh_token": first})
    assert again.status == 400
    assert (await again.json())["error"] == "invalid_grant"


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "ben@example.com")
    stolen = account.refresh_token
    fresh = (await (await client.post("/auth/refresh", json={"refresh_token": stolen})).json())[
        "refresh_token"
    ]
    assert (await client.post("/auth/refresh", json={"refresh_token": stolen})).status == 400
    # The legitimate holder's newer token died with the family.
    assert (await client.post("/auth/refresh", json={"refresh_token": fresh})).status == 400
    [event] = await store.audit.query(event="refresh_token_reuse")
    assert event.actor_id == account.id


async def test_logout_ends_the_session_its_tokens_and_the_cookie(
    client: Client, inbox: Inbox
) -> None:
    account = await signed_up(client, inbox, "cat@example.com")
    assert await _me(client, account) == 200
    response = await client.post("/auth/logout", headers=account.auth)
    assert response.status == 204
    assert response.cookies["authgate_session"].value == ""
    assert await _me(client, account) == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status == 400


async def test_logout_everywhere_ends_every_session(client: Client, inbox: Inbox) -> None:
    laptop = await signed_up(client, inbox, "dan@example.com")
    phone = await login_elsewhere(client, laptop)
    assert (await client.post("/auth/logout-all", headers=phone.auth)).status == 204
    assert await _me(client, laptop) == 401
    assert await _me(client, phone) == 401


async def test_sessions_are_listed_and_one_can_be_revoked(client: Client, inbox: Inbox) -> None:
    laptop = await signed_up(client, inbox, "eve@example.com")
    phone = await login_elsewhere(client, laptop)
    listing = await (await client.get("/auth/sessions", headers=laptop.auth)).json()
    assert len(listing["sessions"]) == 2
    [current] = [s for s in listing["sessions"] if s["current"]]
    [other] = [s for s in listing["sessions"] if not s["current"]]
    assert current["ip"] == "127.0.0.1"
    assert (await client.delete(f"/auth/sessions/{other['id']}", headers=laptop.auth)).status == 204
    assert await _me(client, phone) == 401
    assert await _me(client, laptop) == 200


async def test_someone_elses_session_cannot_be_revoked(client: Client, inbox: Inbox) -> None:
    fay = await signed_up(client, inbox, "fay@example.com")
    gus = await signed_up(client, inbox, "gus@example.com")
    [gus_session] = (await (await client.get("/auth/sessions", headers=gus.auth)).json())[
        "sessions"
    ]
    for target in (gus_session["id"], "not-a-session", "0" * 36):
        response = await client.delete(f"/auth/sessions/{target}", headers=fay.auth)
        assert response.status == 404
    assert await _me(client, gus) == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer not.a.jwt", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 5000],
)
async def test_bad_bearer_tokens_get_401_with_a_challenge(client: Client, header: str) -> None:
    response = await client.get("/users/me", headers={"Authorization": header} if header else {})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="authgate"')
    assert set(await response.json()) == {"error", "error_description"}


async def test_signing_in_again_in_the_same_browser_replaces_its_session(
    client: Client, inbox: Inbox
) -> None:
    first = await signed_up(client, inbox, "hob@example.com")
    second = await login(client, Account(first.id, first.email, first.password))
    assert await _me(client, first) == 401
    assert await _me(client, second) == 200


async def test_housekeeping_deletes_what_has_expired(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "ivy@example.com")
    await client.post("/auth/forgot-password", json={"email": account.email})
    later = Store(store.db, now=lambda: store.now() + dt.timedelta(days=400))
    await app_mod.housekeep_once(later)
    assert await store.sessions.list_for_user(account.id, active_only=False) == []
    assert await store.refresh_tokens.find(ids.token_hash(account.refresh_token)) is None
    remaining = await store.db.fetchval("SELECT count(*) FROM email_tokens")
    assert remaining == 0


async def test_an_access_token_never_outlives_its_session(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp, inbox: Inbox
) -> None:
    short = dataclasses.replace(settings, session_ttl=120, access_token_ttl=900)
    client: Client = await aiohttp_client(make_app(short))
    account = await signed_up(client, inbox, "joy@example.com")
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 120
