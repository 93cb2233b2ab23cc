"""Property: no input makes any endpoint answer 500, and every JSON error has the shape.

A real server (the app factory behind aiohttp's runner, on a loopback port, in a thread
of its own) is driven over real HTTP by hypothesis: every route the app registers, with
and without a valid bearer token, with bodies that are valid JSON of the wrong shape,
odd Unicode (lone surrogates, NUL, control and bidi characters), huge or deeply nested
values, or not JSON at all. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate.gateway import app as app_mod
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store, migrations
from authgate.identity.store.db import Database
from authgate.identity.store.postgres import PostgresDatabase
from authgate.identity.store.sqlite import SqliteDatabase
from tests.conftest import POSTGRES_URL
from tests.integration import processes

FIELDS = [
    "email", "password", "login", "token", "refresh_token", "new_password", "current_password",
    "username", "full_name", "website", "mfa_token", "code", "backup_code", "org", "slug",
    "display_name", "user", "role", "permission", "permissions", "route_rules", "name",
    "description", "email_domains",
]  # fmt: skip
ODD = ["\ud800", "\x00", "\u202e", "\ufeff", "a\u0301", "\U0001f600", "\x1b[31m", "%00", "'; --"]

text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(ODD),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.just("x" * 5000),
    st.just("ada@example.com"),
    st.just("0190a0a0-0000-7000-8000-000000000000"),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(
        lambda d: json.dumps(d).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b"{" * 5000),
    st.just(b'{"email": "\\ud800@x.io", "password": "\\u0000"}'),
)
path_parts = st.one_of(
    st.just("0190a0a0-0000-7000-8000-000000000000"),
    st.from_regex(r"[A-Za-z0-9._~-]{1,40}", fullmatch=True),
    st.just("%00"),
    st.just("..%2f..%2fetc"),
)


class Server:
    """The gateway on a loopback port, served from a thread with its own event loop."""

    def __init__(self, db_factory: Any, tmp: Path) -> None:
        self.port = processes.free_port()
        self._db_factory = db_factory
        self._tmp = tmp
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.routes: list[tuple[str, str]] = []
        self.token = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(30), "server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        db: Database = await self._db_factory()
        await migrations.migrate(db)
        config = settings_mod.Settings(
            data_dir=self._tmp,
            kek=(Fernet.generate_key(),),
            issuer=f"http://127.0.0.1:{self.port}",
            argon2_memory_kib=1024,
            argon2_time_cost=1,
            require_verified_email=False,
            rate_limits=tuple((name, 100_000, 1) for name in settings_mod.RATE_LIMITED_ACTIONS),
            lockout_threshold=100_000,
        )
        app = app_mod.create_app(config, store=Store(db))
        self.routes = sorted(
            {
                (route.method, route.resource.canonical)
                for route in app.router.routes()
                if route.resource is not None and route.method != "HEAD"
            }
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await db.close()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()


PASSWORD = "correct horse battery staple 42"
JSON = {"Content-Type": "application/json"}


def _register(server: Server) -> None:
    account = {"email": "fuzz@example.com", "password": PASSWORD, "username": "fuzz"}
    status, _, body = server.request("POST", "/auth/register", json.dumps(account).encode(), JSON)
    assert status == 201, body


def _login(server: Server) -> str:
    credentials = json.dumps({"login": "fuzz", "password": PASSWORD}).encode()
    status, _, body = server.request("POST", "/auth/login", credentials, JSON)
    assert status == 200, body
    token: str = json.loads(body)["access_token"]
    return token


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    schema = f"t_{secrets.token_hex(6)}"

    async def open_db() -> Database:
        if request.param == "sqlite":
            return await SqliteDatabase.open(tmp / "fuzz.db")
        return await PostgresDatabase.open(POSTGRES_URL, schema=schema, size=4)

    running = Server(open_db, tmp)
    running.start()
    _register(running)
    running.token = _login(running)
    try:
        yield running
    finally:
        running.stop()
        if request.param == "postgres":
            asyncio.run(_drop(schema))


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


_PLACEHOLDER = re.compile(r"\{[^}]+\}")


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_makes_an_endpoint_fail_with_500(server: Server, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from(server.routes), label="route")
    path = _PLACEHOLDER.sub(lambda _: data.draw(path_parts), template)
    body = data.draw(bodies, label="body")
    headers = {"Content-Type": data.draw(st.sampled_from(["application/json", "text/plain", ""]))}
    authenticated = data.draw(st.booleans(), label="authenticated")
    if authenticated:
        headers["Authorization"] = f"Bearer {server.token}"
    status, content_type, raw = server.request(method, path, body, headers)
    if authenticated and status < 300 and ("logout" in path or path.startswith("/auth/sessions")):
        server.token = _login(server)  # that request ended the session: start a new one
    assert status < 500, (method, path, body[:200], raw[:500])
    if status >= 400 and content_type.startswith("application/json"):
        payload = json.loads(raw)
        assert set(payload) == {"error", "error_description"}, payload
