"""The import rule of docs/architecture.md, checked on the source: dependencies point one way.

Every module of src/fieldcrypt is parsed with ``ast`` (imports inside functions and under
``TYPE_CHECKING`` count too) and mapped to its layer; a module may import its own layer and the
layers below it, never one above. A few same-layer pairs are forbidden as well, and host
libraries (SQLAlchemy, PynamoDB, Alembic, click, rich, boto3) may be imported only where the
architecture puts them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import fieldcrypt

SRC = Path(fieldcrypt.__file__).parent

# Bottom to top. A module's layer is that of the longest prefix listed here; every module must
# have one (a new top-level module needs a line here and a place in docs/architecture.md).
LAYERS: dict[str, tuple[str, ...]] = {
    "core": (
        "fieldcrypt.errors",
        "fieldcrypt._aead",
        "fieldcrypt._hostcompat",
        "fieldcrypt.format",
        "fieldcrypt.place",
        "fieldcrypt.codecs",
        "fieldcrypt.cache",
        "fieldcrypt.checkpoint",
        "fieldcrypt.storage",
        "fieldcrypt.adoption",
        "fieldcrypt.foreign",  # adoption sources: other libraries' ciphertexts, read through _aead
        "fieldcrypt.cardinality",
        "fieldcrypt.progress",  # progress lines for logs and non-terminal stderr
        "fieldcrypt.scheduler",  # --segment auto: the segment a job scheduler assigned
        "fieldcrypt.metrics",  # OpenTelemetry instruments (the otel extra), fed by every layer
    ),
    "keys & stores": ("fieldcrypt.keys", "fieldcrypt.stores"),
    "keyring": (
        "fieldcrypt",  # the package root: the public face, re-exporting the layers below
        "fieldcrypt.keyring",
        "fieldcrypt.anchor",  # the keyring's anchor (record authentication), beside the keyring
        "fieldcrypt.datakeys",  # the keyring's key-store side: trusted records, new keys, unwrapping
        "fieldcrypt.subjects",  # subject keys: one key per subject inside a keyring, erasable alone
        "fieldcrypt.subject_batches",  # many subjects' keys made at once (a bulk import)
        "fieldcrypt.column",  # ColumnSpec: a column's options, applied with a registered keyring
        "fieldcrypt.index_records",  # searchable columns' token options checked, index keys in use
        "fieldcrypt.registry",
        "fieldcrypt.reading",  # a column's per-value read, resolved once per column
        "fieldcrypt.writing",  # a column's per-value write, resolved once per column
        "fieldcrypt.indexing",  # a searchable column's tokens, resolved once per column
        "fieldcrypt.following",  # what those two keep, per keyring (per tenant keyring when per tenant)
        "fieldcrypt.audit",
        "fieldcrypt.ratelimit",
        "fieldcrypt.testing",
        "fieldcrypt.reports",  # the reports' one JSON schema (SQL and DynamoDB alike)
    ),
    "integrations": ("fieldcrypt.sqlalchemy", "fieldcrypt.dynamodb", "fieldcrypt.pynamodb"),
    "operations": ("fieldcrypt.rotation", "fieldcrypt.alembic", "fieldcrypt.config"),
    "cli": ("fieldcrypt.cli", "fieldcrypt.__main__"),
}
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}

# Same-layer imports that would tangle two rooms together: (importer prefix, imported prefix, why).
LATERAL: tuple[tuple[str, str, str], ...] = (
    ("fieldcrypt.keys", "fieldcrypt.stores", "a master key knows nothing of where records are kept"),
    ("fieldcrypt.sqlalchemy", "fieldcrypt.dynamodb", "the SQL integration stands alone"),
    ("fieldcrypt.sqlalchemy", "fieldcrypt.pynamodb", "the SQL integration stands alone"),
    ("fieldcrypt.dynamodb", "fieldcrypt.pynamodb", "boto3 users must not need PynamoDB"),
    ("fieldcrypt.dynamodb", "fieldcrypt.sqlalchemy", "boto3 users must not need SQLAlchemy"),
    ("fieldcrypt.pynamodb", "fieldcrypt.sqlalchemy", "the PynamoDB adapter sits on fieldcrypt.dynamodb only"),
    ("fieldcrypt.rotation", "fieldcrypt.alembic", "Alembic runs the engine, never the other way round"),
)

# Imports allowed only inside a function (never at module level), with the reason.
LAZY_ONLY: tuple[tuple[str, str, str], ...] = (
    (
        "fieldcrypt.rotation",
        "fieldcrypt.sqlalchemy",
        "the engine reads an Encrypted model's options only when the caller passes models; at "
        "module level every rotation user would load the integration",
    ),
    (
        "fieldcrypt.rotation",
        "fieldcrypt.pynamodb",
        "the engine never needs PynamoDB to scan raw items",
    ),
)

# Upward imports tolerated inside a function, each with its reason. Empty: none is needed today.
LAZY_EXCEPTIONS: dict[tuple[str, str], str] = {}

# Host libraries and the module prefixes allowed to import them (lazily or not).
HOSTS: dict[str, tuple[str, ...]] = {
    "sqlalchemy": (
        "fieldcrypt.storage.sql",
        "fieldcrypt.storage.sql_mode",
        "fieldcrypt.storage.row_keys",
        "fieldcrypt.stores.sql",
        "fieldcrypt.stores.indexes_sql",
        "fieldcrypt.sqlalchemy",
        "fieldcrypt.rotation",
        "fieldcrypt.alembic",
        "fieldcrypt.config",
        "fieldcrypt.cli",
    ),
    "pynamodb": ("fieldcrypt.pynamodb",),
    "alembic": ("fieldcrypt.alembic",),
    "click": ("fieldcrypt.cli", "fieldcrypt.__main__"),
    "rich": ("fieldcrypt.cli", "fieldcrypt.__main__"),
    "boto3": (
        "fieldcrypt.keys.kms",
        "fieldcrypt.keys.kms_rsa",
        "fieldcrypt.stores.dynamodb",
        "fieldcrypt.stores.dynamodb_schema",
        "fieldcrypt.dynamodb",
        "fieldcrypt.cli",
    ),
    "botocore": (
        "fieldcrypt.keys.kms",
        "fieldcrypt.stores.dynamodb",
        "fieldcrypt.stores.dynamodb_schema",
        "fieldcrypt.stores.indexes_dynamodb",
        "fieldcrypt.dynamodb",
        "fieldcrypt.cli",
    ),
    "cryptography": ("fieldcrypt._aead",),
    "opentelemetry": ("fieldcrypt.metrics",),  # the otel extra, looked up on first use
    # The test double's moto fixes: one module, imported only when moto_server() is called.
    "moto": ("fieldcrypt.testing.moto_shims",),
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    nested: bool  # inside a function or class body (runs later, if at all)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> str:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if _within(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    if best is None:
        raise AssertionError(f"{module} has no layer: add it to LAYERS here and to docs/architecture.md")
    return best[1]


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nested_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            nested_nodes.update(id(inner) for inner in ast.walk(node) if inner is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}:{node.lineno}: use absolute imports"
            base = node.module or ""
            # ``from fieldcrypt.x import y`` imports module ``fieldcrypt.x.y`` if there is one.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found += [Import(module, name, node.lineno, id(node) in nested_nodes) for name in names]
    return found


ALL_IMPORTS = [found for module, path in MODULES.items() for found in _imports(module, path)]


def _where(found: Import) -> str:
    lazily = " (inside a function)" if found.nested else ""
    return f"{found.importer}:{found.line} imports {found.imported}{lazily}"


def _own(imports: list[Import]) -> list[Import]:
    return [i for i in imports if _within(i.imported, "fieldcrypt")]


def upward(imports: list[Import]) -> list[str]:
    """Imports of a higher layer (a lazy one passes only if LAZY_EXCEPTIONS gives its reason)."""
    out = []
    for found in _own(imports):
        here, there = layer_of(found.importer), layer_of(found.imported)
        if RANK[there] > RANK[here] and not (
            found.nested and (found.importer, found.imported) in LAZY_EXCEPTIONS
        ):
            out.append(f"{_where(found)}: {here} -> {there}")
    return out


def sideways(imports: list[Import]) -> list[str]:
    return [
        f"{_where(found)}: {why}"
        for found in _own(imports)
        for importer, imported, why in LATERAL
        if _within(found.importer, importer) and _within(found.imported, imported)
    ]


def eager(imports: list[Import]) -> list[str]:
    return [
        f"{_where(found)}: {why}"
        for found in _own(imports)
        for importer, imported, why in LAZY_ONLY
        if not found.nested and _within(found.importer, importer) and _within(found.imported, imported)
    ]


def misplaced_hosts(imports: list[Import]) -> list[str]:
    out = []
    for found in imports:
        host = found.imported.split(".")[0]
        host = "boto3" if host.startswith("mypy_boto3") else host
        allowed = HOSTS.get(host)
        if allowed is not None and not any(_within(found.importer, prefix) for prefix in allowed):
            out.append(_where(found))
    return out


def test_every_module_has_a_layer() -> None:
    """Each module under src/fieldcrypt maps to exactly one layer of docs/architecture.md."""
    assert {module: layer_of(module) for module in MODULES}
    assert "fieldcrypt.dynamodb.item" in MODULES  # the walk sees subpackages


def test_no_module_imports_a_higher_layer() -> None:
    """Imports point down or sideways only, lazy ones included."""
    assert not upward(ALL_IMPORTS), "upward imports:\n" + "\n".join(upward(ALL_IMPORTS))


def test_forbidden_sideways_imports() -> None:
    """Rooms of one layer that must not depend on each other do not."""
    assert not sideways(ALL_IMPORTS), "\n".join(sideways(ALL_IMPORTS))


def test_lazy_only_imports_stay_inside_functions() -> None:
    """The operations reach the ORM integrations only from inside a function, never at import."""
    assert not eager(ALL_IMPORTS), "\n".join(eager(ALL_IMPORTS))


def test_host_libraries_only_where_the_architecture_puts_them() -> None:
    """SQLAlchemy, PynamoDB, Alembic, click, rich, boto3 and cryptography appear only in their rooms."""
    assert not misplaced_hosts(ALL_IMPORTS), "\n".join(misplaced_hosts(ALL_IMPORTS))


@pytest.mark.parametrize(
    ("module", "source", "check"),
    [
        ("fieldcrypt.keys.master", "from fieldcrypt.keyring import Keyring\n", upward),
        ("fieldcrypt.place", "def f():\n    from fieldcrypt.cli import keys\n", upward),
        ("fieldcrypt.dynamodb.item", "from fieldcrypt.pynamodb import EncryptedModel\n", sideways),
        ("fieldcrypt.rotation.spec", "from fieldcrypt.sqlalchemy.spec import column_spec\n", eager),
        ("fieldcrypt.stores", "import sqlalchemy\n", misplaced_hosts),
        ("fieldcrypt.dynamodb.item", "def f():\n    import pynamodb.models\n", misplaced_hosts),
    ],
)
def test_the_checks_catch_a_planted_violation(module: str, source: str, check: Any, tmp_path: Path) -> None:
    """A module that imported upward (even lazily), sideways, eagerly or a misplaced host library is caught."""
    path = tmp_path / "planted.py"
    path.write_text(source)
    assert len(check(_imports(module, path))) == 1
