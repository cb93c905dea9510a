"""The SQL integration's metrics: a planted blind-index match dropped by a verified search."""

from __future__ import annotations

import sqlalchemy as sa
from sqla_helpers import raw_rows
from sqla_models import User
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_sqla_verified_search import VICTIM, _plant, _seed

from metrics_helpers import Recorder, attrs


def test_a_planted_match_dropped_by_a_search_is_counted(recorder: Recorder, db: sa.Engine) -> None:
    """The attacker's row carries the victim's email token: the ORM search drops it and blind_index.dropped counts it by table and column."""
    _seed(db)
    assert all(VICTIM not in repr(row[0]) for row in raw_rows(db, "SELECT email FROM users"))  # ciphertext
    _plant(db, "email_bidx", 1, 2)
    before = recorder.collect()
    with Session(db) as session:
        assert [u.id for u in session.scalars(select(User).where(User.email == VICTIM))] == [1]
    assert recorder.delta(before)["fieldcrypt.blind_index.dropped"] == {
        attrs(table="users", column="email"): 1
    }
