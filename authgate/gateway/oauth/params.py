"""Reading OAuth requests: form-encoded bodies (RFC 6749 §3.2, §4.1.3) and query
strings (§4.1.1), with the RFC's rules: each parameter at most once (§3.1), values
free of control characters, scopes as space-separated tokens (§3.3)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web
from multidict import MultiMapping

from authgate.gateway import errors as gateway_errors
from authgate.gateway import inputs
from authgate.gateway.oauth import errors

MAX_VALUE = 4096
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


# RFC 8707 §2: "resource" may be given several times; every other parameter once.
REPEATABLE = frozenset({"resource"})


class Params(dict[str, str]):
    """The request's parameters, one value each, plus the repeatable ones as lists."""

    def __init__(self, single: dict[str, str], repeated: dict[str, list[str]]) -> None:
        super().__init__(single)
        self.repeated = repeated

    def all(self, name: str) -> list[str]:
        return self.repeated.get(name, [])


def parse(params: MultiMapping[str | object]) -> Params:
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for name in set(params):
        found = params.getall(name)
        if len(found) > 1 and name not in REPEATABLE:
            raise errors.oauth_error(errors.INVALID_REQUEST, f"{name} is given more than once")
        cleaned = [_clean(name, value) for value in found]
        if name in REPEATABLE:
            repeated[name] = cleaned
        else:
            single[name] = cleaned[0]
    return Params(single, repeated)


def _clean(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        raise errors.oauth_error(errors.INVALID_REQUEST, f"{name} is not a usable value")
    try:
        return inputs.clean_text(value, name)
    except gateway_errors.ApiError:
        raise errors.oauth_error(errors.INVALID_REQUEST, f"{name} has invalid characters") from None


async def read_form(request: web.Request) -> Params:
    if request.content_type != "application/x-www-form-urlencoded":
        raise errors.oauth_error(
            errors.INVALID_REQUEST, "send the parameters as application/x-www-form-urlencoded"
        )
    try:
        form = await request.post()
    except ValueError:
        raise errors.oauth_error(errors.INVALID_REQUEST, "the body is not a valid form") from None
    return parse(form)


def scopes(value: str | None) -> frozenset[str]:
    if value is None or not value.strip():
        return frozenset()
    tokens = value.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in tokens):
        raise errors.oauth_error(errors.INVALID_SCOPE, "scope is space-separated scope tokens")
    return frozenset(tokens)


def scope_string(granted: frozenset[str]) -> str:
    return " ".join(sorted(granted))


def require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise errors.oauth_error(errors.INVALID_REQUEST, f"{name} is required")
    return value
