"""``POST /auth/refresh`` is the OAuth refresh grant of the account service's own client:
a reused token revokes its family, and with it (a ``family`` revocation row) every
access token issued from the family, which the check path then refuses."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest

from authgate.gateway import liveness, tokens
from authgate.identity import ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration.accounts.conftest import (
    PASSWORD,
    Client,
    Inbox,
    MakeApp,
    MakeClient,
    signed_up,
)

POLICY = """
default: deny
routes:
  - paths: ["/app/**"]
    access: authenticated
"""
HOST = "shop.example.com"
INVALID = {"error": "invalid_grant", "error_description": "the refresh token is invalid or expired"}


@pytest.fixture
async def client(
    aiohttp_client: MakeClient,
    settings: settings_mod.Settings,
    make_app: MakeApp,
    tmp_path: Path,
) -> Client:
    """The app with a check-path policy, so a test can ask what a proxy would."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return await aiohttp_client(make_app(dataclasses.replace(settings, policy_file=policy)))


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _check(client: Client, token: str) -> int:
    """The check path's answer for a request a proxy forwards with ``token``."""
    headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    return (await client.get("/authz/envoy/app/home", headers=headers)).status


async def _check_refuses(client: Client, token: str) -> bool:
    # The check path learns of revocations from the change feed: within two seconds.
    for _ in range(40):
        if await _check(client, token) == 401:
            return True
        await asyncio.sleep(0.05)
    return False


async def _refresh(client: Client, token: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = await client.post("/auth/refresh", json={"refresh_token": token})
    return response.status, await response.json(), dict(response.headers)


async def test_the_refreshed_pair_keeps_the_account_api_shape(client: Client, inbox: Inbox) -> None:
    account = await signed_up(client, inbox, "ann@example.com")
    status, pair, headers = await _refresh(client, account.refresh_token)
    assert status == 200
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "Bearer"
    assert headers["Cache-Control"] == "no-store"
    before, after = _claims(account.access_token), _claims(pair["access_token"])
    assert after["client_id"] == before["client_id"] == tokens.FIRST_PARTY_CLIENT_ID
    assert after["sid"] == before["sid"]
    # Both name the family they came from, the login's token too.
    assert after["fam"] == before["fam"]
    assert after["aud"] == before["aud"]
    assert after["scope"] == before["scope"] == ""


async def test_a_reused_refresh_token_kills_the_access_tokens_of_its_family(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "ben@example.com")
    stolen = account.refresh_token
    status, pair, _ = await _refresh(client, stolen)
    assert status == 200
    issued = [account.access_token, pair["access_token"]]
    for token in issued:
        assert await _check(client, token) == 200
    status, body, headers = await _refresh(client, stolen)
    # The account API's error, exactly: not the token endpoint's (no Pragma).
    assert (status, body) == (400, INVALID)
    assert "Pragma" not in headers
    family = _claims(pair["access_token"])["fam"]
    assert await store.revocations.get("family", family) is not None
    for token in issued:
        assert await liveness.dead_reason(store, _claims(token)) == "family_revoked"
        assert await _check_refuses(client, token)
        # The account API itself refuses them too, though their session goes on.
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status == 401
    [event] = await store.audit.query(event="refresh_token_reuse")
    assert (event.actor_id, event.target) == (account.id, family)
    assert event.details == {"client_id": tokens.FIRST_PARTY_CLIENT_ID}


async def test_signing_out_kills_the_family_by_its_revocation_row_too(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "cat@example.com")
    family = _claims(account.access_token)["fam"]
    assert (await client.post("/auth/logout", headers=account.auth)).status == 204
    assert await store.revocations.get("family", family) is not None


async def test_another_clients_refresh_token_is_refused_and_left_alone(
    client: Client, inbox: Inbox, store: Store
) -> None:
    """Before, any client's family was accepted here: a third-party app's refresh token
    became an account-API token for the user's session."""
    account = await signed_up(client, inbox, "dan@example.com")
    app_client = await store.clients.create(
        client_id="third-party", name="app", grant_types=("authorization_code", "refresh_token")
    )
    foreign = ids.token()
    await store.refresh_tokens.start_family(
        ids.token_hash(foreign),
        client_id=app_client.id,
        user_id=account.id,
        session_id=_claims(account.access_token)["sid"],
        ttl=dt.timedelta(days=1),
    )
    status, body, _ = await _refresh(client, foreign)
    assert (status, body) == (400, INVALID)
    assert await store.refresh_tokens.find(ids.token_hash(foreign)) is not None
    assert await store.audit.query(event="refresh_token_reuse") == []


async def test_a_first_party_family_without_a_session_is_refused_and_left_alone(
    client: Client, inbox: Inbox, store: Store
) -> None:
    """The token endpoint's password grant for the account service's own client starts
    a family without a session; the account API only refreshes signed-in sessions."""
    account = await signed_up(client, inbox, "eve@example.com")
    response = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": tokens.FIRST_PARTY_CLIENT_ID,
            "username": account.email,
            "password": PASSWORD,
        },
    )
    assert response.status == 200, await response.text()
    sessionless = (await response.json())["refresh_token"]
    status, body, _ = await _refresh(client, sessionless)
    assert (status, body) == (400, INVALID)
    assert await store.refresh_tokens.find(ids.token_hash(sessionless)) is not None


async def test_a_disabled_account_cannot_refresh(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "fay@example.com")
    await store.users.update(account.id, lambda u: dataclasses.replace(u, disabled=True))
    status, body, _ = await _refresh(client, account.refresh_token)
    assert (status, body) == (400, INVALID)


async def test_an_overlong_or_unknown_refresh_token_is_invalid_grant(
    client: Client, inbox: Inbox
) -> None:
    for token in ("x" * 129, ids.token()):
        status, body, _ = await _refresh(client, token)
        assert (status, body) == (400, INVALID)
