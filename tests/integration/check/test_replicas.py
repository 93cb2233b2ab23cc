"""Two gateway processes on one PostgreSQL: a revocation or a role change made on one is
enforced by the other within 2 s (issue 5).

Replicas A and B are real ``authgate serve`` processes on one database and schema, with
one KEK and one issuer (A's base URL), as two pods of one Deployment are. Every change
is made through A's HTTP API (or by the CLI, a third process writing to the same
database); every check is asked of B's Envoy adapter. For each scenario B first allows
the credential, then A makes the change, then B is asked every 50 ms until it refuses:
the time from A's answer to B's first refusal must stay under 2 s. The times are
printed (``pytest -s``) and named in every failure.

Role changes, as the check path enforces them (``authgate/gateway/check/engine.py``):

- a session cookie's roles are read from the store, and B drops its cached sessions on
  every ``memberships`` or ``roles`` change: revoking a role from a member ends the
  cookie's access to the role's routes;
- a bearer access token carries the ``roles`` claim as it was when it was issued, and
  the check trusts that claim. Revoking a role from a member does not reach a token
  already issued (until it expires, or is refreshed). What does reach it: a change of
  the role's route rules, or the role's deletion (B rebuilds its policy), and removing
  the member from the organization (which ends the sessions the token names).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import http.client
import http.cookies
import json
import re
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.conftest import POSTGRES_URL
from tests.integration import processes
from tests.integration.conftest import drop_schema

DEADLINE = 2.0  # seconds from A's answer to B's refusal: the design's promise
POLL = 0.05  # seconds between checks on B
SETTLE = 10.0  # what A set up before a scenario (a role, a grant) reaching B: generous
PASSWORD = "correct horse battery staple 42"
COOKIE = "authgate_session"
CSRF_COOKIE = f"{COOKIE}_csrf"  # under a plain-http issuer, no __Host- prefix
ORG = "acme"
POLICY = """\
default: deny
routes:
  - paths: ["/api/**"]
    access: authenticated
  - paths: ["/reports/**"]
    roles: [reader]
"""

ELAPSED: dict[str, float] = {}  # scenario -> seconds from A's answer to B's refusal


# --- plain HTTP ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def cookies(self) -> dict[str, str]:
        jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        for header in self.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return {name: morsel.value for name, morsel in jar.items()}


def _http(
    method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> Answer:
    """One request, redirects not followed, any status returned."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return Answer(response.status, response.msg, response.read())
    finally:
        conn.close()


def _api(
    base: str, method: str, path: str, body: Any = None, *, token: str | None = None
) -> Answer:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    return _http(method, f"{base}{path}", headers=headers, body=data)


def _form(
    url: str, fields: Mapping[str, str], *, headers: Mapping[str, str] | None = None
) -> Answer:
    return _http(
        "POST",
        url,
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        body=urllib.parse.urlencode(fields).encode(),
    )


def _basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: each part form-urlencoded, then base64."""
    pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return {"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"}


def _cookie_header(cookies: Mapping[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


# --- the two replicas ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Replicas:
    env: dict[str, str]  # the installation's settings: A's, B's and the CLI's
    a: str  # base URLs
    b: str
    admin: str  # a global administrator's access token, from A


def _create_user(env: Mapping[str, str], name: str, *, admin: bool = False) -> str:
    """``authgate users create`` with a password: the account's id (its email counts as
    verified, so it can sign in at once)."""
    created = subprocess.run(
        [
            processes.AUTHGATE,
            *("users", "create", "--email", f"{name}@example.com", "--username", name),
            *(["--admin"] if admin else []),
            "--password-stdin",
        ],
        env=processes.clean_env(env),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """A migrated private schema, a global administrator, the organization ``acme``,
    and replicas A and B serving it; the schema is dropped afterwards."""
    directory = tmp_path_factory.mktemp("replicas")
    policy = directory / "policy.yaml"
    policy.write_text(POLICY)
    schema = f"t_{secrets.token_hex(6)}"
    env = {
        "AUTHGATE_DATABASE_URL": POSTGRES_URL,
        "AUTHGATE_DATABASE_SCHEMA": schema,
        "AUTHGATE_KEK": Fernet.generate_key().decode(),
        "AUTHGATE_POLICY_FILE": str(policy),
        "AUTHGATE_ARGON2_MEMORY_KIB": "1024",
        "AUTHGATE_ARGON2_TIME_COST": "1",
        # Nobody reads the processes' pipes while they serve: keep them from filling.
        "AUTHGATE_LOG_LEVEL": "warning",
        # Every sign-in of the module comes from 127.0.0.1 within a minute.
        "AUTHGATE_RATE_LIMITS": "login=100/m",
    }
    try:
        migrated = processes.run("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        _create_user(env, "root", admin=True)
        with processes.serving(env, cwd=directory) as (_, a):
            # One issuer for both, as behind one Service: B accepts what A signed.
            shared = {**env, "AUTHGATE_ISSUER": a}
            with processes.serving(shared, cwd=directory) as (_, b):
                admin = _sign_in(a, "root")["access_token"]
                created = _api(
                    a, "POST", "/orgs", {"slug": ORG, "display_name": "Acme"}, token=admin
                )
                assert created.status == 201, created.body
                yield Replicas(env=shared, a=a, b=b, admin=str(admin))
    finally:
        asyncio.run(drop_schema(schema))
    if ELAPSED:
        print(
            "\nreplica B refused, after replica A answered:\n"
            + "\n".join(f"  {ms * 1000:6.0f} ms  {what}" for what, ms in ELAPSED.items())
        )


def _sign_in(a: str, name: str, *, org: str | None = None) -> dict[str, Any]:
    """``POST /auth/login`` at A: the tokens, and the session cookie as ``cookie``."""
    body = {"login": f"{name}@example.com", "password": PASSWORD}
    if org is not None:
        body["org"] = org
    answer = _api(a, "POST", "/auth/login", body)
    assert answer.status == 200, answer.body
    signed_in: dict[str, Any] = answer.json()
    signed_in["cookie"] = answer.cookies()[COOKIE]
    return signed_in


def _member(replicas: Replicas, name: str, *roles: str) -> str:
    """A new account, a member of ``acme`` holding ``roles``; its id."""
    user_id = _create_user(replicas.env, name)
    added = _api(
        replicas.a,
        "POST",
        f"/orgs/{ORG}/members",
        {"user": f"{name}@example.com"},
        token=replicas.admin,
    )
    assert added.status == 201, added.body
    for role in roles:
        granted = _api(
            replicas.a,
            "POST",
            f"/orgs/{ORG}/members/{name}@example.com/roles",
            {"role": role},
            token=replicas.admin,
        )
        assert granted.status == 200, granted.body
    return user_id


def _role(replicas: Replicas, name: str, *paths: str) -> None:
    rules = [{"paths": [path], "methods": ["GET"]} for path in paths]
    created = _api(
        replicas.a,
        "POST",
        f"/orgs/{ORG}/roles",
        {"name": name, "route_rules": rules},
        token=replicas.admin,
    )
    assert created.status == 201, created.body


def _client(replicas: Replicas, name: str) -> tuple[str, str]:
    """``authgate clients create``: a client-credentials client's id and secret."""
    created = processes.run(
        *("clients", "create", "--name", name, "--grant-types", "client_credentials"),
        *("--scopes", "orders:read", "--json"),
        env=replicas.env,
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    return str(client["client_id"]), str(client["client_secret"])


def _client_token(a: str, client: tuple[str, str]) -> str:
    answer = _form(
        f"{a}/oauth2/token",
        {"grant_type": "client_credentials", "scope": "orders:read"},
        headers=_basic(*client),
    )
    assert answer.status == 200, answer.body
    return str(answer.json()["access_token"])


# --- asking B ------------------------------------------------------------------------


Probe = Callable[[], Answer]


def _check(b: str, path: str, *, bearer: str | None = None, cookie: str | None = None) -> Probe:
    """Envoy's ext_authz HTTP request to B for ``GET <path>`` with one credential."""
    headers = {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return lambda: _http("GET", f"{b}/authz/envoy{path}", headers=headers)


def _allowed(probe: Probe, subject: str) -> Answer:
    """B allows the check, naming ``subject``. What A set up just before may still be
    on its way to B (a role's route rules), so a refusal is retried for a while."""
    deadline = time.monotonic() + SETTLE
    while (answer := probe()).status != 200:
        assert time.monotonic() < deadline, f"B never allowed: {answer.status} {answer.body!r}"
        time.sleep(POLL)
    assert answer.headers["X-Auth-Subject"] == subject
    return answer


def _refused_within(probe: Probe, since: float, *, status: int, what: str) -> float:
    """Ask B every ``POLL`` seconds until it refuses with ``status``; the seconds from
    ``since`` (when A answered the change) to the first refusal, under ``DEADLINE``."""
    checks = 0
    while True:
        answer = probe()
        elapsed = time.monotonic() - since
        checks += 1
        if answer.status != 200:
            break
        assert elapsed < DEADLINE, (
            f"{what}: B still allowed {elapsed:.3f} s after A answered ({checks} checks)"
        )
        time.sleep(POLL)
    assert answer.status == status, (
        f"{what}: B answered {answer.status} {answer.body!r} after {elapsed:.3f} s"
    )
    assert elapsed < DEADLINE, f"{what}: B refused only {elapsed:.3f} s after A answered"
    ELAPSED[what] = elapsed
    print(f"{what}: B refused {elapsed * 1000:.0f} ms after A answered ({checks} checks)")
    return elapsed


# --- the scenarios -------------------------------------------------------------------


def test_an_access_token_revoked_at_a_is_refused_by_b(replicas: Replicas) -> None:
    client = _client(replicas, "revoker")
    revoked, kept = _client_token(replicas.a, client), _client_token(replicas.a, client)
    for token in (revoked, kept):
        _allowed(_check(replicas.b, "/api/x", bearer=token), subject=client[0])

    answer = _form(f"{replicas.a}/oauth2/revoke", {"token": revoked}, headers=_basic(*client))
    since = time.monotonic()
    assert answer.status == 200, answer.body

    _refused_within(
        _check(replicas.b, "/api/x", bearer=revoked),
        since,
        status=401,
        what="RFC 7009 revocation of an access token",
    )
    assert _check(replicas.b, "/api/x", bearer=kept)().status == 200  # only that token


@pytest.mark.parametrize("how", ["admin_api", "cli"])
def test_a_client_deleted_at_a_has_its_tokens_refused_by_b(replicas: Replicas, how: str) -> None:
    doomed = _client(replicas, f"doomed-{how}")
    bystander = _client(replicas, f"bystander-{how}")
    token, other = _client_token(replicas.a, doomed), _client_token(replicas.a, bystander)
    _allowed(_check(replicas.b, "/api/x", bearer=token), subject=doomed[0])
    _allowed(_check(replicas.b, "/api/x", bearer=other), subject=bystander[0])

    if how == "admin_api":
        answer = _api(replicas.a, "DELETE", f"/admin/clients/{doomed[0]}", token=replicas.admin)
        since = time.monotonic()
        assert answer.status == 204, answer.body
    else:  # a third process on the same database, as `kubectl exec ... authgate` is
        deleted = processes.run("clients", "delete", doomed[0], env=replicas.env)
        since = time.monotonic()
        assert deleted.returncode == 0, deleted.stderr

    _refused_within(
        _check(replicas.b, "/api/x", bearer=token),
        since,
        status=401,
        what=f"client deleted ({how})",
    )
    assert _check(replicas.b, "/api/x", bearer=other)().status == 200


def test_a_role_revoked_at_a_ends_its_routes_for_cookie_and_token_on_b(
    replicas: Replicas,
) -> None:
    """A token's ``roles`` claim is a snapshot; the check holds it against the roles the
    member holds now, so a revocation does not wait for the token to expire."""
    _role(replicas, "reader", "/orders/**")  # also the file's /reports/** rule's role
    bob = _member(replicas, "bob", "reader")
    signed_in = _sign_in(replicas.a, "bob", org=ORG)
    cookie, token = signed_in["cookie"], signed_in["access_token"]
    for path in ("/orders/1", "/reports/1"):  # a role's route rule; the file's roles rule
        for credential in ({"cookie": cookie}, {"bearer": token}):
            allowed = _allowed(_check(replicas.b, path, **credential), subject=bob)
            assert allowed.headers["X-Auth-Roles"] == "reader"

    answer = _api(
        replicas.a,
        "DELETE",
        f"/orgs/{ORG}/members/bob@example.com/roles/reader",
        token=replicas.admin,
    )
    since = time.monotonic()
    assert answer.status == 204, answer.body

    for path, rule in (("/orders/1", "role's route rule"), ("/reports/1", "file rule")):
        for kind, credential in (
            ("session cookie", {"cookie": cookie}),
            ("token", {"bearer": token}),
        ):
            _refused_within(
                _check(replicas.b, path, **credential),
                since,
                status=403,
                what=f"role revoked from a member: {kind}, {rule}",
            )
    # Still signed in, only without the role.
    for credential in ({"cookie": cookie}, {"bearer": token}):
        still = _allowed(_check(replicas.b, "/api/x", **credential), subject=bob)
        assert still.headers["X-Auth-Roles"] == ""


WHAT = {"route_rules_changed": "a role's route rules changed", "role_deleted": "a role deleted"}


@pytest.mark.parametrize("change", sorted(WHAT))
def test_a_role_changed_at_a_reaches_bearer_tokens_on_b(replicas: Replicas, change: str) -> None:
    """The token's ``roles`` claim stays what it was; the routes the role opens do not."""
    prefix = change.split("_")[1]  # "rules" / "deleted": names and paths of their own
    clerk, auditor, path = f"{prefix}-clerk", f"{prefix}-auditor", f"/{prefix}-ledger/1"
    # Two roles open the route; the member holds one. Once that one no longer opens it,
    # the route still needs the other: a refusal for want of the role, not the default.
    _role(replicas, clerk, f"/{prefix}-ledger/**")
    _role(replicas, auditor, f"/{prefix}-ledger/**")
    name = f"erin-{prefix}"
    erin = _member(replicas, name, clerk)
    token = _sign_in(replicas.a, name, org=ORG)["access_token"]
    allowed = _allowed(_check(replicas.b, path, bearer=token), subject=erin)
    assert allowed.headers["X-Auth-Roles"] == clerk

    role_url = f"/orgs/{ORG}/roles/{clerk}"
    if change == "route_rules_changed":
        moved = {"route_rules": [{"paths": [f"/{prefix}-journal/**"], "methods": ["GET"]}]}
        answer = _api(replicas.a, "PATCH", role_url, moved, token=replicas.admin)
        since = time.monotonic()
        assert answer.status == 200, answer.body
    else:
        answer = _api(replicas.a, "DELETE", role_url, token=replicas.admin)
        since = time.monotonic()
        assert answer.status == 204, answer.body

    _refused_within(
        _check(replicas.b, path, bearer=token),
        since,
        status=403,
        what=f"{WHAT[change]}: bearer token",
    )
    _allowed(_check(replicas.b, "/api/x", bearer=token), subject=erin)
    if change == "route_rules_changed":  # the rule moved, and the token follows it
        _allowed(_check(replicas.b, f"/{prefix}-journal/1", bearer=token), subject=erin)


def test_a_member_removed_at_a_loses_token_and_cookie_on_b(replicas: Replicas) -> None:
    frank = _member(replicas, "frank")
    signed_in = _sign_in(replicas.a, "frank", org=ORG)
    token, cookie = signed_in["access_token"], signed_in["cookie"]
    _allowed(_check(replicas.b, "/api/x", bearer=token), subject=frank)
    _allowed(_check(replicas.b, "/api/x", cookie=cookie), subject=frank)

    answer = _api(
        replicas.a, "DELETE", f"/orgs/{ORG}/members/frank@example.com", token=replicas.admin
    )
    since = time.monotonic()
    assert answer.status == 204, answer.body

    _refused_within(
        _check(replicas.b, "/api/x", bearer=token),
        since,
        status=401,
        what="member removed from the organization: bearer token",
    )
    _refused_within(
        _check(replicas.b, "/api/x", cookie=cookie),
        since,
        status=401,
        what="member removed from the organization: session cookie",
    )


def _csrf_token(page: Answer) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
    assert found is not None, page.body
    return found.group(1).decode()


def test_signing_out_in_the_browser_at_a_ends_the_cookie_on_b(replicas: Replicas) -> None:
    carol = _create_user(replicas.env, "carol")
    # The sign-in page, as a browser gets it: a CSRF cookie and the form's token.
    page = _http("GET", f"{replicas.a}/login")
    assert page.status == 200
    browser = {CSRF_COOKIE: page.cookies()[CSRF_COOKIE]}
    signed_in = _form(
        f"{replicas.a}/login",
        {"login": "carol", "password": PASSWORD, "csrf_token": _csrf_token(page)},
        headers=_cookie_header(browser),
    )
    assert signed_in.status == 303, signed_in.body
    browser[COOKIE] = signed_in.cookies()[COOKIE]
    _allowed(_check(replicas.b, "/api/x", cookie=browser[COOKIE]), subject=carol)

    page = _http("GET", f"{replicas.a}/logout", headers=_cookie_header(browser))
    assert page.status == 200
    signed_out = _form(
        f"{replicas.a}/logout",
        {"csrf_token": _csrf_token(page)},
        headers=_cookie_header(browser),
    )
    since = time.monotonic()
    assert signed_out.status == 200, signed_out.body
    assert b"You have signed out" in signed_out.body

    _refused_within(
        _check(replicas.b, "/api/x", cookie=browser[COOKIE]),
        since,
        status=401,
        what="browser sign-out (POST /logout): session cookie",
    )
