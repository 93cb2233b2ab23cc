"""The ``authgate`` command: help, one-line failures, migrate and keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from authgate.identity.settings import SigningAlg
from authgate.identity.store import migrations
from authgate.identity.store.db import Dialect
from tests.conftest import POSTGRES_URL
from tests.integration import processes

COMMANDS = [[], ["serve"], ["migrate"], ["keys"], ["keys", "list"], ["keys", "rotate"]]


def _one_line(stderr: str) -> str:
    """The failure is one line, last, with no traceback; ``serve`` may log before it."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert [line for line in lines if line.startswith("authgate:")] == lines[-1:], stderr
    return lines[-1]


def test_help_lists_every_command() -> None:
    result = processes.run("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "keys"):
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "authgate")
def test_every_command_has_help(command: list[str]) -> None:
    result = processes.run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: authgate")


def test_a_missing_or_unknown_command_is_a_usage_error() -> None:
    assert processes.run().returncode == 2
    unknown = processes.run("frobnicate")
    assert unknown.returncode == 2
    assert "invalid choice" in unknown.stderr


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["keys", "list"]])
def test_a_bad_setting_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    result = processes.run(*command, env={"AUTHGATE_LISTEN": "everywhere"}, cwd=tmp_path)
    assert result.returncode == 2
    assert _one_line(result.stderr).startswith("authgate: AUTHGATE_LISTEN: expected HOST:PORT")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["keys", "list"]])
def test_a_corrupt_sqlite_file_is_reported_and_left_untouched(
    command: list[str], tmp_path: Path
) -> None:
    database = tmp_path / "authgate.db"
    database.write_bytes(b"this is not a database, but someone's data " * 200)
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    result = processes.run(*command, env={"AUTHGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line.startswith(f"authgate: cannot use SQLite database {database}")
    assert "not a database" in line
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["authgate.db"]


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["keys", "list"]])
def test_an_unreachable_postgresql_is_one_line_and_exit_1(command: list[str]) -> None:
    env = {
        "AUTHGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test",
        "AUTHGATE_KEK": Fernet.generate_key().decode(),
    }
    result = processes.run(*command, env=env, timeout=30)
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith("authgate: cannot connect to PostgreSQL")


def test_a_wrong_kek_is_reported_not_overwritten(tmp_path: Path) -> None:
    env = {"AUTHGATE_DATA_DIR": str(tmp_path)}
    assert processes.run("keys", "rotate", env=env).returncode == 0
    (tmp_path / "kek").write_text(Fernet.generate_key().decode())
    result = processes.run(
        "serve", env={**env, "AUTHGATE_LISTEN": f"127.0.0.1:{processes.free_port()}"}
    )
    assert result.returncode == 1
    assert "AUTHGATE_KEK is not the key it was encrypted with" in _one_line(result.stderr)


def test_migrate_on_sqlite_applies_then_has_nothing_to_do(tmp_path: Path) -> None:
    env = {"AUTHGATE_DATA_DIR": str(tmp_path)}
    first = processes.run("migrate", env=env)
    assert first.returncode == 0
    assert "applied 0001_initial" in first.stdout
    second = processes.run("migrate", env=env)
    assert second.returncode == 0
    assert "nothing to do" in second.stdout


def test_two_migrations_started_together_on_postgresql_both_succeed(pg_schema: str) -> None:
    env = processes.clean_env(
        {
            "AUTHGATE_DATABASE_URL": POSTGRES_URL,
            "AUTHGATE_DATABASE_SCHEMA": pg_schema,
            "AUTHGATE_KEK": Fernet.generate_key().decode(),
        }
    )
    runners = [
        subprocess.Popen(
            [processes.AUTHGATE, "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [runner.communicate(timeout=60) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0, 0], outputs
    assert sum("applied 0001_initial" in out for out, _ in outputs) == 1

    async def applied() -> list[int]:
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": pg_schema})
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        finally:
            await conn.close()
        return [row["version"] for row in rows]

    assert asyncio.run(applied()) == [m.version for m in migrations.available(Dialect.POSTGRES)]


def test_keys_rotate_adds_a_key_that_signs_after_the_publish_ahead(tmp_path: Path) -> None:
    env = {"AUTHGATE_DATA_DIR": str(tmp_path), "AUTHGATE_SIGNING_ALG": "ES256"}
    assert json.loads(processes.run("keys", "list", "--json", env=env).stdout) == []
    assert processes.run("keys", "rotate", env=env).returncode == 0  # the first keys sign at once
    rotated = processes.run("keys", "rotate", env=env)
    assert rotated.returncode == 0
    assert rotated.stdout.count("added ") == 2
    listed = json.loads(processes.run("keys", "list", "--json", env=env).stdout)
    states = sorted((row["alg"], row["state"]) for row in listed)
    assert states == [
        (SigningAlg.ES256.value, "next"),
        (SigningAlg.ES256.value, "signing"),
        (SigningAlg.RS256.value, "next"),
        (SigningAlg.RS256.value, "signing"),
    ]
    table = processes.run("keys", "list", env=env).stdout
    assert table.splitlines()[0].split() == [
        "KID",
        "ALG",
        "STATE",
        "CREATED_AT",
        "SIGNS_FROM",
        "EXPIRES_AT",
    ]
    assert "PRIVATE" not in table
    assert "d" not in {k for row in listed for k in row}


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"AUTHGATE_DATA_DIR": str(tmp_path), "AUTHGATE_LISTEN": f"127.0.0.1:{port}"}
        result = processes.run("serve", env=env)
    assert result.returncode == 1
    assert (
        _one_line(result.stderr)
        == f"authgate: cannot listen on 127.0.0.1:{port}: address already in use"
    )
