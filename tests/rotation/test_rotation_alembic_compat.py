"""Each Alembic internal fieldcrypt reads works on the installed version, or fails loudly."""

from __future__ import annotations

from importlib import metadata

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render
from alembic.autogenerate.api import AutogenContext
from alembic.migration import MigrationContext

from fieldcrypt import ConfigurationError
from fieldcrypt.alembic import _compat
from fieldcrypt.alembic.autogenerate import render_item
from fieldcrypt.sqlalchemy import Encrypted

pytestmark = pytest.mark.compat


def _context() -> AutogenContext:
    migration = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"render_item": render_item, "sqlalchemy_module_prefix": "sa.", "user_module_prefix": None},
    )
    return AutogenContext(migration)


def test_render_type_writes_types_as_autogenerate_does() -> None:
    """A plain type renders with Alembic's sa. prefix; an Encrypted one through render_item, with its import."""
    context = _context()
    assert _compat.render_type(sa.String(11), context) == "sa.String(length=11)"
    rendered = _compat.render_type(Encrypted(sa.String(11), keyring="pii"), context)
    assert rendered.startswith("fieldcrypt.sqlalchemy.Encrypted(")
    assert "import fieldcrypt.sqlalchemy" in context.imports


def test_a_missing_internal_names_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without render._repr_type (a future Alembic), rendering raises naming Alembic's version."""
    monkeypatch.delattr(render, "_repr_type")
    with pytest.raises(ConfigurationError) as caught:
        _compat.render_type(sa.String(11), _context())
    version = metadata.version("alembic")
    assert str(caught.value).startswith(
        f"alembic {version} has no alembic.autogenerate.render._repr_type, which fieldcrypt reads"
    )
