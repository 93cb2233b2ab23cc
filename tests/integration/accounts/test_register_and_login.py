"""Registration, email verification and password sign-in, on both backends."""

from __future__ import annotations

import pytest

from authgate.identity.store import Store
from tests.integration.accounts.conftest import (
    PASSWORD,
    Client,
    Inbox,
    login,
    register,
    signed_up,
    verify,
)


async def test_registration_sends_a_verification_link_that_works_once(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await register(client, inbox, "ada@example.com", username="ada", full_name="Ada L")
    [message] = await inbox.wait_for("ada@example.com")
    assert message["Subject"] == "Confirm your email address"
    assert message.get_body(preferencelist=("html",)) is not None
    token = await inbox.token("ada@example.com")
    assert Inbox.text(message).count(f"/verify-email?token={token}") == 1

    first = await client.post("/auth/verify-email", json={"token": token})
    assert first.status == 200
    assert (await first.json())["user"]["email_verified"] is True
    again = await client.post("/auth/verify-email", json={"token": token})
    assert again.status == 400
    assert (await again.json())["error"] == "invalid_token"
    assert (await store.users.get(account.id)).email_verified


async def test_sign_in_needs_a_verified_email(client: Client, inbox: Inbox) -> None:
    account = await register(client, inbox, "unverified@example.com")
    response = await client.post("/auth/login", json={"login": account.email, "password": PASSWORD})
    assert response.status == 403
    assert (await response.json())["error"] == "email_not_verified"
    await verify(client, inbox, account)
    await login(client, account)


async def test_sign_in_returns_tokens_and_a_session_cookie(client: Client, inbox: Inbox) -> None:
    account = await register(client, inbox, "bob@example.com", username="bob")
    await verify(client, inbox, account)
    response = await client.post("/auth/login", json={"login": "BOB", "password": PASSWORD})
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.cookies["authgate_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # the issuer is plain http on loopback here
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await me.json())["email"] == "bob@example.com"


async def test_unknown_login_and_wrong_password_answer_alike(client: Client, inbox: Inbox) -> None:
    await signed_up(client, inbox, "carol@example.com")
    wrong = await client.post(
        "/auth/login", json={"login": "carol@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/auth/login", json={"login": "nobody@example.com", "password": "not the password"}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_a_taken_email_looks_like_a_success_and_tells_the_owner(
    client: Client, inbox: Inbox, store: Store
) -> None:
    await register(client, inbox, "dave@example.com")
    again = await client.post(
        "/auth/register", json={"email": "DAVE@example.com", "password": PASSWORD}
    )
    assert again.status == 201
    assert await store.users.count() == 1
    messages = await inbox.wait_for("dave@example.com", 2)
    assert messages[-1]["Subject"] == "Someone tried to register with your email address"


async def test_a_taken_username_is_a_conflict(client: Client, inbox: Inbox) -> None:
    await register(client, inbox, "erin@example.com", username="erin")
    response = await client.post(
        "/auth/register",
        json={"email": "other@example.com", "password": PASSWORD, "username": "Erin"},
    )
    assert response.status == 409
    assert (await response.json())["error"] == "username_taken"


async def test_a_filled_honeypot_creates_nothing_and_is_audited(
    client: Client, inbox: Inbox, store: Store
) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "bot@example.com", "password": PASSWORD, "website": "http://spam"},
    )
    assert response.status == 201
    assert await store.users.count() == 0
    assert inbox.to("bot@example.com") == []
    [event] = await store.audit.query(event="register")
    assert event.outcome == "suspicious"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12"),
        ("password1234", "too easy"),
        ("frank.example2025!", "email address or name"),
    ],
)
async def test_the_password_policy_refuses_weak_passwords(
    client: Client, store: Store, password: str, reason: str
) -> None:
    response = await client.post(
        "/auth/register", json={"email": "frank.example@example.com", "password": password}
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_password"
    assert reason in body["error_description"]
    assert await store.users.count() == 0


async def test_resend_verification_always_answers_202(client: Client, inbox: Inbox) -> None:
    await register(client, inbox, "gina@example.com")
    for address in ("gina@example.com", "nobody@example.com"):
        response = await client.post("/auth/resend-verification", json={"email": address})
        assert response.status == 202
    assert len(await inbox.wait_for("gina@example.com", 2)) == 2
    assert inbox.to("nobody@example.com") == []
    # Only the newest link works.
    old = await inbox.token("gina@example.com", index=0)
    assert (await client.post("/auth/verify-email", json={"token": old})).status == 400
    new = await inbox.token("gina@example.com")
    assert (await client.post("/auth/verify-email", json={"token": new})).status == 200
