"""The OAuth client aggregate: registrations and their (hashed) secret."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database, Dialect
from authgate.identity.store.rows import columns, locked_change, to_record

MAX_CLIENT_ID = 255
MAX_ASSERTION_JTI = 255

# Client ids are free text. PostgreSQL compares text in the database's collation
# (en_US puts "a" before "B", C puts it after); byte order is what SQLite uses, and the
# one order both backends can agree on, so listings page alike everywhere.
_BYTE_ORDER = {Dialect.SQLITE: "", Dialect.POSTGRES: ' COLLATE "C"'}

# The record's columns, in the order of the INSERT and UPDATE statements below.
_FIELDS = (
    "name",
    "public",
    "grant_types",
    "redirect_uris",
    "post_logout_redirect_uris",
    "scopes",
    "audience",
    "token_endpoint_auth_method",
    "access_token_ttl",
    "refresh_token_ttl",
    "id_token_ttl",
    "trusted",
    "jwks",
    "jwks_uri",
    "owner",
    "version",
    "updated_at",
)


def _valid_id(client_id: str) -> bool:
    # Not UUIDs: operators and the CRs choose readable client ids.
    return 0 < len(client_id) <= MAX_CLIENT_ID


class OAuthClientRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self,
        *,
        name: str,
        client_id: str | None = None,
        secret_hash: str | None = None,
        public: bool = False,
        grant_types: tuple[str, ...] = (),
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
        scopes: tuple[str, ...] = (),
        audience: tuple[str, ...] = (),
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107  (a method name)
        access_token_ttl: int | None = None,
        refresh_token_ttl: int | None = None,
        id_token_ttl: int | None = None,
        trusted: bool = False,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        owner: str | None = None,
    ) -> domain.OAuthClient:
        """``secret_hash`` is what the caller derived from the secret it handed out; the
        secret itself never reaches the store. Raises
        :class:`~authgate.identity.errors.AlreadyExists` for a taken ``client_id`` and
        ``ValueError`` for one that could never be looked up."""
        if client_id is not None and not _valid_id(client_id):
            raise ValueError(f"a client id has 1 to {MAX_CLIENT_ID} characters")
        if public and secret_hash is not None:
            # A public client cannot keep a secret (RFC 6749 §2.1); storing one would
            # let it authenticate as if it were confidential.
            raise ValueError("a public client has no secret")
        now = self._now()
        client = domain.OAuthClient(
            id=client_id if client_id is not None else ids.uuid7(),
            name=name,
            public=public,
            grant_types=tuple(grant_types),
            redirect_uris=tuple(redirect_uris),
            post_logout_redirect_uris=tuple(post_logout_redirect_uris),
            scopes=tuple(scopes),
            audience=tuple(audience),
            token_endpoint_auth_method=token_endpoint_auth_method,
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            id_token_ttl=id_token_ttl,
            trusted=trusted,
            jwks=jwks,
            jwks_uri=jwks_uri,
            owner=owner,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                """INSERT INTO oauth_clients (name, public, grant_types, redirect_uris,
                       post_logout_redirect_uris, scopes, audience, token_endpoint_auth_method,
                       access_token_ttl, refresh_token_ttl, id_token_ttl, trusted, jwks,
                       jwks_uri, owner, version, updated_at, id, created_at, secret_hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                           $16, $17, $18, $19, $20)""",
                *columns(client, *_FIELDS),
                client.id,
                client.created_at,
                secret_hash,
            )
            await changes.publish(tx, "clients", client.id, now)
        return client

    async def get(self, client_id: str) -> domain.OAuthClient:
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        row = await self._db.fetchrow("SELECT * FROM oauth_clients WHERE id = $1", client_id)
        if row is None:
            raise errors.NotFound(f"client {client_id!r}")
        return to_record(domain.OAuthClient, row)

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[domain.OAuthClient]:
        """Keyset pagination in id order (byte order): pass the last id seen as ``after``."""
        order = _BYTE_ORDER[self._db.dialect]
        if after is None:
            rows = await self._db.fetch(
                f"SELECT * FROM oauth_clients ORDER BY id{order} LIMIT $1",
                limit,
            )
        else:
            if not _valid_id(after):
                raise errors.NotFound(f"client {after!r}")
            rows = await self._db.fetch(
                f"SELECT * FROM oauth_clients WHERE id{order} > $1 ORDER BY id{order} LIMIT $2",
                after,
                limit,
            )
        return [to_record(domain.OAuthClient, row) for row in rows]

    async def update(
        self,
        client_id: str,
        change: Callable[[domain.OAuthClient], domain.OAuthClient],
        *,
        expected_version: int | None = None,
    ) -> domain.OAuthClient:
        """Read, apply ``change``, write back, atomically.

        ``expected_version`` turns a stale read (an ETag the client holds) into
        :class:`~authgate.identity.errors.Conflict`. The client id is what issued tokens
        and stored grants refer to, so ``change`` cannot rename a client.
        """
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        async with self._db.transaction() as tx:
            now = self._now()
            updated = await locked_change(
                tx, "oauth_clients", client_id, load=lambda row: to_record(domain.OAuthClient, row),
                change=change, expected_version=expected_version, now=now,
            )  # fmt: skip
            await tx.execute(
                """UPDATE oauth_clients SET name = $1, public = $2, grant_types = $3,
                       redirect_uris = $4, post_logout_redirect_uris = $5, scopes = $6,
                       audience = $7, token_endpoint_auth_method = $8, access_token_ttl = $9,
                       refresh_token_ttl = $10, id_token_ttl = $11, trusted = $12, jwks = $13,
                       jwks_uri = $14, owner = $15, version = $16, updated_at = $17
                   WHERE id = $18""",
                *columns(updated, *_FIELDS),
                client_id,
            )
            await changes.publish(tx, "clients", client_id, now)
        return updated

    async def delete(self, client_id: str) -> None:
        """Delete the client and, by cascade, its codes, refresh tokens and consents."""
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM oauth_clients WHERE id = $1", client_id):
                raise errors.NotFound(f"client {client_id!r}")
            await changes.publish(tx, "clients", client_id, self._now())

    async def secret_hash(self, client_id: str) -> str | None:
        """``None`` for a client without a secret (a public client); a missing client is
        :class:`~authgate.identity.errors.NotFound`, so the two are never confused."""
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        row = await self._db.fetchrow(
            "SELECT secret_hash FROM oauth_clients WHERE id = $1", client_id
        )
        if row is None:
            raise errors.NotFound(f"client {client_id!r}")
        value = row["secret_hash"]
        return str(value) if value is not None else None

    async def set_secret_hash(self, client_id: str, secret_hash: str) -> None:
        """Rotate the secret. The change feed entry is what makes every replica stop
        accepting the old secret."""
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE oauth_clients SET secret_hash = $2 WHERE id = $1", client_id, secret_hash
            )
            if not changed:
                raise errors.NotFound(f"client {client_id!r}")
            await changes.publish(tx, "clients", client_id, self._now())

    async def use_assertion_jti(self, client_id: str, jti: str, *, expires_at: dt.datetime) -> bool:
        """Record the ``jti`` of a ``private_key_jwt`` client assertion; ``False`` if this
        client used it before and it has not expired (RFC 7523 §3, item 7: the server
        may refuse a JWT it has seen). One insert decides, so two replicas receiving
        the same assertion at once cannot both accept it. The client's expired jtis
        are dropped first: an expired assertion is refused on its ``exp`` anyway.

        A missing client is :class:`~authgate.identity.errors.NotFound`; a jti that
        could not be stored is ``ValueError``."""
        if not _valid_id(client_id):
            raise errors.NotFound(f"client {client_id!r}")
        if not 0 < len(jti) <= MAX_ASSERTION_JTI:
            raise ValueError(f"a jti has 1 to {MAX_ASSERTION_JTI} characters")
        async with self._db.transaction() as tx:
            now = self._now()
            await tx.execute(
                "DELETE FROM client_assertion_jtis WHERE client_id = $1 AND expires_at <= $2",
                client_id,
                now,
            )
            inserted = await tx.execute(
                """INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (client_id, jti) DO NOTHING""",
                client_id,
                jti,
                expires_at,
            )
        return inserted == 1

    async def prune_assertion_jtis(self) -> int:
        """Delete every expired assertion jti, of all clients; returns how many."""
        return await self._db.execute(
            "DELETE FROM client_assertion_jtis WHERE expires_at <= $1", self._now()
        )
