"""Recording security events: to the audit table and, as the same event, to the log.

The caller names the event and outcome; who, from where, with what user agent and in
which request are taken from the request. Details must never carry secrets: the
audit log is read by people who are not meant to see passwords or tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from authgate.gateway import appkeys, clientip
from authgate.gateway.middleware import REQUEST_ID
from authgate.identity import logs

log = logs.get("authgate.audit")


async def record(
    request: web.Request,
    event: str,
    outcome: str,
    *,
    actor_id: str | None = None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    ip = clientip.client_ip(request)
    user_agent = request.headers.get("User-Agent", "")[:512]
    await request.app[appkeys.STORE].audit.record(
        event,
        outcome,
        actor_id=actor_id,
        target=target,
        ip=ip,
        user_agent=user_agent,
        request_id=request.get(REQUEST_ID, ""),
        details=details,
    )
    log.info(
        "audit",
        audit_event=event,
        outcome=outcome,
        actor_id=actor_id,
        target=target,
        ip=ip,
        **dict(details or {}),
    )
