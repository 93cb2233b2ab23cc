"""The role aggregate: an organization's named permissions and route rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database, Row
from authgate.identity.store.rows import locked_change, record_id, to_record


def _rules_out(rules: Sequence[domain.RouteRule]) -> list[dict[str, list[str]]]:
    return [
        {"hosts": list(rule.hosts), "paths": list(rule.paths), "methods": list(rule.methods)}
        for rule in rules
    ]


def _rules_in(value: list[dict[str, Any]]) -> tuple[domain.RouteRule, ...]:
    # .get: a rule written with a key left out (by hand, or by an older version) still
    # reads, meaning "any" as an empty list does.
    return tuple(
        domain.RouteRule(
            hosts=tuple(rule.get("hosts", ())),
            paths=tuple(rule.get("paths", ())),
            methods=tuple(rule.get("methods", ())),
        )
        for rule in value
    )


def _role(row: Row) -> domain.Role:
    return to_record(domain.Role, row, route_rules=_rules_in(row["route_rules"]))


class RoleRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self,
        org_id: str,
        name: str,
        *,
        description: str = "",
        permissions: Sequence[str] = (),
        route_rules: Sequence[domain.RouteRule] = (),
        owner: str | None = None,
    ) -> domain.Role:
        """Raises :class:`~authgate.identity.errors.AlreadyExists` for a name taken in
        the organization, :class:`~authgate.identity.errors.NotFound` for an unknown
        organization."""
        org_id = record_id(org_id, "organization")
        now = self._now()
        role = domain.Role(
            id=ids.uuid7(),
            org_id=org_id,
            name=name,
            description=description,
            permissions=tuple(permissions),
            route_rules=tuple(route_rules),
            owner=owner,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                """INSERT INTO roles (id, org_id, name, description, permissions, route_rules,
                                      owner, version, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                role.id,
                role.org_id,
                role.name,
                role.description,
                list(role.permissions),
                _rules_out(role.route_rules),
                role.owner,
                role.version,
                role.created_at,
                role.updated_at,
            )
            await changes.publish(tx, "roles", role.id, now)
        return role

    async def get(self, role_id: str) -> domain.Role:
        role_id = record_id(role_id, "role")
        row = await self._db.fetchrow("SELECT * FROM roles WHERE id = $1", role_id)
        if row is None:
            raise errors.NotFound(f"role {role_id}")
        return _role(row)

    async def get_by_name(self, org_id: str, name: str) -> domain.Role:
        org_id = record_id(org_id, "organization")
        row = await self._db.fetchrow(
            "SELECT * FROM roles WHERE org_id = $1 AND name = $2", org_id, name
        )
        if row is None:
            raise errors.NotFound(f"role {name!r} in organization {org_id}")
        return _role(row)

    async def list(self, org_id: str) -> list[domain.Role]:
        """All roles of the organization in creation order, unpaged: an organization has
        few, and the check path compiles them all at once.

        An organization with no roles is told apart from a missing one (only then is a
        second query needed).
        """
        org_id = record_id(org_id, "organization")
        rows = await self._db.fetch("SELECT * FROM roles WHERE org_id = $1 ORDER BY id", org_id)
        if not rows and not await self._db.fetchval(
            "SELECT 1 FROM organizations WHERE id = $1", org_id
        ):
            raise errors.NotFound(f"organization {org_id}")
        return [_role(row) for row in rows]

    async def update(
        self,
        role_id: str,
        change: Callable[[domain.Role], domain.Role],
        *,
        expected_version: int | None = None,
    ) -> domain.Role:
        """Read, apply ``change``, write back, atomically.

        ``expected_version`` turns a stale read (an ETag the client holds) into
        :class:`~authgate.identity.errors.Conflict`. A role never moves to another
        organization: its grants were checked against the one it is in.
        """
        role_id = record_id(role_id, "role")
        async with self._db.transaction() as tx:
            now = self._now()
            updated = await locked_change(
                tx, "roles", role_id, load=_role, change=change,
                expected_version=expected_version, now=now, keep=("org_id",),
            )  # fmt: skip
            await tx.execute(
                """UPDATE roles SET name = $2, description = $3, permissions = $4,
                       route_rules = $5, owner = $6, version = $7, updated_at = $8
                   WHERE id = $1""",
                role_id,
                updated.name,
                updated.description,
                list(updated.permissions),
                _rules_out(updated.route_rules),
                updated.owner,
                updated.version,
                updated.updated_at,
            )
            await changes.publish(tx, "roles", role_id, now)
        return updated

    async def delete(self, role_id: str) -> None:
        """Delete the role and, by cascade, every grant of it."""
        role_id = record_id(role_id, "role")
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM roles WHERE id = $1", role_id):
                raise errors.NotFound(f"role {role_id}")
            await changes.publish(tx, "roles", role_id, self._now())
