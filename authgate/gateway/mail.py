"""Outgoing mail: SMTP when ``AUTHGATE_SMTP_URL`` is set, else a development outbox.

The outbox writes each message as an ``.eml`` file into ``<data dir>/outbox/`` and logs
a line naming recipient and subject -- never the body, which carries one-time links.
Messages have a plain-text and an HTML part.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.message
import email.utils
import html
import os
import urllib.parse
from pathlib import Path
from typing import Protocol

import aiosmtplib

from authgate.identity import ids, logs
from authgate.identity import settings as settings_mod

SEND_TIMEOUT = 10.0
log = logs.get("authgate.mail")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Message:
    to: str
    subject: str
    text: str
    html: str


class MailError(Exception):
    """The message could not be handed to the mail server."""


class Mailer(Protocol):
    async def send(self, message: Message) -> None: ...


def _build(message: Message, sender: str) -> email.message.EmailMessage:
    built = email.message.EmailMessage()
    built["From"] = sender
    built["To"] = message.to
    built["Subject"] = message.subject
    built["Date"] = email.utils.formatdate(localtime=False)
    built["Message-ID"] = email.utils.make_msgid(domain="authgate")
    built.set_content(message.text)
    built.add_alternative(message.html, subtype="html")
    return built


class OutboxMailer:
    def __init__(self, folder: Path, sender: str) -> None:
        self._folder = folder
        self._sender = sender

    async def send(self, message: Message) -> None:
        data = bytes(_build(message, self._sender))
        path = self._folder / f"{ids.uuid7()}.eml"
        await asyncio.to_thread(self._write, path, data)
        log.info("mail_written_to_outbox", to=message.to, subject=message.subject, path=str(path))

    def _write(self, path: Path, data: bytes) -> None:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        temporary.rename(path)  # readers never see half a message


class SmtpMailer:
    def __init__(self, url: str, sender: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = urllib.parse.unquote(parts.username) if parts.username else None
        self._password = urllib.parse.unquote(parts.password) if parts.password else None
        self._sender = sender

    async def send(self, message: Message) -> None:
        try:
            await aiosmtplib.send(
                _build(message, self._sender),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._implicit_tls,
                # smtp://: STARTTLS when the server offers it; credentials are only
                # sent over TLS unless the server is on loopback (aiosmtplib refuses).
                start_tls=None,
                timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise MailError(f"SMTP {self._host}:{self._port}: {error}") from None
        log.info("mail_sent", to=message.to, subject=message.subject)


def create(settings: settings_mod.Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return OutboxMailer(settings.data_dir / "outbox", settings.mail_from)


def link(settings: settings_mod.Settings, path: str, token: str) -> str:
    return f"{settings.issuer}{path}?{urllib.parse.urlencode({'token': token})}"


def verification(settings: settings_mod.Settings, to: str, token: str, hours: int) -> Message:
    url = link(settings, "/verify-email", token)
    return Message(
        to=to,
        subject="Confirm your email address",
        text=(
            "Confirm the email address of your account by opening this link:\n\n"
            f"{url}\n\nThe link works once and expires in {hours} hours. "
            "If you did not create an account, ignore this message.\n"
        ),
        html=_html(
            "Confirm the email address of your account:",
            url,
            "Confirm email address",
            f"The link works once and expires in {hours} hours. "
            "If you did not create an account, ignore this message.",
        ),
    )


def password_reset(settings: settings_mod.Settings, to: str, token: str, minutes: int) -> Message:
    url = link(settings, "/reset-password", token)
    return Message(
        to=to,
        subject="Reset your password",
        text=(
            "Someone asked to reset the password of your account. To choose a new one, "
            f"open this link:\n\n{url}\n\nThe link works once and expires in {minutes} "
            "minutes. If it was not you, ignore this message: your password is unchanged.\n"
        ),
        html=_html(
            "Someone asked to reset the password of your account. To choose a new one:",
            url,
            "Choose a new password",
            f"The link works once and expires in {minutes} minutes. If it was not you, "
            "ignore this message: your password is unchanged.",
        ),
    )


def _html(intro: str, url: str, label: str, outro: str) -> str:
    return (
        '<!doctype html><html lang="en"><body>'
        f"<p>{html.escape(intro)}</p>"
        f'<p><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></p>'
        f"<p>{html.escape(outro)}</p></body></html>"
    )
