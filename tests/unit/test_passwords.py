"""The password policy and the hasher's answers."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.identity import passwords
from authgate.identity.settings import Settings

SETTINGS = Settings(argon2_memory_kib=1024, argon2_time_cost=1)


@pytest.mark.parametrize(
    "password",
    ["short", "aaaaaaaaaaaaaaaa", "password12345", "qwertyuiop123", "x" * 300],
)
def test_weak_or_oversized_passwords_are_refused(password: str) -> None:
    with pytest.raises(passwords.PolicyError):
        passwords.check_policy(SETTINGS, password)


def test_the_users_own_email_and_name_are_refused() -> None:
    personal = ("zelda.hyrule@example.com", "Zelda Hyrule")
    for password in ("zelda-is-great-2025!", "Hyrule castle 99 nights", "ZELDA.HYRULE rules 7"):
        with pytest.raises(passwords.PolicyError, match="email address or name"):
            passwords.check_policy(SETTINGS, password, personal)


def test_a_strong_passphrase_passes() -> None:
    passwords.check_policy(SETTINGS, "correct horse battery staple 42", ("ada@example.com",))


def test_the_strength_check_can_be_relaxed() -> None:
    passwords.check_policy(dataclasses.replace(SETTINGS, password_min_strength=0), "password12345")


async def test_verify_answers_and_flags_old_parameters() -> None:
    old = passwords.Hasher(SETTINGS)
    new = passwords.Hasher(dataclasses.replace(SETTINGS, argon2_time_cost=2))
    try:
        stored = await old.hash("\uff50\uff41\uff53\uff53 phrase")  # fullwidth: NFKC folds it
        assert (await old.verify(stored, "pass phrase")).ok
        assert not (await old.verify(stored, "pass phrase!")).ok
        assert not (await old.verify(None, "pass phrase")).ok
        assert not (await old.verify("not-a-hash", "pass phrase")).ok
        upgraded = await new.verify(stored, "pass phrase")
        assert upgraded.ok
        assert upgraded.needs_rehash
    finally:
        old.close()
        new.close()
