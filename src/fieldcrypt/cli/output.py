"""What the CLI prints: human text and progress bars on stderr (rich), JSON on stdout (--json).

stdout carries only machine output (``--json``) or the data of ``encrypt``/``decrypt``, so it can
be piped; everything for people goes to stderr. Nothing printed is ever a plaintext column value
or key material: reports hold counts, key ids, master key ids and primary keys only.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # the job ran but work remains: failures, conflicts, plaintext or old keys left
EXIT_USAGE = 2  # click's own code for a bad command line
EXIT_CONFIGURATION = 3
EXIT_KEY_ACCESS = 4
EXIT_DECRYPTION = 5


class Output:
    def __init__(self, as_json: bool, *, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text)

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON on stdout with --json, else the human rendering on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()
        elif human is not None:
            human()

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")  # key ids and ARNs are read in full
        for row in rows:
            table.add_row(*(str(v) for v in row))
        self.err.print(table)

    def error(self, message: str, code: int) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
        self.err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Callable[[int, int | None], None]]:
        """A progress bar on stderr; yields ``update(done, total)``. Hidden with --json or no tty."""
        if self.as_json or self.quiet:
            yield lambda done, total: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update
