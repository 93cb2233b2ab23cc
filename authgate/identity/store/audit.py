"""The audit trail: security events, appended and never changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from authgate.identity import clock, domain, ids
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record


class AuditRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def record(
        self,
        event: str,
        outcome: str,
        *,
        actor_id: str | None = None,
        target: str | None = None,
        ip: str = "",
        user_agent: str = "",
        request_id: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> domain.AuditEvent:
        """``actor_id`` is free text, not a reference: the trail outlives the account
        (and records actors that never had one, such as a client or the operator)."""
        audit_event = domain.AuditEvent(
            id=ids.uuid7(),
            occurred_at=self._now(),
            event=event,
            outcome=outcome,
            actor_id=actor_id,
            target=target,
            ip=ip,
            user_agent=user_agent,
            request_id=request_id,
            details=dict(details or {}),
        )
        await self._db.execute(
            """INSERT INTO audit_events (id, occurred_at, event, outcome, actor_id, target,
                                         ip, user_agent, request_id, details)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            audit_event.id,
            audit_event.occurred_at,
            audit_event.event,
            audit_event.outcome,
            audit_event.actor_id,
            audit_event.target,
            audit_event.ip,
            audit_event.user_agent,
            audit_event.request_id,
            audit_event.details,
        )
        return audit_event

    async def query(
        self,
        *,
        actor_id: str | None = None,
        event: str | None = None,
        since: dt.datetime | None = None,
        before_id: str | None = None,
        limit: int = 100,
    ) -> list[domain.AuditEvent]:
        """Newest first, in id order (ids are time-ordered); for the next page pass the
        last id seen as ``before_id``.

        Only the filters given become conditions: ``$n IS NULL OR ...`` would leave
        PostgreSQL a plan that cannot use the indexes of a table that only grows.
        """
        conditions: list[str] = []
        args: list[Any] = []
        if actor_id is not None:
            args.append(actor_id)
            conditions.append(f"actor_id = ${len(args)}")
        if event is not None:
            args.append(event)
            conditions.append(f"event = ${len(args)}")
        if since is not None:
            args.append(since)
            conditions.append(f"occurred_at >= ${len(args)}")
        if before_id is not None:
            before_id = record_id(before_id, "audit event")
            args.append(before_id)
            conditions.append(f"id < ${len(args)}")
        args.append(limit)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        rows = await self._db.fetch(
            # Only the constant fragments above are interpolated; values are parameters.
            f"SELECT * FROM audit_events {where}ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [to_record(domain.AuditEvent, row) for row in rows]
