"""Mail delivery: the development outbox, and SMTP with credentials (real server)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from authgate.gateway import mail
from authgate.identity import settings as settings_mod
from tests.integration import processes
from tests.integration.accounts.conftest import PASSWORD, Client, Inbox, MakeApp, MakeClient


async def test_without_smtp_mail_goes_to_the_outbox_and_a_log_line(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp, tmp_path: Path
) -> None:
    outbox_settings = dataclasses.replace(settings, smtp_url=None, data_dir=tmp_path / "d")
    client: Client = await aiohttp_client(make_app(outbox_settings))
    response = await client.post(
        "/auth/register", json={"email": "out@example.com", "password": PASSWORD}
    )
    assert response.status == 201
    [path] = (tmp_path / "d" / "outbox").glob("*.eml")
    assert path.stat().st_mode & 0o077 == 0
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "out@example.com"
    assert "/verify-email?token=" in Inbox.text(message)


class _Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == ("mailer", "s3cr3t/pass"))


# The test server takes AUTH without TLS on loopback; aiosmtpd rightly warns about it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_credentials_from_the_url_are_used() -> None:
    inbox = Inbox(processes.free_port())
    authenticator = _Authenticator()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=inbox.port,
        authenticator=authenticator,
        auth_require_tls=False,  # loopback test server without a certificate
        auth_required=True,
    )
    controller.start()
    try:
        url = f"smtp://mailer:s3cr3t%2Fpass@127.0.0.1:{inbox.port}"
        mailer = mail.SmtpMailer(url, "authgate <no-reply@example.com>")
        message = mail.Message(to="to@example.com", subject="hello", text="plain", html="<p>h</p>")
        await mailer.send(message)
        [received] = await inbox.wait_for("to@example.com")
    finally:
        controller.stop()
    assert authenticator.logins == [("mailer", "s3cr3t/pass")]
    assert received["From"] == "authgate <no-reply@example.com>"
    assert received.get_body(preferencelist=("html",)) is not None


async def test_an_unreachable_smtp_server_is_a_mail_error() -> None:
    mailer = mail.SmtpMailer(f"smtp://127.0.0.1:{processes.free_port()}", "a@example.com")
    message = mail.Message(to="to@example.com", subject="s", text="t", html="h")
    with pytest.raises(mail.MailError, match=r"SMTP 127\.0\.0\.1"):
        await mailer.send(message)


async def test_registration_still_succeeds_when_the_mail_server_is_down(
    aiohttp_client: MakeClient, settings: settings_mod.Settings, make_app: MakeApp
) -> None:
    broken = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{processes.free_port()}")
    client: Client = await aiohttp_client(make_app(broken))
    response = await client.post(
        "/auth/register", json={"email": "late@example.com", "password": PASSWORD}
    )
    assert response.status == 201  # the user can ask for the link again later
