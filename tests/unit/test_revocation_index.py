"""The in-memory revocation index: the answers of ``liveness.dead_reason``, no I/O.

Each case mirrors a branch of :func:`authgate.gateway.liveness.dead_reason`; that the two
agree on one store's state is checked in ``tests/integration/test_feed.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authgate.gateway import revocation_index
from authgate.identity import domain, ids

NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
SESSION = "0190a0a0-0000-7000-8000-00000000000a"
OTHER_SESSION = "0190a0a0-0000-7000-8000-00000000000b"
USER = "0190a0a0-0000-7000-8000-0000000000aa"


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.reads = 0

    def __call__(self) -> dt.datetime:
        self.reads += 1
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def index(clock: Clock) -> revocation_index.RevocationIndex:
    return revocation_index.RevocationIndex(clock)


def _claims(**extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": USER,
        "client_id": "web",
        "jti": "jti-1",
        "iat": int(NOW.timestamp()),
    }
    claims.update(extra)
    return {name: value for name, value in claims.items() if value is not None}


def _revocation(
    kind: str, value: str, *, revoked_at: dt.datetime = NOW, expires_at: dt.datetime = NOW + HOUR
) -> domain.Revocation:
    return domain.Revocation(kind=kind, value=value, revoked_at=revoked_at, expires_at=expires_at)


# --- what kills a token ---------------------------------------------------------------


def test_a_token_nothing_names_is_live(index: revocation_index.RevocationIndex) -> None:
    index.put(_revocation("jti", "another"))
    assert index.dead_reason(_claims(sid=SESSION, fam="fam-1")) is None


def test_a_revoked_jti_kills_its_token_whenever_it_was_issued(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("jti", "jti-1", revoked_at=NOW - HOUR))
    assert index.dead_reason(_claims()) == "revoked"
    assert index.dead_reason(_claims(iat=int((NOW + HOUR).timestamp()))) == "revoked"
    assert index.dead_reason(_claims(jti="jti-2")) is None


def test_an_ended_session_kills_the_tokens_that_name_it(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("session", SESSION, revoked_at=NOW - HOUR))
    assert index.dead_reason(_claims(sid=SESSION)) == "session_ended"
    assert index.dead_reason(_claims(sid=SESSION.upper())) == "session_ended"
    assert index.dead_reason(_claims(sid=OTHER_SESSION)) is None
    assert index.dead_reason(_claims()) is None  # no sid: sessions do not matter


@pytest.mark.parametrize("sid", ["not-a-session", "", SESSION + "0", "{" + SESSION[1:-1] + "}"])
def test_a_sid_that_names_no_possible_session_is_an_ended_session(
    index: revocation_index.RevocationIndex, sid: str
) -> None:
    # The store treats a malformed id as not found: liveness says "session_ended".
    assert index.dead_reason(_claims(sid=sid)) == "session_ended"


@given(
    st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.text(alphabet="0123456789abcdefABCDEFgx-{}:", min_size=32, max_size=40),
        st.text(max_size=40),
    )
)
def test_a_sid_is_ended_exactly_when_the_store_would_not_accept_it_as_an_id(sid: str) -> None:
    index = revocation_index.RevocationIndex(Clock())
    expected = None if ids.is_uuid(sid) else "session_ended"
    assert index.dead_reason(_claims(sid=sid)) == expected


def test_a_sid_that_is_not_a_string_is_ignored(index: revocation_index.RevocationIndex) -> None:
    assert index.dead_reason(_claims(sid=42)) is None


def test_a_session_the_feed_saw_end_without_a_revocation_row_is_ended(
    index: revocation_index.RevocationIndex,
) -> None:
    index.end_session(SESSION.upper(), ended_at=NOW, until=NOW + HOUR)
    assert index.dead_reason(_claims(sid=SESSION)) == "session_ended"
    assert index.dead_reason(_claims(sid=OTHER_SESSION)) is None


def test_a_deleted_accounts_sessions_are_all_ended_but_its_sessionless_tokens_are_not(
    index: revocation_index.RevocationIndex,
) -> None:
    index.end_user_sessions(USER, ended_at=NOW, until=NOW + HOUR)
    assert index.dead_reason(_claims(sid=SESSION)) == "session_ended"
    assert index.dead_reason(_claims(sid=OTHER_SESSION)) == "session_ended"
    # liveness looks sessions up only for a token that names one
    assert index.dead_reason(_claims()) is None
    assert index.dead_reason(_claims(sid=SESSION, sub="someone-else")) is None


def test_a_revoked_family_kills_every_token_issued_from_it(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("family", "fam-1", revoked_at=NOW - HOUR))
    assert index.dead_reason(_claims(fam="fam-1")) == "family_revoked"
    assert index.dead_reason(_claims(fam="fam-2")) is None
    assert index.dead_reason(_claims()) is None


@pytest.mark.parametrize(("kind", "claim"), [("subject", "sub"), ("client", "client_id")])
def test_a_subject_or_client_revocation_kills_tokens_issued_up_to_its_moment(
    index: revocation_index.RevocationIndex, kind: str, claim: str
) -> None:
    revoked_at = NOW + dt.timedelta(microseconds=500_000)
    index.put(_revocation(kind, "x", revoked_at=revoked_at))
    second = int(NOW.timestamp())
    assert index.dead_reason(_claims(**{claim: "x", "iat": second - 60})) == f"{kind}_revoked"
    # iat has whole seconds: the second the revocation fell in is still before it
    assert index.dead_reason(_claims(**{claim: "x", "iat": second})) == f"{kind}_revoked"
    assert index.dead_reason(_claims(**{claim: "x", "iat": second + 1})) is None
    assert index.dead_reason(_claims(**{claim: "y", "iat": second - 60})) is None


def test_a_revocation_at_a_whole_second_still_kills_a_token_issued_in_that_second(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("subject", USER, revoked_at=NOW))
    assert index.dead_reason(_claims(iat=int(NOW.timestamp()))) == "subject_revoked"


def test_a_token_without_iat_counts_as_issued_at_the_epoch(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("client", "web"))
    claims = _claims()
    del claims["iat"]
    assert index.dead_reason(claims) == "client_revoked"


def test_reasons_come_in_the_order_liveness_checks_them(
    index: revocation_index.RevocationIndex,
) -> None:
    claims = _claims(sid=SESSION, fam="fam-1")
    expected = [
        ("jti", "jti-1", "revoked"),
        ("session", SESSION, "session_ended"),
        ("family", "fam-1", "family_revoked"),
        ("subject", USER, "subject_revoked"),
        ("client", "web", "client_revoked"),
    ]
    for kind, value, _ in expected:
        index.put(_revocation(kind, value))
    for kind, value, reason in expected:
        assert index.dead_reason(claims) == reason
        index.discard(kind, value)
    assert index.dead_reason(claims) is None


# --- keeping it current ---------------------------------------------------------------


def test_a_stored_revocation_replaces_what_the_index_held(
    index: revocation_index.RevocationIndex,
) -> None:
    second = int(NOW.timestamp())
    index.put(_revocation("subject", USER, revoked_at=NOW - HOUR))
    assert index.dead_reason(_claims(iat=second)) is None
    index.put(_revocation("subject", USER, revoked_at=NOW))  # widened in the store
    assert index.dead_reason(_claims(iat=second)) == "subject_revoked"


def test_load_replaces_everything(index: revocation_index.RevocationIndex) -> None:
    index.put(_revocation("jti", "jti-1"))
    index.end_session(SESSION, ended_at=NOW, until=NOW + HOUR)
    index.load([_revocation("jti", "jti-2")])
    assert index.dead_reason(_claims(sid=SESSION)) is None
    assert index.dead_reason(_claims(jti="jti-2")) == "revoked"
    assert len(index) == 1


def test_a_kind_this_build_does_not_know_is_ignored(
    index: revocation_index.RevocationIndex,
) -> None:
    index.put(_revocation("device", "d-1"))
    index.discard("device", "d-1")
    assert len(index) == 0


def test_ending_a_session_again_never_shortens_what_is_remembered(
    index: revocation_index.RevocationIndex, clock: Clock
) -> None:
    index.end_session(SESSION, ended_at=NOW, until=NOW + 2 * HOUR)
    index.end_session(SESSION, ended_at=NOW, until=NOW + HOUR)
    clock.now = NOW + 90 * dt.timedelta(minutes=1)
    assert index.dead_reason(_claims(sid=SESSION)) == "session_ended"


# --- expiry and cost ------------------------------------------------------------------


def test_an_expired_revocation_no_longer_counts_and_is_dropped_when_met(
    index: revocation_index.RevocationIndex, clock: Clock
) -> None:
    index.put(_revocation("jti", "jti-1", expires_at=NOW + HOUR))
    clock.now = NOW + HOUR - dt.timedelta(microseconds=1)
    assert index.dead_reason(_claims()) == "revoked"
    clock.now = NOW + HOUR  # the store's test is expires_at > now
    assert index.dead_reason(_claims()) is None
    assert len(index) == 0


def test_a_sweep_drops_exactly_what_has_expired(
    index: revocation_index.RevocationIndex, clock: Clock
) -> None:
    index.put(_revocation("jti", "short", expires_at=NOW + HOUR))
    index.put(_revocation("subject", USER, expires_at=NOW + 3 * HOUR))
    index.end_session(SESSION, ended_at=NOW, until=NOW + HOUR)
    index.end_user_sessions(USER, ended_at=NOW, until=NOW + 3 * HOUR)
    clock.now = NOW + 2 * HOUR
    assert index.sweep() == 2
    assert len(index) == 2
    clock.now = NOW + 3 * HOUR
    assert index.sweep() == 2
    assert len(index) == 0


def test_a_token_no_entry_matches_is_answered_without_reading_the_clock(
    index: revocation_index.RevocationIndex, clock: Clock
) -> None:
    for n in range(100):
        index.put(_revocation("jti", f"other-{n}"))
        index.put(_revocation("subject", f"user-{n}"))
    clock.reads = 0
    assert index.dead_reason(_claims(sid=SESSION, fam="fam-1")) is None
    assert clock.reads == 0
