"""What a new password must be: at least 15 characters, and not easy to guess.

The password is Hygieia's only factor, and more than a login secret: it derives the key
that unwraps the vault key, so whoever holds the server's data (or poses as the server)
can test guesses offline at the KDF's pace. NIST SP 800-63B asks for at least 15
characters when a password is used alone (8 only with a second factor, which Hygieia
has not got), no composition rules, and a check against known weak choices: here the
``zxcvbn`` estimator, whose score must be at least 3 ("safely unguessable: moderate
protection from an offline slow-hash scenario"). The web app applies the same rules
(``web/src/passwords.js``, zxcvbn-ts). docs/protocol.md §1 and the README say so too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["MIN_PASSWORD_LENGTH", "MIN_SCORE", "WeakPassword", "check_new_password"]

MIN_PASSWORD_LENGTH = 15
MIN_SCORE = 3
# zxcvbn's matching grows quadratically with the length; its verdict on the first 100
# characters is a lower bound for the whole password.
_ESTIMATED_CHARS = 100


class WeakPassword(ValueError):
    """A new password that the policy refuses; the message says why and what helps."""


def check_new_password(password: str, *, user_inputs: Iterable[str] = ()) -> None:
    """Refuse a new password that is too short or too easy to guess.

    ``user_inputs`` are words an attacker would try first (the email address, its
    parts); the estimator counts a password built from them as weak.
    """
    # Counted as the KDF sees it (NFKC), one character per code point (800-63B §3.1.1.2).
    length = len(unicodedata.normalize("NFKC", password))
    if length < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters "
            f"(this one has {length}); a few unrelated words are easy to remember"
        )
    from zxcvbn import zxcvbn  # imported here: its word lists take a while to load

    words: list[str] = []
    for item in user_inputs:
        words.append(item)
        words.extend(part for part in item.replace("@", " ").replace(".", " ").split() if part)
    result = zxcvbn(password[:_ESTIMATED_CHARS], user_inputs=[*words, "hygieia"])
    if result["score"] < MIN_SCORE:
        feedback = result["feedback"]
        advice = [feedback.get("warning") or "", *feedback.get("suggestions", [])]
        detail = " ".join(a.strip() for a in advice if a and a.strip())
        raise WeakPassword(
            "this password is too easy to guess"
            + (f": {detail}" if detail else "; add a few unrelated words")
        )
