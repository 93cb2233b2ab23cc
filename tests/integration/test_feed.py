"""The change feed, on both backends: what another replica writes reaches this process.

A second connection opened with ``reopen`` is the other replica (or the CLI, or the
operator). On PostgreSQL the feed listens on its own connection, so these tests also
show NOTIFY at work: the fall-back re-read is set to a minute, out of the way.
Propagation times are printed (``pytest -s``); speed is not asserted beyond the 2 s the
design promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from authgate.gateway import app as app_mod
from authgate.gateway import appkeys, liveness
from authgate.gateway import feed as feed_mod
from authgate.identity import domain, errors, ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from authgate.identity.store.db import Database, Dialect, Row
from authgate.identity.store.postgres import PostgresDatabase
from tests.conftest import POSTGRES_URL
from tests.integration.conftest import FakeClock, reopen

HOUR = dt.timedelta(hours=1)
DEADLINE = 2.0  # seconds: DESIGN.md's promise for every replica
FAST_POLL = 0.05  # SQLite polling in tests that are not about latency
QUIET = 60.0  # PostgreSQL: no fall-back re-read during a test; only NOTIFY wakes the feed
RETENTION = dt.timedelta(seconds=86400 + 30)

Client = TestClient[web.Request, web.Application]


class StartFeed(Protocol):
    async def __call__(
        self,
        store: Store,
        *,
        listen: feed_mod.Connect | None = None,
        poll_interval: float = FAST_POLL,
        wait_listening: bool = True,
    ) -> feed_mod.ChangeFeed: ...


def _is_postgres(store: Store) -> bool:
    return store.db.dialect is Dialect.POSTGRES


@pytest.fixture
async def start_feed(database: Database) -> AsyncIterator[StartFeed]:
    """Starts feeds (listening on PostgreSQL) and stops them before the database closes."""
    feeds: list[feed_mod.ChangeFeed] = []

    async def start(
        store: Store,
        *,
        listen: feed_mod.Connect | None = None,
        poll_interval: float = FAST_POLL,
        wait_listening: bool = True,
    ) -> feed_mod.ChangeFeed:
        if listen is None and _is_postgres(store):
            listen = feed_mod.listener(POSTGRES_URL)
        feed = feed_mod.ChangeFeed(
            store,
            retention=RETENTION,
            listen=listen,
            poll_interval=poll_interval,
            probe_interval=QUIET,
        )
        await feed.start()
        feeds.append(feed)
        if listen is not None and wait_listening:
            await _eventually(lambda: feed.listener_pid is not None)
        return feed

    yield start
    for feed in feeds:
        await feed.stop()


@pytest.fixture
async def replica(database: Database) -> AsyncIterator[Store]:
    """Another replica: its own connection to the same database."""
    other = await reopen(database)
    try:
        yield Store(other)
    finally:
        await other.close()


async def _eventually(condition: Callable[[], bool], *, within: float = DEADLINE) -> float:
    """Seconds until ``condition`` held; fails past ``within``."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while not condition():
        if loop.time() - began > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.002)
    return loop.time() - began


class Recorder:
    """A subscriber that keeps what it hears."""

    def __init__(self) -> None:
        self.changes: list[domain.Change] = []

    def __call__(self, change: domain.Change) -> None:
        self.changes.append(change)

    def heard(self, change_id: int) -> bool:
        return any(change.id >= change_id for change in self.changes)


async def _caught_up(feed_recorder: Recorder, writer: Store) -> None:
    """Wait until the feed has passed on everything ``writer`` can see in the log."""
    last = await writer.changes.last_id()
    await _eventually(lambda: feed_recorder.heard(last))


def _revoked(feed: feed_mod.ChangeFeed, token: dict[str, Any]) -> Callable[[], bool]:
    """Whether the feed's index refuses ``token`` as revoked, asked when called."""
    return lambda: feed.index.dead_reason(token) == "revoked"


def _token(**claims: Any) -> dict[str, Any]:
    return {
        "sub": "nobody",
        "client_id": "web",
        "jti": ids.uuid7(),
        "iat": int(dt.datetime.now(dt.UTC).timestamp()),
        **claims,
    }


async def _revoke(store: Store, kind: str, value: str) -> domain.Revocation:
    now = store.now()
    return await store.revocations.revoke(kind, value, revoked_at=now, expires_at=now + HOUR)


# --- propagation ------------------------------------------------------------------------


async def test_a_revocation_on_another_replica_reaches_the_index_within_two_seconds(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    # The real interval on SQLite (about a second): this is the latency users get.
    feed = await start_feed(store, poll_interval=feed_mod.POLL_INTERVAL)
    samples = []
    for _ in range(5):
        token = _token()
        await _revoke(replica, "jti", token["jti"])
        samples.append(await _eventually(_revoked(feed, token)))
    print(
        f"\npropagation on {store.db.dialect.value}: "
        f"median {statistics.median(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms"
    )
    assert feed.lag() < DEADLINE + 1


async def test_revocations_active_at_start_are_loaded_and_expired_ones_are_not(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    live, gone = _token(), _token()
    await _revoke(replica, "jti", live["jti"])
    now = replica.now()
    await replica.revocations.revoke(
        "jti", gone["jti"], revoked_at=now - HOUR, expires_at=now - dt.timedelta(seconds=1)
    )
    feed = await start_feed(store)
    assert feed.index.dead_reason(live) == "revoked"
    assert feed.index.dead_reason(gone) is None
    assert len(feed.index) == 1


async def test_a_revocation_widened_later_is_widened_in_the_index(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    recorder = Recorder()
    feed.subscribe(recorder)
    user = await replica.users.create(email="ada@example.com")
    issued = int(replica.now().timestamp())
    token = _token(sub=user.id, iat=issued + 5)
    await replica.revocations.revoke(
        "subject", user.id, revoked_at=replica.now(), expires_at=replica.now() + HOUR
    )
    await _caught_up(recorder, replica)
    assert feed.index.dead_reason(token) is None  # issued after the revocation
    later = dt.datetime.fromtimestamp(issued + 5, dt.UTC)
    await replica.revocations.revoke("subject", user.id, revoked_at=later, expires_at=later + HOUR)
    await _eventually(lambda: feed.index.dead_reason(token) == "subject_revoked")


# --- subscribers ------------------------------------------------------------------------

TOPICS = ("keys", "clients", "orgs", "memberships", "roles", "sessions", "users", "revocations")


async def test_subscribers_receive_every_topic_in_the_order_it_was_written(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    first, second = Recorder(), Recorder()
    feed.subscribe(first)
    feed.subscribe(second)
    for topic in TOPICS:
        await replica.changes.publish(topic, f"{topic}-key")
    client = await replica.clients.create(name="Web")  # a real write, too

    await _caught_up(first, replica)
    expected = [(topic, f"{topic}-key") for topic in TOPICS] + [("clients", client.id)]
    assert [(c.topic, c.key) for c in first.changes] == expected
    assert second.changes == first.changes
    ids_heard = [c.id for c in first.changes]
    assert ids_heard == sorted(set(ids_heard))  # each once, in order


async def test_a_raising_subscriber_is_logged_and_delivery_goes_on(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    calls = 0

    def broken(change: domain.Change) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a cache with a bug")

    after = Recorder()
    feed.subscribe(broken)
    feed.subscribe(after)
    token = _token()
    await replica.changes.publish("roles", "r-1")
    await _revoke(replica, "jti", token["jti"])
    await replica.changes.publish("roles", "r-2")

    await _caught_up(after, replica)
    assert [c.key for c in after.changes] == ["r-1", f"jti:{token['jti']}", "r-2"]
    assert calls == 3
    assert feed.index.dead_reason(token) == "revoked"


async def test_an_unsubscribed_callback_hears_nothing_more(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    gone, staying = Recorder(), Recorder()
    unsubscribe = feed.subscribe(gone)
    feed.subscribe(staying)
    await replica.changes.publish("roles", "r-1")
    await _caught_up(staying, replica)
    unsubscribe()
    unsubscribe()  # twice is harmless
    await replica.changes.publish("roles", "r-2")
    await _caught_up(staying, replica)
    assert [c.key for c in gone.changes] == ["r-1"]


async def test_lag_counts_from_when_the_last_change_was_written(
    database: Database, replica: Store, start_feed: StartFeed
) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    feed = await start_feed(Store(database, clock))
    recorder = Recorder()
    feed.subscribe(recorder)
    assert feed.lag() == 0.0
    await replica.changes.publish("roles", "r-1")
    await _caught_up(recorder, replica)
    clock.now = recorder.changes[-1].created_at + dt.timedelta(seconds=5)
    assert feed.lag() == 5.0


# --- sessions, and agreement with liveness -----------------------------------------------


async def test_sessions_ended_without_a_revocation_row_are_learned_from_their_topics(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    recorder = Recorder()
    feed.subscribe(recorder)
    ada = await replica.users.create(email="ada@example.com")
    bob = await replica.users.create(email="bob@example.com")
    one, two, three = [
        await replica.sessions.create(ids.token_hash(f"ada-{n}"), ada.id, ttl=HOUR)
        for n in range(3)
    ]
    bobs = await replica.sessions.create(ids.token_hash("bob"), bob.id, ttl=HOUR)
    tokens = {
        name: _token(sub=user.id, sid=session.id)
        for name, user, session in (
            ("one", ada, one),
            ("two", ada, two),
            ("three", ada, three),
            ("bob", bob, bobs),
        )
    }

    await replica.sessions.revoke(one.id)  # "sessions" <id>
    await _caught_up(recorder, replica)
    assert {n: feed.index.dead_reason(t) for n, t in tokens.items()} == {
        "one": "session_ended",
        "two": None,
        "three": None,
        "bob": None,
    }

    await replica.sessions.revoke_all_for_user(ada.id, except_session_id=three.id)
    await replica.users.delete(bob.id)  # its sessions go by cascade, under "users"
    await _caught_up(recorder, replica)
    for name, token in tokens.items():
        assert feed.index.dead_reason(token) == await liveness.dead_reason(store, token), name
    assert feed.index.dead_reason(tokens["three"]) is None
    assert feed.index.dead_reason(tokens["bob"]) == "session_ended"


async def test_the_index_and_liveness_agree_on_the_same_store_state(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    feed = await start_feed(store)
    recorder = Recorder()
    feed.subscribe(recorder)
    ada = await replica.users.create(email="ada@example.com")
    bob = await replica.users.create(email="bob@example.com")
    live_session = await replica.sessions.create(ids.token_hash("live"), ada.id, ttl=HOUR)
    ended_session = await replica.sessions.create(ids.token_hash("ended"), ada.id, ttl=HOUR)
    before = int(replica.now().timestamp()) - 10
    # What the gateway's flows write: accounts.end_session, a family, a jti, "logout
    # everywhere" (subject), a deleted client.
    async with replica.transaction() as tx:
        await tx.sessions.revoke(ended_session.id)
        await _revoke(tx, "session", ended_session.id)
    await _revoke(replica, "family", "fam-dead")
    await _revoke(replica, "jti", "jti-dead")
    await _revoke(replica, "subject", bob.id)
    await _revoke(replica, "client", "gone-client")
    after = int((replica.now() + dt.timedelta(seconds=2)).timestamp())

    variants: dict[str, dict[str, Any]] = {
        "live": _token(sub=ada.id, sid=live_session.id, fam="fam-live"),
        "jti": _token(sub=ada.id, jti="jti-dead"),
        "ended session": _token(sub=ada.id, sid=ended_session.id),
        "malformed sid": _token(sub=ada.id, sid="not-a-uuid"),
        "family": _token(sub=ada.id, fam="fam-dead"),
        "subject before": _token(sub=bob.id, iat=before),
        "subject after": _token(sub=bob.id, iat=after),
        "client before": _token(client_id="gone-client", iat=before),
        "client after": _token(client_id="gone-client", iat=after),
        "no iat": {k: v for k, v in _token(sub=bob.id).items() if k != "iat"},
        "several": _token(sub=bob.id, jti="jti-dead", fam="fam-dead", iat=before),
    }
    await _caught_up(recorder, replica)
    fresh = await start_feed(store)  # the same facts, from the snapshot
    for name, claims in variants.items():
        expected = await liveness.dead_reason(store, claims)
        assert feed.index.dead_reason(claims) == expected, name
        assert fresh.index.dead_reason(claims) == expected, name
    assert await liveness.dead_reason(store, variants["live"]) is None
    assert await liveness.dead_reason(store, variants["subject before"]) == "subject_revoked"


# --- failures and reconnection --------------------------------------------------------


class FlakyDatabase:
    """The real database, with every statement failing while ``down``: an outage."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.down = False

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    def _check(self) -> None:
        if self.down:
            raise errors.StoreUnavailable("the database is down (test)")

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self._check()
        return await self._db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self._check()
        return await self._db.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._check()
        return await self._db.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        self._check()
        return await self._db.execute(sql, *args)

    async def execute_script(self, script: str) -> None:
        self._check()
        await self._db.execute_script(script)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        self._check()
        return self._db.transaction()

    async def lock(self, name: str) -> None:
        await self._db.lock(name)

    def for_update(self) -> str:
        return self._db.for_update()

    async def close(self) -> None:
        """The fixture closes the real database."""

    async def ping(self) -> None:
        self._check()
        await self._db.ping()


async def test_a_store_outage_is_retried_until_changes_flow_again(
    database: Database, replica: Store, start_feed: StartFeed
) -> None:
    flaky = FlakyDatabase(database)
    feed = await start_feed(Store(flaky))
    recorder = Recorder()
    feed.subscribe(recorder)
    flaky.down = True
    token = _token()
    await _revoke(replica, "jti", token["jti"])
    await asyncio.sleep(0.5)  # several failed reads and retries
    assert feed.index.dead_reason(token) is None

    flaky.down = False
    # Back-off is at most BACKOFF_MAX; the first retries come far sooner.
    await _eventually(_revoked(feed, token))
    await replica.changes.publish("roles", "after-the-outage")
    await _caught_up(recorder, replica)


@dataclasses.dataclass
class GatedListener:
    """``feed.listener`` for the test database, but a connect waits while the gate is
    shut and fails while ``failures`` remain."""

    gate: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    failures: int = 0
    attempts: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self) -> asyncpg.Connection[asyncpg.Record]:
        self.attempts += 1
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("connection refused (test)")
        return await feed_mod.listener(POSTGRES_URL)()


@pytest.fixture
def postgres_only(database: Database) -> None:
    if not isinstance(database, PostgresDatabase):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite polls")


@pytest.mark.usefixtures("postgres_only")
async def test_a_change_published_while_the_listener_was_down_arrives_after_it_reconnects(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    listener = GatedListener()
    feed = await start_feed(store, listen=listener)
    first_pid = feed.listener_pid
    assert first_pid is not None

    listener.gate.clear()  # it will not get back in until we say so
    assert await replica.db.fetchval("SELECT pg_terminate_backend($1)", first_pid)
    await _eventually(lambda: feed.listener_pid is None)
    token = _token()
    await _revoke(replica, "jti", token["jti"])  # NOTIFY goes to no one of ours
    await asyncio.sleep(0.3)
    assert feed.index.dead_reason(token) is None

    listener.gate.set()
    waited = await _eventually(_revoked(feed, token))
    assert feed.listener_pid not in (None, first_pid)
    print(f"\ncaught up {waited * 1000:.0f} ms after the listener could reconnect")

    # and it listens again: the next change comes by NOTIFY (the re-read is a minute off)
    again = _token()
    await _revoke(replica, "jti", again["jti"])
    await _eventually(_revoked(feed, again))


@pytest.mark.usefixtures("postgres_only")
async def test_a_listener_that_cannot_connect_is_retried(
    store: Store, replica: Store, start_feed: StartFeed
) -> None:
    listener = GatedListener(failures=3)
    feed = await start_feed(store, listen=listener, wait_listening=False)
    await _eventually(lambda: feed.listener_pid is not None, within=5.0)
    assert listener.attempts == 4
    token = _token()
    await _revoke(replica, "jti", token["jti"])
    await _eventually(_revoked(feed, token))


@pytest.mark.usefixtures("postgres_only")
async def test_a_change_that_commits_after_a_later_one_still_arrives(
    store: Store, replica: Store, database: Database, start_feed: StartFeed
) -> None:
    # PostgreSQL numbers change_log rows at insert, not at commit.
    feed = await start_feed(store)
    recorder = Recorder()
    feed.subscribe(recorder)
    slow = _token()
    third = Store(await reopen(database))
    try:
        async with replica.transaction() as tx:
            early = await _revoke(tx, "jti", slow["jti"])  # takes the lower id
            await third.changes.publish("roles", "committed-first")
            await _eventually(lambda: [c.key for c in recorder.changes] == ["committed-first"])
        assert early.value == slow["jti"]
        await _eventually(_revoked(feed, slow))
    finally:
        await third.close()
    assert [c.key for c in recorder.changes] == ["committed-first", f"jti:{slow['jti']}"]
    assert recorder.changes[1].id < recorder.changes[0].id


async def test_stopping_is_clean_even_while_reconnecting_and_may_be_repeated(
    store: Store, start_feed: StartFeed
) -> None:
    listener = GatedListener()
    listener.gate.clear()
    feed = await start_feed(
        store, listen=listener if _is_postgres(store) else None, wait_listening=False
    )
    await asyncio.sleep(0.1)  # stuck connecting (PostgreSQL) or between polls (SQLite)
    await feed.stop()
    await feed.stop()
    assert feed.listener_pid is None


# --- through the application --------------------------------------------------------


async def test_the_app_feeds_its_index_from_what_another_replica_writes(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    database: Database,
    replica: Store,
    tmp_path: Path,
) -> None:
    settings = settings_mod.Settings(data_dir=tmp_path, kek=(Fernet.generate_key(),))
    if isinstance(database, PostgresDatabase):
        # The settings name the store's database, as in a deployment: the app LISTENs.
        settings = dataclasses.replace(
            settings, database_url=POSTGRES_URL, database_schema=database.schema
        )
    app = app_mod.create_app(settings, store=Store(database))
    await aiohttp_client(app)
    feed = app[appkeys.FEED]
    if isinstance(database, PostgresDatabase):
        await _eventually(lambda: feed.listener_pid is not None)

    token = _token()
    await _revoke(replica, "jti", token["jti"])
    waited = await _eventually(_revoked(feed, token))
    print(f"\nthe app on {database.dialect.value} heard it in {waited * 1000:.0f} ms")
