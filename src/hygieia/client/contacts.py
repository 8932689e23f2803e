"""Whose key is whose: the fingerprints this client remembers (trust on first use).

A server that hands out its own key for a recipient's email reads whatever is shared
with "them"; one that hands out another key for a record's owner could pass off a
record it wrote as theirs. So the client remembers, per (server, email), the
fingerprint of every key it has used for that email, whether to share with the account
or to read what it shared (protocol §7): the first time it is printed and pinned, and a
different key later is refused (:class:`ContactKeyChanged`) until the user accepts it
(``--accept-new-key``). The fingerprint is always computed here from the key, never
taken from the server's word.

The file (``$HYGIEIA_HOME/contacts.json``, mode 0600, replaced atomically) holds no
secret: public fingerprints and emails the user shared with or received from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hygieia import crypto
from hygieia.client.private_files import RememberedJson

__all__ = [
    "ContactKeyChanged",
    "ContactKeyRefused",
    "Contacts",
    "Pinned",
]


class ContactKeyRefused(Exception):
    """A contact's key can't be used (unreadable, or not the fingerprint claimed)."""


class ContactKeyChanged(ContactKeyRefused):
    """The server presents another key for an email than the one remembered here."""

    def __init__(self, email: str, remembered: str, presented: str) -> None:
        super().__init__(
            f"the key for {email} has CHANGED: remembered {_spaced(remembered)}, the server "
            f"now presents {_spaced(presented)}. This happens if {email} re-created their "
            "account, or if the server is trying to intercept what you share. Check the "
            "new fingerprint with them (not through this server); to use it, repeat with "
            "--accept-new-key"
        )
        self.email = email
        self.remembered = remembered
        self.presented = presented


def _spaced(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


@dataclass(frozen=True)
class Pinned:
    """A contact's key as checked: its fingerprint, and whether it was new here."""

    email: str
    fingerprint: str
    #: True the first time this email's key is seen on this server (trust on first use).
    first_use: bool = False
    #: The fingerprint it replaced, when the user accepted a new key.
    replaced: str | None = None

    @property
    def spaced(self) -> str:
        return _spaced(self.fingerprint)


class Contacts(RememberedJson):
    """Remembered fingerprints per (server, email): a JSON file, or memory (``None``).

    Unreadable memory must not become "nobody known": every key would be new.
    """

    error = ContactKeyRefused

    def get(self, server: str, email: str) -> str | None:
        """The remembered fingerprint for ``email`` on ``server``, if any."""
        entry = self._entry(server, email)
        if entry is None:
            return None
        if not isinstance(entry, Mapping) or not isinstance(entry.get("fingerprint"), str):
            raise ContactKeyRefused(f"the entry for {email} in {self.path} is damaged")
        return str(entry["fingerprint"])

    def _put(self, server: str, email: str, fingerprint: str) -> None:
        self._store(server, email, {"fingerprint": fingerprint})

    def check(
        self,
        server: str,
        email: str,
        public_key: str,
        *,
        claimed_fingerprint: str | None = None,
        accept_new: bool = False,
    ) -> Pinned:
        """Check ``public_key`` for ``email`` against what is remembered; pin it if new.

        :class:`ContactKeyRefused` if the key is unreadable or not the fingerprint the
        server claimed; :class:`ContactKeyChanged` if another key is remembered and
        ``accept_new`` is false.
        """
        try:
            fingerprint = crypto.public_key_info(public_key).fingerprint
        except crypto.InvalidKeyMaterial as exc:
            raise ContactKeyRefused(f"the server's key for {email} is not usable") from exc
        if claimed_fingerprint is not None and claimed_fingerprint.upper() != fingerprint:
            raise ContactKeyRefused(
                f"the server's fingerprint for {email} is not that of the key it sent"
            )
        known = self.get(server, email)
        if known == fingerprint:
            return Pinned(email=email, fingerprint=fingerprint)
        if known is not None and not accept_new:
            raise ContactKeyChanged(email, known, fingerprint)
        self._put(server, email, fingerprint)
        return Pinned(email=email, fingerprint=fingerprint, first_use=known is None, replaced=known)
