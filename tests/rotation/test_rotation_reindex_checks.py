"""reindex never rewrites tokens with options other than the column's: refused up front when the
column has a record, row by row when it has none (columns indexed before records existed)."""

from __future__ import annotations

import sqlalchemy as sa
from rotation_helpers import create_indexed_users, raw, ssn

import fieldcrypt
from fieldcrypt.keys.record import Purpose
from fieldcrypt.rotation import ColumnSpec, reindex_column
from fieldcrypt.stores.indexes import records_of


def digits(value: str) -> str:
    return value.replace("-", "")


def test_reindex_without_the_normalizer_leaves_unrecorded_rows_untouched(
    engine: sa.Engine, keyring: fieldcrypt.Keyring
) -> None:
    """Tokens made with a normalizer and no record: reindex without it lists every row as failed, rewrites none and records nothing; with it, every row moves."""
    place = fieldcrypt.Place("users", "ssn")
    rows = [
        {
            "id": i,
            "ssn": keyring.encrypt(ssn(i), place),
            "ssn_bidx": keyring.blind_index(digits(ssn(i)), place),
        }
        for i in range(1, 4)
    ]
    create_indexed_users(engine, rows)
    keyring.rotate(Purpose.BLIND_INDEX)
    before = raw(engine, "ssn_bidx")

    bare = ColumnSpec("users", "ssn", keyring="pii", codec="text", index_column="ssn_bidx")
    report = reindex_column(engine, bare)
    assert (report.failed, report.written) == (3, 0)
    assert "not made with these options" in str(report.failures)
    assert raw(engine, "ssn_bidx") == before
    assert records_of(keyring.key_store).get("users", "ssn") is None

    spec = ColumnSpec("users", "ssn", keyring="pii", codec="text", index_column="ssn_bidx", normalizer=digits)
    report = reindex_column(engine, spec)
    assert (report.failed, report.written) == (0, 3)
    new_key = keyring.records(Purpose.BLIND_INDEX)[-1].key_id
    recorded = records_of(keyring.key_store).get("users", "ssn")
    assert recorded is not None
    assert (recorded.normalizer, recorded.oldest_key) == ("test_rotation_reindex_checks.digits", new_key)
    assert raw(engine, "ssn_bidx") == {i: keyring.blind_index(digits(ssn(i)), place) for i in range(1, 4)}
