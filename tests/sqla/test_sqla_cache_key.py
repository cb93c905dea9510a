"""The statement-cache key of an Encrypted type covers every option that changes what is bound."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from fieldcrypt.sqlalchemy import Encrypted

BASE: dict[str, Any] = {"keyring": "pii"}
VARIANTS: list[dict[str, Any]] = [
    {"keyring": "billing"},
    {"searchable": True},
    {"index_column": "ssn_token"},
    {"normalizer": str.upper},
    {"unique": True},
    {"storage": "text"},
    {"bind_row": True},
    {"place": ("users", "ssn")},
    {"transitional": True},
]


@pytest.mark.parametrize("option", VARIANTS, ids=[next(iter(v)) for v in VARIANTS])
def test_each_option_changes_the_cache_key(option: dict[str, Any]) -> None:
    """Two types that differ in one option never share a cached compiled statement."""
    plain = Encrypted(sa.String(11), **BASE)
    varied = Encrypted(sa.String(11), **{**BASE, **option})
    assert plain._static_cache_key != varied._static_cache_key


def test_equal_options_share_the_cache_key() -> None:
    """Identical declarations hit the same cache entry (caching still works)."""
    assert (
        Encrypted(sa.String(11), keyring="pii")._static_cache_key
        == Encrypted(sa.String(11), keyring="pii")._static_cache_key
    )
