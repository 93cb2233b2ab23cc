"""Permissions: what a role may grant, and whether what was granted covers what is asked.

Pure functions without I/O, so the rules are unit-tested on their own and the API, the
check path and the operator cannot disagree about them.

A permission is a string of ``:``-separated segments, ``orders:read``. A ``*`` is only
allowed as a whole *trailing* segment: ``orders:*`` covers ``orders:read`` and
``orders:items:write`` (the rest, however deep), but not ``orders`` itself nor
``ordersx:read``. Anything else -- ``*`` inside a segment (``ord*``) or before the end
(``*:read``) -- is refused when a role is written, never guessed at when checking: a
pattern language that means one thing to the author and another to the matcher is how
tenants get each other's permissions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from authgate.identity import domain

ORG_ADMIN = "authgate:org:admin"
"""The permission that makes a member an administrator of the organization."""

ADMIN_ROLE = "admin"
"""The built-in role every organization created through the API starts with."""

MAX_PERMISSION_LENGTH = 128
MAX_PERMISSIONS = 100
MAX_RULES = 50
MAX_RULE_ITEMS = 50
MAX_PATH_LENGTH = 1024
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

_SEGMENT = re.compile(r"[a-z0-9._-]+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Printable ASCII without space, quote, '#', '?', '<', '>', '\\', '^', '`', '{', '|', '}':
# what may appear in the path of a URL unescaped; anything else is sent percent-encoded.
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]+")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ENCODED_DOT = re.compile(r"%2[Ee]")
_RULE_KEYS = frozenset({"hosts", "paths", "methods"})


class InvalidPermission(ValueError):
    """The string is not a permission; the message says why, for the person writing it."""


class InvalidRouteRule(ValueError):
    """The route rule cannot be compiled into a policy; the message says why."""


# --- permission strings -------------------------------------------------------------


def parse_permission(text: str) -> str:
    """``text`` if it is a well-formed permission, else :class:`InvalidPermission`."""
    if not 1 <= len(text) <= MAX_PERMISSION_LENGTH:
        raise InvalidPermission(
            f"a permission has 1 to {MAX_PERMISSION_LENGTH} characters: {text[:40]!r}"
        )
    segments = text.split(":")
    for index, segment in enumerate(segments):
        if segment == "*":
            if index != len(segments) - 1:
                raise InvalidPermission(
                    f"'*' may only be the last segment of a permission: {text!r}"
                )
        elif not _SEGMENT.fullmatch(segment):
            raise InvalidPermission(
                f"a permission is ':'-separated segments of a-z, 0-9, '.', '_' or '-', "
                f"with '*' only as a whole last segment: {text!r}"
            )
    return text


def parse_permissions(values: Iterable[str]) -> tuple[str, ...]:
    """Checked, without duplicates, sorted: a role's permissions are a set, and a
    stable order keeps rewrites by the API and by the operator from flapping."""
    checked = {parse_permission(value) for value in values}
    if len(checked) > MAX_PERMISSIONS:
        raise InvalidPermission(f"a role has at most {MAX_PERMISSIONS} permissions")
    return tuple(sorted(checked))


def covers(granted: str, wanted: str) -> bool:
    """Whether holding ``granted`` allows ``wanted``: the same string, or a trailing
    ``*`` that stands for one or more segments where ``wanted`` has them."""
    if granted == wanted:
        return True
    if granted == "*":
        return bool(wanted)
    if granted.endswith(":*"):
        prefix = granted[:-1]  # keeps the ':' so that 'a:*' never covers 'ab:c'
        return wanted.startswith(prefix) and len(wanted) > len(prefix)
    return False


def allows(granted: Iterable[str], wanted: str) -> bool:
    return any(covers(permission, wanted) for permission in granted)


def granted_by(roles: Iterable[domain.Role], role_ids: Iterable[str]) -> list[domain.Role]:
    """The roles among ``roles`` that a membership holding ``role_ids`` has, by name."""
    held = set(role_ids)
    return sorted((role for role in roles if role.id in held), key=lambda role: role.name)


def effective(roles: Iterable[domain.Role]) -> list[str]:
    """Every permission the roles grant together, sorted, each once."""
    return sorted({permission for role in roles for permission in role.permissions})


def is_org_admin(roles: Iterable[domain.Role]) -> bool:
    return allows(effective(roles), ORG_ADMIN)


# --- route rules --------------------------------------------------------------------


def parse_route_rules(value: object) -> tuple[domain.RouteRule, ...]:
    """A role's route rules from JSON, checked and normalised, or
    :class:`InvalidRouteRule`. An omitted or empty list in a rule means "any"."""
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise InvalidRouteRule(f"route_rules must be a list of at most {MAX_RULES} objects")
    return tuple(parse_route_rule(rule, index) for index, rule in enumerate(value))


def parse_route_rule(value: object, index: int = 0) -> domain.RouteRule:
    where = f"route_rules[{index}]"
    if not isinstance(value, Mapping):
        raise InvalidRouteRule(f"{where} must be an object with hosts, paths and methods")
    unknown = set(value) - _RULE_KEYS
    if unknown:
        raise InvalidRouteRule(f"{where} has unknown fields: {sorted(map(str, unknown))}")
    hosts = tuple(_host(h, where) for h in _items(value, "hosts", where))
    paths = tuple(_path(p, where) for p in _items(value, "paths", where))
    methods = tuple(_method(m, where) for m in _items(value, "methods", where))
    return domain.RouteRule(hosts=_unique(hosts), paths=_unique(paths), methods=_unique(methods))


def _items(rule: Mapping[str, Any], key: str, where: str) -> Sequence[str]:
    items = rule.get(key)
    if items is None:
        return ()
    if (
        not isinstance(items, list)
        or len(items) > MAX_RULE_ITEMS
        or not all(isinstance(item, str) for item in items)
    ):
        raise InvalidRouteRule(f"{where}.{key} must be a list of at most {MAX_RULE_ITEMS} strings")
    return items


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _host(value: str, where: str) -> str:
    try:
        return route_host(value)
    except InvalidRouteRule as invalid:
        raise InvalidRouteRule(f"{where}.hosts: {value[:80]!r}: {invalid}") from None


def _path(value: str, where: str) -> str:
    try:
        return route_path(value)
    except InvalidRouteRule as invalid:
        raise InvalidRouteRule(f"{where}.paths: {value[:80]!r}: {invalid}") from None


def _method(value: str, where: str) -> str:
    try:
        return route_method(value)
    except InvalidRouteRule as invalid:
        raise InvalidRouteRule(f"{where}.methods: {value[:20]!r}: {invalid}") from None


# The parts of a route rule, one at a time. The route policy file (``policy.py``) uses
# them too, so a role's rules and the file's rules are one language; the messages say
# what is wrong without naming the value or where it is, which the caller adds.


def route_host(value: str) -> str:
    """``*`` (any host), an exact host name, or ``*.suffix`` (any name below suffix).
    Host names compare case-insensitively, so they are returned lower-case."""
    host = value.strip().lower()
    if host == "*":
        return host
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if not (0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels)):
        raise InvalidRouteRule("is not a host name (without port), '*.suffix' or '*'")
    return host


def route_path(value: str, *, segment_wildcards: bool = False) -> str:
    """A path starting with ``/``; ``**`` as the whole last segment matches any rest.

    A lone ``*`` segment stands for exactly one segment in the policy file
    (``segment_wildcards``); role rules still refuse it, as they always have, so a role
    written today means the same to every version of the check path that reads it.
    ``**`` anywhere but at the end is refused: "any rest" followed by more has no one
    meaning, and the matcher would need backtracking to guess one.

    The check path matches normalised request paths (RFC 3986 §6.2.2: no ``.`` or
    ``..`` segments, no ``//``, an encoded ``.`` decoded), so a pattern holding any of
    those could never match: it is refused here rather than silently dead.
    """
    if not value.startswith("/"):
        raise InvalidRouteRule("must start with '/'")
    if len(value) > MAX_PATH_LENGTH:
        raise InvalidRouteRule(f"must be at most {MAX_PATH_LENGTH} characters long")
    if not _PATH_CHARS.fullmatch(value):
        raise InvalidRouteRule(
            "may hold only URL path characters (percent-encode the others, no query)"
        )
    if value.count("%") != len(_PERCENT_ESCAPE.findall(value)):
        raise InvalidRouteRule("'%' must start a two-digit hex escape such as %2F")
    if _ENCODED_DOT.search(value):
        raise InvalidRouteRule("must write '.' as it is, not as %2E")
    segments = value.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in {".", ".."}:
            raise InvalidRouteRule("must not hold '.' or '..' segments (write where they lead)")
        if not segment and not last:
            raise InvalidRouteRule(
                "must not hold '//' (request paths are matched with '//' merged)"
            )
        if segment == "**":
            if not last:
                raise InvalidRouteRule("'**' is only allowed as the whole last segment")
        elif segment == "*" and segment_wildcards:
            continue
        elif "*" in segment:
            raise InvalidRouteRule(
                "'*' is only allowed as a whole segment ('*': one segment, '**': any rest)"
                if segment_wildcards
                else "'*' is only allowed as a whole '**' segment"
            )
    return value


def route_method(value: str) -> str:
    """One of :data:`HTTP_METHODS`, returned upper-case."""
    method = value.strip().upper()
    if method not in HTTP_METHODS:
        raise InvalidRouteRule(f"is not one of {', '.join(sorted(HTTP_METHODS))}")
    return method
