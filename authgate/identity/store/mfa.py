"""Second factors: the TOTP secret (encrypted) with its replay guard, and backup codes
(stored as SHA-256 of 80-bit random codes, each usable once)."""

from __future__ import annotations

from collections.abc import Sequence

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record


class MfaRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def totp(self, user_id: str) -> domain.MfaFactor | None:
        row = await self._db.fetchrow(
            "SELECT * FROM mfa_factors WHERE user_id = $1 AND kind = 'totp'",
            record_id(user_id, "user"),
        )
        return to_record(domain.MfaFactor, row) if row else None

    async def enabled(self, user_id: str) -> bool:
        factor = await self.totp(user_id)
        return factor is not None and factor.confirmed_at is not None

    async def start_totp(self, user_id: str, secret_enc: bytes) -> domain.MfaFactor:
        """Store a new, unconfirmed secret (replacing an unconfirmed one); Conflict if
        TOTP is already enabled -- it must be removed first, with proof."""
        user_id = record_id(user_id, "user")
        factor = domain.MfaFactor(
            id=ids.uuid7(), user_id=user_id, kind="totp", secret_enc=secret_enc,
            created_at=self._now(),
        )  # fmt: skip
        async with self._db.transaction() as tx:
            current = await tx.fetchrow(
                f"SELECT confirmed_at FROM mfa_factors WHERE user_id = $1 AND kind = 'totp'"
                f"{tx.for_update()}",
                user_id,
            )
            if current is not None and current["confirmed_at"] is not None:
                raise errors.Conflict("TOTP is already enabled")
            await tx.execute(
                "DELETE FROM mfa_factors WHERE user_id = $1 AND kind = 'totp'", user_id
            )
            await tx.execute(
                """INSERT INTO mfa_factors (id, user_id, kind, secret_enc, created_at)
                   VALUES ($1, $2, 'totp', $3, $4)""",
                factor.id,
                user_id,
                secret_enc,
                factor.created_at,
            )
        return factor

    async def use_totp_step(self, user_id: str, step: int, *, confirm: bool = False) -> bool:
        """Accept the code of time step ``step`` once: False if that step, or a later
        one, was used before (replay). ``confirm`` enables a pending factor."""
        condition = "confirmed_at IS NULL" if confirm else "confirmed_at IS NOT NULL"
        async with self._db.transaction() as tx:
            accepted = await tx.execute(
                f"""UPDATE mfa_factors SET last_used_step = $2,
                           confirmed_at = coalesce(confirmed_at, $3)
                    WHERE user_id = $1 AND kind = 'totp' AND {condition}
                      AND (last_used_step IS NULL OR last_used_step < $2)""",
                record_id(user_id, "user"),
                step,
                self._now(),
            )
            if accepted and confirm:
                await changes.publish(tx, "users", user_id.lower(), self._now())
        return bool(accepted)

    async def disable(self, user_id: str) -> bool:
        """Remove TOTP and the backup codes with it; False if there was nothing."""
        user_id = record_id(user_id, "user")
        async with self._db.transaction() as tx:
            removed = await tx.execute("DELETE FROM mfa_factors WHERE user_id = $1", user_id)
            await tx.execute("DELETE FROM backup_codes WHERE user_id = $1", user_id)
            if removed:
                await changes.publish(tx, "users", user_id, self._now())
        return bool(removed)

    async def replace_backup_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """The new set replaces every earlier code, used or not."""
        user_id = record_id(user_id, "user")
        now = self._now()
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM backup_codes WHERE user_id = $1", user_id)
            for code_hash in code_hashes:
                await tx.execute(
                    "INSERT INTO backup_codes (id, user_id, code_hash, created_at) "
                    "VALUES ($1, $2, $3, $4)",
                    ids.uuid7(),
                    user_id,
                    code_hash,
                    now,
                )

    async def use_backup_code(self, user_id: str, code_hash: str) -> bool:
        used = await self._db.execute(
            "UPDATE backup_codes SET used_at = $3 "
            "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            record_id(user_id, "user"),
            code_hash,
            self._now(),
        )
        return bool(used)

    async def backup_codes_left(self, user_id: str) -> int:
        count = await self._db.fetchval(
            "SELECT count(*) FROM backup_codes WHERE user_id = $1 AND used_at IS NULL",
            record_id(user_id, "user"),
        )
        return int(count)
