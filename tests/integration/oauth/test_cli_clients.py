"""``authgate clients``: the command operators and scripts use, run as a process."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from authgate.gateway import tokens
from authgate.identity import domain
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store, open_store
from tests.conftest import POSTGRES_URL
from tests.integration import processes
from tests.integration.oauth.conftest import key_pair

ACTIONS = [
    ["clients"],
    *(["clients", a] for a in ("create", "list", "show", "delete", "rotate-secret")),
]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"AUTHGATE_DATA_DIR": str(tmp_path)}


def _run(env: dict[str, str], *args: str) -> Any:
    return processes.run("clients", *args, env=env)


def _stored(env: dict[str, str], client_id: str) -> tuple[domain.OAuthClient, str | None]:
    """The client and secret hash as the store has them (what the gateway reads)."""

    async def read() -> tuple[domain.OAuthClient, str | None]:
        store = await open_store(settings_mod.from_env(env), migrate=False)
        try:
            return await store.clients.get(client_id), await store.clients.secret_hash(client_id)
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("command", ACTIONS, ids=" ".join)
def test_every_clients_command_has_help(command: list[str]) -> None:
    result = processes.run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: authgate clients")


def test_create_json_prints_exactly_the_id_and_the_secret(env: dict[str, str]) -> None:
    result = _run(env, "create", "--name", "svc", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"client_id", "client_secret"}
    client, secret_hash = _stored(env, created["client_id"])
    assert secret_hash == hashlib.sha256(created["client_secret"].encode()).hexdigest()
    # Without grant types or redirect URIs: a working service client.
    assert client.grant_types == ("client_credentials",)
    assert client.token_endpoint_auth_method == "client_secret_basic"


def test_create_takes_every_option(env: dict[str, str]) -> None:
    result = _run(
        env,
        "create",
        "--name",
        "Web app",
        "--client-id",
        "web-app",
        "--grant-types",
        "authorization_code,refresh_token",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--redirect-uri",
        "http://127.0.0.1:8000/cb",
        "--post-logout-redirect-uri",
        "https://app.example.com/",
        "--scopes",
        "openid  email",
        "--audience",
        "https://api.example.com",
        "--trusted",
        "--auth-method",
        "client_secret_post",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["client_id"] == "web-app"
    client, _ = _stored(env, "web-app")
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.redirect_uris == ("https://app.example.com/cb", "http://127.0.0.1:8000/cb")
    assert client.post_logout_redirect_uris == ("https://app.example.com/",)
    assert client.scopes == ("openid", "email")
    assert client.audience == ("https://api.example.com",)
    assert (client.trusted, client.token_endpoint_auth_method) == (True, "client_secret_post")


def test_a_public_client_prints_a_null_secret(env: dict[str, str]) -> None:
    result = _run(
        env, "create", "--name", "spa", "--public", "--redirect-uri", "https://spa.example/cb",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["client_secret"] is None
    client, secret_hash = _stored(env, created["client_id"])
    assert (client.public, client.grant_types, secret_hash) == (True, ("authorization_code",), None)


def test_a_private_key_jwt_client_takes_its_keys_from_a_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    keys = key_pair("ES256")
    (tmp_path / "jwks.json").write_text(json.dumps(keys.jwks))
    result = _run(
        env, "create", "--name", "signer", "--auth-method", "private_key_jwt",
        "--jwks", str(tmp_path / "jwks.json"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["client_secret"] is None
    assert _stored(env, created["client_id"])[0].jwks == keys.jwks


def test_create_without_json_prints_two_readable_lines(env: dict[str, str]) -> None:
    result = _run(env, "create", "--name", "svc", "--client-id", "svc")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split() == ["client_id:", "svc"]
    assert second.split()[0] == "client_secret:"
    assert len(second.split()[1]) >= 43
    assert "only this once" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "spa", "--public", "--grant-types", "client_credentials"],
         "a public client cannot use client_credentials"),
        (["--name", "web", "--redirect-uri", "http://app.example.com/cb"], "must use https"),
        (["--name", "web", "--grant-types", "authorization_code"], "redirect URI"),
        (["--name", "svc", "--grant-types", "implicit"], "grant_types"),
        (["--name", "svc", "--scopes", 'a "b"'], "scope token"),
        (["--name", "svc", "--client-id", tokens.FIRST_PARTY_CLIENT_ID], "reserved"),
        (["--name", "svc", "--auth-method", "private_key_jwt"], "jwks"),
        (["--name", "svc", "--auth-method", "private_key_jwt", "--jwks", "/nonexistent"],
         "cannot read /nonexistent"),
        (["--name", ""], "name is required"),
    ],
)  # fmt: skip
def test_bad_metadata_is_one_line_and_exit_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = _run(env, "create", *args)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith("authgate: ")
    assert message in line
    assert result.stdout == ""


def test_an_unknown_auth_method_is_a_usage_error(env: dict[str, str]) -> None:
    result = _run(env, "create", "--name", "svc", "--auth-method", "client_secret_jwt")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_a_taken_client_id_is_one_line_and_exit_1(env: dict[str, str]) -> None:
    assert _run(env, "create", "--name", "a", "--client-id", "dup").returncode == 0
    result = _run(env, "create", "--name", "b", "--client-id", "dup", "--json")
    assert result.returncode == 1
    assert _one_line(result.stderr) == "authgate: a client with client_id 'dup' exists"
    assert result.stdout == ""


def test_list_and_show_never_print_a_secret(env: dict[str, str]) -> None:
    created = json.loads(
        _run(env, "create", "--name", "svc", "--client-id", "svc", "--json").stdout
    )
    secret = created["client_secret"]
    _, secret_hash = _stored(env, "svc")
    assert secret_hash is not None
    listed = _run(env, "list", "--json")
    assert [c["client_id"] for c in json.loads(listed.stdout)] == ["svc"]
    shown = _run(env, "show", "svc", "--json")
    body = json.loads(shown.stdout)
    assert (body["client_id"], body["name"], body["public"]) == ("svc", "svc", False)
    table = _run(env, "list")
    assert table.stdout.splitlines()[0].split() == [
        "CLIENT_ID", "NAME", "TYPE", "AUTH_METHOD", "GRANT_TYPES", "MANAGED_BY",
    ]  # fmt: skip
    text = _run(env, "show", "svc")
    assert "client_id:" in text.stdout
    for output in (listed.stdout, shown.stdout, table.stdout, text.stdout):
        assert secret not in output
        assert secret_hash not in output


def test_list_of_nothing_says_so(env: dict[str, str]) -> None:
    assert processes.run("migrate", env=env).returncode == 0
    assert _run(env, "list").stdout.strip() == "no clients yet"
    assert json.loads(_run(env, "list", "--json").stdout) == []


def test_rotate_secret_replaces_the_hash_and_prints_the_new_secret_once(
    env: dict[str, str],
) -> None:
    old = json.loads(_run(env, "create", "--name", "svc", "--client-id", "svc", "--json").stdout)
    result = _run(env, "rotate-secret", "svc", "--json")
    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout)
    assert set(new) == {"client_id", "client_secret"}
    assert new["client_secret"] != old["client_secret"]
    _, secret_hash = _stored(env, "svc")
    assert secret_hash == hashlib.sha256(new["client_secret"].encode()).hexdigest()


def test_delete_removes_the_client(env: dict[str, str]) -> None:
    assert _run(env, "create", "--name", "svc", "--client-id", "svc").returncode == 0
    result = _run(env, "delete", "svc")
    assert (result.returncode, result.stdout.strip()) == (0, "deleted client svc")
    assert json.loads(_run(env, "list", "--json").stdout) == []


@pytest.mark.parametrize("action", [["show", "nobody"], ["delete", "nobody"],
                                    ["rotate-secret", "nobody"]])  # fmt: skip
def test_an_unknown_client_is_one_line_and_exit_1(env: dict[str, str], action: list[str]) -> None:
    assert processes.run("migrate", env=env).returncode == 0
    result = _run(env, *action)
    assert result.returncode == 1
    assert _one_line(result.stderr) == "authgate: no client 'nobody'"


def test_protected_clients_cannot_be_deleted_or_rotated(env: dict[str, str]) -> None:
    assert processes.run("migrate", env=env).returncode == 0

    async def seed() -> None:
        store = await open_store(settings_mod.from_env(env), migrate=False)
        try:
            await store.clients.create(
                client_id=tokens.FIRST_PARTY_CLIENT_ID,
                name="authgate account service",
                public=True,
                token_endpoint_auth_method="none",
            )
            await store.clients.create(
                client_id="managed", name="M", secret_hash="h", owner="OAuthClient/ns/managed"
            )
            await store.clients.create(
                client_id="spa", name="S", public=True, token_endpoint_auth_method="none"
            )
        finally:
            await store.close()

    asyncio.run(seed())
    for action, target, message in [
        ("delete", tokens.FIRST_PARTY_CLIENT_ID, "account service"),
        ("rotate-secret", tokens.FIRST_PARTY_CLIENT_ID, "account service"),
        ("delete", "managed", "custom resource OAuthClient/ns/managed"),
        ("rotate-secret", "managed", "custom resource"),
        ("rotate-secret", "spa", "no secret to rotate"),
    ]:
        result = _run(env, action, target)
        assert result.returncode == 1, (action, target)
        assert message in _one_line(result.stderr), (action, target)
    assert len(json.loads(_run(env, "list", "--json").stdout)) == 3


def test_clients_work_on_postgresql(pg_schema: str) -> None:
    env = {
        "AUTHGATE_DATABASE_URL": POSTGRES_URL,
        "AUTHGATE_DATABASE_SCHEMA": pg_schema,
        "AUTHGATE_KEK": Fernet.generate_key().decode(),
    }
    assert processes.run("migrate", env=env).returncode == 0
    created = _run(env, "create", "--name", "svc", "--client-id", "pg-svc", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["client_secret"]
    _, secret_hash = _stored(env, "pg-svc")
    assert secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert _run(env, "rotate-secret", "pg-svc").returncode == 0
    assert _run(env, "delete", "pg-svc").returncode == 0
    assert json.loads(_run(env, "list", "--json").stdout) == []


def test_cli_changes_are_audited(env: dict[str, str]) -> None:
    assert _run(env, "create", "--name", "svc", "--client-id", "svc").returncode == 0
    assert _run(env, "rotate-secret", "svc").returncode == 0
    assert _run(env, "delete", "svc").returncode == 0

    async def events() -> list[tuple[str, str | None, str | None]]:
        store: Store = await open_store(settings_mod.from_env(env), migrate=False)
        try:
            found = await store.audit.query(limit=10)
        finally:
            await store.close()
        return [(e.event, e.actor_id, e.target) for e in reversed(found)]

    assert asyncio.run(events()) == [
        ("client_create", "cli", "svc"),
        ("client_secret_rotate", "cli", "svc"),
        ("client_delete", "cli", "svc"),
    ]
