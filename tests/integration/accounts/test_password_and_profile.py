"""Password reset and change, the profile, deleting the account, lockout."""

from __future__ import annotations

import asyncio
import dataclasses

from authgate.gateway import app as app_mod
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration.accounts.conftest import (
    PASSWORD,
    Client,
    Inbox,
    MakeClient,
    login,
    login_elsewhere,
    register,
    signed_up,
    verify,
)

NEW_PASSWORD = "a different and long passphrase 7"


async def test_password_reset_is_single_use_and_ends_every_session(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "hal@example.com")
    for address in ("hal@example.com", "nobody@example.com"):
        response = await client.post("/auth/forgot-password", json={"email": address})
        assert response.status == 202
    assert inbox.to("nobody@example.com") == []
    messages = await inbox.wait_for("hal@example.com", 2)
    assert messages[-1]["Subject"] == "Reset your password"
    token = await inbox.token("hal@example.com")

    weak = await client.post("/auth/reset-password", json={"token": token, "new_password": "short"})
    assert weak.status == 400
    assert (await weak.json())["error"] == "invalid_password"
    # A refused password does not spend the link.
    reset = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status == 200
    again = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD + "x"}
    )
    assert again.status == 400

    assert (await client.get("/users/me", headers=account.auth)).status == 401
    old = await client.post("/auth/login", json={"login": account.email, "password": PASSWORD})
    assert old.status == 401
    # Signed in again at once -- within the second the reset revoked every earlier
    # token in -- the new token is not one of them.
    fresh = await login(client, dataclasses.replace(account, password=NEW_PASSWORD))
    for _ in range(30):  # past the change feed's delay, which brings the revocation
        assert (await client.get("/users/me", headers=fresh.auth)).status == 200
        await asyncio.sleep(0.05)


async def test_changing_the_password_keeps_this_session_and_ends_the_others(
    client: Client, inbox: Inbox
) -> None:
    here = await signed_up(client, inbox, "ida@example.com")
    elsewhere = await login_elsewhere(client, here)
    wrong = await client.post(
        "/users/me/password",
        json={"current_password": "wrong", "new_password": NEW_PASSWORD},
        headers=here.auth,
    )
    assert wrong.status == 403
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=here.auth,
    )
    assert changed.status == 200
    assert (await client.get("/users/me", headers=here.auth)).status == 200
    assert (await client.get("/users/me", headers=elsewhere.auth)).status == 401


async def test_the_profile_can_be_read_and_changed(client: Client, inbox: Inbox) -> None:
    account = await signed_up(client, inbox, "jon@example.com")
    me = await (await client.get("/users/me", headers=account.auth)).json()
    assert me["email"] == "jon@example.com"
    assert me["mfa_enabled"] is False
    assert "password" not in str(me).lower()
    patched = await client.patch(
        "/users/me", json={"full_name": "Jon Snow", "username": "jsnow"}, headers=account.auth
    )
    assert patched.status == 200
    assert (await patched.json())["username"] == "jsnow"
    refused = await client.patch("/users/me", json={"is_admin": True}, headers=account.auth)
    assert refused.status == 400
    assert (await (await client.get("/users/me", headers=account.auth)).json())["is_admin"] is False


async def test_a_new_email_must_be_confirmed_again(client: Client, inbox: Inbox) -> None:
    account = await signed_up(client, inbox, "kim@example.com")
    patched = await client.patch(
        "/users/me", json={"email": "kim@new.example.com"}, headers=account.auth
    )
    assert (await patched.json())["email_verified"] is False
    token = await inbox.token("kim@new.example.com")
    assert (await client.post("/auth/verify-email", json={"token": token})).status == 200


async def test_deleting_the_account_needs_the_password(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "lou@example.com")
    denied = await client.delete("/users/me", json={"password": "nope"}, headers=account.auth)
    assert denied.status == 403
    assert await store.users.count() == 1
    deleted = await client.delete("/users/me", json={"password": PASSWORD}, headers=account.auth)
    assert deleted.status == 204
    assert await store.users.count() == 0
    assert (await client.get("/users/me", headers=account.auth)).status == 401
    outcomes = [e.outcome for e in await store.audit.query(event="account_delete")]
    assert outcomes == ["success", "failure"]  # newest first


async def test_repeated_failures_lock_the_login_and_are_audited(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "max@example.com")
    for _ in range(5):
        response = await client.post(
            "/auth/login", json={"login": account.email, "password": "wrong"}
        )
        assert response.status == 401
    locked = await client.post("/auth/login", json={"login": account.email, "password": PASSWORD})
    assert locked.status == 429
    assert (await locked.json())["error"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0
    assert {e.target for e in await store.audit.query(event="lockout")} == {"login", "ip"}


async def test_an_unknown_login_locks_the_same_way(client: Client) -> None:
    statuses = [
        (
            await client.post("/auth/login", json={"login": "ghost@example.com", "password": "x"})
        ).status
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_a_hash_made_with_old_parameters_is_upgraded_at_sign_in(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, inbox: Inbox, store: Store
) -> None:
    old_client = await aiohttp_client(app_mod.create_app(settings, store=store))
    account = await register(old_client, inbox, "ned@example.com")
    await verify(old_client, inbox, account)
    old_hash = await store.users.password_hash(account.id)
    assert old_hash is not None
    assert "m=1024,t=1" in old_hash

    stronger = dataclasses.replace(settings, argon2_memory_kib=19456, argon2_time_cost=2)
    new_client = await aiohttp_client(app_mod.create_app(stronger, store=store))
    await login(new_client, account)
    new_hash = await store.users.password_hash(account.id)
    assert new_hash is not None
    assert "m=19456,t=2" in new_hash
    await login(new_client, account)  # and the upgraded hash verifies
