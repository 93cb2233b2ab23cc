"""The HTTP adapters of the check path through the real app, on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest

from authgate.gateway import appkeys, tokens
from authgate.gateway.check import http as check_http
from authgate.identity import domain, ids
from authgate.identity.store import Store
from tests.integration.check.common import (
    HOST,
    IDENTITY,
    Client,
    MakeClient,
    access_token,
    bearer,
    gateway_client,
)


@pytest.fixture
async def client(aiohttp_client: MakeClient, tmp_path: Path, store: Store) -> Client:
    return await gateway_client(aiohttp_client, tmp_path, store)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_envoy_allows_with_exactly_200_and_identity_headers(
    client: Client, method: str
) -> None:
    response = await client.request(
        method, "/authz/envoy/api/orders?x=1", headers=bearer(access_token(client))
    )
    assert response.status == 200
    assert response.headers["X-Auth-Subject"] == "svc-1"
    assert response.headers["X-Auth-Scopes"] == "orders:read"
    assert response.headers["X-Auth-Client-Id"] == "svc-1"


async def test_envoy_denies_without_credentials_with_a_challenge(client: Client) -> None:
    response = await client.get("/authz/envoy/api/orders", headers={"Host": HOST})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    assert set(await response.json()) == {"error", "error_description"}


async def test_a_bad_token_is_invalid_token_and_a_weak_one_insufficient_scope(
    client: Client,
) -> None:
    bad = await client.get("/authz/envoy/api/orders", headers=bearer("not.a.token"))
    assert bad.status == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    weak = await client.get(
        "/authz/envoy/api/orders", headers=bearer(access_token(client, scope="other"))
    )
    assert weak.status == 403
    assert 'error="insufficient_scope"' in weak.headers["WWW-Authenticate"]
    body = await weak.text()
    assert "policy" not in body  # the reason is for logs and metrics only


async def test_public_routes_pass_and_unmatched_routes_use_the_default(client: Client) -> None:
    public = await client.get("/authz/envoy/public/logo.png", headers={"Host": HOST})
    assert public.status == 200
    unmatched = await client.get("/authz/envoy/secret", headers=bearer(access_token(client)))
    assert unmatched.status == 403
    climbing = await client.get("/authz/envoy/public/../api/orders", headers={"Host": HOST})
    assert climbing.status in {401, 403}


async def test_spoofed_identity_headers_are_always_overwritten(client: Client) -> None:
    spoofed = dict.fromkeys(IDENTITY, "admin")
    response = await client.get("/authz/envoy/public/x", headers={"Host": HOST, **spoofed})
    assert response.status == 200
    for name in IDENTITY:
        assert response.headers[name] == ""  # sent, and empty: the proxy overwrites


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Original-URL": f"https://{HOST}/public/a"}, 200),
        ({"X-Original-URL": f"https://{HOST}/api/orders"}, 401),
        ({"X-Original-URL": f"https://{HOST}/nowhere"}, 403),  # default: deny
        ({}, 403),
        ({"X-Original-URL": "garbage"}, 403),
        ({"X-Original-URL": f"https://{HOST}/a", "X-Original-Method": "BREW"}, 403),
    ],
)
async def test_nginx_only_ever_answers_200_401_or_403(
    client: Client, headers: dict[str, str], status: int
) -> None:
    response = await client.get("/authz/nginx", headers=headers)
    assert response.status == status


async def test_nginx_per_route_requirements_only_add(client: Client) -> None:
    headers = {"X-Original-URL": f"https://{HOST}/api/orders", **bearer(access_token(client))}
    assert (await client.get("/authz/nginx", headers=headers)).status == 200
    stricter = await client.get("/authz/nginx?scopes=orders:write", headers=headers)
    assert stricter.status == 403
    public = {"X-Original-URL": f"https://{HOST}/public/a"}
    assert (await client.get("/authz/nginx?roles=admin", headers=public)).status == 401


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {"Accept": "text/html"}, 302),
        ("HEAD", {"Accept": "text/html"}, 302),
        ("POST", {"Accept": "text/html"}, 303),
        ("GET", {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, 401),
        ("GET", {"Accept": "application/json"}, 401),
    ],
)
async def test_forward_sends_browsers_to_sign_in_and_apis_get_401(
    client: Client, method: str, headers: dict[str, str], status: int
) -> None:
    forwarded = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": HOST,
        "X-Forwarded-Uri": "/app/cart?id=3",
    }
    response = await client.get(
        "/authz/forward", headers={**forwarded, **headers}, allow_redirects=False
    )
    assert response.status == status
    if status in {302, 303}:
        assert response.headers["Location"] == (
            "http://127.0.0.1:8080/login?rd=https%3A%2F%2Fshop.example.com%2Fapp%2Fcart%3Fid%3D3"
        )


async def test_the_session_cookie_passes_with_the_users_email(client: Client, store: Store) -> None:
    user = await store.users.create(email="ada@example.com", email_verified=True)
    cookie = ids.token()
    await store.sessions.create(ids.token_hash(cookie), user.id, ttl=dt.timedelta(hours=1))
    headers = {"Host": HOST, "Cookie": f"authgate_session={cookie}"}
    response = await client.get("/authz/envoy/app/home", headers=headers)
    assert response.status == 200
    assert response.headers["X-Auth-Email"] == "ada@example.com"
    assert response.headers["X-Auth-Subject"] == user.id


async def test_a_revocation_is_enforced_within_two_seconds(client: Client, store: Store) -> None:
    token = access_token(client)
    claims = tokens.verify_access_token(
        token, client.app[appkeys.KEYS].ring, client.app[appkeys.SETTINGS], store.now()
    )
    assert (await client.get("/authz/envoy/api/x", headers=bearer(token))).status == 200
    await store.revocations.revoke(
        "jti", claims["jti"], revoked_at=store.now(), expires_at=store.now() + dt.timedelta(hours=1)
    )
    status = 200
    for _ in range(40):  # the requirement: every replica within 2 s
        await asyncio.sleep(0.05)
        status = (await client.get("/authz/envoy/api/x", headers=bearer(token))).status
        if status == 401:
            break
    assert status == 401
    # The feed reports how long changes took to arrive: all of them within two seconds.
    text = await (await client.get("/metrics")).text()
    count = re.search(r"^authgate_feed_delay_seconds_count (\S+)$", text, re.M)
    within = re.search(r'^authgate_feed_delay_seconds_bucket\{le="2.0"\} (\S+)$', text, re.M)
    assert count is not None
    assert within is not None
    assert float(count[1]) >= 1
    assert float(within[1]) == float(count[1])


async def test_role_route_rules_from_the_store_are_enforced(client: Client, store: Store) -> None:
    org = await store.orgs.create(slug="acme", display_name="Acme")
    analyst = await store.roles.create(
        org.id, "analyst", route_rules=(domain.RouteRule(paths=("/reports/**",)),)
    )
    viewer = await store.roles.create(org.id, "viewer")
    subjects = []
    for email, role in (("ada@example.com", analyst), ("bob@example.com", viewer)):
        user = await store.users.create(email=email, email_verified=True)
        await store.orgs.add_member(org.id, user.id)
        await store.orgs.grant_role(org.id, user.id, role.id)
        subjects.append(user.id)
    allowed = access_token(client, subject=subjects[0], org=org.id, roles=["analyst"])
    others = access_token(client, subject=subjects[1], org=org.id, roles=["viewer"])
    for _ in range(40):
        await asyncio.sleep(0.05)
        if (await client.get("/authz/envoy/reports/q3", headers=bearer(allowed))).status == 200:
            break
    assert (await client.get("/authz/envoy/reports/q3", headers=bearer(allowed))).status == 200
    assert (await client.get("/authz/envoy/reports/q3", headers=bearer(others))).status == 403


async def test_the_policy_ends_as_the_last_role_change_left_it(
    client: Client, store: Store
) -> None:
    """Changes in a burst: whatever order rebuilds run in, the last one must start after
    the last change, so a removed route rule never stays open."""
    org = await store.orgs.create(slug="acme", display_name="Acme")
    created = [
        await store.roles.create(
            org.id, f"r{n}", route_rules=(domain.RouteRule(paths=(f"/r{n}/**",)),)
        )
        for n in range(12)
    ]
    for role in created:
        await store.roles.delete(role.id)
    engine = client.app[check_http.ENGINE]
    for _ in range(60):
        await asyncio.sleep(0.05)
        if all(not engine.policy.requirement(HOST, f"/r{n}/x", "GET").matched for n in range(12)):
            break
    for n in range(12):
        assert not engine.policy.requirement(HOST, f"/r{n}/x", "GET").matched


async def test_a_tokens_roles_are_held_against_the_membership_now(
    client: Client, store: Store
) -> None:
    org = await store.orgs.create(slug="acme", display_name="Acme")
    role = await store.roles.create(
        org.id, "analyst", route_rules=(domain.RouteRule(paths=("/reports/**",)),)
    )
    user = await store.users.create(email="ada@example.com", email_verified=True)
    await store.orgs.add_member(org.id, user.id)
    await store.orgs.grant_role(org.id, user.id, role.id)
    token = access_token(client, subject=user.id, org=org.id, roles=["analyst", "forged"])

    async def status(path: str) -> tuple[int, str]:
        response = await client.get(f"/authz/envoy{path}", headers=bearer(token))
        return response.status, response.headers.get("X-Auth-Roles", "")

    for _ in range(40):  # the role's route rule arrives through the feed
        if (await status("/reports/q3"))[0] == 200:
            break
        await asyncio.sleep(0.05)
    assert await status("/reports/q3") == (200, "analyst")  # held now, and in the token

    await store.orgs.revoke_role(org.id, user.id, role.id)
    for _ in range(40):
        if (await status("/reports/q3"))[0] != 200:
            break
        await asyncio.sleep(0.05)
    assert await status("/reports/q3") == (403, "")
    assert await status("/app/home") == (200, "")  # still signed in, without the role

    await store.orgs.remove_member(org.id, user.id)
    for _ in range(40):
        if (await status("/app/home"))[0] != 200:
            break
        await asyncio.sleep(0.05)
    assert (await status("/app/home"))[0] == 401  # the organization it names is not its own


async def test_a_token_naming_an_unknown_user_or_organization_is_refused(client: Client) -> None:
    for subject, org in (("not-a-uuid", "acme"), (ids.uuid7(), ids.uuid7())):
        token = access_token(client, subject=subject, org=org, roles=["admin"])
        response = await client.get("/authz/envoy/app/home", headers=bearer(token))
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_checks_are_counted_by_adapter_result_and_reason(client: Client) -> None:
    await client.get("/authz/envoy/api/orders", headers={"Host": HOST})
    text = await (await client.get("/metrics")).text()
    assert (
        'authgate_checks_total{adapter="envoy",reason="no_credentials",result="deny"} 1.0' in text
    )
