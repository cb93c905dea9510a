"""The shape every PynamoDB test model shares: its table's Meta, a blind-index GSI, and the table
made on moto for one test (a module of its own: ``conftest`` is ambiguous across test folders)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, Projection

from fieldcrypt.pynamodb import BlindIndexAttribute, EncryptedModel


def moto_meta(table: str) -> type:
    """A model's ``Meta``: ``table`` in us-east-1, on demand (``on_moto`` points it at moto)."""
    return type("Meta", (), {"table_name": table, "region": "us-east-1", "billing_mode": "PAY_PER_REQUEST"})


def blind_index_gsi(token: str, index_name: str, projection: Projection | None = None) -> Any:
    """A GSI keyed on the blind-index attribute ``token`` (every attribute projected by default),
    the index a model's ``lookup`` queries."""
    meta = type("Meta", (), {"index_name": index_name, "projection": projection or AllProjection()})
    return type(
        f"{token}_gsi", (GlobalSecondaryIndex,), {"Meta": meta, token: BlindIndexAttribute(hash_key=True)}
    )


@contextmanager
def on_moto(endpoint: str, *models: type[EncryptedModel]) -> Iterator[None]:
    """The models' tables, created empty on moto, deleted afterwards."""
    for model in models:
        model.Meta.host = endpoint
        model._connection = None  # a cached connection would keep talking to the old host
        model.create_table(wait=True)
    try:
        yield
    finally:
        for model in models:
            model.delete_table()
            model._connection = None
