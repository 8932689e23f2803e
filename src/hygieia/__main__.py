"""Entry point of the ``hygieia`` command (and ``python -m hygieia``).

``hygieia serve`` goes straight to the server without importing the CLI's UI libraries
(Typer, Rich): the server process is smaller by ~11 MB of RSS. Every other command is
the Typer CLI in :mod:`hygieia.client.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        from hygieia.server import serve_main

        serve_main(sys.argv[2:])
        return
    from hygieia.client.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
