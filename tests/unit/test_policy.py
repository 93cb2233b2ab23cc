"""The route policy: its file, its patterns, precedence, path normalisation. No I/O but
reading the example files beside this one."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authgate.gateway import policy
from authgate.identity import domain

POLICIES = Path(__file__).parent / "policies"
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _policy(*rules: policy.Rule, default: policy.Default = "deny") -> policy.Policy:
    return policy.Policy(
        default=default,
        rules=tuple(
            dataclasses.replace(rule, source=rule.source or f"file:{index}")
            for index, rule in enumerate(rules)
        ),
    )


def _source(p: policy.Policy, path: str, *, host: str = "any.example", method: str = "GET") -> str:
    return p.requirement(host, path, method).rule_source


def _role(
    name: str, *rules: domain.RouteRule, org: str = "org-1", role_id: str | None = None
) -> domain.Role:
    return domain.Role(
        id=role_id or f"id-{name}",
        org_id=org,
        name=name,
        route_rules=rules,
        created_at=NOW,
        updated_at=NOW,
    )


# --- the file ------------------------------------------------------------------------


def test_the_issue_example_loads_as_written() -> None:
    loaded = policy.load_file(POLICIES / "issue-5.yaml")
    assert loaded.default == "deny"
    assert loaded.rules == (
        policy.Rule(
            hosts=("*",),
            paths=("/public/**",),
            methods=("GET", "HEAD"),
            access="public",
            source="file:0",
        ),
        policy.Rule(
            paths=("/api/**",),
            access="authenticated",
            scopes=("orders:read",),
            roles=("order-reader",),
            source="file:1",
        ),
    )


def test_the_issue_example_answers_as_its_comments_say() -> None:
    loaded = policy.load_file(POLICIES / "issue-5.yaml")
    assert loaded.requirement("shop.example.com", "/public/logo.png", "GET").public
    assert loaded.requirement("shop.example.com", "/public/logo.png", "HEAD").public
    assert loaded.requirement("shop.example.com", "/public/form", "POST").denied  # no rule
    api = loaded.requirement("api.example.com", "/api/orders/7", "DELETE")
    assert api == policy.Requirement(
        access="authenticated",
        scopes=("orders:read",),
        roles=(policy.RoleGrant("order-reader"),),
        rule_source="file:1",
        sources=("file:1",),
        matched=True,
    )
    unmatched = loaded.requirement("shop.example.com", "/private", "GET")
    assert (unmatched.access, unmatched.matched, unmatched.rule_source) == (
        "deny",
        False,
        "default",
    )


@pytest.mark.parametrize(
    ("host", "path", "method", "source"),
    [
        ("shop.example.com", "/", "GET", "file:0"),
        ("shop.example.com", "/assets/app.js", "HEAD", "file:0"),
        ("shop.example.com", "/assets/app.js", "POST", "default"),
        ("api.example.com", "/", "GET", "file:1"),  # the host's own rule comes first
        ("api.example.com", "/healthz", "GET", "file:1"),
        ("api.example.com", "/v1/orders", "GET", "file:2"),
        ("api.example.com", "/v1/orders/7/items", "GET", "file:2"),
        ("api.example.com", "/v1/orders/7/items", "POST", "file:3"),
        ("api.example.com", "/v1/orders/7/items/1", "POST", "file:2"),
        ("blog.apps.example.com", "/", "GET", "file:4"),
        ("blog.apps.example.com", "/admin", "PUT", "file:5"),
        ("apps.example.com", "/admin", "GET", "default"),  # '*.' is below, not at
        ("apps.example.com", "/", "GET", "file:0"),
    ],
)
def test_the_documented_example_answers_as_documented(
    host: str, path: str, method: str, source: str
) -> None:
    shop = policy.load_file(POLICIES / "shop.yaml")
    assert shop.requirement(host, path, method).rule_source == source


def test_an_omitted_default_denies_and_an_omitted_access_is_authenticated() -> None:
    parsed = policy.parse("routes:\n  - paths: [/x]\n", source_name="t")
    assert parsed.default == "deny"
    assert parsed.rules[0].access == "authenticated"
    assert policy.parse("default: public\n", source_name="t").rules == ()


def test_file_values_are_normalised() -> None:
    parsed = policy.parse(
        """
        routes:
          - hosts: [API.Example.com, api.example.com, "*.Example.com"]
            paths: ["/a/%7euser", "/a/%2fb", "/a/%2fb", "**"]
            methods: [get, Post, GET]
            scopes: [a, a, b]
        """,
        source_name="t",
    )
    assert parsed.rules[0] == policy.Rule(
        hosts=("api.example.com", "*.example.com"),
        paths=("/a/~user", "/a/%2Fb", "**"),
        methods=("GET", "POST"),
        scopes=("a", "b"),
        source="file:0",
    )


BAD_FILES = [
    ("routes: [\n", r"(?s)^t: is not valid YAML: .*in \"t\", line 2"),
    ("- just\n- a list\n", r"t: must be a mapping with 'default' and 'routes'"),
    ("", r"t: must be a mapping"),
    ("default: maybe\n", r"t: default: must be deny, authenticated or public"),
    ("default: no\n", r"t: default: must be deny"),  # YAML 1.1 reads 'no' as false
    ("defualt: deny\n", r"t: policy: unknown keys \['defualt'\]"),
    ("routes: {paths: [/x]}\n", r"t: routes: must be a list"),
    ("routes: [[/x]]\n", r"t: routes\[0\]: must be a mapping"),
    ("routes:\n  - path: [/x]\n", r"t: routes\[0\]: unknown keys \['path'\]"),
    ("routes:\n  - paths: [/x]\n    paths: [/y]\n", r"found the key 'paths' twice"),
    ("routes:\n  - paths: /x\n", r"t: routes\[0\]\.paths: must be a list \(got str\)"),
    ("routes:\n  - paths: []\n", r"t: routes\[0\]\.paths: must not be empty"),
    ("routes:\n  - hosts: []\n", r"t: routes\[0\]\.hosts: must not be empty"),
    ("routes:\n  - methods: []\n", r"t: routes\[0\]\.methods: must not be empty"),
    ("routes:\n  - paths: [7]\n", r"t: routes\[0\]\.paths\[0\]: must be a string"),
    ("routes:\n  - paths: [/a, api]\n", r"t: routes\[0\]\.paths\[1\]: must start with '/'"),
    ("routes:\n  - paths: ['/a?b']\n", r"routes\[0\]\.paths\[0\]: may hold only URL path"),
    ("routes:\n  - paths: ['/a/**/b']\n", r"paths\[0\]: '\*\*' is only allowed as the whole"),
    ("routes:\n  - paths: ['/a*']\n", r"paths\[0\]: '\*' is only allowed as a whole segment"),
    ("routes:\n  - paths: ['/a/../b']\n", r"paths\[0\]: must not hold '\.' or '\.\.'"),
    ("routes:\n  - paths: ['/a/%2e%2e/b']\n", r"paths\[0\]: must write '\.' as it is"),
    ("routes:\n  - paths: ['/a//b']\n", r"paths\[0\]: must not hold '//'"),
    ("routes:\n  - paths: ['/a%zz']\n", r"paths\[0\]: '%' must start a two-digit hex"),
    (f"routes:\n  - paths: ['/{'a' * 1024}']\n", r"paths\[0\]: must be at most 1024"),
    ("routes:\n  - hosts: ['api.example.com:443']\n", r"hosts\[0\]: is not a host name"),
    ("routes:\n  - hosts: ['api.*.com']\n", r"routes\[0\]\.hosts\[0\]: is not a host name"),
    ("routes:\n  - methods: [GET, FETCH]\n", r"routes\[0\]\.methods\[1\]: is not one of"),
    ("routes:\n  - access: private\n", r"routes\[0\]\.access: must be public or authenticated"),
    ("routes:\n  - scopes: ['a b']\n", r"routes\[0\]\.scopes\[0\]: is not a scope token"),
    ("routes:\n  - any_scopes: ['a\"b']\n", r"routes\[0\]\.any_scopes\[0\]: is not a scope"),
    ("routes:\n  - roles: [Admin]\n", r"routes\[0\]\.roles\[0\]: is not a role name"),
    ("routes:\n  - org: 7\n", r"routes\[0\]\.org: must be a string"),
    ("routes:\n  - org: Acme Inc\n", r"routes\[0\]\.org: is not an organization slug or id"),
    ("routes:\n  - {access: public, roles: [a]}\n", r"routes\[0\]\.roles: a public route"),
    ("routes:\n  - {access: public, scopes: [a]}\n", r"routes\[0\]\.scopes: a public route"),
    ("routes:\n  - {access: public, org: acme}\n", r"routes\[0\]\.org: a public route"),
    ("routes:\n  - paths: [" + ", ".join(f"/{n}" for n in range(51)) + "]\n", r"at most 50"),
    ("routes:\n" + "  - paths: [/x]\n" * 1001, r"t: routes: must hold at most 1000 rules"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(policy.PolicyError, match=message):
        policy.parse(text, source_name="t")


def test_the_error_names_the_rule_index_and_the_item() -> None:
    text = "routes:\n" + "  - paths: [/ok]\n" * 3 + "  - paths: [api]\n"
    with pytest.raises(policy.PolicyError) as raised:
        policy.parse(text, source_name="policy.yaml")
    assert str(raised.value) == "policy.yaml: routes[3].paths[0]: must start with '/' (got 'api')"
    assert (raised.value.where, raised.value.source) == ("routes[3].paths[0]", "policy.yaml")


def test_a_file_too_large_or_missing_or_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(policy.PolicyError, match="larger than"):
        policy.parse("#" * (policy.MAX_POLICY_BYTES + 1), source_name="t")
    with pytest.raises(policy.PolicyError, match="cannot be read"):
        policy.load_file(tmp_path / "missing.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# caf\xe9\ndefault: deny\n".encode("latin-1"))
    with pytest.raises(policy.PolicyError, match="is not UTF-8"):
        policy.load_file(latin1)


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(policy.PolicyError, match="is not valid YAML"):
        policy.parse("default: !!python/object/apply:os.getcwd []\n", source_name="t")


# --- patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/health", "/health", True),
        ("/health", "/health/", False),  # a trailing slash is another path
        ("/health", "/healthz", False),
        ("/health", "/Health", False),  # paths are case-sensitive
        ("/api/", "/api/", True),
        ("/api/", "/api", False),
        ("/api/**", "/api", True),  # the prefix itself
        ("/api/**", "/api/", True),
        ("/api/**", "/api/v1/orders/7", True),
        ("/api/**", "/apiary", False),  # segment boundaries hold
        ("/api/**", "/", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("**", "/anything/at/all", True),
        ("/", "/", True),
        ("/", "/x", False),
        ("/users/*", "/users/42", True),
        ("/users/*", "/users/", False),  # '*' is one non-empty segment
        ("/users/*", "/users", False),
        ("/users/*", "/users/42/orders", False),
        ("/users/*/orders", "/users/42/orders", True),
        ("/users/*/orders", "/users/42/43/orders", False),
        ("/users/*/orders/**", "/users/42/orders/1/lines", True),
        ("/*/*", "/a/b", True),
        ("/*", "/*", True),  # a literal '*' in a request is one segment too
        ("/files/a%2Fb", "/files/a%2fb", True),  # escapes compare upper-cased
        ("/files/a%2Fb", "/files/a/b", False),  # an encoded '/' is not a separator
        ("/~user", "/%7Euser", True),  # unreserved characters compare decoded
    ],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    p = _policy(policy.Rule(paths=(pattern,), access="public"))
    assert p.requirement("h.example", path, "GET").matched is matches


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "API.Example.COM", True),
        ("api.example.com", "api.example.com:8443", True),
        ("api.example.com", "api.example.com.", True),  # the FQDN form
        ("api.example.com", "x.api.example.com", False),
        ("api.example.com", "example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),  # any depth below
        ("*.example.com", "example.com", False),  # but not the name itself
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "example.com.evil.net", False),
        ("*", "anything.at.all", True),
        ("*", "", True),
        ("*", "[::1]:8080", True),
    ],
)
def test_host_patterns(pattern: str, host: str, matches: bool) -> None:
    p = _policy(policy.Rule(hosts=(pattern,), access="public"))
    assert p.requirement(host, "/", "GET").matched is matches


def test_methods_are_compared_upper_case_and_unknown_ones_match_only_any() -> None:
    p = _policy(
        policy.Rule(paths=("/a",), methods=("GET",), access="public"),
        policy.Rule(paths=("/b",), access="public"),
    )
    assert p.requirement("h", "/a", "get").public
    assert p.requirement("h", "/a", "HEAD").denied  # HEAD is not GET: list both
    assert p.requirement("h", "/a", "PROPFIND").denied
    assert p.requirement("h", "/b", "PROPFIND").public


# --- precedence -------------------------------------------------------------------------


def test_an_exact_host_beats_a_suffix_which_beats_a_longer_suffix_s_loser() -> None:
    p = _policy(
        policy.Rule(paths=("/x",), access="public"),
        policy.Rule(hosts=("*.example.com",), access="public"),
        policy.Rule(hosts=("*.a.example.com",), access="public"),
        policy.Rule(hosts=("b.a.example.com",), access="public"),
    )
    assert _source(p, "/x", host="b.a.example.com") == "file:3"
    assert _source(p, "/x", host="c.a.example.com") == "file:2"  # the longest suffix
    assert _source(p, "/x", host="c.example.com") == "file:1"
    assert _source(p, "/x", host="other.net") == "file:0"


def test_host_specificity_comes_before_path_specificity() -> None:
    p = _policy(
        policy.Rule(paths=("/admin",), access="authenticated"),
        policy.Rule(hosts=("api.example.com",), paths=("/**",), access="public"),
    )
    assert _source(p, "/admin", host="api.example.com") == "file:1"
    assert _source(p, "/admin", host="www.example.com") == "file:0"


@pytest.mark.parametrize(
    ("path", "winner"),
    [
        ("/a/b", "/a/b"),  # exact beats every pattern
        ("/a/b/c", "/a/b/**"),  # a longer literal prefix beats a shorter one
        ("/a/x", "/a/*"),  # '*' beats '**'
        ("/a/x/y", "/a/**"),
        ("/a", "/a/**"),
        ("/z", "/**"),
        ("/a/x/c", "/a/*/c"),
    ],
)
def test_the_most_specific_path_wins_whatever_the_order(path: str, winner: str) -> None:
    patterns = ["/**", "/a/**", "/a/*", "/a/*/c", "/a/b/**", "/a/b"]
    for order in (patterns, patterns[::-1]):
        p = _policy(*(policy.Rule(paths=(pattern,), access="public") for pattern in order))
        assert p.rules[int(_source(p, path).removeprefix("file:"))].paths == (winner,)


def test_a_literal_segment_beats_a_star_before_the_length_is_looked_at() -> None:
    p = _policy(
        policy.Rule(paths=("/a/*/c",), access="public"),
        policy.Rule(paths=("/a/b/**",), access="public"),
    )
    assert _source(p, "/a/b/c") == "file:1"


def test_listed_methods_beat_any_method() -> None:
    p = _policy(
        policy.Rule(paths=("/a",), access="authenticated"),
        policy.Rule(paths=("/a",), methods=("GET",), access="public"),
    )
    assert _source(p, "/a", method="GET") == "file:1"
    assert _source(p, "/a", method="POST") == "file:0"


def test_a_more_specific_path_beats_listed_methods() -> None:
    p = _policy(
        policy.Rule(paths=("/a/**",), methods=("GET",), access="public"),
        policy.Rule(paths=("/a/b",), access="authenticated"),
    )
    assert _source(p, "/a/b", method="GET") == "file:1"


def test_ties_go_to_the_rule_that_comes_first() -> None:
    p = _policy(
        policy.Rule(paths=("/a",), scopes=("first",)),
        policy.Rule(paths=("/a",), scopes=("second",)),
    )
    assert p.requirement("h", "/a", "GET").scopes == ("first",)


def test_a_file_rule_beats_an_equal_role_rule() -> None:
    role_rules = policy.from_roles(
        [_role("reader", domain.RouteRule(paths=("/a",)))], {"org-1": "acme"}
    )
    p = _policy(policy.Rule(paths=("/a",), access="public")).combined(role_rules)
    assert _source(p, "/a") == "file:0"


def test_a_more_specific_role_rule_beats_a_file_rule() -> None:
    role_rules = policy.from_roles(
        [_role("reader", domain.RouteRule(paths=("/a/**",)))], {"org-1": "acme"}
    )
    p = _policy(policy.Rule(paths=("/**",), access="public")).combined(role_rules)
    assert p.requirement("h", "/a/x", "GET") == policy.Requirement(
        access="authenticated",
        roles=(policy.RoleGrant("reader", "org-1", "acme"),),
        org="org-1",
        rule_source="role:id-reader",
        sources=("role:id-reader",),
        matched=True,
    )
    assert p.requirement("h", "/b", "GET").public


def test_equal_role_rules_combine_into_any_of_their_roles() -> None:
    roles = [
        _role("writer", domain.RouteRule(paths=("/orders/**",))),
        _role("reader", domain.RouteRule(paths=("/orders/**",), methods=("GET",))),
        _role("auditor", domain.RouteRule(paths=("/orders/**",), methods=("GET",))),
        _role("ops", domain.RouteRule(paths=("/orders/**",), methods=("GET",)), org="org-2"),
    ]
    p = policy.Policy().combined(policy.from_roles(roles, {"org-1": "acme", "org-2": "ops"}))
    read = p.requirement("h", "/orders/7", "GET")
    assert set(read.roles) == {
        policy.RoleGrant("auditor", "org-1", "acme"),
        policy.RoleGrant("reader", "org-1", "acme"),
        policy.RoleGrant("ops", "org-2", "ops"),
    }
    assert read.org is None  # two organizations: each grant names its own
    assert read.rule_source == read.sources[0]
    assert set(read.sources) == {"role:id-auditor", "role:id-reader", "role:id-ops"}
    # A rule listing the method is more specific: the writer's any-method rule loses
    # for GET, and is alone for POST.
    write = p.requirement("h", "/orders/7", "POST")
    assert write.roles == (policy.RoleGrant("writer", "org-1", "acme"),)
    assert write.org == "org-1"


def test_role_rules_of_one_organization_combine_keeping_it() -> None:
    roles = [_role(name, domain.RouteRule(paths=("/x",))) for name in ("b", "a")]
    p = policy.Policy(rules=policy.from_roles(roles, {}))
    got = p.requirement("h", "/x", "GET")
    assert got.org == "org-1"
    assert [grant.name for grant in got.roles] == ["a", "b"]  # stable: sorted by name


def test_no_rule_matched_gets_the_default() -> None:
    for default in ("deny", "authenticated", "public"):
        p = _policy(policy.Rule(paths=("/a",), access="public"), default=default)
        got = p.requirement("h", "/b", "GET")
        assert (got.access, got.matched, got.rule_source) == (default, False, "default")


# --- path normalisation -------------------------------------------------------------------


ATTACKS = _policy(
    policy.Rule(paths=("/public/**",), access="public"),
    policy.Rule(paths=("/admin/**",), roles=("admin",)),
    policy.Rule(paths=("/admin",), roles=("admin",)),
    default="authenticated",
)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("/public/x", "file:0"),
        ("/public/../admin", "file:2"),
        ("/public/../admin/users", "file:1"),
        ("/public/%2e%2e/admin", "file:2"),
        ("/public/%2E%2e/admin", "file:2"),
        ("/public/.%2e/admin", "file:2"),
        ("/public/./../admin", "file:2"),
        ("//admin", "file:2"),
        ("///admin//users", "file:1"),
        ("/public//x", "file:0"),
        ("/%70ublic/x", "file:0"),  # an unreserved escape means the letter
        ("/PUBLIC/x", "default"),  # case-sensitive: not the public prefix
        ("/Admin", "default"),
        ("/public%2Fx", "default"),  # one segment 'public%2Fx', not /public/x
        ("/public/x%2F..%2F..%2Fadmin", "refused-path"),  # a climb behind %2F
        ("/public%2F..%2Fadmin", "refused-path"),
        ("/public/..%5Cadmin", "refused-path"),
        ("/public/..;/admin", "refused-path"),  # Tomcat reads '..;' as '..'
        ("/public/.;/x", "refused-path"),
        ("/public/x;jsessionid=1", "file:0"),  # parameters are part of the segment
        ("/public/..", "default"),  # '/'
        ("/admin/.", "file:1"),  # '/admin/'
        ("/admin/x/..", "file:1"),  # '/admin/'
        ("/admin.", "default"),  # a trailing dot is part of the name
        ("/admin..", "default"),
        ("/public/x?/../../admin", "file:0"),  # the query is cut off
        ("/public/x?a=%2e%2e", "file:0"),
        ("/..", "refused-path"),
        ("/../admin", "refused-path"),
        ("/public/../../admin", "refused-path"),
        ("/public//../admin", "refused-path"),  # readings of '//..' disagree
        ("/public\\..\\admin", "refused-path"),  # a raw backslash
        ("/public/x#/../../admin", "refused-path"),
        ("/public/\x00/x", "refused-path"),
        ("/public/%zz", "refused-path"),
        ("/public/%2", "refused-path"),
        ("public/x", "refused-path"),  # not origin-form
        ("*", "refused-path"),
        ("", "default"),  # '/'
    ],
)
def test_paths_are_matched_normalised_and_tricks_are_refused(path: str, source: str) -> None:
    got = ATTACKS.requirement("h", path, "GET")
    assert got.rule_source == source
    if source == "refused-path":
        assert (got.access, got.matched) == ("deny", False)


def test_a_refused_path_is_denied_even_when_the_default_is_public() -> None:
    p = _policy(default="public")
    assert p.requirement("h", "/../etc/passwd", "GET").denied


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/b/../..", "/"),
        ("/a/%7e%41%2f%2F", "/a/~A%2F%2F"),
        ("/a/%C3%A9", "/a/%C3%A9"),
        ("/a/é", "/a/é"),  # raw non-ASCII is compared as it came
        ("/.well-known/jwks.json", "/.well-known/jwks.json"),
        ("/a/...", "/a/..."),
    ],
)
def test_normalise_path(path: str, normal: str) -> None:
    assert policy.normalise_path(path) == normal


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("API.Example.com:8443", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        (" api.example.com ", "api.example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("", ""),
    ],
)
def test_normalise_host(host: str, normal: str) -> None:
    assert policy.normalise_host(host) == normal


def test_a_very_long_path_is_answered() -> None:
    p = _policy(policy.Rule(paths=("/a/**",), access="public"))
    assert p.requirement("h", "/a" * 100_000, "GET").public
    assert p.requirement("h", "/a/.." * 50_000 + "/..", "GET").denied


# --- role rules ------------------------------------------------------------------------------


def test_each_route_rule_of_a_role_becomes_a_rule_requiring_it_in_its_organization() -> None:
    role = _role(
        "order-reader",
        domain.RouteRule(hosts=("API.example.com",), paths=("/v1/orders/**",)),
        domain.RouteRule(paths=("/v1/carts",), methods=("get",)),
        role_id="r-1",
    )
    assert policy.from_roles([role], {"org-1": "acme"}) == (
        policy.Rule(
            hosts=("api.example.com",),
            paths=("/v1/orders/**",),
            access="authenticated",
            roles=("order-reader",),
            org="org-1",
            org_slug="acme",
            source="role:r-1",
        ),
        policy.Rule(
            paths=("/v1/carts",),
            methods=("GET",),
            roles=("order-reader",),
            org="org-1",
            org_slug="acme",
            source="role:r-1",
        ),
    )


def test_a_role_without_route_rules_adds_none() -> None:
    assert policy.from_roles([_role("viewer")], {}) == ()


def test_a_role_rule_the_api_would_refuse_names_the_role() -> None:
    role = _role("r", domain.RouteRule(paths=("/a", "/v1/**/x")), role_id="r-9")
    with pytest.raises(policy.PolicyError) as raised:
        policy.from_roles([role], {"org-1": "acme"})
    assert str(raised.value).startswith("role acme/r (r-9): route_rules[0].paths[1]: '**'")


def test_combining_replaces_the_role_rules_instead_of_accumulating_them() -> None:
    file_policy = _policy(policy.Rule(paths=("/p",), access="public"), default="authenticated")
    first = file_policy.combined(
        policy.from_roles([_role("a", domain.RouteRule(paths=("/x",)))], {})
    )
    second = first.combined(policy.from_roles([_role("b", domain.RouteRule(paths=("/y",)))], {}))
    assert [rule.source for rule in second.rules] == ["file:0", "role:id-b"]
    assert second.default == "authenticated"
    assert second.requirement("h", "/x", "GET").rule_source == "default"
    assert second.requirement("h", "/y", "GET").rule_source == "role:id-b"
    assert first.requirement("h", "/x", "GET").rule_source == "role:id-a"  # unchanged


def test_a_rule_built_by_hand_is_checked_when_the_policy_is_built() -> None:
    with pytest.raises(policy.PolicyError, match=r"^file:0: paths\[0\]: must start with '/'"):
        _policy(policy.Rule(paths=("x",)))
    with pytest.raises(policy.PolicyError, match="a role's rule requires its role"):
        policy.Policy(rules=(policy.Rule(scopes=("a",), roles=("r",), source="role:x"),))
    with pytest.raises(policy.PolicyError, match="default"):
        policy.Policy(default="allow")  # type: ignore[arg-type]


# --- what satisfies a requirement ------------------------------------------------------------


def _needs(**fields: object) -> policy.Requirement:
    return dataclasses.replace(
        policy.Requirement(access="authenticated", rule_source="t", matched=True),
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("requirement", "scopes", "roles", "org_names", "ok"),
    [
        (_needs(), [], [], [], True),
        (_needs(access="public"), [], [], [], True),
        (_needs(access="deny"), ["*"], ["admin"], ["o"], False),
        (_needs(scopes=("a", "b")), ["a", "b", "c"], [], [], True),
        (_needs(scopes=("a", "b")), ["a"], [], [], False),
        (_needs(scopes=("orders:read",)), ["orders:*"], [], [], True),  # as permissions
        (_needs(any_scopes=("a", "b")), ["b"], [], [], True),
        (_needs(any_scopes=("a", "b")), ["c"], [], [], False),
        (_needs(roles=(policy.RoleGrant("r"),)), [], ["r"], ["any-org"], True),
        (_needs(roles=(policy.RoleGrant("r"),)), [], ["s"], ["any-org"], False),
        (_needs(roles=(policy.RoleGrant("r", "o1", "acme"),)), [], ["r"], ["o1"], True),
        (_needs(roles=(policy.RoleGrant("r", "o1", "acme"),)), [], ["r"], ["o2"], False),
        (_needs(roles=(policy.RoleGrant("r", "acme"),)), [], ["r"], ["o1", "acme"], True),
        (
            _needs(roles=(policy.RoleGrant("r", "o1"), policy.RoleGrant("s", "o2"))),
            [],
            ["s"],
            ["o2"],
            True,
        ),
        (_needs(org="acme"), [], [], ["o1", "acme"], True),
        (_needs(org="acme"), [], [], ["o1"], False),
    ],
)
def test_what_satisfies_a_requirement(
    requirement: policy.Requirement,
    scopes: list[str],
    roles: list[str],
    org_names: list[str],
    ok: bool,
) -> None:
    assert requirement.satisfied_by(scopes=scopes, roles=roles, org_names=org_names) is ok


# --- properties ----------------------------------------------------------------------------------

segments = st.sampled_from(
    ["a", "b", "A", "", ".", "..", "%2e", "%2E%2e", "%2F", "%5C", "..;", ";x", "%41", "*", "é"]
)
paths = st.one_of(
    st.text(max_size=40),
    st.lists(segments, max_size=8).map(lambda parts: "/" + "/".join(parts)),
)
hosts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["a.example.com", "A.EXAMPLE.COM:80", "x.a.example.com.", "[::1]:1", ""]),
)
methods = st.one_of(st.text(max_size=10), st.sampled_from(["GET", "post", "PROPFIND"]))

BROAD = policy.load_file(POLICIES / "shop.yaml").combined(
    policy.from_roles(
        [
            _role(
                "r", domain.RouteRule(paths=("/a/**",)), domain.RouteRule(hosts=("*.example.com",))
            ),
            _role("s", domain.RouteRule(paths=("/a/**",)), org="org-2"),
        ],
        {},
    )
)


@given(host=hosts, path=paths, method=methods)
def test_matching_never_raises(host: str, path: str, method: str) -> None:
    got = BROAD.requirement(host, path, method)
    assert got.access in {"public", "authenticated", "deny"}


@given(path=paths)
def test_a_normal_path_is_its_own_normal_form(path: str) -> None:
    normal = policy.normalise_path(path)
    if normal is not None:
        assert normal.startswith("/")
        assert "//" not in normal
        assert not {".", ".."} & set(normal.split("/"))
        assert policy.normalise_path(normal) == normal


ONLY_HERE = policy.parse(
    """
    routes:
      - hosts: [rules.example, "*.rules.example"]
        paths: ["/**"]
        access: public
      - hosts: ["*"]
        paths: ["/only/**", "/x/*/y"]
        methods: [GET]
        access: public
    """,
    source_name="t",
)


@given(
    host=hosts.filter(lambda h: not policy.normalise_host(h).endswith("rules.example")),
    path=paths.filter(lambda p: not (policy.normalise_path(p) or "/").startswith(("/only", "/x/"))),
    method=methods,
    default=st.sampled_from(["deny", "authenticated", "public"]),
)
def test_a_request_no_rule_matches_gets_the_default(
    host: str, path: str, method: str, default: policy.Default
) -> None:
    p = policy.Policy(default=default, rules=ONLY_HERE.rules)
    got = p.requirement(host, path, method)
    assert not got.matched
    assert got.access == (default if policy.normalise_path(path) is not None else "deny")


# The matcher against a plain reading of the rules: every rule, every pattern, the
# largest (host, path, method) key, the first of equals, role rules combined.

SAMPLE_HOSTS = ["a.example.com", "*.example.com", "*.a.example.com", "b.a.example.com", "*"]
PATTERN_SEGMENTS = st.lists(st.sampled_from(["a", "b", "*"]), max_size=3)
PATTERNS = st.tuples(PATTERN_SEGMENTS, st.sampled_from(["", "/", "/**"])).map(
    lambda parts: ("/" + "/".join(parts[0]) + parts[1]).replace("//", "/")
)


@st.composite
def rules(draw: st.DrawFn, *, role: bool) -> policy.Rule:
    return policy.Rule(
        hosts=tuple(draw(st.lists(st.sampled_from(SAMPLE_HOSTS), max_size=2, unique=True))),
        paths=tuple(draw(st.lists(PATTERNS, max_size=2, unique=True))),
        methods=tuple(draw(st.lists(st.sampled_from(["GET", "POST"]), max_size=2, unique=True))),
        access="authenticated" if role else draw(st.sampled_from(["public", "authenticated"])),
        roles=(draw(st.sampled_from(["r1", "r2", "r3"])),) if role else (),
        org=draw(st.sampled_from(["o1", "o2"])) if role else None,
        source=f"role:{draw(st.integers(0, 9))}" if role else "",
    )


def _host_key(pattern: str, host: str) -> tuple[int, int] | None:
    if pattern == "*":
        return (0, 0)
    if pattern.startswith("*."):
        return (1, len(pattern)) if host.endswith(pattern[1:]) else None
    return (2, 0) if host == pattern else None


def _path_key(pattern: str, path: str) -> tuple[int, ...] | None:
    rest = pattern.endswith("/**")
    wanted = (pattern[: -len("/**")] if rest else pattern)[1:].split("/")
    wanted = [] if rest and wanted == [""] else wanted
    given_ = path[1:].split("/")
    if len(given_) < len(wanted) or (not rest and len(given_) != len(wanted)):
        return None
    for want, got in zip(wanted, given_, strict=False):
        if not (want == got or (want == "*" and got)):
            return None
    return (*(2 if want == "*" else 3 for want in wanted), 1 if rest else 4)


def _reference(rules_: Iterable[policy.Rule], host: str, path: str, method: str) -> set[str]:
    normal = policy.normalise_path(path)
    assert normal is not None
    name = policy.normalise_host(host)
    keyed = []
    for index, rule in enumerate(rules_):
        if rule.methods and method not in rule.methods:
            continue
        keys = [
            (host_key, path_key, 1 if rule.methods else 0)
            for host_pattern in rule.hosts or ("*",)
            if (host_key := _host_key(host_pattern, name)) is not None
            for path_pattern in rule.paths or ("/**",)
            if (path_key := _path_key(path_pattern, normal)) is not None
        ]
        if keys:
            keyed.append((max(keys), index, rule))
    if not keyed:
        return {"default"}
    best = max(key for key, _, _ in keyed)
    tied = sorted((index, rule) for key, index, rule in keyed if key == best)
    first = tied[0][1]
    if not first.from_role:
        return {first.source}
    return {rule.source for _, rule in tied if rule.from_role}


@settings(max_examples=300)
@given(
    file_rules=st.lists(rules(role=False), max_size=5),
    role_rules=st.lists(rules(role=True), max_size=4),
    host=st.sampled_from(["a.example.com", "b.a.example.com", "c.a.example.com", "x.net"]),
    path=st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=4).map(
        lambda parts: ("/" + "/".join(parts)).replace("//", "/")
    ),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
)
def test_the_matcher_agrees_with_a_plain_reading_of_the_rules(
    file_rules: list[policy.Rule],
    role_rules: list[policy.Rule],
    host: str,
    path: str,
    method: str,
) -> None:
    p = _policy(*file_rules).combined(role_rules)
    got = p.requirement(host, path, method)
    assert set(got.sources or (got.rule_source,)) == _reference(p.rules, host, path, method)
