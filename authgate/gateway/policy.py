"""The route policy: what a request to a host, path and method needs to pass the check.

Rules come from the policy file (``AUTHGATE_POLICY_FILE``, :func:`load_file`) and from
the route rules of ``Role`` records (:func:`from_roles`); :meth:`Policy.requirement`
answers for one request. Matching runs on every check of the cluster, so everything is
compiled when a policy is built: the matching path does no I/O, walks a trie of
literal segments (no regular expression built from a pattern, so no backtracking) and
costs a few dictionary look-ups per path segment.

Patterns (the full language, with examples, is in ``docs/policy.md``):

- hosts: ``api.example.com`` (exact), ``*.example.com`` (any name below it, at any
  depth, not ``example.com`` itself), ``*`` or omitted (any host). Compared without
  case, port or trailing dot.
- paths: ``/health`` (exact), ``/api/**`` (``/api``, ``/api/`` and everything below;
  ``/**`` or ``**`` alone: everything), ``*`` as a whole segment (exactly one
  non-empty segment: ``/users/*/orders``). Anything else is literal and
  case-sensitive, as RFC 3986 §6.2.2.1 says paths are. Omitted: any path.
- methods: upper-cased; omitted means any.

Request paths are normalised before matching (RFC 3986 §6.2.2), the way a backend will
read them: the query is cut off, percent-escapes of unreserved characters are decoded
and the others upper-cased, ``//`` is merged, ``.`` and ``..`` segments are resolved. An
encoded ``/`` (``%2F``) or ``\\`` (``%5C``) stays part of its segment, as Envoy's
default keeps it (decoding it turns ``/a%2F..%2Fb`` into a climb the proxy never saw).
Some paths are *refused* -- they get a deny whatever the policy and its default say --
because backends disagree about what they mean and a policy cannot be written for all
readings: a ``..`` above the root, a raw ``\\`` or ``#`` or control character, a ``%``
not followed by two hex digits, a segment that hides a dot segment behind an encoded
slash (``..%2F``) or behind path parameters (``..;``, Tomcat's reading).

Precedence: the most specific matching rule wins, comparing in this order

1. host: exact, then the longest ``*.suffix``, then any host;
2. path, segment by segment from the left: a literal segment beats ``*``, which beats
   ``**``; a pattern that ends where the path ends beats ``**`` there. So an exact path
   beats a prefix, and a longer literal prefix beats a shorter one;
3. methods: a rule listing the request's method beats one for any method;
4. ties: the rule that comes first (file rules, in file order, before role rules).

Role rules that tie with each other, and with no file rule, combine: a caller holding
any one of their roles passes (each role in its own organization). No matching rule:
the policy's ``default``. Host comes first on purpose: a rule written for one host is
that host's policy, and a catch-all rule for every host must not override it by
naming a longer path.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, cast

import yaml

from authgate.gateway import permissions
from authgate.identity import domain

Access = Literal["public", "authenticated"]
Default = Literal["deny", "authenticated", "public"]
Outcome = Literal["public", "authenticated", "deny"]

MAX_POLICY_BYTES: Final = 1 << 20
MAX_ROUTES: Final = 1000
MAX_ITEMS: Final = permissions.MAX_RULE_ITEMS
ANY: Final = "*"
ROLE_SOURCE: Final = "role:"
FILE_SOURCE: Final = "file:"

_ACCESS: Final = frozenset({"public", "authenticated"})
_DEFAULTS: Final = frozenset({"deny", "authenticated", "public"})
_TOP_KEYS: Final = frozenset({"default", "routes"})
_ROUTE_KEYS: Final = frozenset(
    {"hosts", "paths", "methods", "access", "scopes", "any_scopes", "roles", "org"}
)
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), as clients declare them.
_SCOPE: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
# The grammar of role names (orgs_api.ROLE_NAME): a name no role can have would make the
# rule unreachable, which is a typo the file's author wants to hear about.
_ROLE_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
# An organization by slug or by id (a lower-case UUID fits the same characters).
_ORG: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# RFC 3986 §2.3; decoding these never changes what a path means (§6.2.2.2).
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_REFUSED_CHARS: Final = re.compile(r"[\\#\x00-\x1f\x7f]")
# Anything a path needs normalising for; most request paths have none of it. A
# character class and two fixed strings: no backtracking, whatever the input.
_SUSPECT: Final = re.compile(r"[%\\#\x00-\x1f\x7f]|//|/\.")
_ENCODED_SEPARATOR: Final = re.compile(r"%2F|%5C")
_METHODS: Final = permissions.HTTP_METHODS
_OTHER_METHOD: Final = "*"  # the key of a choice for methods no rule can list


class PolicyError(ValueError):
    """The policy (file or role rules) cannot be used; the message names where and why."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


class _Invalid(Exception):
    """A problem found while checking one part of a rule, before we know its source."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where = where
        self.problem = problem


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule:
    """One route rule. Empty ``hosts``, ``paths`` or ``methods`` mean any."""

    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    access: Access = "authenticated"
    scopes: tuple[str, ...] = ()  # every one required
    any_scopes: tuple[str, ...] = ()  # at least one required
    roles: tuple[str, ...] = ()  # any one of them, held in ``org``
    org: str | None = None  # None: the token's organization
    org_slug: str | None = None  # for people (audit lines); role rules set it
    source: str = ""  # "file:<index>" or "role:<role id>", for audit and metrics

    @property
    def from_role(self) -> bool:
        return self.source.startswith(ROLE_SOURCE)


@dataclasses.dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role that lets a caller pass: its name, and the organization it must be held
    in (``None``: whatever organization the token is for)."""

    name: str
    org: str | None = None
    org_slug: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Requirement:
    """What a request needs, as the policy answers for its host, path and method."""

    access: Outcome
    scopes: tuple[str, ...] = ()
    any_scopes: tuple[str, ...] = ()
    roles: tuple[RoleGrant, ...] = ()  # any one of them; empty: no role needed
    org: str | None = None  # the token must be for this organization (id or slug)
    rule_source: str  # the winning rule's source, "default" or "refused-path"
    sources: tuple[str, ...] = ()  # every rule whose roles were combined into this one
    matched: bool

    @property
    def public(self) -> bool:
        return self.access == "public"

    @property
    def denied(self) -> bool:
        return self.access == "deny"

    def satisfied_by(
        self, *, scopes: Collection[str], roles: Collection[str], org_names: Collection[str]
    ) -> bool:
        """Whether an authenticated caller with these token ``scopes`` and ``roles``
        passes. ``org_names`` are the names of the token's organization (its id, and its
        slug when known). Scopes are compared as permissions (``orders:*`` covers
        ``orders:read``), so a role's wildcard permission means the same here as in the
        admin API."""
        if self.access != "authenticated":
            return self.access == "public"
        if not all(permissions.allows(scopes, wanted) for wanted in self.scopes):
            return False
        if self.any_scopes and not any(
            permissions.allows(scopes, wanted) for wanted in self.any_scopes
        ):
            return False
        if self.org is not None and self.org not in org_names:
            return False
        return not self.roles or any(
            grant.name in roles
            and (grant.org is None or grant.org in org_names or grant.org_slug in org_names)
            for grant in self.roles
        )


# --- normalising requests ----------------------------------------------------------


def _escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalise_escapes(text: str) -> str:
    """Unreserved characters decoded, every other escape upper-cased (§6.2.2.1-2)."""
    return _ESCAPE.sub(_escape, text) if "%" in text else text


def _hides_dot_segment(segment: str) -> bool:
    """A dot segment behind path parameters (``..;x``, how Tomcat reads it) or an
    encoded separator (``..%2F``, how a backend that decodes ``%2F`` reads it)."""
    return any(piece.split(";", 1)[0] in {".", ".."} for piece in _ENCODED_SEPARATOR.split(segment))


def normalise_path(path: str) -> str | None:
    """The request path as matched: without query, normalised (see the module's
    docstring), or ``None`` when the path is refused."""
    query = path.find("?")
    if query >= 0:
        path = path[:query]
    if not path:
        return "/"
    if path[0] != "/":
        return None
    if _SUSPECT.search(path) is None:
        return path
    return _normalise_slowly(path)


def _normalise_slowly(path: str) -> str | None:
    if _REFUSED_CHARS.search(path) or _BAD_ESCAPE.search(path):
        return None
    path = normalise_escapes(path)
    segments = path.split("/")[1:]
    merged = _resolve(segments, keep_empty=False)
    if merged is None:
        return None
    kept, trailing = merged
    if "//" in path:
        # RFC 3986 §5.2.4 lets '..' remove an empty segment ('/a//..' is '/a/'), a
        # proxy that merges slashes first does not ('/'): refuse what they disagree on.
        strict = _resolve(segments, keep_empty=True)
        if strict is None or [segment for segment in strict[0] if segment] != kept:
            return None
    return "/" + "/".join(kept) + ("/" if trailing and kept else "")


def _resolve(segments: list[str], *, keep_empty: bool) -> tuple[list[str], bool] | None:
    """Dot segments resolved; the segments kept and whether the path ends with '/'."""
    kept: list[str] = []
    trailing = False
    for segment in segments:
        if segment == "..":
            if not kept:
                return None
            kept.pop()
            trailing = True
        elif segment == "." or (not segment and not keep_empty):
            trailing = True
        else:
            if (";" in segment or "%" in segment) and _hides_dot_segment(segment):
                return None
            kept.append(segment)
            trailing = not segment
    return kept, trailing


def normalise_host(host: str) -> str:
    """Lower-case, without port or trailing dot: ``API.example.com.:8443`` is
    ``api.example.com``. An IPv6 literal keeps its brackets."""
    name = host.strip().lower()
    if ":" in name:
        if name.startswith("["):
            name = name[: name.find("]") + 1]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
    return name[:-1] if name.endswith(".") else name


# --- the compiled index --------------------------------------------------------------

# A match: its rank (path key, method key, -rule index; greater wins) and the answer.
_Hit = tuple[tuple[tuple[int, ...], int, int], Requirement]
# Per method, the best hit of one pattern; _OTHER_METHOD for methods no rule lists.
_Choice = dict[str, _Hit]


@dataclasses.dataclass(frozen=True, slots=True)
class _Candidate:
    index: int
    rule: Rule
    methods: frozenset[str] | None
    requirement: Requirement


class _Node:
    """One segment position of a host's path trie. A node is reached by at most one
    way from the root, so matching visits each node at most once: the cost is bounded
    by the size of the policy, never exponential in the path."""

    __slots__ = ("children", "end", "rest", "star")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None  # "*": one non-empty segment
        self.end: _Choice | None = None  # patterns that end here
        self.rest: _Choice | None = None  # patterns with "**" here


@dataclasses.dataclass(frozen=True, slots=True)
class _Index:
    exact: dict[str, _Node]
    suffix: dict[str, _Node]  # "*.example.com" under "example.com"
    any: _Node | None
    default: Requirement


_REFUSED: Final = Requirement(access="deny", rule_source="refused-path", matched=False)


def _walk(root: _Node, segments: list[str], method: str) -> Requirement | None:
    best: _Hit | None = None
    count = len(segments)
    stack = [(root, 0)]
    while stack:
        node, position = stack.pop()
        if node.rest is not None:
            hit = node.rest.get(method)
            if hit is not None and (best is None or hit[0] > best[0]):
                best = hit
        if position == count:
            if node.end is not None:
                hit = node.end.get(method)
                if hit is not None and (best is None or hit[0] > best[0]):
                    best = hit
            continue
        segment = segments[position]
        child = node.children.get(segment)
        if child is not None:
            stack.append((child, position + 1))
        if node.star is not None and segment:
            stack.append((node.star, position + 1))
    return None if best is None else best[1]


# --- patterns, one rule at a time ------------------------------------------------------


def _path_pattern(value: str) -> tuple[tuple[str, ...], bool]:
    """Segments before any ``**``, and whether it ends in ``**``."""
    text = "/**" if value == "**" else value
    try:
        permissions.route_path(text, segment_wildcards=True)
    except permissions.InvalidRouteRule as invalid:
        raise _Invalid("", str(invalid)) from None
    segments = normalise_escapes(text).split("/")[1:]
    if segments[-1] == "**":
        return tuple(segments[:-1]), True
    return tuple(segments), False


def _path_key(segments: tuple[str, ...], rest: bool) -> tuple[int, ...]:
    """Specificity, compared left to right: literal 3 > ``*`` 2; then the end of the
    pattern (4) beats ``**`` (1), and ``**`` loses to anything more literal."""
    return (*(2 if segment == ANY else 3 for segment in segments), 1 if rest else 4)


def _strings(values: tuple[str, ...], field: str, check: Callable[[str], str]) -> tuple[str, ...]:
    checked: list[str] = []
    for position, value in enumerate(values):
        try:
            checked.append(check(value))
        except (permissions.InvalidRouteRule, _Invalid) as invalid:
            problem = invalid.problem if isinstance(invalid, _Invalid) else str(invalid)
            raise _Invalid(f"{field}[{position}]", f"{problem} (got {value[:80]!r})") from None
    return tuple(dict.fromkeys(checked))


def _normal_path(value: str) -> str:
    if value == "**":
        return value
    _path_pattern(value)
    return normalise_escapes(value)


def _check_rule(rule: Rule) -> Rule:
    """The rule with its patterns checked and normalised, or :class:`_Invalid`."""
    hosts = _strings(rule.hosts, "hosts", permissions.route_host)
    paths = _strings(rule.paths, "paths", _normal_path)
    methods = _strings(rule.methods, "methods", permissions.route_method)
    if rule.access not in _ACCESS:
        raise _Invalid("access", "must be 'public' or 'authenticated'")
    for field in ("scopes", "any_scopes"):
        for position, scope in enumerate(getattr(rule, field)):
            if not _SCOPE.fullmatch(scope):
                raise _Invalid(
                    f"{field}[{position}]",
                    f"is not a scope token (printable ASCII, no space, quote or "
                    f"backslash; at most 128) (got {scope[:80]!r})",
                )
    # A role's own name and organization are what the store holds, whatever their
    # spelling; only a file's are checked, for typos that would make a rule unreachable.
    for position, role in enumerate(() if rule.from_role else rule.roles):
        if not _ROLE_NAME.fullmatch(role):
            raise _Invalid(
                f"roles[{position}]",
                f"is not a role name (a-z, 0-9, '.', '_', '-'; at most 64) (got {role[:80]!r})",
            )
    if rule.org is not None and not rule.from_role and not _ORG.fullmatch(rule.org):
        raise _Invalid("org", f"is not an organization slug or id (got {rule.org[:80]!r})")
    if rule.access == "public":
        for field in ("scopes", "any_scopes", "roles", "org"):
            if getattr(rule, field):
                raise _Invalid(
                    field, "a public route requires nothing: use 'access: authenticated'"
                )
    if rule.from_role and (rule.access != "authenticated" or rule.scopes or rule.any_scopes):
        raise _Invalid("access", "a role's rule requires its role and nothing else")
    return dataclasses.replace(
        rule,
        hosts=hosts,
        paths=paths,
        methods=methods,
        scopes=tuple(dict.fromkeys(rule.scopes)),
        any_scopes=tuple(dict.fromkeys(rule.any_scopes)),
        roles=tuple(dict.fromkeys(rule.roles)),
    )


def _requirement(rule: Rule) -> Requirement:
    if rule.access == "public":
        return Requirement(
            access="public", rule_source=rule.source, sources=(rule.source,), matched=True
        )
    return Requirement(
        access="authenticated",
        scopes=rule.scopes,
        any_scopes=rule.any_scopes,
        roles=tuple(RoleGrant(name, rule.org, rule.org_slug) for name in rule.roles),
        org=rule.org,
        rule_source=rule.source,
        sources=(rule.source,),
        matched=True,
    )


def _combine(candidates: list[_Candidate]) -> Requirement:
    """Role rules that tie: any one of their roles will do."""
    if len(candidates) == 1:
        return candidates[0].requirement
    grants = tuple(dict.fromkeys(g for c in candidates for g in c.requirement.roles))
    orgs = {grant.org for grant in grants}
    return Requirement(
        access="authenticated",
        roles=grants,
        org=orgs.pop() if len(orgs) == 1 else None,
        rule_source=candidates[0].rule.source,
        sources=tuple(dict.fromkeys(c.rule.source for c in candidates)),
        matched=True,
    )


def _choose(candidates: list[_Candidate], path_key: tuple[int, ...]) -> _Choice:
    """For each method, the winner among rules sharing one host and path pattern."""
    unique = list({c.index: c for c in sorted(candidates, key=lambda c: c.index)}.values())
    choice: _Choice = {}
    for method in (*sorted(_METHODS), _OTHER_METHOD):
        listed = [c for c in unique if c.methods is not None and method in c.methods]
        pool = listed or [c for c in unique if c.methods is None]
        if not pool:
            continue
        first = pool[0]
        requirement = (
            _combine([c for c in pool if c.rule.from_role])
            if first.rule.from_role
            else first.requirement
        )
        choice[method] = ((path_key, 1 if listed else 0, -first.index), requirement)
    return choice


def _compile(rules: tuple[Rule, ...], default: Default) -> _Index:
    exact: dict[str, _Node] = {}
    suffix: dict[str, _Node] = {}
    any_host: list[_Node] = []
    pending: dict[tuple[int, bool], tuple[_Node, tuple[int, ...], list[_Candidate]]] = {}

    def root(host: str) -> _Node:
        if host == ANY:
            if not any_host:
                any_host.append(_Node())
            return any_host[0]
        if host.startswith("*."):
            return suffix.setdefault(host[2:], _Node())
        return exact.setdefault(host, _Node())

    for index, rule in enumerate(rules):
        try:
            checked = _check_rule(rule)
        except _Invalid as invalid:
            raise PolicyError(
                rule.source or f"rules[{index}]", invalid.where, invalid.problem
            ) from None
        candidate = _Candidate(
            index=index,
            rule=checked,
            methods=frozenset(checked.methods) if checked.methods else None,
            requirement=_requirement(checked),
        )
        patterns = {_path_pattern(path) for path in checked.paths or ("**",)}
        for host in checked.hosts or (ANY,):
            for segments, rest in patterns:
                node = root(host)
                for segment in segments:
                    if segment == ANY:
                        node.star = node.star or _Node()
                        node = node.star
                    else:
                        node = node.children.setdefault(segment, _Node())
                key = (id(node), rest)
                if key not in pending:
                    pending[key] = (node, _path_key(segments, rest), [])
                pending[key][2].append(candidate)
    for (_, rest), (node, path_key, candidates) in pending.items():
        choice = _choose(candidates, path_key)
        if rest:
            node.rest = choice or None
        else:
            node.end = choice or None
    return _Index(
        exact=exact,
        suffix=suffix,
        any=any_host[0] if any_host else None,
        default=Requirement(access=default, rule_source="default", matched=False),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """The default for unmatched routes and the rules, compiled when built."""

    default: Default = "deny"
    rules: tuple[Rule, ...] = ()
    _index: _Index = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.default not in _DEFAULTS:
            raise PolicyError("policy", "default", "must be 'deny', 'authenticated' or 'public'")
        object.__setattr__(self, "_index", _compile(self.rules, self.default))

    def requirement(self, host: str, path: str, method: str) -> Requirement:
        """What a request needs. Never raises: anything unreadable gets a deny."""
        index = self._index
        normal = normalise_path(path)
        if normal is None:
            return _REFUSED
        segments = normal[1:].split("/")
        method = method.upper()
        if method not in _METHODS:
            method = _OTHER_METHOD
        name = normalise_host(host)
        if index.exact:
            node = index.exact.get(name)
            if node is not None and (found := _walk(node, segments, method)) is not None:
                return found
        if index.suffix:
            dot = name.find(".")
            while dot >= 0:
                node = index.suffix.get(name[dot + 1 :])
                if node is not None and (found := _walk(node, segments, method)) is not None:
                    return found
                dot = name.find(".", dot + 1)
        if index.any is not None and (found := _walk(index.any, segments, method)) is not None:
            return found
        return index.default

    def combined(self, role_rules: Iterable[Rule]) -> Policy:
        """This policy's file rules followed by ``role_rules``. Role rules this policy
        already had are replaced, not kept: combining the current policy with a fresh
        set of role rules after a change never accumulates stale ones."""
        own = tuple(rule for rule in self.rules if not rule.from_role)
        return Policy(default=self.default, rules=own + tuple(role_rules))


# --- role rules ------------------------------------------------------------------------


def from_roles(roles: Iterable[domain.Role], org_slugs: Mapping[str, str]) -> tuple[Rule, ...]:
    """Each route rule of each role as a rule requiring that role in its organization.

    ``org_slugs`` maps organization ids to slugs, so that audit lines and metrics can
    name the organization people know; matching uses the id, which tokens carry. Roles
    are taken in a stable order (organization, name, id), whatever order the store
    returned them in. A rule that cannot be compiled (the admin API refuses every such
    rule; a role written around it could hold one) raises :class:`PolicyError` naming
    the role, rather than being left out: a missing role rule could open its route to
    a less specific rule. Keeping the previous policy is the caller's safe answer.
    """
    rules: list[Rule] = []
    for role in sorted(roles, key=lambda role: (role.org_id, role.name, role.id)):
        slug = org_slugs.get(role.org_id)
        for position, route in enumerate(role.route_rules):
            rule = Rule(
                hosts=route.hosts,
                paths=route.paths,
                methods=route.methods,
                access="authenticated",
                roles=(role.name,),
                org=role.org_id,
                org_slug=slug,
                source=f"{ROLE_SOURCE}{role.id}",
            )
            try:
                rules.append(_check_rule(rule))
            except _Invalid as invalid:
                raise PolicyError(
                    f"role {slug or role.org_id}/{role.name} ({role.id})",
                    f"route_rules[{position}].{invalid.where}",
                    invalid.problem,
                ) from None
    return tuple(rules)


# --- the policy file -------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys: it would keep the last one
    silently, and a second ``access:`` in a rule is a mistake, not an override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, Any]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a collection as a key: the constructor refuses it
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key_node.value!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_file(path: Path) -> Policy:
    """The policy in the YAML file at ``path``; see :func:`parse`."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as error:
        raise PolicyError(str(path), "", f"cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(str(path), "", f"is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(str(path), "", "is not UTF-8") from None
    return parse(text, source_name=str(path))


def parse(text: str, *, source_name: str = "policy") -> Policy:
    """A policy from YAML text, or :class:`PolicyError` naming the field at fault::

    default: deny            # deny | authenticated | public, when no rule matches
    routes:
      - hosts: ["*"]         # omitted: any
        paths: ["/public/**"]
        methods: [GET, HEAD] # omitted: any
        access: public       # public | authenticated (the default)
    """
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(source_name, "", f"is larger than {MAX_POLICY_BYTES} bytes")
    loader = _Loader(text)
    loader.name = source_name  # YAML's error marks then name the file, not "<unicode string>"
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        raise PolicyError(source_name, "", f"is not valid YAML: {error}") from None
    finally:
        loader.dispose()
    try:
        default, rules = _document(document)
        return Policy(default=default, rules=rules)
    except _Invalid as invalid:
        raise PolicyError(source_name, invalid.where, invalid.problem) from None


def _document(document: object) -> tuple[Default, tuple[Rule, ...]]:
    if not isinstance(document, dict):
        raise _Invalid(
            "", "must be a mapping with 'default' and 'routes' (write at least 'default: deny')"
        )
    _known_keys(document, _TOP_KEYS, "")
    default = document.get("default", "deny")
    if not isinstance(default, str) or default not in _DEFAULTS:
        raise _Invalid("default", f"must be deny, authenticated or public (got {default!r})")
    routes = document.get("routes", [])
    if not isinstance(routes, list):
        raise _Invalid("routes", "must be a list of rules")
    if len(routes) > MAX_ROUTES:
        raise _Invalid("routes", f"must hold at most {MAX_ROUTES} rules")
    rules = tuple(_route(route, index) for index, route in enumerate(routes))
    return cast(Default, default), rules


def _route(route: object, index: int) -> Rule:
    where = f"routes[{index}]"
    if not isinstance(route, dict):
        raise _Invalid(where, "must be a mapping (paths, access, ...)")
    _known_keys(route, _ROUTE_KEYS, where)
    access = route.get("access", "authenticated")
    if not isinstance(access, str) or access not in _ACCESS:
        raise _Invalid(f"{where}.access", f"must be public or authenticated (got {access!r})")
    org = route.get("org")
    if org is not None and not isinstance(org, str):
        raise _Invalid(f"{where}.org", "must be a string (an organization slug or id)")
    rule = Rule(
        hosts=_list(route, "hosts", where, empty="any"),
        paths=_list(route, "paths", where, empty="any"),
        methods=_list(route, "methods", where, empty="any"),
        access=cast(Access, access),
        scopes=_list(route, "scopes", where),
        any_scopes=_list(route, "any_scopes", where),
        roles=_list(route, "roles", where),
        org=org,
        source=f"{FILE_SOURCE}{index}",
    )
    try:
        return _check_rule(rule)
    except _Invalid as invalid:
        raise _Invalid(f"{where}.{invalid.where}", invalid.problem) from None


def _known_keys(mapping: dict[Any, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        raise _Invalid(
            where or "policy",
            f"unknown keys {unknown} (known: {', '.join(sorted(known))})",
        )


def _list(route: dict[Any, Any], key: str, where: str, *, empty: str = "") -> tuple[str, ...]:
    """A list of strings; ``empty`` names what leaving it out means, for a list whose
    emptiness would be ambiguous (``methods: []``: none, or any?) and so is refused."""
    if key not in route:
        return ()
    value = route[key]
    if not isinstance(value, list):
        raise _Invalid(f"{where}.{key}", f"must be a list (got {type(value).__name__})")
    if not value and empty:
        raise _Invalid(f"{where}.{key}", f"must not be empty: leave it out to mean {empty}")
    if len(value) > MAX_ITEMS:
        raise _Invalid(f"{where}.{key}", f"must hold at most {MAX_ITEMS} items")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid(f"{where}.{key}[{position}]", f"must be a string (got {item!r})")
    return tuple(value)
