"""``authgate users create``, run as the console script, on SQLite and on PostgreSQL:
the bootstrap of the first administrator, end to end through a served gateway."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from authgate.identity import ids
from tests.conftest import POSTGRES_URL
from tests.integration import processes

PASSWORD = "correct horse battery staple 42"
CHEAP_ARGON2 = {"AUTHGATE_ARGON2_MEMORY_KIB": "1024", "AUTHGATE_ARGON2_TIME_COST": "1"}


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of an installation on each backend; PostgreSQL's is migrated
    first, as the Helm Job does before anything else runs."""
    if request.param == "sqlite":
        return {"AUTHGATE_DATA_DIR": str(tmp_path / "data"), **CHEAP_ARGON2}
    schema: str = request.getfixturevalue("pg_schema")
    postgres = {
        "AUTHGATE_DATABASE_URL": POSTGRES_URL,
        "AUTHGATE_DATABASE_SCHEMA": schema,
        "AUTHGATE_KEK": Fernet.generate_key().decode(),
        **CHEAP_ARGON2,
    }
    migrated = processes.run("migrate", env=postgres)
    assert migrated.returncode == 0, migrated.stderr
    return postgres


def _create(
    env: Mapping[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [processes.AUTHGATE, "users", "create", *args],
        env=processes.clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("authgate:")] == lines[-1:], stderr
    return lines[-1]


def _call(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310  (a loopback URL the test built)
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")


def _sign_in(base: str, login: str, password: str) -> str:
    status, body = _call(base, "POST", "/auth/login", {"login": login, "password": password})
    assert status == 200, body
    token: str = body["access_token"]
    return token


def test_users_create_has_help() -> None:
    for command in (["users"], ["users", "create"]):
        result = processes.run(*command, "--help")
        assert result.returncode == 0
        assert result.stdout.startswith("usage: authgate users")
    assert "users" in processes.run("--help").stdout


def test_the_first_admin_is_created_with_a_password_and_can_administer(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = _create(
        env,
        "--email",
        "Root@Example.com",
        "--username",
        "root",
        "--full-name",
        "Root Admin",
        "--admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    [user_id] = created.stdout.splitlines()
    assert ids.is_uuid(user_id)

    with processes.serving(env, cwd=tmp_path) as (_, base):
        token = _sign_in(base, "root", PASSWORD)  # the email counts as verified
        status, body = _call(base, "GET", "/admin/users", token=token)
        assert status == 200, body
        [user] = body["users"]
        assert (user["id"], user["email"], user["full_name"]) == (
            user_id,
            "Root@Example.com",
            "Root Admin",
        )
        assert (user["is_admin"], user["email_verified"]) == (True, True)
        status, audit = _call(base, "GET", "/admin/audit?event=user_create", token=token)
        assert status == 200
        [event] = audit["events"]
        assert (event["actor_id"], event["target"]) == ("cli", user_id)
        assert event["details"] == {"admin": True, "password_set": True}


def test_without_a_password_it_prints_a_one_time_link_to_set_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = _create(
        {**env, "AUTHGATE_ISSUER": "https://auth.example.com"}, "--email", "ada@example.com"
    )
    assert created.returncode == 0, created.stderr
    user_id, link = created.stdout.splitlines()
    assert ids.is_uuid(user_id)
    url = urllib.parse.urlsplit(link)
    assert (url.scheme, url.netloc, url.path) == ("https", "auth.example.com", "/reset-password")
    [token] = urllib.parse.parse_qs(url.query)["token"]

    with processes.serving(env, cwd=tmp_path) as (_, base):
        credentials = {"login": "ada@example.com", "password": PASSWORD}
        assert _call(base, "POST", "/auth/login", credentials)[0] == 401  # no password yet
        status, body = _call(
            base, "POST", "/auth/reset-password", {"token": token, "new_password": PASSWORD}
        )
        assert status == 200, body
        again, _ = _call(
            base, "POST", "/auth/reset-password", {"token": token, "new_password": PASSWORD}
        )
        assert again == 400  # one time
        ada = _sign_in(base, "ada@example.com", PASSWORD)
        status, me = _call(base, "GET", "/users/me", token=ada)
        assert (status, me["id"], me["is_admin"], me["email_verified"]) == (
            200,
            user_id,
            False,
            True,
        )
        assert _call(base, "GET", "/admin/users", token=ada)[0] == 403


def test_a_refused_password_is_one_line_and_creates_nothing(env: dict[str, str]) -> None:
    weak = _create(env, "--email", "ada@example.com", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1
    assert weak.stdout == ""
    assert _one_line(weak.stderr) == "authgate: the password needs at least 12 characters"
    personal = _create(
        env, "--email", "frank.example@example.com", "--password-stdin", stdin="frank.example2025!"
    )
    assert personal.returncode == 1
    assert "email address or name" in _one_line(personal.stderr)
    empty = _create(env, "--email", "ada@example.com", "--password-stdin", stdin="")
    assert empty.returncode == 1
    assert _one_line(empty.stderr) == "authgate: no password on stdin"
    # Nothing was created: the address is still free.
    ok = _create(env, "--email", "ada@example.com", "--password-stdin", stdin=PASSWORD)
    assert ok.returncode == 0, ok.stderr


def test_an_existing_email_or_user_name_is_refused(env: dict[str, str]) -> None:
    first = _create(env, "--email", "ada@example.com", "--username", "ada")
    assert first.returncode == 0, first.stderr
    for args, message in [
        (["--email", "ADA@example.com"], "a user with that email exists"),
        (
            ["--email", "other@example.com", "--username", "Ada"],
            "a user with that user name exists",
        ),
    ]:
        result = _create(env, *args)
        assert result.returncode == 1
        assert result.stdout == ""
        assert _one_line(result.stderr) == f"authgate: {message}"


@pytest.mark.parametrize(
    "args",
    [
        ["--email", "not-an-email"],
        ["--email", "ada@example.com", "--username", "a b"],
        ["--email", "ada@example.com", "--full-name", "x" * 201],
        ["--email", "ada@example.com", "--full-name", "bad\x1bname"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = _create({"AUTHGATE_DATA_DIR": str(tmp_path)}, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    _one_line(result.stderr)


def test_the_email_is_required(tmp_path: Path) -> None:
    result = _create({"AUTHGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "--email" in result.stderr
