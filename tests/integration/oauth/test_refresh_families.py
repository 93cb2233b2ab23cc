"""Refresh families at the token and revocation endpoints: whoever revokes one, the
store writes its ``family`` revocation row, and the access tokens of the family die."""

from __future__ import annotations

import urllib.parse
from typing import Any

import jwt

from authgate.gateway import appkeys, tokens
from authgate.identity.store import Store
from tests.integration.oauth import flows
from tests.integration.oauth.conftest import Client, basic, register

REDIRECT = "https://app.example.com/callback"


async def _web_client(client: Client, name: str) -> tuple[str, dict[str, str]]:
    registered, secret = await register(
        client,
        name=name,
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[REDIRECT],
        scopes=["orders:read"],
    )
    assert secret is not None
    return registered.id, basic(registered.id, secret)


async def _tokens(client: Client, client_id: str, auth: dict[str, str]) -> dict[str, Any]:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT}
    location = await flows.authorize(client, "/oauth2/authorize?" + urllib.parse.urlencode(query))
    code = flows.query_of(location)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    response = await client.post("/oauth2/token", data=form, headers=auth)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _refresh(client: Client, token: str, auth: dict[str, str]) -> int:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return (await client.post("/oauth2/token", data=form, headers=auth)).status


def _family(access_token: str) -> str:
    family: str = jwt.decode(access_token, options={"verify_signature": False})["fam"]
    return family


async def test_reuse_writes_the_family_row_through_the_store(client: Client) -> None:
    store: Store = client.app[appkeys.STORE]
    web, auth = await _web_client(client, "web")
    await flows.sign_in_browser(client, "ada@example.com")
    first = await _tokens(client, web, auth)
    family = _family(first["access_token"])
    assert await _refresh(client, first["refresh_token"], auth) == 200
    assert await store.revocations.get("family", family) is None
    assert await _refresh(client, first["refresh_token"], auth) == 400
    row = await store.revocations.get("family", family)
    assert row is not None
    keys = [c.key for c in await store.changes.since(0) if c.topic == "revocations"]
    assert keys.count(f"family:{family}") == 1


async def test_a_rotated_token_presented_by_another_client_still_revokes_its_family(
    client: Client,
) -> None:
    """A rotated token turning up anywhere has leaked; the store revokes its family
    whoever presents it, and now the revocation is audited and reaches the family's
    access tokens too."""
    store: Store = client.app[appkeys.STORE]
    web, web_auth = await _web_client(client, "web")
    other, other_auth = await _web_client(client, "other")
    await flows.sign_in_browser(client, "bob@example.com")
    first = await _tokens(client, web, web_auth)
    assert await _refresh(client, first["refresh_token"], web_auth) == 200
    assert await _refresh(client, first["refresh_token"], other_auth) == 400
    family = _family(first["access_token"])
    assert await store.revocations.get("family", family) is not None
    [event] = await store.audit.query(event="refresh_token_reuse")
    assert event.target == family
    assert event.details == {"client_id": other, "family_client_id": web}


async def test_another_clients_live_token_is_refused_and_left_alone(client: Client) -> None:
    store: Store = client.app[appkeys.STORE]
    web, web_auth = await _web_client(client, "web")
    _, other_auth = await _web_client(client, "other")
    await flows.sign_in_browser(client, "cat@example.com")
    first = await _tokens(client, web, web_auth)
    assert await _refresh(client, first["refresh_token"], other_auth) == 400
    assert await store.revocations.active() == []
    assert await _refresh(client, first["refresh_token"], web_auth) == 200


async def test_rfc7009_revocation_writes_the_family_row_through_the_store(
    client: Client,
) -> None:
    store: Store = client.app[appkeys.STORE]
    web, auth = await _web_client(client, "web")
    await flows.sign_in_browser(client, "dan@example.com")
    first = await _tokens(client, web, auth)
    response = await client.post(
        "/oauth2/revoke", data={"token": first["refresh_token"]}, headers=auth
    )
    assert response.status == 200
    row = await store.revocations.get("family", _family(first["access_token"]))
    assert row is not None
    settings = client.app[appkeys.SETTINGS]
    lifetime = (row.expires_at - row.revoked_at).total_seconds()
    assert lifetime == settings.max_token_lifetime + tokens.LEEWAY
    introspected = await client.post(
        "/oauth2/introspect", data={"token": first["access_token"]}, headers=auth
    )
    assert (await introspected.json()) == {"active": False}
