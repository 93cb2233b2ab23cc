"""The organization aggregate: tenants, their members and the roles granted to them."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database, Row
from authgate.identity.store.rows import locked_change, record_id, to_record

# One statement reads members with their grants: a consistent snapshot without a
# transaction. A member without roles comes back as one row with a NULL role_id.
_MEMBERS_OF_ORG = """
    SELECT m.org_id, m.user_id, m.created_at, r.role_id
    FROM memberships m
    LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
    WHERE m.org_id = $1
    ORDER BY m.created_at, m.user_id, r.role_id"""
_MEMBERSHIPS_OF_USER = """
    SELECT m.org_id, m.user_id, m.created_at, r.role_id
    FROM memberships m
    LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
    WHERE m.user_id = $1
    ORDER BY m.created_at, m.org_id, r.role_id"""


def _membership_key(org_id: str, user_id: str) -> str:
    return f"{org_id}:{user_id}"


def _memberships(rows: Sequence[Row]) -> builtins.list[domain.Membership]:
    grouped: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        grouped.setdefault((row["org_id"], row["user_id"]), []).append(row)
    return [
        domain.Membership(
            org_id=org_id,
            user_id=user_id,
            role_ids=tuple(row["role_id"] for row in group if row["role_id"] is not None),
            created_at=group[0]["created_at"],
        )
        for (org_id, user_id), group in grouped.items()
    ]


class OrganizationRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self,
        slug: str,
        display_name: str,
        *,
        email_domains: Sequence[str] = (),
        owner: str | None = None,
    ) -> domain.Organization:
        """Raises :class:`~authgate.identity.errors.AlreadyExists` for a taken slug."""
        now = self._now()
        org = domain.Organization(
            id=ids.uuid7(),
            slug=slug,
            display_name=display_name,
            email_domains=tuple(email_domains),
            owner=owner,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                """INSERT INTO organizations (id, slug, display_name, email_domains, owner,
                                              version, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                org.id,
                org.slug,
                org.display_name,
                list(org.email_domains),
                org.owner,
                org.version,
                org.created_at,
                org.updated_at,
            )
            await changes.publish(tx, "orgs", org.id, now)
        return org

    async def get(self, org_id: str) -> domain.Organization:
        org_id = record_id(org_id, "organization")
        row = await self._db.fetchrow("SELECT * FROM organizations WHERE id = $1", org_id)
        if row is None:
            raise errors.NotFound(f"organization {org_id}")
        return to_record(domain.Organization, row)

    async def get_by_slug(self, slug: str) -> domain.Organization:
        row = await self._db.fetchrow("SELECT * FROM organizations WHERE slug = $1", slug)
        if row is None:
            raise errors.NotFound(f"organization {slug!r}")
        return to_record(domain.Organization, row)

    async def list(
        self, *, after: str | None = None, limit: int = 100
    ) -> list[domain.Organization]:
        """Keyset pagination in id (= creation) order: pass the last id seen as ``after``."""
        if after is None:
            rows = await self._db.fetch("SELECT * FROM organizations ORDER BY id LIMIT $1", limit)
        else:
            after = record_id(after, "organization")
            rows = await self._db.fetch(
                "SELECT * FROM organizations WHERE id > $1 ORDER BY id LIMIT $2", after, limit
            )
        return [to_record(domain.Organization, row) for row in rows]

    async def update(
        self,
        org_id: str,
        change: Callable[[domain.Organization], domain.Organization],
        *,
        expected_version: int | None = None,
    ) -> domain.Organization:
        """Read, apply ``change``, write back, atomically.

        ``expected_version`` turns a stale read (an ETag the client holds) into
        :class:`~authgate.identity.errors.Conflict`; a slug taken by another
        organization into :class:`~authgate.identity.errors.AlreadyExists`.
        """
        org_id = record_id(org_id, "organization")
        async with self._db.transaction() as tx:
            now = self._now()
            updated = await locked_change(
                tx, "organizations", org_id, load=lambda row: to_record(domain.Organization, row),
                change=change, expected_version=expected_version, now=now,
            )  # fmt: skip
            await tx.execute(
                """UPDATE organizations SET slug = $2, display_name = $3, email_domains = $4,
                       owner = $5, version = $6, updated_at = $7
                   WHERE id = $1""",
                org_id,
                updated.slug,
                updated.display_name,
                list(updated.email_domains),
                updated.owner,
                updated.version,
                updated.updated_at,
            )
            await changes.publish(tx, "orgs", org_id, now)
        return updated

    async def delete(self, org_id: str) -> None:
        """Delete the organization and, by cascade, its roles, memberships and grants.

        One ``orgs`` change covers them all: whoever caches decisions about an
        organization drops them on it.
        """
        org_id = record_id(org_id, "organization")
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM organizations WHERE id = $1", org_id):
                raise errors.NotFound(f"organization {org_id}")
            await changes.publish(tx, "orgs", org_id, self._now())

    async def add_member(self, org_id: str, user_id: str) -> domain.Membership:
        """Raises :class:`~authgate.identity.errors.AlreadyExists` for a member already
        in, :class:`~authgate.identity.errors.NotFound` for an unknown org or user."""
        org_id = record_id(org_id, "organization")
        user_id = record_id(user_id, "user")
        now = self._now()
        membership = domain.Membership(org_id=org_id, user_id=user_id, created_at=now)
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO memberships (org_id, user_id, created_at) VALUES ($1, $2, $3)",
                org_id,
                user_id,
                now,
            )
            await changes.publish(tx, "memberships", _membership_key(org_id, user_id), now)
        return membership

    async def remove_member(self, org_id: str, user_id: str) -> None:
        """Remove the membership and, by cascade, every role granted through it."""
        org_id = record_id(org_id, "organization")
        user_id = record_id(user_id, "user")
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2", org_id, user_id
            )
            if not removed:
                raise errors.NotFound(f"membership {org_id}:{user_id}")
            await changes.publish(tx, "memberships", _membership_key(org_id, user_id), self._now())

    async def members(self, org_id: str) -> builtins.list[domain.Membership]:
        """Members in the order they joined, each with the ids of the roles granted.

        An organization with no members is told apart from a missing one (only then is
        a second query needed).
        """
        org_id = record_id(org_id, "organization")
        rows = await self._db.fetch(_MEMBERS_OF_ORG, org_id)
        if not rows and not await self._db.fetchval(
            "SELECT 1 FROM organizations WHERE id = $1", org_id
        ):
            raise errors.NotFound(f"organization {org_id}")
        return _memberships(rows)

    async def memberships_of(self, user_id: str) -> builtins.list[domain.Membership]:
        """The user's memberships in the order they joined, with the roles granted."""
        user_id = record_id(user_id, "user")
        rows = await self._db.fetch(_MEMBERSHIPS_OF_USER, user_id)
        if not rows and not await self._db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
            raise errors.NotFound(f"user {user_id}")
        return _memberships(rows)

    async def grant_role(self, org_id: str, user_id: str, role_id: str) -> None:
        """Grant a role of the organization to one of its members; granting it again is
        a no-op, so a reconciler can repeat itself.

        A role of another organization is :class:`~authgate.identity.errors.Conflict`:
        the schema cannot stop it, and it would hand one tenant's permissions to
        another's member.
        """
        org_id = record_id(org_id, "organization")
        user_id = record_id(user_id, "user")
        role_id = record_id(role_id, "role")
        async with self._db.transaction() as tx:
            role_org = await tx.fetchval("SELECT org_id FROM roles WHERE id = $1", role_id)
            if role_org is None:
                raise errors.NotFound(f"role {role_id}")
            if role_org != org_id:
                raise errors.Conflict(f"role {role_id} belongs to another organization")
            if not await tx.fetchval(
                "SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2", org_id, user_id
            ):
                raise errors.NotFound(f"membership {org_id}:{user_id}")
            now = self._now()
            granted = await tx.execute(
                """INSERT INTO membership_roles (org_id, user_id, role_id, granted_at)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (org_id, user_id, role_id) DO NOTHING""",
                org_id,
                user_id,
                role_id,
                now,
            )
            if granted:
                await changes.publish(tx, "memberships", _membership_key(org_id, user_id), now)

    async def revoke_role(self, org_id: str, user_id: str, role_id: str) -> None:
        """Raises :class:`~authgate.identity.errors.NotFound` when the role was not
        granted: a caller that wants idempotence ignores it, one that does not learns
        that nothing changed."""
        org_id = record_id(org_id, "organization")
        user_id = record_id(user_id, "user")
        role_id = record_id(role_id, "role")
        async with self._db.transaction() as tx:
            revoked = await tx.execute(
                "DELETE FROM membership_roles WHERE org_id = $1 AND user_id = $2 AND role_id = $3",
                org_id,
                user_id,
                role_id,
            )
            if not revoked:
                raise errors.NotFound(f"grant of role {role_id} to {org_id}:{user_id}")
            await changes.publish(tx, "memberships", _membership_key(org_id, user_id), self._now())
