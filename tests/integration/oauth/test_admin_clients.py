"""``/admin/clients``: registration, reading, changing, deleting and rotating secrets
of OAuth clients over HTTP, on both backends, with bad input for every endpoint."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from authgate.gateway import appkeys, tokens
from authgate.identity import domain
from tests.integration.oauth.conftest import Client, authenticate, basic, key_pair

WEB_APP = {
    "name": "Web app",
    "grant_types": ["authorization_code", "refresh_token"],
    "redirect_uris": ["https://app.example.com/callback"],
    "scopes": ["openid", "email"],
}
ENDPOINTS = [
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients"),
    ("GET", "/admin/clients/some-client"),
    ("PATCH", "/admin/clients/some-client"),
    ("DELETE", "/admin/clients/some-client"),
    ("POST", "/admin/clients/some-client/secret"),
]


async def _create(client: Client, admin: dict[str, str], **metadata: Any) -> dict[str, Any]:
    response = await client.post("/admin/clients", json=metadata or WEB_APP, headers=admin)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _events(client: Client, event: str) -> list[domain.AuditEvent]:
    return await client.app[appkeys.STORE].audit.query(event=event, limit=100)


# --- who may ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_a_signed_in_administrator(
    client: Client, user: dict[str, str], method: str, path: str
) -> None:
    anonymous = await client.request(method, path, json={})
    assert anonymous.status == 401
    assert "WWW-Authenticate" in anonymous.headers
    not_admin = await client.request(method, path, json={}, headers=user)
    assert not_admin.status == 403
    assert (await not_admin.json())["error"] == "forbidden"


# --- create -------------------------------------------------------------------------


async def test_a_confidential_client_gets_its_secret_once_and_only_its_hash_is_kept(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin)
    secret = created.pop("client_secret")
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    assert created["public"] is False
    stored = await client.app[appkeys.STORE].clients.secret_hash(created["client_id"])
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    shown = await client.get(f"/admin/clients/{created['client_id']}", headers=admin)
    assert await shown.json() == created
    text = await shown.text() + await (await client.get("/admin/clients", headers=admin)).text()
    assert secret not in text
    assert stored not in text
    assert "secret" not in created
    status, body, _ = await authenticate(client, {}, basic(created["client_id"], secret))
    assert (status, body) == (200, {"client_id": created["client_id"]})


async def test_creation_answers_201_with_a_location(client: Client, admin: dict[str, str]) -> None:
    response = await client.post("/admin/clients", json=WEB_APP, headers=admin)
    assert response.status == 201
    body = await response.json()
    assert response.headers["Location"] == f"/admin/clients/{body['client_id']}"
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_public_client_has_no_secret(client: Client, admin: dict[str, str]) -> None:
    created = await _create(
        client,
        admin,
        name="SPA",
        public=True,
        redirect_uris=["http://127.0.0.1:5173/cb", "com.example.app:/oauth2redirect"],
    )
    assert "client_secret" not in created
    assert (created["public"], created["token_endpoint_auth_method"]) == (True, "none")
    assert created["grant_types"] == ["authorization_code"]
    assert await client.app[appkeys.STORE].clients.secret_hash(created["client_id"]) is None


async def test_a_private_key_jwt_client_has_keys_and_no_secret(
    client: Client, admin: dict[str, str]
) -> None:
    keys = key_pair("ES256")
    created = await _create(
        client,
        admin,
        name="Signer",
        grant_types=["client_credentials"],
        token_endpoint_auth_method="private_key_jwt",
        jwks=keys.jwks,
    )
    assert "client_secret" not in created
    assert created["jwks"] == keys.jwks


async def test_a_chosen_client_id_is_kept_and_a_taken_one_is_a_conflict(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin, **WEB_APP, client_id="web-app")
    assert created["client_id"] == "web-app"
    again = await client.post(
        "/admin/clients", json={**WEB_APP, "client_id": "web-app"}, headers=admin
    )
    assert again.status == 409
    assert (await again.json())["error"] == "conflict"


async def test_every_field_round_trips(client: Client, admin: dict[str, str]) -> None:
    metadata = {
        "client_id": "full",
        "name": "Everything",
        "grant_types": ["authorization_code", "refresh_token", "password"],
        "redirect_uris": ["https://app.example.com/cb?tenant=1"],
        "post_logout_redirect_uris": ["https://app.example.com/"],
        "scopes": ["openid", "profile", "api:read"],
        "audience": ["https://api.example.com", "orders"],
        "token_endpoint_auth_method": "client_secret_post",
        "access_token_ttl": 300,
        "refresh_token_ttl": 86400 * 30,
        "id_token_ttl": 600,
        "trusted": True,
    }
    created = await _create(client, admin, **metadata)
    created.pop("client_secret")
    for name, value in metadata.items():
        assert created[name] == value, name
    assert created["managed_by"] is None
    assert created["version"] == 1


async def test_creation_is_audited_without_the_secret(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin)
    [event] = await _events(client, "client_create")
    assert (event.target, event.outcome) == (created["client_id"], "success")
    assert created["client_secret"] not in str(event.details)


META, URI = "invalid_client_metadata", "invalid_redirect_uri"
KEYED = {"token_endpoint_auth_method": "private_key_jwt"}


def _bad(error: str, **fields: Any) -> tuple[dict[str, Any], str]:
    """A registration (named ``svc`` unless it says otherwise) and the error it gets."""
    return {"name": "svc", **fields}, error


BAD_METADATA = [
    ({"grant_types": ["client_credentials"]}, META),  # no name
    _bad(META, name=""),
    _bad(META, name=42),
    _bad(META, name="x" * 201),
    _bad(META, name="a\x00b"),
    _bad(META, color="blue"),
    _bad(META, grant_types=["implicit"]),
    _bad(META, grant_types=[]),
    _bad(META, grant_types="client_credentials"),
    _bad(META, grant_types=["refresh_token"]),
    _bad(META, grant_types=["client_credentials", "refresh_token"]),
    _bad(URI, grant_types=["authorization_code"]),
    _bad(URI, redirect_uris=["http://app.example.com/cb"]),
    _bad(URI, redirect_uris=["https://app.example.com/cb#frag"]),
    _bad(URI, redirect_uris=["/relative/cb"]),
    _bad(URI, redirect_uris=["javascript:alert(1)"]),
    _bad(URI, redirect_uris=["https://*.example.com/cb"]),
    _bad(URI, redirect_uris=["https://good.example@evil.example/cb"]),
    _bad(URI, redirect_uris=["https://app.example.com:99999/cb"]),
    _bad(URI, redirect_uris=["com.example.app://host/cb"]),
    _bad(META, redirect_uris=[7]),
    _bad(META, redirect_uris=["https://x.example/" + "a" * 3000]),
    _bad(META, scopes=["has space"]),
    _bad(META, scopes=['quo"te']),
    _bad(META, scopes=["caf\u00e9"]),
    _bad(META, scopes="openid email"),
    _bad(META, audience=["two words"]),
    _bad(META, audience=[""]),
    _bad(META, token_endpoint_auth_method="client_secret_jwt"),
    _bad(META, public=True, token_endpoint_auth_method="client_secret_basic"),
    _bad(META, public="yes"),
    _bad(META, trusted=1),
    _bad(META, public=True, grant_types=["client_credentials"]),
    _bad(META, public=True, grant_types=["password"]),
    _bad(
        META,
        public=True,
        redirect_uris=["https://a.example/cb"],
        grant_types=["authorization_code", "password"],
    ),
    _bad(META, access_token_ttl=0),
    _bad(META, access_token_ttl=-5),
    _bad(META, access_token_ttl=86401),
    _bad(META, id_token_ttl=10**12),
    _bad(META, refresh_token_ttl=2**40),
    _bad(META, access_token_ttl=1.5),
    _bad(META, access_token_ttl=True),
    _bad(META, access_token_ttl="300"),
    _bad(META, client_id="authgate"),
    _bad(META, client_id="has/slash"),
    _bad(META, client_id="x" * 256),
    _bad(META, client_id=5),
    _bad(META, **KEYED),
    _bad(META, jwks_uri="https://keys.example/jwks"),
    _bad(META, **KEYED, jwks_uri="http://keys.example/jwks"),
    _bad(META, **KEYED, jwks_uri="https://keys.example/jwks", jwks={"keys": []}),
    _bad(META, **KEYED, jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
    _bad(META, **KEYED, jwks={"keys": []}),
    _bad(META, **KEYED, jwks=[1, 2]),
]


@pytest.mark.parametrize(("body", "error"), BAD_METADATA)
async def test_metadata_that_breaks_a_rule_is_refused_and_nothing_is_written(
    client: Client, admin: dict[str, str], body: dict[str, Any], error: str
) -> None:
    before = await client.app[appkeys.STORE].clients.list()
    response = await client.post("/admin/clients", json=body, headers=admin)
    assert response.status == 400, await response.text()
    payload = await response.json()
    assert set(payload) == {"error", "error_description"}
    assert payload["error"] == error
    assert await client.app[appkeys.STORE].clients.list() == before


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"name=svc", "application/x-www-form-urlencoded", 415),
        (b"\xff\xfe", "application/json", 400),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused(
    client: Client, admin: dict[str, str], data: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/admin/clients", data=data, headers={**admin, "Content-Type": content_type}
    )
    assert response.status == status
    assert set(await response.json()) == {"error", "error_description"}


# --- list and read ------------------------------------------------------------------


async def test_listing_pages_through_every_client_by_client_id(
    client: Client, admin: dict[str, str]
) -> None:
    for client_id in ["c", "a", "B", "d", "b"]:
        await _create(client, admin, name=client_id, client_id=client_id)
    seen: list[str] = []
    after = None
    while True:
        query = {"limit": "2", **({"after": after} if after else {})}
        response = await client.get("/admin/clients", params=query, headers=admin)
        assert response.status == 200
        page = await response.json()
        seen += [c["client_id"] for c in page["clients"]]
        after = page["next"]
        if after is None:
            break
        assert len(page["clients"]) == 2
    # The account service's own client is listed too (it is read-only, not hidden).
    assert seen == sorted(["a", "B", "b", "c", "d", tokens.FIRST_PARTY_CLIENT_ID])


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"after": "x" * 256}]
)
async def test_bad_paging_parameters_are_refused(
    client: Client, admin: dict[str, str], query: dict[str, str]
) -> None:
    response = await client.get("/admin/clients", params=query, headers=admin)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_an_unknown_client_is_404(client: Client, admin: dict[str, str], method: str) -> None:
    for client_id in ["nobody", "x" * 300]:
        response = await client.request(
            method, f"/admin/clients/{client_id}", json={"name": "x"}, headers=admin
        )
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    rotate = await client.post("/admin/clients/nobody/secret", headers=admin)
    assert rotate.status == 404


# --- change -------------------------------------------------------------------------


async def test_patch_changes_only_what_it_names_and_bumps_the_version(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin)
    response = await client.patch(
        f"/admin/clients/{created['client_id']}",
        json={"name": "Renamed", "scopes": ["openid"], "access_token_ttl": 120},
        headers=admin,
    )
    assert response.status == 200, await response.text()
    changed = await response.json()
    assert (changed["name"], changed["scopes"], changed["access_token_ttl"]) == (
        "Renamed",
        ["openid"],
        120,
    )
    assert changed["redirect_uris"] == created["redirect_uris"]
    assert changed["version"] == 2
    assert "client_secret" not in changed
    [event] = await _events(client, "client_update")
    assert event.details["fields"] == ["access_token_ttl", "name", "scopes"]


async def test_patch_with_null_resets_a_field(client: Client, admin: dict[str, str]) -> None:
    created = await _create(client, admin, **WEB_APP, access_token_ttl=60)
    response = await client.patch(
        f"/admin/clients/{created['client_id']}", json={"access_token_ttl": None}, headers=admin
    )
    assert (await response.json())["access_token_ttl"] is None


async def test_patch_checks_the_whole_result(client: Client, admin: dict[str, str]) -> None:
    created = await _create(client, admin)
    # Dropping the redirect URIs would leave authorization_code unusable.
    response = await client.patch(
        f"/admin/clients/{created['client_id']}", json={"redirect_uris": []}, headers=admin
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_redirect_uri"
    unchanged = await client.get(f"/admin/clients/{created['client_id']}", headers=admin)
    assert (await unchanged.json())["version"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "renamed"},
        {"token_endpoint_auth_method": "none"},
        {"public": True},
        {"grant_types": ["implicit"]},
        {"redirect_uris": ["http://evil.example/cb"]},
        {"color": "blue"},
        {"name": None},
    ],
)
async def test_patch_refuses_what_cannot_change(
    client: Client, admin: dict[str, str], change: dict[str, Any]
) -> None:
    created = await _create(client, admin)
    response = await client.patch(
        f"/admin/clients/{created['client_id']}", json=change, headers=admin
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] in {"invalid_client_metadata", "invalid_redirect_uri"}


async def test_moving_from_private_key_jwt_to_a_secret_issues_one(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(
        client,
        admin,
        name="Signer",
        grant_types=["client_credentials"],
        token_endpoint_auth_method="private_key_jwt",
        jwks=key_pair().jwks,
    )
    response = await client.patch(
        f"/admin/clients/{created['client_id']}",
        json={"token_endpoint_auth_method": "client_secret_post", "jwks": None},
        headers=admin,
    )
    assert response.status == 200, await response.text()
    secret = (await response.json())["client_secret"]
    form = {"client_id": created["client_id"], "client_secret": secret}
    assert (await authenticate(client, form))[0] == 200


async def test_a_client_managed_by_a_custom_resource_is_read_only(
    client: Client, admin: dict[str, str]
) -> None:
    await client.app[appkeys.STORE].clients.create(
        client_id="managed", name="Managed", owner="OAuthClient/default/managed"
    )
    shown = await client.get("/admin/clients/managed", headers=admin)
    assert (await shown.json())["managed_by"] == "OAuthClient/default/managed"
    for method, path in [
        ("PATCH", "/admin/clients/managed"),
        ("DELETE", "/admin/clients/managed"),
        ("POST", "/admin/clients/managed/secret"),
    ]:
        response = await client.request(method, path, json={"name": "x"}, headers=admin)
        assert response.status == 409, (method, path)
        assert "custom resource" in (await response.json())["error_description"]


async def test_the_account_services_own_client_cannot_be_changed_or_deleted(
    client: Client, admin: dict[str, str]
) -> None:
    path = f"/admin/clients/{tokens.FIRST_PARTY_CLIENT_ID}"
    assert (await client.get(path, headers=admin)).status == 200
    for method, target in [("PATCH", path), ("DELETE", path), ("POST", f"{path}/secret")]:
        response = await client.request(method, target, json={"name": "Mine"}, headers=admin)
        assert response.status == 409, (method, target)
        assert (await response.json())["error"] == "conflict"
    still = await client.app[appkeys.STORE].clients.get(tokens.FIRST_PARTY_CLIENT_ID)
    assert (still.name, still.version) == ("authgate account service", 1)


# --- delete -------------------------------------------------------------------------


async def test_delete_removes_the_client_and_revokes_its_tokens(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin)
    client_id = created["client_id"]
    response = await client.delete(f"/admin/clients/{client_id}", headers=admin)
    assert response.status == 204
    assert (await client.get(f"/admin/clients/{client_id}", headers=admin)).status == 404
    assert (await client.delete(f"/admin/clients/{client_id}", headers=admin)).status == 404
    store = client.app[appkeys.STORE]
    assert await store.revocations.is_revoked("client", client_id)
    status, _, _ = await authenticate(client, {}, basic(client_id, created["client_secret"]))
    assert status == 401
    [event] = await _events(client, "client_delete")
    assert event.target == client_id


# --- rotate the secret --------------------------------------------------------------


async def test_rotation_returns_a_new_secret_once_and_the_old_one_stops_working(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(client, admin)
    client_id, old = created["client_id"], created["client_secret"]
    response = await client.post(f"/admin/clients/{client_id}/secret", headers=admin)
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"client_id", "client_secret"}
    assert body["client_secret"] != old
    assert (await authenticate(client, {}, basic(client_id, old)))[0] == 401
    assert (await authenticate(client, {}, basic(client_id, body["client_secret"])))[0] == 200
    [event] = await _events(client, "client_secret_rotate")
    assert event.target == client_id
    assert body["client_secret"] not in str(event.details)


async def test_a_client_without_a_secret_has_none_to_rotate(
    client: Client, admin: dict[str, str]
) -> None:
    created = await _create(
        client, admin, name="SPA", public=True, redirect_uris=["https://spa.example/cb"]
    )
    response = await client.post(f"/admin/clients/{created['client_id']}/secret", headers=admin)
    assert response.status == 409
    assert await client.app[appkeys.STORE].clients.secret_hash(created["client_id"]) is None
