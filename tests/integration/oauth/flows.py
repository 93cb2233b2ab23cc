"""Helpers for end-to-end OAuth tests: a gateway whose issuer is its real address (so
discovery, JWKS and ``iss`` line up for third-party clients), a browser that signs in
and answers the consent page, and PKCE values."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import secrets
import urllib.parse
from typing import Any

from authgate.gateway import appkeys
from tests.integration.oauth.conftest import PASSWORD, Client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class _Forms(html.parser.HTMLParser):
    """Every form on a page: action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action"), "fields": {}})
        elif tag in {"input", "button"} and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value") or ""


def forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


async def sign_in_browser(client: Client, email: str) -> str:
    """An account made in the store and signed in: the client's cookie jar now holds
    its session, as a browser's would. Returns the user id."""
    app = client.app
    user = await app[appkeys.STORE].users.create(email=email, email_verified=True)
    await app[appkeys.STORE].users.set_password_hash(
        user.id, await app[appkeys.HASHER].hash(PASSWORD)
    )
    response = await client.post("/auth/login", json={"login": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return user.id


async def authorize(client: Client, url: str, *, consent: str | None = "allow") -> str:
    """Follow the authorization request like a browser; the final redirect's URL."""
    parts = urllib.parse.urlsplit(url)
    response = await client.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    if response.status == 200 and consent is not None:
        page = await response.text()
        [chosen] = [f for f in forms(page) if f["fields"].get("decision") == consent]
        response = await client.post(chosen["action"], data=chosen["fields"], allow_redirects=False)
    assert response.status in {302, 303}, (response.status, await response.text())
    return response.headers["Location"]


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
