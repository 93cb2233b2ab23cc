"""Reading request input: JSON bodies and their fields, checked before use.

Every JSON endpoint reads its body with :func:`read_json` and its fields with the
``field_*`` helpers, so bad input -- invalid JSON, a wrong type, a missing field, text
that cannot be stored (NUL, lone surrogates, control characters) -- becomes one
``400 invalid_request`` naming the field, before anything is written.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from aiohttp import web

from authgate.gateway import errors

MAX_TEXT = 1024
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{1,63}$")
_USERNAME = re.compile(r"^[\w.-]{2,64}$")
JsonObject = dict[str, Any]


async def read_json(request: web.Request) -> JsonObject:
    """The body as a JSON object, or 400/415 in the error shape."""
    if request.content_type != "application/json":
        raise errors.ApiError(
            415, "invalid_request", "send the body as JSON with Content-Type: application/json"
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise errors.invalid_request("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise errors.invalid_request("the body must be a JSON object")
    return body


def clean_text(value: str, name: str, *, multiline: bool = False) -> str:
    """Refuse what cannot be stored or shown safely; normalise to NFC."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise errors.invalid_request(f"{name} contains an invalid character")
        if category == "Cc" and not (multiline and char in "\n\t"):
            raise errors.invalid_request(f"{name} contains a control character")
    return unicodedata.normalize("NFC", value)


def field_str(
    body: JsonObject,
    name: str,
    *,
    required: bool = True,
    max_length: int = MAX_TEXT,
    min_length: int = 0,
    strip: bool = True,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.invalid_request(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise errors.invalid_request(f"{name} must be a string")
    text = clean_text(value.strip() if strip else value, name)
    if len(text) > max_length:
        raise errors.invalid_request(f"{name} may have at most {max_length} characters")
    if len(text) < min_length or (required and not text):
        raise errors.invalid_request(f"{name} is required" if not text else f"{name} is too short")
    return text


def required_str(body: JsonObject, name: str, *, max_length: int = MAX_TEXT) -> str:
    value = field_str(body, name, max_length=max_length)
    assert value is not None  # required=True never returns None
    return value


def password_field(body: JsonObject, name: str) -> str:
    """A password as typed: not stripped (spaces count), only refused when unusable."""
    value = field_str(body, name, strip=False, max_length=1024)
    assert value is not None
    return value


def email_field(body: JsonObject, name: str = "email", *, required: bool = True) -> str | None:
    value = field_str(body, name, required=required, max_length=EMAIL_MAX)
    if value is not None and not _EMAIL.match(value):
        raise errors.invalid_request(f"{name} is not an email address")
    return value


def username_field(body: JsonObject, name: str = "username") -> str | None:
    value = field_str(body, name, required=False, max_length=64)
    if value is not None and (not _USERNAME.match(value) or "@" in value):
        raise errors.invalid_request(
            f"{name} takes 2 to 64 letters, digits, '.', '_' or '-' (no '@')"
        )
    return value


def field_bool(body: JsonObject, name: str, *, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise errors.invalid_request(f"{name} must be true or false")
    return value


def field_str_list(body: JsonObject, name: str, *, max_items: int = 100) -> tuple[str, ...]:
    value = body.get(name, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise errors.invalid_request(f"{name} must be a list of at most {max_items} strings")
    items = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > 256:
            raise errors.invalid_request(f"{name} must hold non-empty strings")
        items.append(clean_text(item.strip(), name))
    return tuple(items)


def query_int(
    request: web.Request, name: str, *, default: int, minimum: int = 1, maximum: int = 1000
) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise errors.invalid_request(f"{name} must be a number from {minimum} to {maximum}")
    return int(raw)
