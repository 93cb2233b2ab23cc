"""The global administrators' API: users and the audit trail, on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from typing import Any

import pytest

from authgate.identity.store import Store
from tests.integration.accounts.conftest import Account, Client, Inbox, signed_up

MISSING = "0190a0a0-0000-7000-8000-000000000000"
USER_FIELDS = {
    "id",
    "email",
    "email_verified",
    "username",
    "full_name",
    "is_admin",
    "disabled",
    "created_at",
    "updated_at",
}


async def _ok(response: Any) -> Any:
    assert response.status == 200, await response.text()
    return await response.json()


async def _admin(client: Client, inbox: Inbox, store: Store) -> Account:
    root = await signed_up(client, inbox, "root@example.com", username="root")
    await store.users.update(root.id, lambda u: dataclasses.replace(u, is_admin=True))
    return root


@pytest.mark.parametrize("path", ["/admin/users", "/admin/audit"])
async def test_only_global_admins_may_use_the_admin_api(
    client: Client, inbox: Inbox, store: Store, path: str
) -> None:
    ada = await signed_up(client, inbox, "ada@example.com")
    anonymous = await client.get(path)
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    refused = await client.get(path, headers=ada.auth)
    assert refused.status == 403
    assert (await refused.json())["error"] == "forbidden"
    # An org-admin is not a global administrator.
    await client.post("/orgs", json={"slug": "acme", "display_name": "Acme"}, headers=ada.auth)
    assert (await client.get(path, headers=ada.auth)).status == 403
    root = await _admin(client, inbox, store)
    assert (await client.get(path, headers=root.auth)).status == 200


async def test_users_are_listed_a_page_at_a_time_without_secrets(
    client: Client, inbox: Inbox, store: Store
) -> None:
    root = await _admin(client, inbox, store)
    for name in ("ada", "bob", "carl", "dora"):
        await signed_up(client, inbox, f"{name}@example.com", username=name)
    seen: list[dict[str, Any]] = []
    query = "?limit=2"
    pages = 0
    while True:
        response = await client.get(f"/admin/users{query}", headers=root.auth)
        raw = await response.text()
        assert "argon2" not in raw
        assert "hash" not in raw
        body = await _ok(response)
        assert set(body) == {"users", "next"}
        seen += body["users"]
        pages += 1
        if body["next"] is None:
            break
        assert body["next"] == body["users"][-1]["id"]
        query = f"?limit=2&after={body['next']}"
    assert pages == 3
    assert [u["username"] for u in seen] == ["root", "ada", "bob", "carl", "dora"]
    assert all(set(u) == USER_FIELDS for u in seen)
    assert seen[0]["is_admin"] is True
    assert [u["is_admin"] for u in seen[1:]] == [False] * 4
    everyone = await _ok(await client.get("/admin/users", headers=root.auth))
    assert everyone["users"] == seen
    assert everyone["next"] is None


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=-1", "limit=ten", "after=ada", "after="]
)
async def test_bad_user_paging_is_refused(
    client: Client, inbox: Inbox, store: Store, query: str
) -> None:
    root = await _admin(client, inbox, store)
    response = await client.get(f"/admin/users?{query}", headers=root.auth)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_the_audit_trail_is_filtered_newest_first(
    client: Client, inbox: Inbox, store: Store
) -> None:
    root = await _admin(client, inbox, store)
    ada = await signed_up(client, inbox, "ada@example.com")
    await client.post("/orgs", json={"slug": "acme", "display_name": "Acme"}, headers=ada.auth)
    await client.post("/orgs/acme/roles", json={"name": "reader"}, headers=ada.auth)

    everything = (await _ok(await client.get("/admin/audit", headers=root.auth)))["events"]
    times = [e["occurred_at"] for e in everything]
    assert times == sorted(times, reverse=True)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert {"register", "verify_email", "login", "org_change", "role_change"} <= {
        e["event"] for e in everything
    }

    by_ada = (await _ok(await client.get(f"/admin/audit?actor={ada.id}", headers=root.auth)))[
        "events"
    ]
    assert [e["event"] for e in by_ada] == [
        "role_change",
        "org_change",
        "login",
        "verify_email",
        "register",
    ]
    role_changes = await _ok(await client.get("/admin/audit?event=role_change", headers=root.auth))
    [event] = role_changes["events"]
    assert set(event) == {
        "id",
        "occurred_at",
        "event",
        "outcome",
        "actor_id",
        "target",
        "ip",
        "user_agent",
        "request_id",
        "details",
    }
    assert (event["outcome"], event["actor_id"], event["details"]["role"]) == (
        "created",
        ada.id,
        "reader",
    )
    assert event["ip"] == "127.0.0.1"
    assert event["request_id"]


async def test_since_takes_iso_timestamps_with_or_without_an_offset(
    client: Client, inbox: Inbox, store: Store
) -> None:
    root = await _admin(client, inbox, store)
    [newest] = (await _ok(await client.get("/admin/audit?limit=1", headers=root.auth)))["events"]
    occurred = dt.datetime.fromisoformat(newest["occurred_at"])
    later = (occurred + dt.timedelta(seconds=1)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    earlier = occurred - dt.timedelta(seconds=1)
    cases = {
        urllib.parse.quote(later.isoformat()): 0,
        later.isoformat(): 0,  # the '+' unencoded: it arrives as a space
        urllib.parse.quote(earlier.isoformat()): 1,
        earlier.strftime("%Y-%m-%dT%H:%M:%S.%fZ"): 1,
        earlier.replace(tzinfo=None).isoformat(): 1,  # no offset: UTC
        "2000-01-01": 1,
        "0001-01-01T00:00:00Z": 1,
        "9999-12-31T23:59:59Z": 0,
    }
    for since, expected in cases.items():
        response = await client.get(f"/admin/audit?since={since}&limit=1", headers=root.auth)
        assert len((await _ok(response))["events"]) == expected, since


async def test_the_audit_trail_pages_backwards_with_before(
    client: Client, inbox: Inbox, store: Store
) -> None:
    root = await _admin(client, inbox, store)
    for name in ("ada", "bob"):
        await signed_up(client, inbox, f"{name}@example.com")
    everything = (await _ok(await client.get("/admin/audit", headers=root.auth)))["events"]
    paged: list[dict[str, Any]] = []
    query = "limit=4"
    while True:
        body = await _ok(await client.get(f"/admin/audit?{query}", headers=root.auth))
        paged += body["events"]
        if body["next"] is None:
            break
        query = f"limit=4&before={body['next']}"
    assert paged == everything
    assert len(everything) > 8


@pytest.mark.parametrize(
    "query",
    [
        "since=yesterday",
        "since=2025-13-01",
        "since=",
        "since=0001-01-01T00:00:00%2B01:00",  # before year 1 in UTC
        "since=9999-12-31T23:59:59-01:00",  # after 9999 in UTC
        "before=yesterday",
        "before=2025-01-01T00:00:00Z",
        "limit=0",
        "limit=1001",
        "event=Login",
        "event=role%20change",
        "event=" + "x" * 65,
        "actor=" + "x" * 257,
        "actor=a%00b",
    ],
)
async def test_bad_audit_queries_are_refused(
    client: Client, inbox: Inbox, store: Store, query: str
) -> None:
    root = await _admin(client, inbox, store)
    response = await client.get(f"/admin/audit?{query}", headers=root.auth)
    assert response.status == 400, await response.text()
    body = await response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "invalid_request"


async def test_an_unknown_actor_or_event_is_an_empty_page(
    client: Client, inbox: Inbox, store: Store
) -> None:
    root = await _admin(client, inbox, store)
    for query in (f"actor={MISSING}", "event=no_such_event", f"before={MISSING}"):
        body = await _ok(await client.get(f"/admin/audit?{query}", headers=root.auth))
        assert body == {"events": [], "next": None}
