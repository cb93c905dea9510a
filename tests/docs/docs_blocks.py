"""Read the fenced code blocks of the Markdown documents, so the suite can run them as written.

Rules (every document follows them; tests/test_docs.py enforces them):

- Every fence has an info string from ``KINDS``; a bare fence is an error (nobody could tell
  whether it is Python that should run).
- A ``python`` block runs, in document order, in one namespace per document (a document tells one
  story), unless the line before it is ``<!-- not run: <reason> -->`` or
  ``<!-- run by: tests/<file>.py::<test> -->`` (a block that needs a host to run it, such as an
  Alembic ``env.py``; that test runs it as written).
- ``sh`` / ``console`` / ``json`` / ``sql`` / ``text`` blocks are not Python; the CLI runbooks among
  them run through tests/docs/test_docs_runbooks.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KINDS = {"python", "sh", "console", "json", "sql", "text"}
_FENCE = re.compile(r"^(\s*)```(.*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*(not run|run by):\s*(\S.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (1-based line of its first code line), kind, code."""

    path: Path
    line: int
    kind: str
    code: str
    not_run: str | None  # the reason given in a ``<!-- not run: ... -->`` marker, if any
    run_by: str | None = None  # the test named in a ``<!-- run by: ... -->`` marker, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order, with its indentation removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, kind = opening.group(1), opening.group(2).strip()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _NOT_RUN.match(previous)
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        start = i - len(body) + 1
        code = "\n".join(body) + "\n"
        reason = marker.group(2) if marker and marker.group(1) == "not run" else None
        runner = marker.group(2) if marker and marker.group(1) == "run by" else None
        found.append(Block(path, start, kind, code, reason, runner))
        i += 1
    return found


def find(path: Path, contains: str) -> Block:
    """The one block of ``path`` whose code contains ``contains`` (how a test picks the block it runs)."""
    (block,) = [b for b in blocks(path) if contains in b.code]
    return block
