"""A click ``CliRunner`` that keeps stderr apart from stdout on every supported click."""

from __future__ import annotations

from importlib import metadata

from click.testing import CliRunner

# click 8.2 always keeps stderr apart (and dropped the option); 8.1 mixes it in unless told not to.
_SEPARATE = tuple(map(int, metadata.version("click").split(".")[:2])) >= (8, 2)


def cli_runner() -> CliRunner:
    """A runner whose results have separate ``stdout`` and ``stderr``."""
    return CliRunner() if _SEPARATE else CliRunner(mix_stderr=False)  # type: ignore[call-arg]
