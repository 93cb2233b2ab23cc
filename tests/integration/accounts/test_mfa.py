"""TOTP enrolment, the MFA step of sign-in, backup codes and removal, on both backends.

The store runs on a clock the tests move (``step_clock``), so which time step a code
belongs to never depends on when the suite runs; pyotp computes the codes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jwt
import pyotp
import pytest
from aiohttp import web

from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from authgate.identity.store.db import Database
from tests.integration import processes
from tests.integration.accounts.conftest import (
    Account,
    Client,
    Inbox,
    MakeClient,
    Totp,
    enable_totp,
    finish_mfa_login,
    signed_up,
    start_mfa_login,
    step_clock,
)
from tests.integration.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return step_clock()


@pytest.fixture
def store(database: Database, clock: FakeClock) -> Store:
    return Store(database, clock)


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


async def error_of(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error", "error_description"}
    assert response.headers["Cache-Control"] == "no-store"
    error: str = body["error"]
    return error


async def events(store: Store, event: str) -> list[tuple[str, dict[str, Any]]]:
    """The outcomes and details of ``event``, oldest first."""
    return [(e.outcome, e.details) for e in reversed(await store.audit.query(event=event))]


async def mfa_account(
    client: Client, inbox: Inbox, clock: FakeClock, address: str
) -> tuple[Account, Totp]:
    account = await signed_up(client, inbox, address)
    return account, await enable_totp(client, account, clock.now)


# --- enrolment ----------------------------------------------------------------------


async def test_enrolment_shows_the_secret_once_and_a_code_turns_it_on_with_backup_codes(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account = await signed_up(client, inbox, "ada@example.com")
    started = await client.post("/users/me/mfa/totp", headers=account.auth)
    assert started.status == 200
    assert started.headers["Cache-Control"] == "no-store"
    body = await started.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    secret = body["secret"]
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert parsed.secret == secret
    assert parsed.name == "ada@example.com"
    assert parsed.issuer == "127.0.0.1"  # the issuer's host
    assert body["qr_svg"].startswith("<svg")
    # Stored encrypted only; not on yet.
    factor = await store.mfa.totp(account.id)
    assert factor is not None
    assert secret.encode() not in factor.secret_enc
    me = await client.get("/users/me", headers=account.auth)
    assert (await me.json())["mfa_enabled"] is False

    if pyotp.TOTP(secret).verify("000000", for_time=clock.now, valid_window=1):
        pytest.skip("000000 happens to be a valid code this time")  # one in 300,000
    wrong = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": "000000"}, headers=account.auth
    )
    assert await error_of(wrong, 401) == "invalid_code"
    assert not await store.mfa.enabled(account.id)

    code = pyotp.TOTP(secret).at(clock.now)
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code}, headers=account.auth
    )
    assert confirmed.status == 200, await confirmed.text()
    codes = (await confirmed.json())["backup_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert await store.mfa.backup_codes_left(account.id) == 10
    me = await client.get("/users/me", headers=account.auth)
    assert (await me.json())["mfa_enabled"] is True

    again = await client.post("/users/me/mfa/totp", headers=account.auth)
    assert await error_of(again, 409) == "mfa_already_enabled"
    reconfirm = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code}, headers=account.auth
    )
    assert await error_of(reconfirm, 409) == "mfa_already_enabled"
    assert await events(store, "mfa_enrol") == [
        ("started", {}),
        ("failure", {"reason": "wrong_code"}),
        ("confirmed", {}),
    ]
    assert await events(store, "backup_codes_generated") == [("success", {"count": 10})]
    # Neither the seed nor a backup code reached the audit log.
    for event in await store.audit.query():
        assert secret not in str(event.details)
        assert not any(c in str(event.details) for c in codes)


async def test_a_new_enrolment_replaces_an_unconfirmed_one(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account = await signed_up(client, inbox, "abandon@example.com")
    first = await (await client.post("/users/me/mfa/totp", headers=account.auth)).json()
    second = await (await client.post("/users/me/mfa/totp", headers=account.auth)).json()
    assert first["secret"] != second["secret"]
    stale = pyotp.TOTP(first["secret"]).at(clock.now)
    if stale == pyotp.TOTP(second["secret"]).at(clock.now):
        pytest.skip("the two secrets share this step's code")
    refused = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": stale}, headers=account.auth
    )
    assert await error_of(refused, 401) == "invalid_code"
    assert not await store.mfa.enabled(account.id)


async def test_confirming_before_starting_is_a_conflict(client: Client, inbox: Inbox) -> None:
    account = await signed_up(client, inbox, "early@example.com")
    response = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=account.auth
    )
    assert await error_of(response, 409) == "mfa_not_started"


# --- signing in with the second factor ----------------------------------------------


async def test_sign_in_asks_for_the_code_and_the_code_gives_tokens_marked_mfa(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "bob@example.com")
    response = await client.post(
        "/auth/login", json={"login": account.email, "password": account.password}
    )
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"mfa_required", "mfa_token"}
    assert "authgate_session" not in response.cookies  # no session before the second factor

    verified = await client.post(
        "/auth/mfa/verify", json={"mfa_token": body["mfa_token"], "code": factor.code(clock.now)}
    )
    assert verified.status == 200, await verified.text()
    assert verified.headers["Cache-Control"] == "no-store"
    pair = await verified.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert verified.cookies["authgate_session"]["httponly"]
    claims = claims_of(pair["access_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sub"] == account.id
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status == 200
    assert await events(store, "mfa_verify") == [("success", {"method": "otp"})]
    # The refresh token carries the same authentication methods into later tokens.
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert claims_of((await refreshed.json())["access_token"])["amr"] == ["pwd", "otp", "mfa"]


async def test_a_code_is_refused_a_second_time(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "carol@example.com")
    code = factor.code(clock.now)
    await finish_mfa_login(client, account, await start_mfa_login(client, account), code=code)

    second = await start_mfa_login(client, account)
    replay = await client.post("/auth/mfa/verify", json={"mfa_token": second, "code": code})
    assert await error_of(replay, 401) == "invalid_code"
    # An earlier step, still inside the window, is as dead as the one used.
    earlier = await client.post(
        "/auth/mfa/verify", json={"mfa_token": second, "code": factor.code(clock.now, steps=-1)}
    )
    assert await error_of(earlier, 401) == "invalid_code"
    # The next step's code is new: it works, with the same MFA token.
    clock.advance(seconds=30)
    await finish_mfa_login(client, account, second, code=factor.code(clock.now))
    outcomes = await events(store, "mfa_verify")
    assert [reason.get("reason") for _, reason in outcomes] == [
        None,
        "replayed_code",
        "replayed_code",
        None,
    ]


@pytest.mark.parametrize("steps", [-2, 2, 3])
async def test_a_code_two_or_more_steps_away_is_refused(
    client: Client, inbox: Inbox, clock: FakeClock, steps: int
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "dave@example.com")
    mfa_token = await start_mfa_login(client, account)
    code = factor.code(clock.now, steps=steps)
    if code in {factor.code(clock.now, steps=s) for s in (-1, 0, 1)}:
        pytest.skip("the far code happens to equal a near one")
    response = await client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, "code": code})
    assert await error_of(response, 401) == "invalid_code"


async def test_a_backup_code_works_once_in_any_spelling(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "erin@example.com")
    backup = factor.backup_codes[3]
    typed = backup.replace("-", " ").upper()
    await finish_mfa_login(
        client, account, await start_mfa_login(client, account), backup_code=typed
    )
    assert claims_of(account.access_token)["amr"] == ["pwd", "backup_code", "mfa"]
    assert await store.mfa.backup_codes_left(account.id) == 9
    assert await events(store, "backup_code_used") == [("success", {"remaining": 9})]

    again = await client.post(
        "/auth/mfa/verify",
        json={"mfa_token": await start_mfa_login(client, account), "backup_code": backup},
    )
    assert await error_of(again, 401) == "invalid_code"
    other = factor.backup_codes[0]
    await finish_mfa_login(
        client, account, await start_mfa_login(client, account), backup_code=other
    )
    assert await store.mfa.backup_codes_left(account.id) == 8


async def test_the_mfa_token_is_dead_after_a_successful_sign_in(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "frank@example.com")
    mfa_token = await start_mfa_login(client, account)
    await finish_mfa_login(client, account, mfa_token, code=factor.code(clock.now))
    sessions = len(await store.sessions.list_for_user(account.id))
    clock.advance(seconds=30)
    for factor_body in (
        {"code": factor.code(clock.now)},
        {"backup_code": factor.backup_codes[0]},
    ):
        reused = await client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, **factor_body})
        assert await error_of(reused, 400) == "invalid_grant"
    assert len(await store.sessions.list_for_user(account.id)) == sessions
    assert await store.mfa.backup_codes_left(account.id) == 10


async def test_wrong_codes_lock_the_second_factor_for_a_while(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "gina@example.com")
    mfa_token = await start_mfa_login(client, account)
    good = factor.code(clock.now)
    near = {factor.code(clock.now, steps=s) for s in (-1, 0, 1)}
    wrong = [c for c in (f"{n:06d}" for n in range(1000)) if c not in near][:5]
    for code in wrong:
        response = await client.post(
            "/auth/mfa/verify", json={"mfa_token": mfa_token, "code": code}
        )
        assert await error_of(response, 401) == "invalid_code"
    locked = await client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, "code": good})
    assert await error_of(locked, 429) == "too_many_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert [outcome for outcome, _ in await events(store, "lockout")] == ["locked"]
    # The lock ends; the same MFA token still works (wrong codes do not spend it).
    clock.advance(seconds=61)
    await finish_mfa_login(client, account, mfa_token, code=factor.code(clock.now))
    assert claims_of(account.access_token)["amr"] == ["pwd", "otp", "mfa"]
    assert await store.lockouts.locked_until(f"mfa:{account.id}") is None


async def test_mfa_fails_closed_when_the_configured_redis_is_down(
    *,
    client: Client,
    inbox: Inbox,
    store: Store,
    clock: FakeClock,
    aiohttp_client: MakeClient,
    settings: settings_mod.Settings,
    make_app: Callable[[settings_mod.Settings], web.Application],
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "hal@example.com")
    mfa_token = await start_mfa_login(client, account)
    redis_down = dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{processes.free_port()}/0"
    )
    other = await aiohttp_client(make_app(redis_down))
    response = await other.post(
        "/auth/mfa/verify", json={"mfa_token": mfa_token, "code": factor.code(clock.now)}
    )
    assert await error_of(response, 503) == "temporarily_unavailable"
    assert "Redis" in (await response.json())["error_description"]
    # Nothing was used up: the same code and token work where the limiter is up.
    await finish_mfa_login(client, account, mfa_token, code=factor.code(clock.now))


# --- removing the factor, new backup codes ------------------------------------------


async def test_removing_totp_needs_the_password_or_a_code(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "ivy@example.com")
    url = "/users/me/mfa/totp"
    for body, status, error in [
        ({}, 400, "invalid_request"),
        ({"password": account.password, "code": factor.code(clock.now)}, 400, "invalid_request"),
        ({"password": "not the password"}, 403, "invalid_credentials"),
        ({"code": "12345"}, 400, "invalid_request"),
        ({"password": 42}, 400, "invalid_request"),
    ]:
        response = await client.delete(url, json=body, headers=account.auth)
        assert await error_of(response, status) == error, body
    assert await store.mfa.enabled(account.id)
    assert await store.mfa.backup_codes_left(account.id) == 10

    removed = await client.delete(url, json={"password": account.password}, headers=account.auth)
    assert removed.status == 204
    assert not await store.mfa.enabled(account.id)
    assert await store.mfa.backup_codes_left(account.id) == 0
    gone = await client.delete(url, json={"password": account.password}, headers=account.auth)
    assert await error_of(gone, 409) == "mfa_not_enabled"
    # Signing in is one step again.
    response = await client.post(
        "/auth/login", json={"login": account.email, "password": account.password}
    )
    assert "access_token" in await response.json()
    assert [o for o, _ in await events(store, "mfa_disable")] == ["failure", "success"]


async def test_a_current_code_also_removes_totp_but_only_once(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "jack@example.com")
    code = factor.code(clock.now)
    await finish_mfa_login(client, account, await start_mfa_login(client, account), code=code)
    replay = await client.delete("/users/me/mfa/totp", json={"code": code}, headers=account.auth)
    assert await error_of(replay, 403) == "invalid_credentials"
    clock.advance(seconds=30)
    removed = await client.delete(
        "/users/me/mfa/totp", json={"code": factor.code(clock.now)}, headers=account.auth
    )
    assert removed.status == 204
    assert not await store.mfa.enabled(account.id)


async def test_new_backup_codes_replace_the_old_ones(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account = await signed_up(client, inbox, "kim@example.com")
    url = "/users/me/mfa/backup-codes"
    before = await client.post(url, json={"password": account.password}, headers=account.auth)
    assert await error_of(before, 409) == "mfa_not_enabled"
    factor = await enable_totp(client, account, clock.now)
    unproven = await client.post(url, json={}, headers=account.auth)
    assert await error_of(unproven, 400) == "invalid_request"

    response = await client.post(url, json={"password": account.password}, headers=account.auth)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    fresh = (await response.json())["backup_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(factor.backup_codes)
    old = await client.post(
        "/auth/mfa/verify",
        json={
            "mfa_token": await start_mfa_login(client, account),
            "backup_code": factor.backup_codes[0],
        },
    )
    assert await error_of(old, 401) == "invalid_code"
    await finish_mfa_login(
        client, account, await start_mfa_login(client, account), backup_code=fresh[0]
    )
    assert [d for _, d in await events(store, "backup_codes_generated")] == [
        {"count": 10},
        {"count": 10, "proof": "password"},
    ]


# --- bad input ----------------------------------------------------------------------


async def test_the_mfa_endpoints_need_a_signed_in_user(
    client: Client, inbox: Inbox, clock: FakeClock
) -> None:
    account, _ = await mfa_account(client, inbox, clock, "lee@example.com")
    mfa_token = await start_mfa_login(client, account)
    for method, path in [
        ("POST", "/users/me/mfa/totp"),
        ("POST", "/users/me/mfa/totp/confirm"),
        ("DELETE", "/users/me/mfa/totp"),
        ("POST", "/users/me/mfa/backup-codes"),
    ]:
        anonymous = await client.request(method, path, json={"password": account.password})
        assert await error_of(anonymous, 401) == "unauthorized"
        # An MFA token is not an access token.
        half = await client.request(
            method,
            path,
            json={"password": account.password},
            headers={"Authorization": f"Bearer {mfa_token}"},
        )
        assert await error_of(half, 401) == "invalid_token"


BAD_VERIFY_BODIES: list[tuple[str, Any]] = [
    ("no fields", {}),
    ("no factor", {"mfa_token": "TOKEN"}),
    ("no token", {"code": "CODE"}),
    ("code as a number", {"mfa_token": "TOKEN", "code": 123456}),
    ("token as a number", {"mfa_token": 1, "code": "CODE"}),
    ("token as a list", {"mfa_token": ["TOKEN"], "code": "CODE"}),
    ("both factors", {"mfa_token": "TOKEN", "code": "CODE", "backup_code": "BACKUP"}),
    ("letters in the code", {"mfa_token": "TOKEN", "code": "12a456"}),
    ("a long code", {"mfa_token": "TOKEN", "code": "1" * 5000}),
    ("a malformed backup code", {"mfa_token": "TOKEN", "backup_code": "abcd-efgh"}),
    ("NUL in the token", {"mfa_token": "TOKEN\x00", "code": "CODE"}),
    ("a garbage token", {"mfa_token": "not.a.jwt", "code": "CODE"}),
    ("an empty token", {"mfa_token": "", "code": "CODE"}),
    ("a huge token", {"mfa_token": "a" * 10_000, "code": "CODE"}),
    ("an access token", {"mfa_token": "ACCESS", "code": "CODE"}),
    ("an unsigned token", {"mfa_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "code": "CODE"}),
    ("non-ASCII token", {"mfa_token": "\u00e9.\u00e9.\u00e9", "code": "CODE"}),
    ("a JSON array", ["TOKEN", "CODE"]),
]


@pytest.mark.parametrize(("case", "body"), BAD_VERIFY_BODIES, ids=[c for c, _ in BAD_VERIFY_BODIES])
async def test_bad_input_to_verify_is_refused_and_changes_nothing(
    *, client: Client, inbox: Inbox, store: Store, clock: FakeClock, case: str, body: Any
) -> None:
    account, factor = await mfa_account(client, inbox, clock, "mo@example.com")
    mfa_token = await start_mfa_login(client, account)
    code = factor.code(clock.now)
    swap = {"TOKEN": mfa_token, "CODE": code, "ACCESS": account.access_token}
    swap["BACKUP"] = factor.backup_codes[0]

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str) and value.rstrip("\x00") in swap:
            # Whole values only: a real token may contain a placeholder's letters.
            return swap[value.rstrip("\x00")] + value[len(value.rstrip("\x00")) :]
        return value

    sessions = len(await store.sessions.list_for_user(account.id))
    response = await client.post("/auth/mfa/verify", json=fill(body))
    assert 400 <= response.status < 500
    assert await error_of(response, response.status) in {"invalid_request", "invalid_grant"}
    assert "authgate_session" not in response.cookies
    assert len(await store.sessions.list_for_user(account.id)) == sessions
    assert await store.mfa.backup_codes_left(account.id) == 10
    assert await store.lockouts.locked_until(f"mfa:{account.id}") is None
    # Neither the code nor the MFA token was used up.
    await finish_mfa_login(client, account, mfa_token, code=code)


async def test_verify_refuses_what_is_not_json(client: Client) -> None:
    not_json = await client.post(
        "/auth/mfa/verify", data="mfa_token=x&code=1", headers={"Content-Type": "text/plain"}
    )
    assert await error_of(not_json, 415) == "invalid_request"
    broken = await client.post(
        "/auth/mfa/verify", data="{", headers={"Content-Type": "application/json"}
    )
    assert await error_of(broken, 400) == "invalid_request"
    huge = await client.post("/auth/mfa/verify", json={"mfa_token": "a" * 100_000, "code": "1"})
    assert await error_of(huge, 413) == "request_too_large"


@pytest.mark.parametrize(
    "body",
    [{}, {"code": 123456}, {"code": None}, {"code": "12345"}, {"code": "\u0661" * 6}],
    ids=["empty", "number", "null", "five digits", "arabic-indic digits"],
)
async def test_bad_input_to_confirm_is_refused_and_changes_nothing(
    client: Client, inbox: Inbox, store: Store, body: dict[str, Any]
) -> None:
    account = await signed_up(client, inbox, "ned@example.com")
    await client.post("/users/me/mfa/totp", headers=account.auth)
    response = await client.post("/users/me/mfa/totp/confirm", json=body, headers=account.auth)
    assert await error_of(response, 400) == "invalid_request"
    assert not await store.mfa.enabled(account.id)
    assert await store.mfa.backup_codes_left(account.id) == 0
