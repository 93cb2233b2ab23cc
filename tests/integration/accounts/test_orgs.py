"""Organizations, members, roles and permission checks through the JSON API, on both
backends: who may see and change what, the invariants (the built-in admin role, never
an organization without an admin), the audit trail, and tokens naming an organization.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import jwt
import pytest

from authgate.gateway import permissions
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration.accounts.conftest import Account, Client, Inbox, login, signed_up

ORG_ADMIN = permissions.ORG_ADMIN
MISSING = "0190a0a0-0000-7000-8000-000000000000"


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    if status == 204:
        return None
    return await response.json()


async def _error(response: Any, status: int, error: str) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    description: str = body["error_description"]
    return description


async def _org(client: Client, owner: Account, slug: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"slug": slug, "display_name": slug.title(), **extra}
    created: dict[str, Any] = await _ok(
        await client.post("/orgs", json=body, headers=owner.auth), 201
    )
    return created


async def _add(client: Client, admin: Account, org: str, user: str) -> dict[str, Any]:
    added: dict[str, Any] = await _ok(
        await client.post(f"/orgs/{org}/members", json={"user": user}, headers=admin.auth), 201
    )
    return added


async def _ada_and_bob_in_acme(client: Client, inbox: Inbox) -> tuple[Account, Account]:
    """Ada, who created the organization acme (its admin), and Bob, a member of it."""
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    await _org(client, ada, "acme")
    await _add(client, ada, "acme", bob.id)
    return ada, bob


async def _grant(client: Client, admin: Account, org: str, user: str, role: str) -> Any:
    return await _ok(
        await client.post(
            f"/orgs/{org}/members/{user}/roles", json={"role": role}, headers=admin.auth
        )
    )


async def _role(
    client: Client, admin: Account, org: str, name: str, *granted: str
) -> dict[str, Any]:
    body = {"name": name, "permissions": list(granted)}
    created: dict[str, Any] = await _ok(
        await client.post(f"/orgs/{org}/roles", json=body, headers=admin.auth), 201
    )
    return created


async def _make_global_admin(store: Store, account: Account) -> None:
    await store.users.update(account.id, lambda u: dataclasses.replace(u, is_admin=True))


async def _members(client: Client, account: Account, org: str) -> dict[str, list[str]]:
    body = await _ok(await client.get(f"/orgs/{org}/members", headers=account.auth))
    return {m["email"]: m["roles"] for m in body["members"]}


# --- organizations ------------------------------------------------------------------


async def test_the_creator_of_an_organization_becomes_its_admin(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com", username="ada")
    response = await client.post(
        "/orgs",
        json={"slug": "acme", "display_name": "Acme Inc.", "email_domains": ["ACME.com."]},
        headers=ada.auth,
    )
    org = await _ok(response, 201)
    assert response.headers["Location"] == f"/orgs/{org['id']}"
    assert (org["slug"], org["display_name"], org["email_domains"]) == (
        "acme",
        "Acme Inc.",
        ["acme.com"],
    )
    assert org["managed_by"] is None
    by_id = await _ok(await client.get(f"/orgs/{org['id']}", headers=ada.auth))
    by_slug = await _ok(await client.get("/orgs/acme", headers=ada.auth))
    assert by_id == by_slug == org

    members = await _ok(await client.get("/orgs/acme/members", headers=ada.auth))
    [member] = members["members"]
    assert (member["id"], member["email"], member["username"], member["roles"]) == (
        ada.id,
        "ada@example.com",
        "ada",
        ["admin"],
    )
    roles = await _ok(await client.get("/orgs/acme/roles", headers=ada.auth))
    [admin_role] = roles["roles"]
    assert (admin_role["name"], admin_role["permissions"], admin_role["builtin"]) == (
        "admin",
        [ORG_ADMIN],
        True,
    )
    [event] = await store.audit.query(event="org_change")
    assert (event.outcome, event.actor_id, event.target) == ("created", ada.id, org["id"])


@pytest.mark.parametrize(
    "slug",
    ["a", "Acme", "-acme", "acme-", "ac me", "a" * 64, "acmé", "", MISSING, 42, None],
)
async def test_a_slug_must_be_a_dns_label_that_is_not_an_id(
    client: Client, inbox: Inbox, store: Store, slug: object
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    response = await client.post(
        "/orgs", json={"slug": slug, "display_name": "Acme"}, headers=ada.auth
    )
    await _error(response, 400, "invalid_request")
    assert await store.orgs.list() == []


async def test_a_taken_slug_is_a_conflict(client: Client, inbox: Inbox, store: Store) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    await _org(client, ada, "acme")
    response = await client.post(
        "/orgs", json={"slug": "acme", "display_name": "Other"}, headers=bob.auth
    )
    await _error(response, 409, "conflict")
    assert len(await store.orgs.list()) == 1
    assert await store.orgs.memberships_of(bob.id) == []


async def test_the_org_list_shows_a_users_organizations_a_page_at_a_time(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    for slug in ("one", "two", "three"):
        await _org(client, ada, slug)
    await _org(client, bob, "bobs")

    first = await _ok(await client.get("/orgs?limit=2", headers=ada.auth))
    assert [o["slug"] for o in first["orgs"]] == ["one", "two"]
    assert first["next"] == first["orgs"][-1]["id"]
    rest = await _ok(await client.get(f"/orgs?limit=2&after={first['next']}", headers=ada.auth))
    assert [o["slug"] for o in rest["orgs"]] == ["three"]
    assert rest["next"] is None
    assert [
        o["slug"] for o in (await _ok(await client.get("/orgs", headers=bob.auth)))["orgs"]
    ] == ["bobs"]

    await _make_global_admin(store, bob)  # a global administrator sees every organization
    seen: list[str] = []
    cursor = ""
    while True:
        body = await _ok(await client.get(f"/orgs?limit=3{cursor}", headers=bob.auth))
        seen += [o["slug"] for o in body["orgs"]]
        if body["next"] is None:
            break
        cursor = f"&after={body['next']}"
    assert seen == ["one", "two", "three", "bobs"]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "after=acme", "after="])
async def test_bad_paging_of_the_org_list_is_refused(
    client: Client, inbox: Inbox, query: str
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _error(await client.get(f"/orgs?{query}", headers=ada.auth), 400, "invalid_request")


async def test_to_a_non_member_an_organization_does_not_exist(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    eve = await signed_up(client, inbox, "eve@example.com")
    org = await _org(client, ada, "acme")
    await _role(client, ada, "acme", "reader", "orders:read")
    probes = [
        ("GET", "{}", None),
        ("PATCH", "{}", {"display_name": "Mine"}),
        ("DELETE", "{}", None),
        ("GET", "{}/members", None),
        ("POST", "{}/members", {"user": eve.id}),
        ("DELETE", "{}/members/" + ada.id, None),
        ("POST", "{}/members/" + ada.id + "/roles", {"role": "reader"}),
        ("DELETE", "{}/members/" + ada.id + "/roles/admin", None),
        ("GET", "{}/roles", None),
        ("POST", "{}/roles", {"name": "mine", "permissions": [ORG_ADMIN]}),
        ("PATCH", "{}/roles/reader", {"permissions": [ORG_ADMIN]}),
        ("DELETE", "{}/roles/reader", None),
    ]
    for method, template, body in probes:
        answers = []
        for ref in (org["id"], "acme", MISSING, "no-such-org"):
            response = await client.request(
                method, "/orgs/" + template.format(ref), json=body, headers=eve.auth
            )
            answers.append((response.status, await response.json()))
        assert all(answer == (404, answers[0][1]) for answer in answers), (method, answers)
    assert (await store.orgs.get(org["id"])).display_name == "Acme"
    assert [r.name for r in await store.roles.list(org["id"])] == ["admin", "reader"]
    assert await _members(client, ada, "acme") == {"ada@example.com": ["admin"]}


async def test_members_may_read_but_only_org_admins_change(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    carl = await signed_up(client, inbox, "carl@example.com")
    await _org(client, ada, "acme")
    await _add(client, ada, "acme", bob.email)
    assert (await _ok(await client.get("/orgs/acme", headers=bob.auth)))["slug"] == "acme"
    assert await _members(client, bob, "acme") == {"ada@example.com": ["admin"], bob.email: []}
    roles = await _ok(await client.get("/orgs/acme/roles", headers=bob.auth))
    assert [r["name"] for r in roles["roles"]] == ["admin"]

    forbidden = [
        ("PATCH", "/orgs/acme", {"display_name": "Bob's"}),
        ("DELETE", "/orgs/acme", None),
        ("POST", "/orgs/acme/members", {"user": carl.email}),
        ("DELETE", f"/orgs/acme/members/{ada.id}", None),
        ("POST", f"/orgs/acme/members/{bob.id}/roles", {"role": "admin"}),
        ("DELETE", f"/orgs/acme/members/{ada.id}/roles/admin", None),
        ("POST", "/orgs/acme/roles", {"name": "mine", "permissions": [ORG_ADMIN]}),
        ("PATCH", "/orgs/acme/roles/admin", {"description": "mine"}),
        ("DELETE", "/orgs/acme/roles/admin", None),
    ]
    for method, path, body in forbidden:
        response = await client.request(method, path, json=body, headers=bob.auth)
        await _error(response, 403, "forbidden")
    assert await _members(client, ada, "acme") == {"ada@example.com": ["admin"], bob.email: []}
    assert (await store.orgs.get_by_slug("acme")).display_name == "Acme"


async def test_a_global_admin_may_manage_an_organization_without_being_a_member(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    root = await signed_up(client, inbox, "root@example.com")
    await _org(client, ada, "acme")
    await _error(await client.get("/orgs/acme", headers=root.auth), 404, "not_found")
    await _make_global_admin(store, root)
    patched = await client.patch("/orgs/acme", json={"display_name": "ACME"}, headers=root.auth)
    assert (await _ok(patched))["display_name"] == "ACME"
    await _role(client, root, "acme", "reader", "orders:read")


async def test_an_org_admin_changes_the_organization(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    await _org(client, ada, "taken")
    response = await client.patch(
        "/orgs/acme",
        json={"slug": "acme-corp", "display_name": "Acme Corp", "email_domains": ["acme.io"]},
        headers=ada.auth,
    )
    org = await _ok(response)
    assert (org["slug"], org["display_name"], org["email_domains"]) == (
        "acme-corp",
        "Acme Corp",
        ["acme.io"],
    )
    await _error(await client.get("/orgs/acme", headers=ada.auth), 404, "not_found")
    taken = await client.patch("/orgs/acme-corp", json={"slug": "taken"}, headers=ada.auth)
    await _error(taken, 409, "conflict")
    unchanged = await _ok(await client.patch("/orgs/acme-corp", json={}, headers=ada.auth))
    assert unchanged == org
    [event] = [e for e in await store.audit.query(event="org_change") if e.outcome == "updated"]
    assert event.details["fields"] == ["display_name", "email_domains", "slug"]


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": ""},
        {"display_name": None},
        {"display_name": 7},
        {"display_name": "x" * 201},
        {"display_name": "bad\x00name"},
        {"slug": "Not A Slug"},
        {"email_domains": "acme.com"},
        {"email_domains": ["not a domain"]},
        {"email_domains": ["localhost"]},
        {"email_domains": [3]},
        {"email_domains": ["a.com"] * 51},
        {"owner": "me"},  # unknown field
        {"id": MISSING},
    ],
)
async def test_bad_org_changes_are_refused_and_change_nothing(
    client: Client, inbox: Inbox, store: Store, body: dict[str, Any]
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    before = await store.orgs.get_by_slug("acme")
    response = await client.patch("/orgs/acme", json=body, headers=ada.auth)
    await _error(response, 400, "invalid_request")
    created = await client.post(
        "/orgs", json={"slug": "other", "display_name": "Other", **body}, headers=ada.auth
    )
    await _error(created, 400, "invalid_request")
    assert await store.orgs.get_by_slug("acme") == before
    assert [o.slug for o in await store.orgs.list()] == ["acme"]


async def test_deleting_an_organization_takes_its_roles_and_memberships(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    org = await _org(client, ada, "acme")
    await _ok(await client.delete("/orgs/acme", headers=ada.auth), 204)
    await _error(await client.get(f"/orgs/{org['id']}", headers=ada.auth), 404, "not_found")
    assert await store.orgs.memberships_of(ada.id) == []
    assert (await _ok(await client.get("/orgs", headers=ada.auth)))["orgs"] == []
    [event] = [e for e in await store.audit.query(event="org_change") if e.outcome == "deleted"]
    assert (event.actor_id, event.target, event.details) == (ada.id, org["id"], {"slug": "acme"})


async def test_what_a_custom_resource_manages_is_changed_there(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    org = await _org(client, ada, "acme")
    await store.orgs.update(org["id"], lambda o: dataclasses.replace(o, owner="Organization/a/b"))
    role = await store.roles.create(org["id"], "ops", permissions=("x:y",), owner="Role/a/ops")
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", "/orgs/acme", {"display_name": "Mine"}),
        ("DELETE", "/orgs/acme", None),
        ("PATCH", "/orgs/acme/roles/ops", {"permissions": []}),
        ("DELETE", "/orgs/acme/roles/ops", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=ada.auth)
        assert "custom resource" in await _error(response, 409, "conflict")
    assert (await store.roles.get(role.id)).permissions == ("x:y",)
    assert (await store.orgs.get(org["id"])).display_name == "Acme"


# --- members ------------------------------------------------------------------------


async def test_members_are_added_by_id_email_or_user_name(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    carl = await signed_up(client, inbox, "carl@example.com", username="carl")
    dora = await signed_up(client, inbox, "dora@example.com")
    org = await _org(client, ada, "acme")
    response = await client.post("/orgs/acme/members", json={"user": bob.id}, headers=ada.auth)
    added = await _ok(response, 201)
    assert response.headers["Location"] == f"/orgs/{org['id']}/members/{bob.id}"
    assert (added["id"], added["roles"]) == (bob.id, [])
    await _add(client, ada, "acme", "CARL")
    await _add(client, ada, "acme", "Dora@Example.com")
    assert set(await _members(client, ada, "acme")) == {
        ada.email,
        bob.email,
        carl.email,
        dora.email,
    }
    again = await client.post("/orgs/acme/members", json={"user": "carl"}, headers=ada.auth)
    await _error(again, 409, "conflict")
    for unknown in ("nobody@example.com", MISSING, "nobody"):
        response = await client.post("/orgs/acme/members", json={"user": unknown}, headers=ada.auth)
        await _error(response, 404, "not_found")
    events = await store.audit.query(event="membership_change")
    assert sorted(e.target or "" for e in events) == sorted([bob.id, carl.id, dora.id])
    assert {(e.outcome, e.actor_id, e.details["org"]) for e in events} == {
        ("added", ada.id, org["id"])
    }


@pytest.mark.parametrize(
    "body", [{}, {"user": ""}, {"user": None}, {"user": 5}, {"user": ["a"]}, {"user": "a" * 255}]
)
async def test_bad_member_additions_are_refused(
    client: Client, inbox: Inbox, body: dict[str, Any]
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    response = await client.post("/orgs/acme/members", json=body, headers=ada.auth)
    await _error(response, 400, "invalid_request")
    assert await _members(client, ada, "acme") == {ada.email: ["admin"]}


async def test_the_last_org_admin_cannot_leave_or_be_demoted(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    org = await _org(client, ada, "acme")
    await _add(client, ada, "acme", bob.id)
    leave = await client.delete(f"/orgs/acme/members/{ada.id}", headers=ada.auth)
    assert "without an administrator" in await _error(leave, 409, "conflict")
    demote = await client.delete(f"/orgs/acme/members/{ada.id}/roles/admin", headers=ada.auth)
    await _error(demote, 409, "conflict")
    assert await _members(client, ada, "acme") == {ada.email: ["admin"], bob.email: []}

    await _grant(client, ada, "acme", bob.id, "admin")
    await _ok(await client.delete(f"/orgs/acme/members/{ada.id}", headers=ada.auth), 204)
    assert await _members(client, bob, "acme") == {bob.email: ["admin"]}
    await _error(await client.get("/orgs/acme", headers=ada.auth), 404, "not_found")
    [event] = [
        e for e in await store.audit.query(event="membership_change") if e.outcome != "added"
    ]
    assert (event.outcome, event.target, event.details) == ("removed", ada.id, {"org": org["id"]})


async def test_a_custom_role_cannot_take_away_the_last_admin_either(
    client: Client, inbox: Inbox
) -> None:
    """The admin count is checked after every change, whatever grants the permission."""
    ada, bob = await _ada_and_bob_in_acme(client, inbox)
    await _role(client, ada, "acme", "root", "authgate:*")
    await _grant(client, ada, "acme", bob.id, "root")
    await _ok(await client.delete(f"/orgs/acme/members/{ada.id}", headers=ada.auth), 204)
    # Bob is the last admin, through "root" alone.
    for method, path, body in [
        ("PATCH", "/orgs/acme/roles/root", {"permissions": ["orders:read"]}),
        ("DELETE", "/orgs/acme/roles/root", None),
        ("DELETE", f"/orgs/acme/members/{bob.id}/roles/root", None),
        ("DELETE", f"/orgs/acme/members/{bob.id}", None),
    ]:
        response = await client.request(method, path, json=body, headers=bob.auth)
        await _error(response, 409, "conflict")
    assert await _members(client, bob, "acme") == {bob.email: ["root"]}
    roles = await _ok(await client.get("/orgs/acme/roles", headers=bob.auth))
    assert {r["name"]: r["permissions"] for r in roles["roles"]}["root"] == ["authgate:*"]


async def test_two_admins_removing_each_other_at_once_leave_one(
    client: Client, inbox: Inbox
) -> None:
    ada, bob = await _ada_and_bob_in_acme(client, inbox)
    await _grant(client, ada, "acme", bob.id, "admin")
    responses = await asyncio.gather(
        client.delete(f"/orgs/acme/members/{bob.id}", headers=ada.auth),
        client.delete(f"/orgs/acme/members/{ada.id}", headers=bob.auth),
    )
    # The loser is refused as the last admin (409) or, if it started after the winner
    # finished, as someone no longer in the organization (404).
    assert sorted(r.status for r in responses)[0] == 204
    assert sorted(r.status for r in responses)[1] in {404, 409}
    survivor = ada if responses[0].status == 204 else bob
    assert await _members(client, survivor, "acme") == {survivor.email: ["admin"]}


async def test_a_member_may_leave_but_not_remove_others(client: Client, inbox: Inbox) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    carl = await signed_up(client, inbox, "carl@example.com")
    await _org(client, ada, "acme")
    await _add(client, ada, "acme", bob.id)
    await _add(client, ada, "acme", carl.id)
    response = await client.delete(f"/orgs/acme/members/{carl.id}", headers=bob.auth)
    await _error(response, 403, "forbidden")
    await _ok(await client.delete(f"/orgs/acme/members/{bob.email}", headers=bob.auth), 204)
    await _ok(await client.delete("/orgs/acme/members/carl@example.com", headers=ada.auth), 204)
    assert await _members(client, ada, "acme") == {ada.email: ["admin"]}
    for ref in (bob.id, MISSING, "nobody"):
        response = await client.delete(f"/orgs/acme/members/{ref}", headers=ada.auth)
        await _error(response, 404, "not_found")


async def test_a_member_can_also_be_removed_through_the_collection(
    client: Client, inbox: Inbox
) -> None:
    ada, bob = await _ada_and_bob_in_acme(client, inbox)
    for body in ({}, {"user": 7}, {"user": "nobody"}):
        response = await client.delete("/orgs/acme/members", json=body, headers=ada.auth)
        assert response.status in {400, 404}
    await _ok(
        await client.delete("/orgs/acme/members", json={"user": bob.email}, headers=ada.auth), 204
    )
    assert await _members(client, ada, "acme") == {ada.email: ["admin"]}


async def test_removing_a_member_ends_their_sessions_in_that_organization(
    client: Client, inbox: Inbox
) -> None:
    ada, bob = await _ada_and_bob_in_acme(client, inbox)
    client.session.cookie_jar.clear()  # another browser: bob's first session stays
    in_org = await login(client, Account(bob.id, bob.email, bob.password), org="acme")
    await _ok(await client.delete(f"/orgs/acme/members/{bob.id}", headers=ada.auth), 204)
    await _error(await client.get("/users/me", headers=in_org.auth), 401, "invalid_token")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": in_org.refresh_token})
    await _error(refreshed, 400, "invalid_grant")
    assert (await _ok(await client.get("/users/me", headers=bob.auth)))["id"] == bob.id


async def test_deleting_an_organization_ends_the_sessions_signed_in_to_it(
    client: Client, inbox: Inbox
) -> None:
    ada, bob = await _ada_and_bob_in_acme(client, inbox)
    client.session.cookie_jar.clear()
    ada_in_org = await login(client, Account(ada.id, ada.email, ada.password), org="acme")
    client.session.cookie_jar.clear()
    bob_in_org = await login(client, Account(bob.id, bob.email, bob.password), org="acme")
    await _ok(await client.delete("/orgs/acme", headers=ada.auth), 204)
    for ended in (ada_in_org, bob_in_org):
        await _error(await client.get("/users/me", headers=ended.auth), 401, "invalid_token")
        refreshed = await client.post("/auth/refresh", json={"refresh_token": ended.refresh_token})
        await _error(refreshed, 400, "invalid_grant")
    for kept in (ada, bob):  # sessions outside the organization go on
        assert (await _ok(await client.get("/users/me", headers=kept.auth)))["id"] == kept.id


# --- roles --------------------------------------------------------------------------


async def test_roles_are_created_listed_changed_and_deleted(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    org = await _org(client, ada, "acme")
    response = await client.post(
        "/orgs/acme/roles",
        json={
            "name": "order-reader",
            "description": "Reads orders",
            "permissions": ["orders:read", "orders:*", "orders:read"],
            "route_rules": [
                {
                    "hosts": ["API.acme.com", "*.acme.io"],
                    "paths": ["/orders/**"],
                    "methods": ["get"],
                }
            ],
        },
        headers=ada.auth,
    )
    role = await _ok(response, 201)
    assert response.headers["Location"] == f"/orgs/{org['id']}/roles/{role['id']}"
    assert role["permissions"] == ["orders:*", "orders:read"]
    assert role["route_rules"] == [
        {"hosts": ["api.acme.com", "*.acme.io"], "paths": ["/orders/**"], "methods": ["GET"]}
    ]
    assert (role["builtin"], role["description"]) == (False, "Reads orders")
    listed = await _ok(await client.get("/orgs/acme/roles", headers=ada.auth))
    assert [r["name"] for r in listed["roles"]] == ["admin", "order-reader"]

    duplicate = await client.post(
        "/orgs/acme/roles", json={"name": "order-reader"}, headers=ada.auth
    )
    await _error(duplicate, 409, "conflict")
    patched = await _ok(
        await client.patch(
            f"/orgs/acme/roles/{role['id']}",
            json={"name": "orders", "permissions": ["orders:write"], "route_rules": []},
            headers=ada.auth,
        )
    )
    assert (patched["name"], patched["permissions"], patched["route_rules"]) == (
        "orders",
        ["orders:write"],
        [],
    )
    renamed = await client.patch(
        "/orgs/acme/roles/orders", json={"name": "admin"}, headers=ada.auth
    )
    await _error(renamed, 409, "conflict")
    await _ok(await client.delete("/orgs/acme/roles/orders", headers=ada.auth), 204)
    await _error(await client.delete("/orgs/acme/roles/orders", headers=ada.auth), 404, "not_found")
    events = await store.audit.query(event="role_change")
    assert [e.outcome for e in reversed(events)] == ["created", "updated", "deleted"]
    assert events[1].details["permissions"] == ["orders:write"]
    assert {e.actor_id for e in events} == {ada.id}


async def test_the_builtin_admin_role_keeps_its_permission_and_stays(
    client: Client, inbox: Inbox
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    for method, body in [
        ("PATCH", {"permissions": ["orders:read"]}),
        ("PATCH", {"permissions": ["authgate:*"]}),
        ("PATCH", {"name": "boss"}),
        ("DELETE", None),
    ]:
        response = await client.request(
            method, "/orgs/acme/roles/admin", json=body, headers=ada.auth
        )
        await _error(response, 409, "conflict")
    widened = await client.patch(
        "/orgs/acme/roles/admin",
        json={"permissions": [ORG_ADMIN, "orders:*"], "description": "Runs Acme"},
        headers=ada.auth,
    )
    assert (await _ok(widened))["permissions"] == [ORG_ADMIN, "orders:*"]


ROLE_BODIES = [
    {"name": ""},
    {"name": None},
    {"name": "Admin Role"},
    {"name": "-x"},
    {"name": "x" * 65},
    {"name": MISSING},
    {"name": "ok", "permissions": "orders:read"},
    {"name": "ok", "permissions": [1]},
    {"name": "ok", "permissions": ["Orders:Read"]},
    {"name": "ok", "permissions": ["*:read"]},
    {"name": "ok", "permissions": ["orders:re*"]},
    {"name": "ok", "permissions": ["a" * 129]},
    {"name": "ok", "permissions": [f"p{n}" for n in range(101)]},
    {"name": "ok", "route_rules": {"paths": ["/x"]}},
    {"name": "ok", "route_rules": [{"paths": ["x"]}]},
    {"name": "ok", "route_rules": [{"paths": ["/x/*"]}]},
    {"name": "ok", "route_rules": [{"hosts": ["bad host"]}]},
    {"name": "ok", "route_rules": [{"methods": ["FETCH"]}]},
    {"name": "ok", "route_rules": [{"verbs": ["GET"]}]},
    {"name": "ok", "description": 5},
    {"name": "ok", "description": "x" * 1025},
    {"name": "ok", "org_id": MISSING},
]


@pytest.mark.parametrize("body", ROLE_BODIES)
async def test_bad_roles_are_refused_and_change_nothing(
    client: Client, inbox: Inbox, store: Store, body: dict[str, Any]
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    org = await _org(client, ada, "acme")
    await _role(client, ada, "acme", "reader", "orders:read")
    before = await store.roles.list(org["id"])
    created = await client.post("/orgs/acme/roles", json=body, headers=ada.auth)
    await _error(created, 400, "invalid_request")
    patched = await client.patch("/orgs/acme/roles/reader", json=body, headers=ada.auth)
    await _error(patched, 400, "invalid_request")
    assert await store.roles.list(org["id"]) == before


async def test_roles_are_granted_and_revoked_by_name_or_id(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com", username="bob")
    org = await _org(client, ada, "acme")
    reader = await _role(client, ada, "acme", "reader", "orders:read")
    await _role(client, ada, "acme", "writer", "orders:write")
    await _add(client, ada, "acme", bob.id)
    member = await _grant(client, ada, "acme", "bob", reader["id"])
    assert member["roles"] == ["reader"]
    member = await _grant(client, ada, "acme", bob.email, "writer")
    assert member["roles"] == ["reader", "writer"]
    assert (await _grant(client, ada, "acme", bob.id, "writer"))["roles"] == ["reader", "writer"]
    await _ok(
        await client.delete(f"/orgs/acme/members/bob/roles/{reader['id']}", headers=ada.auth), 204
    )
    assert await _members(client, ada, "acme") == {ada.email: ["admin"], bob.email: ["writer"]}
    again = await client.delete("/orgs/acme/members/bob/roles/reader", headers=ada.auth)
    await _error(again, 404, "not_found")
    for path, body in [
        ("/orgs/acme/members/bob/roles", {"role": "nope"}),
        ("/orgs/acme/members/nobody/roles", {"role": "reader"}),
        (f"/orgs/acme/members/{ada.id}/roles", {"role": MISSING}),
    ]:
        await _error(await client.post(path, json=body, headers=ada.auth), 404, "not_found")

    events = await store.audit.query(event="role_change")
    grants = [(e.outcome, e.target, e.details) for e in reversed(events) if e.target == bob.id]
    assert grants == [
        ("granted", bob.id, {"org": org["id"], "role": "reader"}),
        ("granted", bob.id, {"org": org["id"], "role": "writer"}),  # the repeat is not news
        ("revoked", bob.id, {"org": org["id"], "role": "reader"}),
    ]


@pytest.mark.parametrize(
    "body", [{}, {"role": ""}, {"role": 3}, {"role": None}, {"role": "x" * 65}]
)
async def test_bad_grants_are_refused(client: Client, inbox: Inbox, body: dict[str, Any]) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    response = await client.post(f"/orgs/acme/members/{ada.id}/roles", json=body, headers=ada.auth)
    await _error(response, 400, "invalid_request")


async def test_a_role_of_another_organization_cannot_be_granted(
    client: Client, inbox: Inbox
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    await _org(client, ada, "acme")
    await _org(client, bob, "evil")
    evil_admin = (await _ok(await client.get("/orgs/evil/roles", headers=bob.auth)))["roles"][0]
    await _add(client, ada, "acme", bob.id)
    response = await client.post(
        f"/orgs/acme/members/{bob.id}/roles", json={"role": evil_admin["id"]}, headers=ada.auth
    )
    await _error(response, 404, "not_found")
    assert await _members(client, ada, "acme") == {ada.email: ["admin"], bob.email: []}


# --- permissions --------------------------------------------------------------------


async def test_a_user_sees_their_roles_and_permissions_in_an_organization(
    client: Client, inbox: Inbox
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    org = await _org(client, ada, "acme")
    await _role(client, ada, "acme", "reader", "orders:read", "items:read")
    await _role(client, ada, "acme", "writer", "orders:*", "orders:read")
    await _add(client, ada, "acme", bob.id)
    await _grant(client, ada, "acme", bob.id, "writer")
    await _grant(client, ada, "acme", bob.id, "reader")
    for ref in ("acme", org["id"]):
        body = await _ok(await client.get(f"/users/me/permissions?org={ref}", headers=bob.auth))
        assert body == {
            "org": org["id"],
            "roles": ["reader", "writer"],
            "permissions": ["items:read", "orders:*", "orders:read"],
        }
    mine = await _ok(await client.get("/users/me/permissions?org=acme", headers=ada.auth))
    assert (mine["roles"], mine["permissions"]) == (["admin"], [ORG_ADMIN])


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?org=", 400), ("?org=evil", 404), (f"?org={MISSING}", 404), ("?org=%00", 404)],
)
async def test_permissions_of_an_organization_the_user_cannot_see_are_not_found(
    client: Client, inbox: Inbox, query: str, status: int
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    await _org(client, bob, "evil")
    response = await client.get(f"/users/me/permissions{query}", headers=ada.auth)
    await _error(response, status, "invalid_request" if status == 400 else "not_found")


async def _check(client: Client, caller: Account, **body: str) -> dict[str, Any]:
    response = await client.post("/authz/check-permission", json=body, headers=caller.auth)
    result: dict[str, Any] = await _ok(response)
    return result


async def test_check_permission_answers_for_the_caller(client: Client, inbox: Inbox) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    await _org(client, ada, "acme")
    await _role(client, ada, "acme", "writer", "orders:*", "items:read")
    await _add(client, ada, "acme", bob.id)
    await _grant(client, ada, "acme", bob.id, "writer")
    expectations = {
        "orders:read": True,
        "orders:items:write": True,
        "items:read": True,
        "items:write": False,
        "orders": False,
        ORG_ADMIN: False,
    }
    for wanted, allowed in expectations.items():
        answer = await _check(client, bob, org="acme", permission=wanted)
        assert answer == {"allowed": allowed, "user": bob.id, "org": "acme", "permission": wanted}
    assert (await _check(client, bob, user=bob.email, org="acme", permission="orders:x"))["allowed"]
    # Unknown organizations are just "no", for anyone asking about themselves.
    for org in ("nope", MISSING, "%%%"):
        assert not (await _check(client, bob, org=org, permission="orders:read"))["allowed"]


async def test_asking_about_someone_else_needs_an_org_admin(
    client: Client, inbox: Inbox, store: Store
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com", username="bob")
    carl = await signed_up(client, inbox, "carl@example.com")
    await _org(client, ada, "acme")
    await _org(client, carl, "other")
    await _role(client, ada, "acme", "reader", "orders:read")
    await _add(client, ada, "acme", bob.id)
    await _grant(client, ada, "acme", bob.id, "reader")

    for user in (bob.id, "bob", bob.email):
        answer = await _check(client, ada, user=user, org="acme", permission="orders:read")
        assert answer == {"allowed": True, "user": user, "org": "acme", "permission": "orders:read"}
    # Unknown users and outsiders are "no" to an org-admin, never a 404.
    for user in ("nobody@example.com", MISSING, carl.id):
        answer = await _check(client, ada, user=user, org="acme", permission="orders:read")
        assert answer["allowed"] is False
    # Anyone else is refused alike, whatever exists.
    refusals = set()
    for caller, user, org in [
        (bob, ada.id, "acme"),  # a plain member
        (carl, bob.id, "acme"),  # an outsider
        (carl, "nobody@example.com", "acme"),
        (carl, bob.id, "nope"),
        (ada, carl.id, "other"),  # an admin elsewhere
    ]:
        response = await client.post(
            "/authz/check-permission",
            json={"user": user, "org": org, "permission": "orders:read"},
            headers=caller.auth,
        )
        refusals.add((response.status, json.dumps(await response.json())))
    assert len(refusals) == 1
    assert refusals.pop()[0] == 403

    # A global administrator may ask about anyone; only roles count for the answer.
    await _make_global_admin(store, carl)
    answer = await _check(client, carl, user="bob", org="acme", permission="orders:read")
    assert answer["allowed"] is True
    assert not (await _check(client, carl, org="acme", permission="orders:read"))["allowed"]
    assert not (await _check(client, carl, user="bob", org="nope", permission="x"))["allowed"]
    # A disabled account is allowed nothing.
    await store.users.update(bob.id, lambda u: dataclasses.replace(u, disabled=True))
    answer = await _check(client, ada, user=bob.id, org="acme", permission="orders:read")
    assert answer["allowed"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"org": "acme"},
        {"permission": "orders:read"},
        {"org": "acme", "permission": ""},
        {"org": "acme", "permission": "Orders:Read"},
        {"org": "acme", "permission": "*:read"},
        {"org": "acme", "permission": 5},
        {"org": 5, "permission": "orders:read"},
        {"org": "acme", "permission": "orders:read", "user": 5},
        {"org": "acme", "permission": "orders:read", "user": ""},
        {"org": "acme", "permission": "orders:read", "extra": True},
        {"org": "x" * 129, "permission": "orders:read"},
    ],
)
async def test_bad_permission_checks_are_refused(
    client: Client, inbox: Inbox, body: dict[str, Any]
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    await _org(client, ada, "acme")
    response = await client.post("/authz/check-permission", json=body, headers=ada.auth)
    await _error(response, 400, "invalid_request")


# --- every endpoint -----------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/orgs"),
    ("GET", "/orgs"),
    ("GET", "/orgs/acme"),
    ("PATCH", "/orgs/acme"),
    ("DELETE", "/orgs/acme"),
    ("GET", "/orgs/acme/members"),
    ("POST", "/orgs/acme/members"),
    ("DELETE", "/orgs/acme/members/ada"),
    ("POST", "/orgs/acme/members/ada/roles"),
    ("DELETE", "/orgs/acme/members/ada/roles/admin"),
    ("GET", "/orgs/acme/roles"),
    ("POST", "/orgs/acme/roles"),
    ("PATCH", "/orgs/acme/roles/admin"),
    ("DELETE", "/orgs/acme/roles/admin"),
    ("GET", "/users/me/permissions?org=acme"),
    ("POST", "/authz/check-permission"),
]
JSON_BODIES = [(m, p) for m, p in ENDPOINTS if m in {"POST", "PATCH"}]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_a_bearer_token(
    client: Client, inbox: Inbox, method: str, path: str
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com", username="ada")
    await _org(client, ada, "acme")
    response = await client.request(method, path, json={})
    await _error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'


@pytest.mark.parametrize("endpoint", JSON_BODIES, ids=" ".join)
@pytest.mark.parametrize(
    "bad",
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (b'{"name": "\\ud800"}', "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"[" * 5000, "application/json", 400),
    ],
    ids=["invalid", "array", "string", "surrogate", "not-json-type", "deep"],
)
async def test_every_json_endpoint_refuses_what_is_not_a_json_object(
    client: Client,
    inbox: Inbox,
    store: Store,
    endpoint: tuple[str, str],
    bad: tuple[bytes, str, int],
) -> None:
    method, path = endpoint
    data, content_type, status = bad
    ada = await signed_up(client, inbox, "ada@example.com", username="ada")
    org = await _org(client, ada, "acme")
    response = await client.request(
        method, path, data=data, headers={**ada.auth, "Content-Type": content_type}
    )
    assert response.status == status, await response.text()
    assert set(await response.json()) == {"error", "error_description"}
    assert [o.id for o in await store.orgs.list()] == [org["id"]]
    assert [r.name for r in await store.roles.list(org["id"])] == ["admin"]


async def test_a_huge_body_is_refused(client: Client, inbox: Inbox) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    body = json.dumps({"slug": "acme", "display_name": "x" * 100_000}).encode()
    response = await client.post(
        "/orgs", data=body, headers={**ada.auth, "Content-Type": "application/json"}
    )
    await _error(response, 413, "request_too_large")


# --- tokens naming an organization --------------------------------------------------


async def test_a_sign_in_to_an_organization_carries_it_and_the_roles_in_the_token(
    client: Client, inbox: Inbox, settings: settings_mod.Settings
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    org = await _org(client, ada, "acme")
    await _role(client, ada, "acme", "order-reader", "orders:read")
    await _role(client, ada, "acme", "auditor", "audit:read")
    await _add(client, ada, "acme", bob.email)
    await _grant(client, ada, "acme", bob.id, "order-reader")
    await _grant(client, ada, "acme", bob.id, "auditor")

    jwks = jwt.PyJWKSet.from_dict(await _ok(await client.get("/.well-known/jwks.json")))
    for ref in ("acme", org["id"]):
        signed_in = await login(client, Account(bob.id, bob.email, bob.password), org=ref)
        header = jwt.get_unverified_header(signed_in.access_token)
        key = next(k for k in jwks.keys if k.key_id == header["kid"])
        claims = jwt.decode(
            signed_in.access_token,
            key.key,
            algorithms=[header["alg"]],
            audience=settings.issuer,
            issuer=settings.issuer,
        )
        assert header["typ"] == "at+jwt"
        assert (claims["sub"], claims["org"], claims["roles"]) == (
            bob.id,
            org["id"],
            ["auditor", "order-reader"],
        )
        # A refreshed token says the same.
        refreshed = await _ok(
            await client.post("/auth/refresh", json={"refresh_token": signed_in.refresh_token})
        )
        again = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
        assert (again["org"], again["roles"]) == (org["id"], ["auditor", "order-reader"])
    plain = jwt.decode(bob.access_token, options={"verify_signature": False})
    assert "org" not in plain
    assert "roles" not in plain


async def test_a_sign_in_to_an_organization_the_user_is_not_in_is_refused(
    client: Client, inbox: Inbox
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    bob = await signed_up(client, inbox, "bob@example.com")
    org = await _org(client, ada, "acme")
    answers = []
    for ref in ("acme", org["id"], "no-such-org", MISSING):
        response = await client.post(
            "/auth/login", json={"login": bob.email, "password": bob.password, "org": ref}
        )
        answers.append(await _error(response, 403, "not_a_member"))
    assert len(set(answers)) == 1
