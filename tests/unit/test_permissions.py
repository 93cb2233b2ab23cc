"""Permission strings, how grants cover what is asked, and route rules: no I/O."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authgate.gateway import permissions
from authgate.identity import domain

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _role(name: str, *granted: str, role_id: str | None = None) -> domain.Role:
    return domain.Role(
        id=role_id or f"id-{name}",
        org_id="org",
        name=name,
        permissions=granted,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    "text",
    ["orders:read", "orders:*", "*", "a", "authgate:org:admin", "x.y_z-1:2", "a" * 128],
)
def test_well_formed_permissions_are_accepted_as_written(text: str) -> None:
    assert permissions.parse_permission(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 129,
        "Orders:read",  # upper case
        "orders read",
        "orders::read",  # empty segment
        ":read",
        "orders:",
        "*:read",  # '*' before the end
        "orders:*:read",
        "ord*",  # '*' inside a segment
        "orders:re*",
        "orders:**",
        "orders/read",
        "ordérs:read",
        "orders:read\n",
    ],
)
def test_malformed_permissions_are_refused(text: str) -> None:
    with pytest.raises(permissions.InvalidPermission):
        permissions.parse_permission(text)


def test_a_roles_permissions_are_a_sorted_set() -> None:
    assert permissions.parse_permissions(["b:x", "a:*", "b:x"]) == ("a:*", "b:x")


def test_a_role_holds_at_most_a_hundred_permissions() -> None:
    with pytest.raises(permissions.InvalidPermission, match="at most 100"):
        permissions.parse_permissions([f"p{n}" for n in range(101)])


@pytest.mark.parametrize(
    ("granted", "wanted", "allowed"),
    [
        ("orders:read", "orders:read", True),
        ("orders:read", "orders:write", False),
        ("orders:*", "orders:read", True),
        ("orders:*", "orders:items:write", True),  # the rest, however deep
        ("orders:*", "orders", False),  # not the bare prefix
        ("orders:*", "ordersx:read", False),  # segment boundaries hold
        ("orders:*", "orders:*", True),
        ("orders:read", "orders:*", False),  # a narrow grant never covers a wide ask
        ("*", "anything:at:all", True),
        ("*", "*", True),
        ("a:b:*", "a:b:c", True),
        ("a:b:*", "a:c", False),
        ("orders", "orders:read", False),  # no implied wildcard
    ],
)
def test_a_grant_covers_the_same_string_or_what_its_trailing_star_stands_for(
    granted: str, wanted: str, allowed: bool
) -> None:
    assert permissions.covers(granted, wanted) is allowed


def test_allows_looks_at_every_grant() -> None:
    assert permissions.allows(["a:read", "b:*"], "b:write")
    assert not permissions.allows(["a:read", "b:*"], "c:read")
    assert not permissions.allows([], "a:read")


segment = st.from_regex(r"[a-z0-9._-]{1,8}", fullmatch=True)
permission = st.lists(segment, min_size=1, max_size=4).map(":".join)


@given(prefix=permission, rest=permission)
def test_a_trailing_star_covers_everything_below_its_prefix(prefix: str, rest: str) -> None:
    assert permissions.covers(f"{prefix}:*", f"{prefix}:{rest}")
    assert not permissions.covers(f"{prefix}:*", prefix)


@given(granted=permission, wanted=permission)
def test_without_a_star_only_the_same_string_is_covered(granted: str, wanted: str) -> None:
    assert permissions.covers(granted, wanted) is (granted == wanted)


@given(text=st.text(max_size=40))
def test_parsing_never_fails_other_than_invalid_permission(text: str) -> None:
    with contextlib.suppress(permissions.InvalidPermission):
        assert permissions.parse_permission(text) == text


def test_effective_permissions_are_the_sorted_union_of_the_roles_held() -> None:
    reader = _role("reader", "orders:read", "items:read")
    writer = _role("writer", "orders:*", "orders:read")
    other = _role("other", "secret:read")
    held = permissions.granted_by([other, writer, reader], [writer.id, reader.id])
    assert [role.name for role in held] == ["reader", "writer"]
    assert permissions.effective(held) == ["items:read", "orders:*", "orders:read"]


def test_org_admin_is_the_admin_permission_or_a_star_covering_it() -> None:
    assert permissions.is_org_admin([_role("admin", permissions.ORG_ADMIN)])
    assert permissions.is_org_admin([_role("root", "authgate:*")])
    assert permissions.is_org_admin([_role("root", "*")])
    assert not permissions.is_org_admin([_role("viewer", "authgate:org:read")])
    assert not permissions.is_org_admin([])


def test_route_rules_are_normalised() -> None:
    [rule] = permissions.parse_route_rules(
        [
            {
                "hosts": ["API.Example.com", "*.apps.example.com", "*", "api.example.com"],
                "paths": ["/orders/**", "/health"],
                "methods": ["get", "POST", "GET"],
            }
        ]
    )
    assert rule == domain.RouteRule(
        hosts=("api.example.com", "*.apps.example.com", "*"),
        paths=("/orders/**", "/health"),
        methods=("GET", "POST"),
    )


def test_an_omitted_part_of_a_route_rule_means_any() -> None:
    assert permissions.parse_route_rules([{}, {"paths": ["/x"]}]) == (
        domain.RouteRule(),
        domain.RouteRule(paths=("/x",)),
    )


@pytest.mark.parametrize(
    "rules",
    [
        "not a list",
        [["not", "an", "object"]],
        [{"hosts": "example.com"}],  # not a list
        [{"hosts": [1]}],
        [{"hostz": ["example.com"]}],  # unknown field
        [{"hosts": ["exa mple.com"]}],
        [{"hosts": ["example.com:8080"]}],
        [{"hosts": ["*example.com"]}],
        [{"hosts": ["api.*.example.com"]}],
        [{"hosts": ["-bad.example.com"]}],
        [{"hosts": [""]}],
        [{"paths": ["orders"]}],  # no leading '/'
        [{"paths": ["/orders/*"]}],  # a lone '*'
        [{"paths": ["/orders/**x"]}],
        [{"paths": ["/a b"]}],
        [{"paths": ["/a?b=1"]}],
        [{"paths": ["/" + "a" * 1024]}],
        [{"methods": ["FETCH"]}],
        [{"methods": ["*"]}],
        [{"paths": ["/x"] * 51}],
        [{}] * 51,
    ],
)
def test_bad_route_rules_are_refused(rules: object) -> None:
    with pytest.raises(permissions.InvalidRouteRule):
        permissions.parse_route_rules(rules)
