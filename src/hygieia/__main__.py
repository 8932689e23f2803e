"""Entry point of the ``hygieia`` command (and ``python -m hygieia``).

One command, two programs: the server's commands (``serve``, ``db``, ``admin``) go to
:mod:`hygieia.server`, everything else to the client CLI in :mod:`hygieia.client.cli`.
Each is imported only when its command runs, so the client never loads server code
(the database, services, API, stores, settings) and the server never loads the
client's UI libraries. ``tests/test_boundary.py`` holds the client to that.
"""

from __future__ import annotations

import sys

#: The first word of the server's commands (``hygieia.server`` parses the rest). Kept
#: here, not imported from the server module, so the client path imports nothing of it.
SERVER_COMMANDS = frozenset({"serve", "db", "admin"})


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in SERVER_COMMANDS:
        from hygieia.server import main as server_main

        server_main(sys.argv[1:])
        return
    from hygieia.client.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
