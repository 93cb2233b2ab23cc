"""The application factory.

``create_app(settings)`` wires routes, middlewares and resources. Every resource is set
up and torn down in ``cleanup_ctx`` -- in order, and only torn down if it was set up --
so a failed start (database unreachable) releases what was opened before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import web

from authgate.gateway import (
    admin_api,
    admin_clients_api,
    appkeys,
    auth_api,
    feed,
    health,
    mail,
    me_api,
    mfa_api,
    middleware,
    orgs_api,
    pages,
    ratelimit,
    tokens,
    wellknown,
)
from authgate.gateway import metrics as metrics_mod
from authgate.gateway.check import http as check_http
from authgate.gateway.oauth import authorize as oauth_authorize
from authgate.gateway.oauth import endpoints as oauth_endpoints
from authgate.gateway.oauth import logout as oauth_logout
from authgate.identity import domain, errors, keys, logs, passwords, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store, open_store

log = logs.get("authgate.gateway")


def create_app(settings: settings_mod.Settings, *, store: Store | None = None) -> web.Application:
    """The gateway. ``store`` lets tests hand in one they prepared; by default the app
    opens (and for the embedded default, migrates) the configured store itself."""
    app = web.Application(
        middlewares=[middleware.observe, middleware.errors_to_json, middleware.limit_body],
        client_max_size=settings.max_body_size,
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.METRICS] = metrics_mod.create()
    app[appkeys.KEYS] = appkeys.KeyState()
    app.on_response_prepare.append(middleware.add_security_headers)
    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(feed.context)
    app.cleanup_ctx.append(_keys_ctx)
    app.cleanup_ctx.append(_accounts_ctx)
    app.cleanup_ctx.append(check_http.context)
    app.add_routes(health.routes())
    app.add_routes(wellknown.routes())
    app.add_routes(auth_api.routes())
    app.add_routes(me_api.routes())
    app.add_routes(orgs_api.routes())
    app.add_routes(admin_api.routes())
    app.add_routes(admin_clients_api.routes())
    app.add_routes(mfa_api.routes())
    app.add_routes(pages.routes())
    app.add_routes(oauth_endpoints.routes())
    app.add_routes(oauth_authorize.routes())
    app.add_routes(oauth_logout.routes())
    app.add_routes(check_http.routes())
    return app


def _store_ctx(given: Store | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[appkeys.SETTINGS]
        if given is not None:
            app[appkeys.STORE] = given
            yield
            return
        embedded = settings.database_kind is settings_mod.DatabaseKind.SQLITE
        store = await open_store(settings, migrate=embedded)
        app[appkeys.STORE] = store
        log.info("store_open", backend=settings.database_kind.value)
        try:
            yield
        finally:
            await store.close()

    return ctx


async def _keys_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    app[appkeys.ENCRYPTOR] = secrets.Encryptor(secrets.load_kek(settings))
    await refresh_keys(app)
    task = asyncio.create_task(_maintain_keys(app), name="authgate-key-maintenance")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Password hashing pool, rate limiter and mailer, and the first-party client row
    that the account service's own refresh tokens belong to."""
    settings = app[appkeys.SETTINGS]
    hasher = passwords.Hasher(settings)
    app[appkeys.HASHER] = hasher
    limiter: ratelimit.Limiter
    if settings.redis_url:
        limiter = ratelimit.RedisLimiter(settings.redis_url)
    else:
        limiter = ratelimit.MemoryLimiter()
    app[appkeys.LIMITER] = limiter
    app[appkeys.MAILER] = mail.create(settings)
    with contextlib.suppress(errors.AlreadyExists):
        await app[appkeys.STORE].clients.create(
            client_id=tokens.FIRST_PARTY_CLIENT_ID,
            name="authgate account service",
            public=True,
            grant_types=("password", "refresh_token"),
            token_endpoint_auth_method="none",  # noqa: S106  (a method name)
            trusted=True,
        )
    housekeeping = asyncio.create_task(_housekeep(app), name="authgate-housekeeping")
    try:
        yield
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        await limiter.close()
        hasher.close()


HOUSEKEEPING_INTERVAL = 600
CHANGE_LOG_RETENTION = dt.timedelta(days=1)
# A replayed code must still be recognised (to revoke what it issued) for as long as
# those tokens can live.
REDEEMED_CODE_RETENTION = dt.timedelta(days=1)


async def _housekeep(app: web.Application) -> None:
    """Delete what has expired: sessions, links, refresh families, revocations, old
    change-feed entries. Every replica may run it; the deletes are idempotent."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
        await housekeep_once(app[appkeys.STORE])


async def housekeep_once(store: Store) -> None:
    try:
        counts = {
            "sessions": await store.sessions.delete_expired(),
            "email_tokens": await store.email_tokens.delete_expired(),
            "refresh_families": await store.refresh_tokens.delete_expired(),
            "revocations": await store.revocations.prune(),
            "changes": await store.changes.prune(older_than=CHANGE_LOG_RETENTION),
            "authorization_codes": await store.codes.delete_expired(
                keep_redeemed_for=REDEEMED_CODE_RETENTION
            ),
            "assertion_jtis": await store.clients.prune_assertion_jtis(),
        }
    except errors.StoreError as error:
        log.warning("housekeeping_failed", error=str(error))
        return
    if any(counts.values()):
        log.info("housekeeping", **counts)


async def refresh_keys(app: web.Application) -> None:
    """Rotate what is due, prune what expired, and swap in the fresh key ring."""
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    encryptor = app[appkeys.ENCRYPTOR]
    for key in await keys.rotate_if_due(store, settings, encryptor):
        log.info(
            "signing_key_added", kid=key.kid, alg=key.alg, signs_from=key.signs_from.isoformat()
        )
    pruned = await store.keys.prune()
    if pruned:
        log.info("signing_keys_pruned", count=pruned)
    stored = await store.keys.list()
    state = app[appkeys.KEYS]
    if _fingerprint(stored) != _fingerprint(state.ring.keys):
        state.ring = keys.load(stored, encryptor)  # decrypts: only when something changed
    ring = state.ring
    state.loaded = all(ring.signer(alg.value, store.now()) for alg in settings.signing_algs)
    _export_key_metrics(app, ring)


def _fingerprint(
    stored: Iterable[domain.SigningKey] | Iterable[keys.LoadedKey],
) -> set[tuple[str, dt.datetime | None]]:
    return {(key.kid, key.expires_at) for key in stored}


def _export_key_metrics(app: web.Application, ring: keys.KeyRing) -> None:
    metrics = app[appkeys.METRICS]
    now = app[appkeys.STORE].now()
    metrics.keys_published.set(len(ring.jwks(now)["keys"]))
    for alg in app[appkeys.SETTINGS].signing_algs:
        signer = ring.signer(alg.value, now)
        if signer is not None:
            metrics.key_age.labels(alg.value).set((now - signer.created_at).total_seconds())


async def _maintain_keys(app: web.Application) -> None:
    """Every ``AUTHGATE_KEY_CHECK_INTERVAL``: rotate if due, pick up other replicas'
    keys. A failure is logged and retried next round; the loaded ring stays in use."""
    interval = app[appkeys.SETTINGS].key_check_interval
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh_keys(app)
        except (errors.StoreError, secrets.KeyMaterialError) as error:
            log.warning("key_maintenance_failed", error=str(error))
        except Exception:
            # Never let the task die quietly: rotation would stop for good.
            log.exception("key_maintenance_failed")
