"""DynamoDB fixtures: the shared models pointed at moto's server, and a registered keyring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ddb_models import MODELS

import fieldcrypt
from ddb_shapes import on_moto


@pytest.fixture
def keyring(local_keyring: fieldcrypt.Keyring) -> fieldcrypt.Keyring:
    """The "pii" keyring (local master key, memory key store), registered for the models."""
    return fieldcrypt.register(local_keyring)


@pytest.fixture
def ddb(aws_client: Callable[..., Any]) -> Any:
    """A low-level DynamoDB client for moto in us-east-1 (for raw reads and writes)."""
    return aws_client("dynamodb", "us-east-1")


@pytest.fixture
def tables(moto_endpoint: str, keyring: fieldcrypt.Keyring) -> Iterator[None]:
    """The test models' tables, created empty on moto and deleted afterwards."""
    with on_moto(moto_endpoint, *MODELS):
        yield
