"""Fixtures for the account flows: the real app on both backends, a real SMTP server
(aiosmtpd) that keeps what it receives, and helpers that walk the flows."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.message
import email.policy
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet

from authgate.gateway import app as app_mod
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration import processes
from tests.integration.conftest import FakeClock

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
MakeApp = Callable[[settings_mod.Settings], web.Application]
PASSWORD = "correct horse battery staple 42"
_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


class Inbox:
    """What the SMTP server received, as parsed messages, in order."""

    def __init__(self, port: int) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.port = port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1) -> list[email.message.EmailMessage]:
        for _ in range(200):
            if len(self.to(address)) >= count:
                break
            await asyncio.sleep(0.01)
        messages = self.to(address)
        assert len(messages) >= count, f"expected {count} mails to {address}, got {len(messages)}"
        return messages

    @staticmethod
    def text(message: email.message.EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        content: str = part.get_content()
        return content

    async def token(self, address: str, *, index: int = -1) -> str:
        """The one-time token in a mail's link (the latest by default)."""
        messages = await self.wait_for(address)
        match = _TOKEN.search(self.text(messages[index]))
        assert match, self.text(messages[index])
        return match.group(1)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox(processes.free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def settings(tmp_path: Path, inbox: Inbox) -> settings_mod.Settings:
    """Real argon2id, with cheaper parameters than production so the suite stays fast;
    a test of parameter upgrades sets its own."""
    return settings_mod.Settings(
        data_dir=tmp_path,
        kek=(Fernet.generate_key(),),
        smtp_url=f"smtp://127.0.0.1:{inbox.port}",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
    )


@pytest.fixture
def make_app(store: Store) -> MakeApp:
    return lambda settings: app_mod.create_app(settings, store=store)


@pytest.fixture
async def client(
    aiohttp_client: MakeClient,
    settings: settings_mod.Settings,
    make_app: MakeApp,
) -> Client:
    return await aiohttp_client(make_app(settings))


@dataclasses.dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(
    client: Client, inbox: Inbox, email_address: str, password: str = PASSWORD, **extra: str
) -> Account:
    response = await client.post(
        "/auth/register", json={"email": email_address, "password": password, **extra}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    return Account(id=body["id"], email=email_address, password=password)


async def verify(client: Client, inbox: Inbox, account: Account) -> None:
    token = await inbox.token(account.email)
    response = await client.post("/auth/verify-email", json={"token": token})
    assert response.status == 200, await response.text()


async def login(client: Client, account: Account, **extra: str) -> Account:
    response = await client.post(
        "/auth/login", json={"login": account.email, "password": account.password, **extra}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    account.access_token = body["access_token"]
    account.refresh_token = body["refresh_token"]
    return account


async def signed_up(client: Client, inbox: Inbox, email_address: str, **extra: str) -> Account:
    """Registered, verified and signed in, in a browser of its own (an empty cookie
    jar): the starting point of most flows."""
    account = await register(client, inbox, email_address, **extra)
    await verify(client, inbox, account)
    client.session.cookie_jar.clear()
    return await login(client, account)


async def login_elsewhere(client: Client, account: Account) -> Account:
    """Sign the same account in from another device: without this browser's cookie
    (a sign-in ends the session the browser had before)."""
    client.session.cookie_jar.clear()
    return await login(client, Account(account.id, account.email, account.password))


# --- MFA (TOTP and backup codes) -----------------------------------------------------


def step_clock() -> FakeClock:
    """A store clock for TOTP tests: 80-110 s behind the wall clock, 10 s into a time
    step. Codes then depend on the test's moves, never on when it runs; being behind
    keeps tokens' ``iat``/``exp``, which PyJWT checks against the wall clock, valid
    while a test advances the clock by a minute or two."""
    now = int(time.time()) - 90
    return FakeClock(dt.datetime.fromtimestamp(now - now % 30 + 10, dt.UTC))


@dataclasses.dataclass
class Totp:
    secret: str
    backup_codes: list[str]

    def code(self, now: dt.datetime, *, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(now + dt.timedelta(seconds=30 * steps))


async def enable_totp(client: Client, account: Account, now: dt.datetime) -> Totp:
    """Enrol and confirm TOTP. The confirmation uses the previous step's code, so the
    current step's stays fresh for the sign-in a test usually does next."""
    started = await client.post("/users/me/mfa/totp", headers=account.auth)
    assert started.status == 200, await started.text()
    secret = (await started.json())["secret"]
    code = pyotp.TOTP(secret).at(now - dt.timedelta(seconds=30))
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code}, headers=account.auth
    )
    assert confirmed.status == 200, await confirmed.text()
    return Totp(secret=secret, backup_codes=(await confirmed.json())["backup_codes"])


async def start_mfa_login(client: Client, account: Account) -> str:
    """Sign in with the password of an account with MFA on; returns the MFA token."""
    response = await client.post(
        "/auth/login", json={"login": account.email, "password": account.password}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body == {"mfa_required": True, "mfa_token": body["mfa_token"]}
    token: str = body["mfa_token"]
    return token


async def finish_mfa_login(
    client: Client, account: Account, mfa_token: str, **factor: str
) -> Account:
    """The MFA step with ``code=...`` or ``backup_code=...``; keeps the new tokens."""
    response = await client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, **factor})
    assert response.status == 200, await response.text()
    body = await response.json()
    account.access_token = body["access_token"]
    account.refresh_token = body["refresh_token"]
    return account
