"""Whether a verified access token is still live: the revocations a signature cannot
show. Used by introspection, userinfo and the account API; the check path keeps the
same facts in memory instead (issue 5), fed by the change feed.

A token is dead when its ``jti`` was revoked, its session (``sid``) ended, its refresh
family (``fam``) was revoked, or its subject or client had every token issued before
some moment revoked (logout everywhere, password reset, a client's secret rotated).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from authgate.identity import errors
from authgate.identity.store import Store


async def dead_reason(store: Store, claims: dict[str, Any]) -> str | None:
    """``None`` for a live token, else why it is dead (for logs and metrics)."""
    issued_at = dt.datetime.fromtimestamp(int(claims.get("iat", 0)), dt.UTC)
    if await store.revocations.is_revoked("jti", str(claims.get("jti"))):
        return "revoked"
    session_id = claims.get("sid")
    if isinstance(session_id, str):
        try:
            await store.sessions.get_active(session_id)
        except errors.NotFound:
            return "session_ended"
    family = claims.get("fam")
    if isinstance(family, str) and await store.revocations.is_revoked("family", family):
        return "family_revoked"
    for kind, key in (("subject", "sub"), ("client", "client_id")):
        revocation = await store.revocations.get(kind, str(claims.get(key)))
        if revocation is not None and issued_at <= revocation.revoked_at:
            return f"{kind}_revoked"
    return None
