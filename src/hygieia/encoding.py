"""Base64 as it travels in the API's JSON: standard alphabet, padded, ASCII.

One place for both directions, used by the client SDK and flows and by the server's
renderings, so the two sides cannot drift apart (the web app's ``toB64``/``fromB64``
are the same encoding). Decoding is strict: characters outside the alphabet or wrong
padding raise ``ValueError`` instead of being skipped.
"""

from __future__ import annotations

import base64

__all__ = ["from_b64", "to_b64"]


def to_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def from_b64(text: str) -> bytes:
    """``ValueError`` (``binascii.Error``) if ``text`` is not strict standard base64."""
    return base64.b64decode(text.encode("ascii"), validate=True)
