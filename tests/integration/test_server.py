"""``authgate serve`` as a process: start, serve, stop on SIGTERM, restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from cryptography.fernet import Fernet

from tests.conftest import POSTGRES_URL
from tests.integration import processes


def _kids(base: str) -> set[str]:
    status, body = processes.get(f"{base}/.well-known/jwks.json")
    assert status == 200
    return {key["kid"] for key in json.loads(body)["keys"]}


def test_the_embedded_default_serves_and_keeps_its_key_across_restarts(tmp_path: Path) -> None:
    with processes.serving({}, cwd=tmp_path) as (process, base):
        assert processes.get(f"{base}/healthz")[0] == 200
        assert processes.get(f"{base}/readyz")[0] == 200
        first = _kids(base)
        assert len(first) == 1
        _, body = processes.get(f"{base}/.well-known/openid-configuration")
        discovery = json.loads(body)
        assert discovery["issuer"] == base
        assert discovery["jwks_uri"] == f"{base}/.well-known/jwks.json"

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        assert process.returncode == 0
        assert "stopped" in stderr

    assert (tmp_path / "data" / "authgate.db").exists()
    assert (tmp_path / "data" / "kek").stat().st_mode & 0o077 == 0
    with processes.serving({}, cwd=tmp_path) as (_, base):
        assert _kids(base) == first


def test_json_logs_are_one_object_per_line_with_the_request_id(tmp_path: Path) -> None:
    env = {"AUTHGATE_LOG_FORMAT": "json", "AUTHGATE_DATA_DIR": str(tmp_path)}
    with processes.serving(env) as (process, base):
        processes.get(f"{base}/no-such-page")
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    events = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    [request] = [e for e in events if e.get("event") == "request" and e["path"] == "/no-such-page"]
    assert request["status"] == 404
    assert len(request["request_id"]) == 16
    assert {"timestamp", "level"} <= request.keys()


def test_on_postgresql_serve_needs_migrate_first_then_serves(
    pg_schema: str, tmp_path: Path
) -> None:
    env = {
        "AUTHGATE_DATABASE_URL": POSTGRES_URL,
        "AUTHGATE_DATABASE_SCHEMA": pg_schema,
        "AUTHGATE_KEK": Fernet.generate_key().decode(),
    }
    refused = processes.run("serve", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "authgate: the database schema lacks migrations [1]: run 'authgate migrate'"
    )
    assert processes.run("migrate", env=env).returncode == 0
    with processes.serving(env, cwd=tmp_path) as (_, base):
        assert processes.get(f"{base}/readyz")[0] == 200
        first = _kids(base)
    with processes.serving(env, cwd=tmp_path) as (_, base):
        assert _kids(base) == first
    assert not (tmp_path / "data").exists()
