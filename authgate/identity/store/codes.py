"""Authorization codes (RFC 6749 §4.1.2): stored hashed, short-lived, redeemed once.

Redemption is one atomic UPDATE, so two concurrent redemptions cannot both win. A code
presented again after its redemption is a replay (RFC 6749 §4.1.2: "the authorization
server ... SHOULD revoke all tokens previously issued based on that authorization
code"): :meth:`redeem` reports it with the family the first redemption started, which
the caller revokes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from authgate.identity import clock, domain
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record


class Redemption(enum.Enum):
    REDEEMED = "redeemed"
    UNKNOWN = "unknown"  # never issued, or expired
    REPLAYED = "replayed"  # redeemed before: revoke what that issued


@dataclasses.dataclass(frozen=True)
class Redeemed:
    outcome: Redemption
    code: domain.AuthorizationCode | None = None


class CodeRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(self, code_hash: str, code: domain.AuthorizationCode) -> None:
        await self._db.execute(
            """INSERT INTO authorization_codes (code_hash, client_id, user_id, session_id, org_id,
                   redirect_uri, scope, nonce, code_challenge, code_challenge_method, audience,
                   amr, auth_time, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
            code_hash,
            code.client_id,
            record_id(code.user_id, "user"),
            code.session_id,
            code.org_id,
            code.redirect_uri,
            code.scope,
            code.nonce,
            code.code_challenge,
            code.code_challenge_method,
            list(code.audience),
            list(code.amr),
            code.auth_time,
            code.created_at,
            code.expires_at,
        )

    async def peek(self, code_hash: str) -> Redeemed:
        """What :meth:`redeem` would find, without spending the code: REDEEMED here
        means "redeemable now"."""
        row = await self._db.fetchrow(
            "SELECT * FROM authorization_codes WHERE code_hash = $1", code_hash
        )
        if row is None:
            return Redeemed(Redemption.UNKNOWN)
        code = to_record(domain.AuthorizationCode, row)
        if code.consumed_at is not None:
            return Redeemed(Redemption.REPLAYED, code)
        if code.expires_at <= self._now():
            return Redeemed(Redemption.UNKNOWN)
        return Redeemed(Redemption.REDEEMED, code)

    async def redeem(self, code_hash: str) -> Redeemed:
        now = self._now()
        row = await self._db.fetchrow(
            "UPDATE authorization_codes SET consumed_at = $2 "
            "WHERE code_hash = $1 AND consumed_at IS NULL AND expires_at > $2 RETURNING *",
            code_hash,
            now,
        )
        if row is not None:
            return Redeemed(Redemption.REDEEMED, to_record(domain.AuthorizationCode, row))
        row = await self._db.fetchrow(
            "SELECT * FROM authorization_codes WHERE code_hash = $1 AND consumed_at IS NOT NULL",
            code_hash,
        )
        if row is not None:
            return Redeemed(Redemption.REPLAYED, to_record(domain.AuthorizationCode, row))
        return Redeemed(Redemption.UNKNOWN)

    async def attach_family(self, code_hash: str, family_id: str) -> None:
        """Remember what the redemption issued, for revocation on replay."""
        await self._db.execute(
            "UPDATE authorization_codes SET family_id = $2 WHERE code_hash = $1",
            code_hash,
            family_id,
        )

    async def delete_expired(self, *, keep_redeemed_for: dt.timedelta) -> int:
        """Unredeemed codes past expiry; redeemed ones once replays no longer matter."""
        now = self._now()
        return await self._db.execute(
            "DELETE FROM authorization_codes WHERE (consumed_at IS NULL AND expires_at <= $1) "
            "OR consumed_at <= $2",
            now,
            now - keep_redeemed_for,
        )
