"""The browser client: static page, CSS and the bundled ES modules that do all crypto.

``static/`` is what the server mounts at ``/``; ``static/app/`` is built from ``src/``
by ``python -m hygieia.web.build`` (npm packages pinned in ``package-lock.json``).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC_DIR"]
