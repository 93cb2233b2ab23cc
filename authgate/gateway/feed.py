"""The change-feed subscriber: how a revocation, a logout or a role change made on one
replica (or by the CLI, or the operator) reaches this process within 2 s (issue 5).

One :class:`ChangeFeed` per gateway process (DESIGN.md: each worker keeps its own caches
and its own subscription). It keeps :attr:`ChangeFeed.index`, the in-memory
:class:`~authgate.gateway.revocation_index.RevocationIndex` the check path consults
instead of the store, and hands every change to subscribers, so caches can drop what a
change makes stale.

How changes arrive:

- PostgreSQL: a connection of its own (opened with :func:`listener`, outside the
  store's pool, so it neither takes a pool member for good nor holds up the pool's
  close) runs ``LISTEN`` on :data:`~authgate.identity.store.changes.CHANNEL`. A
  notification only wakes the feed, which then reads ``changes.since(last_id)`` through
  the store: the channel is shared by every schema in the database (installations, test
  runs), and its payload does not say whose change it is. After every (re)connect the
  same read catches up on what was published while no one listened. A lost connection is
  noticed at once (asyncpg's termination callback) or, if it died silently, by a ping
  after ``probe_interval`` of silence, which also re-reads the log; reconnects back off.
- SQLite -- and a PostgreSQL store handed to the app without the settings that name it
  (tests) -- ``changes.since(last_id)`` every ``poll_interval`` (about a second):
  the CLI and the operator write from other processes.

Why not simply "everything above the last id": PostgreSQL hands out ``change_log`` ids
when a transaction inserts, not when it commits, so change 11 can be visible before
change 10 commits. An id skipped over is remembered as a gap for ``GAP_HORIZON`` seconds
and read again until it shows up (a transaction still open) or the horizon passes (a
rolled-back one). SQLite serialises writers, so there its ids arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias

import asyncpg
from aiohttp import web

from authgate.gateway import appkeys, revocation_index, tokens
from authgate.identity import domain, errors, ids, logs
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store, changes
from authgate.identity.store.postgres import PostgresDatabase

log = logs.get("authgate.feed")

Subscriber = Callable[[domain.Change], None]
# Only the stubs make asyncpg's Connection generic: keep the alias out of runtime.
Connect: TypeAlias = "Callable[[], Awaitable[asyncpg.Connection[asyncpg.Record]]]"

POLL_INTERVAL = 1.0  # SQLite: seconds between reads of the change log
PROBE_INTERVAL = 10.0  # PostgreSQL: silence after which the log is re-read and the listener pinged
SWEEP_INTERVAL = 60.0  # seconds between sweeps of expired index entries
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
# Longer than any transaction stays open between publishing a change and committing it.
GAP_HORIZON = 30.0
MAX_GAPS = 10_000
PAGE = 1000
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0
# What asyncpg raises when the server is away or goes away.
_LISTENER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def listener(dsn: str) -> Connect:
    """How the feed opens its ``LISTEN`` connection to the database ``dsn`` names.
    Notification channels are per database, not per schema: no ``search_path`` needed."""

    async def connect() -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "authgate-feed"},
        )

    return connect


class ChangeFeed:
    """Follows the store's change log; see the module docstring for how."""

    def __init__(
        self,
        store: Store,
        *,
        retention: dt.timedelta,
        listen: Connect | None = None,
        poll_interval: float = POLL_INTERVAL,
        probe_interval: float = PROBE_INTERVAL,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        """``retention``: how long a session ended without a revocation row (told by a
        ``sessions`` or ``users`` change) is remembered -- as long as a token issued
        before it ended can live (the longest token lifetime plus verification leeway).
        ``listen``: how to open a PostgreSQL ``LISTEN`` connection (:func:`listener`);
        without it the feed polls the log every ``poll_interval`` seconds.
        """
        self.index = revocation_index.RevocationIndex(store.now)
        self._store = store
        self._connect = listen
        self._retention = retention
        self._poll_interval = poll_interval
        self._probe_interval = probe_interval
        self._sweep_interval = sweep_interval
        self._subscribers: list[Subscriber] = []
        self._last_id = 0
        self._gaps: dict[int, float] = {}  # change id -> when it was found missing (monotonic)
        self._last_created: dt.datetime | None = None
        self._next_sweep = 0.0
        self._wake = asyncio.Event()
        self._backoff = BACKOFF_FIRST
        self._listener_pid: int | None = None
        self._task: asyncio.Task[None] | None = None

    # --- for the rest of the gateway --------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every change, after the index has taken it in; returns
        a function that unsubscribes. A callback runs on the event loop: it must be
        quick and must not block. One that raises is logged and the feed goes on."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def lag(self) -> float:
        """Seconds since the newest change applied here was written (0.0 before the
        first): how stale this replica may be. It also grows while nobody writes."""
        if self._last_created is None:
            return 0.0
        return max(0.0, (self._store.now() - self._last_created).total_seconds())

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend pid of the ``LISTEN`` connection while there is one,
        for diagnostics (it is logged at each connect)."""
        return self._listener_pid

    # --- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Load the index and start following the log.

        The log position is read *before* the snapshot: a change committed in between
        is then in the snapshot and replayed once more (harmless), whereas the other
        order would leave it in neither.
        """
        if self._task is not None:
            raise RuntimeError("the change feed is running already")
        position = await self._store.changes.last_id()
        self.index.load(await self._store.revocations.active())
        self._last_id = position
        if isinstance(self._store.db, PostgresDatabase):
            await self._note_gaps_up_to(position)
        self._next_sweep = time.monotonic() + self._sweep_interval
        self._task = asyncio.create_task(self._run(), name="authgate-change-feed")
        log.info(
            "feed_started",
            backend=self._store.db.dialect.value,
            position=position,
            index_entries=len(self.index),
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- following the log ------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                if self._connect is not None:
                    await self._listen(self._connect)
                    log.warning("feed_listener_lost", retry_in=self._backoff)
                else:
                    await self._poll()
            except errors.StoreError as error:
                log.warning("feed_store_unavailable", error=str(error), retry_in=self._backoff)
            except _LISTENER_ERRORS as error:
                log.warning(
                    "feed_listener_unavailable",
                    error=str(error) or type(error).__name__,
                    retry_in=self._backoff,
                )
            except Exception:
                # Never let the task die quietly: revocations would stop arriving.
                log.exception("feed_failed", retry_in=self._backoff)
            if loop.time() - began >= BACKOFF_MAX:
                self._backoff = BACKOFF_FIRST  # it had been working: a fresh failure
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    async def _poll(self) -> None:
        while True:
            await self._catch_up()
            await asyncio.sleep(self._poll_interval)

    async def _listen(self, connect: Connect) -> None:
        """Until the listening connection is lost (returns) or fails (raises)."""
        lost = asyncio.Event()

        def notified(*_: object) -> None:
            self._wake.set()

        def closed(*_: object) -> None:
            lost.set()
            self._wake.set()

        conn = await connect()
        try:
            conn.add_termination_listener(closed)
            await conn.add_listener(changes.CHANNEL, notified)
            self._listener_pid = conn.get_server_pid()
            log.info("feed_listening", channel=changes.CHANNEL, pid=self._listener_pid)
            while not lost.is_set():
                self._wake.clear()
                await self._catch_up()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._probe_interval)
                except TimeoutError:
                    await conn.fetchval("SELECT 1")  # did it die without a word?
        finally:
            self._listener_pid = None
            conn.remove_termination_listener(closed)
            # asyncpg aborts the socket itself if a graceful close fails (server gone).
            with contextlib.suppress(*_LISTENER_ERRORS):
                await conn.close(timeout=CLOSE_TIMEOUT)

    async def _catch_up(self) -> None:
        """Apply every change not applied yet, oldest first, in pages."""
        self._housekeep()
        after = min(self._gaps) - 1 if self._gaps else self._last_id
        while True:
            batch = await self._store.changes.since(after, limit=PAGE)
            for change in batch:
                if change.id > self._last_id or change.id in self._gaps:
                    # Marked seen only once applied: a store failure halfway retries it.
                    await self._apply(change)
                    self._seen(change.id)
            if len(batch) < PAGE:
                return
            after = batch[-1].id

    def _seen(self, change_id: int) -> None:
        if change_id <= self._last_id:
            self._gaps.pop(change_id, None)
            return
        now = time.monotonic()
        for missing in range(max(self._last_id + 1, change_id - MAX_GAPS), change_id):
            self._gaps[missing] = now
        self._last_id = change_id

    async def _note_gaps_up_to(self, position: int) -> None:
        """At start on PostgreSQL: ids just below ``position`` that are not in the log
        may belong to transactions that commit after the snapshot was read."""
        first = max(1, position - PAGE + 1)
        present = {change.id for change in await self._store.changes.since(first - 1, limit=PAGE)}
        now = time.monotonic()
        for missing in range(first, position + 1):
            if missing not in present:
                self._gaps[missing] = now

    def _housekeep(self) -> None:
        now = time.monotonic()
        if self._gaps:
            for change_id in [i for i, found in self._gaps.items() if now - found > GAP_HORIZON]:
                del self._gaps[change_id]
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            dropped = self.index.sweep()
            if dropped:
                log.debug("feed_index_swept", dropped=dropped, index_entries=len(self.index))

    # --- one change -------------------------------------------------------------

    async def _apply(self, change: domain.Change) -> None:
        if change.topic == "revocations":
            await self._refresh_revocation(change)
        elif change.topic == "sessions":
            await self._refresh_sessions(change)
        elif change.topic == "users":
            await self._refresh_user(change)
        self._last_created = change.created_at
        log.debug(
            "feed_change",
            id=change.id,
            topic=change.topic,
            delay=round((self._store.now() - change.created_at).total_seconds(), 4),
        )
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(change)
            except Exception:
                log.exception(
                    "feed_subscriber_failed",
                    subscriber=getattr(subscriber, "__qualname__", repr(subscriber)),
                    topic=change.topic,
                    change_id=change.id,
                )

    async def _refresh_revocation(self, change: domain.Change) -> None:
        """Read the revocation as it is now: the store only ever widens one, and none
        (expired, pruned) means nothing to refuse."""
        kind, separator, value = change.key.partition(":")
        if not separator:
            log.warning("feed_change_malformed", topic=change.topic, change_id=change.id)
            return
        revocation = await self._store.revocations.get(kind, value)
        if revocation is None:
            self.index.discard(kind, value)
        else:
            self.index.put(revocation)

    async def _refresh_sessions(self, change: domain.Change) -> None:
        """``<session id>``: that session was revoked; ``user:<user id>``: the user's
        sessions were, all at once. Signing out through the account service also writes
        a ``session`` revocation, but the store's own session revocations do not."""
        if not change.key.startswith("user:"):
            try:
                await self._store.sessions.get_active(change.key)
            except errors.NotFound:
                if ids.is_uuid(change.key):
                    self.index.end_session(
                        change.key,
                        ended_at=change.created_at,
                        until=change.created_at + self._retention,
                    )
            return
        user_id = change.key.removeprefix("user:")
        try:
            sessions = await self._store.sessions.list_for_user(user_id, active_only=False)
        except errors.NotFound:
            self._end_user_sessions(user_id, change)
            return
        now = self._store.now()
        for session in sessions:
            ended_at = session.revoked_at
            if ended_at is None and session.expires_at <= now:
                ended_at = session.expires_at
            if ended_at is not None and ended_at + self._retention > now:
                self.index.end_session(
                    session.id, ended_at=ended_at, until=ended_at + self._retention
                )

    async def _refresh_user(self, change: domain.Change) -> None:
        """A deleted account takes its sessions with it (by cascade, without a change
        per session): tokens naming any of them are dead, as the store would say."""
        try:
            await self._store.users.get(change.key)
        except errors.NotFound:
            self._end_user_sessions(change.key, change)

    def _end_user_sessions(self, user_id: str, change: domain.Change) -> None:
        if ids.is_uuid(user_id):
            self.index.end_user_sessions(
                user_id, ended_at=change.created_at, until=change.created_at + self._retention
            )


async def context(app: web.Application) -> AsyncIterator[None]:
    """The process's feed, for ``app.cleanup_ctx`` after the store: started before the
    app serves, stopped (its task cancelled) before the store closes."""
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    listen = None
    if (
        isinstance(store.db, PostgresDatabase)
        and settings.database_kind is settings_mod.DatabaseKind.POSTGRES
    ):
        listen = listener(settings.database_url)
    feed = ChangeFeed(
        store,
        retention=dt.timedelta(seconds=settings.max_token_lifetime + tokens.LEEWAY),
        listen=listen,
    )
    delay = app[appkeys.METRICS].feed_delay

    def observe(change: domain.Change) -> None:
        delay.observe(max(0.0, (store.now() - change.created_at).total_seconds()))

    unsubscribe = feed.subscribe(observe)
    await feed.start()
    app[appkeys.FEED] = feed
    try:
        yield
    finally:
        unsubscribe()
        await feed.stop()
