"""What the CLI prints: human text and progress bars on stderr (rich), JSON on stdout (--json).

stdout carries only machine output (``--json``) or the data of ``encrypt``/``decrypt``, so it can
be piped; everything for people goes to stderr. Nothing printed is ever a plaintext column value
or key material: reports hold counts, key ids, master key ids and primary keys only.

Everything printed is data, never rich markup: a primary key such as ``[/]`` or ``[link=...]``
is shown as typed (markup off, highlighting off). Key ids are never wrapped, so they can be
copied from a terminal of any width.
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
from rich.text import Text

from fieldcrypt.progress import ProgressLines, interval_from_environment

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
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

    def say(self, text: str) -> None:
        if not self.quiet:
            self.err.print(Text(text))  # a Text is never parsed as markup

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON on stdout with --json, else the human rendering on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()
        elif human is not None:
            human()

    def table(
        self, title: str, columns: list[str], rows: list[list[Any]], *, whole: tuple[int, ...] = (0,)
    ) -> None:
        """A table on stderr; the columns numbered in ``whole`` (ids) are never wrapped or cut."""
        table = Table(title=Text(title), title_justify="left")
        cells = [[str(v) for v in row] for row in rows]
        for n, column in enumerate(columns):
            if n in whole:
                widest = max((len(row[n]) for row in cells), default=len(column))
                table.add_column(Text(column), no_wrap=True, min_width=max(widest, len(column)))
            else:
                table.add_column(Text(column), overflow="fold")  # ARNs are read in full
        for row in cells:
            table.add_row(*(Text(cell) for cell in row))
        self.err.print(table)

    def error(self, message: str, code: int) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
        self.err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Meter]:
        """Progress on stderr: a bar on a terminal, else a line every few seconds
        (``$FIELDCRYPT_PROGRESS_INTERVAL``, default 10) and one at the end, so logs of a job that
        is killed still say how far it got. Nothing with --quiet; no bar with --json."""
        if self.quiet or (self.as_json and self.err.is_terminal):
            yield Meter(lambda done, total: None)
            return
        if not self.err.is_terminal:
            lines = ProgressLines(description, self._line, interval=interval_from_environment())
            yield Meter(lines.update, lines.start_at)
            lines.finish()
            return
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            def start_at(done: int) -> None:
                # A resumed run starts its bar at the resumed position, and its ETA from there.
                bar.reset(task, completed=done)

            yield Meter(update, start_at)

    def _line(self, text: str) -> None:
        self.err.print(Text(text))
        self.err.file.flush()


class Meter:
    """What a command reports progress through: ``meter(done, total)``, and ``meter.start_at(n)``
    once when a resumed run begins at row ``n`` (so the rate counts this run's rows only)."""

    def __init__(
        self, update: Callable[[int, int | None], None], start_at: Callable[[int], None] | None = None
    ) -> None:
        self._update = update
        self._start_at = start_at
        self._started = False

    def __call__(self, done: int, total: int | None) -> None:
        self._update(done, total)

    def start_at(self, done: int) -> None:
        if not self._started and self._start_at is not None:
            self._started = True
            self._start_at(done)
