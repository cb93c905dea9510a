"""The documents are executable: their Python runs as written, and every test or example they cite exists.

Snippets that reach a service read it from the environment, as an application would:
``DATABASE_URL`` (here the suite's own PostgreSQL database), ``KMS_KEY_ARN`` (a multi-region key
in moto, replicated to us-west-2), ``RSA_KMS_KEY_ARN`` (an RSA_3072 multi-region key, the same)
and ``AWS_ENDPOINT_URL`` (moto; boto3 and PynamoDB honour it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from docs_blocks import DOCUMENTS, KINDS, ROOT, blocks

_IDS = [str(p.relative_to(ROOT)) for p in DOCUMENTS]


@pytest.mark.parametrize("path", DOCUMENTS, ids=_IDS)
def test_every_fence_says_what_it_holds(path: Path) -> None:
    """Each block is Python (run unless marked with a reason) or a named non-Python kind."""
    for block in blocks(path):
        assert block.kind in KINDS, f"{block.where}: fence info {block.kind!r} is not one of {sorted(KINDS)}"
        if block.not_run is not None or block.run_by is not None:
            assert block.kind == "python", f"{block.where}: only python blocks take a 'not run' marker"
        if block.run_by is not None:
            assert re.fullmatch(r"tests/[\w/]+\.py::test_\w+", block.run_by), f"{block.where}: run by what?"


DOCS_TABLES = ("patients", "fieldcrypt_keys")  # the DynamoDB tables the documents create


def _drop_docs_tables(client: Any) -> None:
    for table in DOCS_TABLES:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=table)


@pytest.fixture
def docs_environment(
    pg_engine: sa.Engine,
    mrk: dict[str, str],
    rsa_mrk: dict[str, str],
    moto_endpoint: str,
    aws_client: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """The variables the documents' snippets read, pointing at the suite's services; cwd a temp dir."""
    monkeypatch.setenv("DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("KMS_KEY_ARN", mrk["us-east-1"])
    monkeypatch.setenv("RSA_KMS_KEY_ARN", rsa_mrk["us-east-1"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.chdir(tmp_path)
    dynamodb = aws_client("dynamodb", "us-east-1")
    _drop_docs_tables(dynamodb)
    yield
    _drop_docs_tables(dynamodb)


@pytest.mark.usefixtures("docs_environment")
@pytest.mark.parametrize("path", DOCUMENTS, ids=_IDS)
def test_python_blocks_run_as_written(path: Path) -> None:
    """Every unmarked python block runs, in order, in one namespace per document."""
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for block in blocks(path):
        if block.kind != "python" or block.not_run is not None or block.run_by is not None:
            continue
        # Pad so a traceback points at the document's own line numbers.
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec", dont_inherit=True)
        exec(code, namespace)  # noqa: S102 - running the documentation is the point of this test


_CITED_FILE = re.compile(r"\b(tests/[\w/]+\.py)(?:::(\w+))?")
_CITED_TEST = re.compile(r"`(test_\w+)`")


def _cited(pattern: re.Pattern[str]) -> list[tuple[str, tuple[str, ...]]]:
    sources = [*DOCUMENTS, *sorted((ROOT / "examples").glob("*.py"))]
    return [
        (str(source.relative_to(ROOT)), match.groups())
        for source in sources
        for match in pattern.finditer(source.read_text(encoding="utf-8"))
    ]


def _defined_tests() -> set[str]:
    return {
        name
        for file in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^\s*(?:async )?def (test_\w+)", file.read_text(encoding="utf-8"), re.M)
    }


def test_cited_test_files_and_names_exist() -> None:
    """Every ``tests/...py`` path (and ``::test_name``) and every `test_...` name the docs cite is real."""
    defined = _defined_tests()
    missing = []
    for source, (file, name) in _cited(_CITED_FILE):
        target = ROOT / file
        if not target.is_file():
            missing.append(f"{source}: {file}")
        elif name and not re.search(
            rf"^\s*(?:async )?def {name}\b", target.read_text(encoding="utf-8"), re.M
        ):
            missing.append(f"{source}: {file}::{name}")
    missing += [f"{source}: {name}" for source, (name,) in _cited(_CITED_TEST) if name not in defined]
    assert not missing, "the docs cite tests that do not exist:\n" + "\n".join(missing)


_CITED_DOCUMENT = re.compile(r"[\w./-]+\.md\b")
_TEXT_FOLDERS = ("src", "tests", "examples", "docs", "bench", "migrations")


def test_cited_documents_are_in_the_repository() -> None:
    """No file refers to a Markdown document the repository does not ship (say it in words instead)."""
    shipped = {p.name for p in ROOT.glob("*.md")} | {p.name for p in (ROOT / "docs").glob("*.md")}
    sources = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    sources += [
        p for folder in _TEXT_FOLDERS for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md"}
    ]
    dangling = sorted(
        f"{source.relative_to(ROOT)}: {name}"
        for source in sources
        for name in _CITED_DOCUMENT.findall(source.read_text(encoding="utf-8"))
        if Path(name).name not in shipped
    )
    assert not dangling, "references to documents that are not in the repository:\n" + "\n".join(dangling)


def test_every_example_runs_in_the_suite() -> None:
    """Each file of examples/ is run by some test (named in a test module as examples/<file>)."""
    test_sources = "\n".join(f.read_text(encoding="utf-8") for f in (ROOT / "tests").rglob("test_*.py"))
    unrun = [
        example.name
        for example in sorted((ROOT / "examples").glob("*.py"))
        if not re.search(rf"examples[/\"' ,]+{re.escape(example.name)}", test_sources)
    ]
    assert not unrun, f"examples no test runs: {unrun}"
