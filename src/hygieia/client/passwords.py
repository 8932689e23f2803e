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

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "MIN_SCORE",
    "WeakPassword",
    "check_export_passphrase",
    "check_new_password",
]

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


#: How many characters added to the account password still count as "the same".
_NEAR = 3


def _skeleton(text: str) -> str:
    """What is left of a passphrase once case, compatibility forms and spaces are
    gone: the variants a cracker tries first."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def check_export_passphrase(
    passphrase: str, *, account_password: str, user_inputs: Iterable[str] = ()
) -> None:
    """Refuse a key-export passphrase that is empty, weak, or the account password.

    An exported key is locked with OpenPGP's iterated-and-salted SHA-256 (so stock gpg
    can open it): fast on GPUs. Locked with the account password, the file would hand
    whoever finds it a cheap way to test guesses of that password, which also guards
    the vault behind Argon2id. So it must be another one, and not a trivial variant:
    the same once case, spaces and Unicode compatibility forms are set aside (the KDF
    itself normalises with NFKC, so this also covers every string that derives the
    same ``auth_key``), nor the password with a few characters added or taken away.
    """
    if not passphrase.strip():
        raise WeakPassword("the exported key needs a passphrase of its own")
    mine, theirs = _skeleton(passphrase), _skeleton(account_password)
    short, long = sorted((mine, theirs), key=len)
    if (
        short
        and len(long) - len(short) <= _NEAR
        and (long.startswith(short) or long.endswith(short))
    ):
        raise WeakPassword(
            "that is your account password, or nearly: the exported file is locked with "
            "a fast hash, so it would let whoever finds it test guesses of your account "
            "password cheaply. Choose another passphrase"
        )
    check_new_password(passphrase, user_inputs=[*user_inputs, account_password])
