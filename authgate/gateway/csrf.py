"""CSRF protection for the browser pages' forms: a signed double-submit cookie.

Each browser gets a random value in a ``SameSite=Strict``, HttpOnly cookie; every form
carries HMAC(server key, that value). A POST is accepted only when the form's token
matches the cookie it came with, so a page on another site -- which can neither read
our cookie nor, Strict, make the browser send it -- cannot submit our forms. The HMAC
binds the token to the server: someone who can plant a cookie (a sibling subdomain)
cannot invent a matching token without the key. When the browser sends ``Origin``, it
must also be the issuer's origin.

The key is derived from the key-encryption key, so every replica checks what any
replica signed and nothing new has to be configured or stored.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hmac
import re
import urllib.parse
from collections.abc import Mapping

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authgate.gateway import appkeys
from authgate.identity import ids, secrets
from authgate.identity import settings as settings_mod

FIELD = "csrf_token"
_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # ids.token(): 32 bytes, URL-safe base64


class Refused(Exception):
    """The form did not prove it came from our own page; ``reason`` is for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Csrf:
    value: str  # the cookie's random value
    fresh: bool  # the browser does not have it yet: send the cookie with the page
    token: str  # what the page's forms carry


def cookie_name(settings: settings_mod.Settings) -> str:
    # __Host- makes browsers refuse the cookie unless Secure, host-only and Path=/,
    # so no subdomain (and no plain-http page) can overwrite it.
    if settings.issuer_is_https:
        return f"__Host-{settings.cookie_name}_csrf"
    return f"{settings.cookie_name}_csrf"


@functools.lru_cache(maxsize=4)
def _key(settings: settings_mod.Settings) -> bytes:
    """HKDF of the KEK, once per settings object (the embedded default reads its KEK
    from a file; that is not done per request)."""
    kek = secrets.load_kek(settings)[0]
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"authgate csrf v1").derive(
        kek
    )


def _sign(settings: settings_mod.Settings, value: str) -> str:
    digest = hmac.digest(_key(settings), b"csrf:" + value.encode("ascii"), "sha256")
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def for_request(request: web.Request) -> Csrf:
    """The token for the forms of the page being rendered (a new browser value if the
    request brought none)."""
    settings = request.app[appkeys.SETTINGS]
    value = request.cookies.get(cookie_name(settings), "")
    fresh = not _VALUE.match(value)
    if fresh:
        value = ids.token()
    return Csrf(value=value, fresh=fresh, token=_sign(settings, value))


def set_cookie(response: web.StreamResponse, request: web.Request, csrf: Csrf) -> None:
    if not csrf.fresh:
        return
    settings = request.app[appkeys.SETTINGS]
    response.set_cookie(
        cookie_name(settings),
        csrf.value,
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Strict",
    )


def issuer_origin(settings: settings_mod.Settings) -> str:
    parts = urllib.parse.urlsplit(settings.issuer)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check(request: web.Request, form: Mapping[str, str]) -> None:
    """Raise :class:`Refused` unless the form's token matches the browser's cookie and
    the request, if it names its origin, comes from the issuer's."""
    settings = request.app[appkeys.SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != issuer_origin(settings):
        raise Refused("foreign_origin")
    value = request.cookies.get(cookie_name(settings), "")
    if not _VALUE.match(value):
        raise Refused("no_cookie")
    token = form.get(FIELD, "")
    if not token or not hmac.compare_digest(token.encode(), _sign(settings, value).encode()):
        raise Refused("token_mismatch")
