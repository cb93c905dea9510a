"""The ``fieldcrypt`` console script (and ``python -m fieldcrypt``).

Installed with the package whatever its extras, so it must not need click: without the ``cli``
extra it says what to install, on one line, instead of a traceback.
"""

from __future__ import annotations

import sys

EXIT_USAGE = 2  # the CLI's "bad command line" code: the command cannot run as installed


def main() -> None:
    """Run the CLI, or explain in one line that it needs ``fieldcrypt[cli]``."""
    try:
        import click  # noqa: F401 - only probing that the cli extra is installed
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(
            f"fieldcrypt: the command line needs the cli extra ({exc.name} is not installed): "
            "pip install 'fieldcrypt[cli]'\n"
        )
        raise SystemExit(EXIT_USAGE) from None
    from fieldcrypt.cli import main as run

    run()


if __name__ == "__main__":
    main()
