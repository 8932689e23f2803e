"""Remembered contact keys (trust on first use): pinning, refusal, acceptance, the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hygieia.client.contacts import ContactKeyChanged, ContactKeyRefused, Contacts
from tests.support.identities import make_person

SERVER = "https://vault.example.org"


def test_first_use_pins_and_a_change_is_refused_until_accepted(tmp_path: Path) -> None:
    path = tmp_path / "home" / "contacts.json"
    bob, other = make_person("bob@example.org"), make_person("bob@example.org")
    contacts = Contacts(path)
    first = contacts.check(SERVER, "Bob@Example.org", bob.identity.public_key)
    assert first.first_use and first.fingerprint == bob.key.fingerprint
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    again = Contacts(path).check(SERVER, "bob@example.org", bob.identity.public_key)
    assert not again.first_use
    with pytest.raises(ContactKeyChanged) as changed:
        Contacts(path).check(SERVER, "bob@example.org", other.identity.public_key)
    assert changed.value.remembered == bob.key.fingerprint
    assert Contacts(path).get(SERVER, "bob@example.org") == bob.key.fingerprint  # unchanged
    accepted = Contacts(path).check(
        SERVER, "bob@example.org", other.identity.public_key, accept_new=True
    )
    assert accepted.replaced == bob.key.fingerprint
    assert Contacts(path).get(SERVER, "bob@example.org") == other.key.fingerprint
    # Per server: another server's Bob is another contact.
    assert Contacts(path).check("https://b.example", "bob@example.org", bob.identity.public_key)
    assert not list(path.parent.glob("*.tmp"))


def test_claimed_fingerprint_and_damaged_file(tmp_path: Path) -> None:
    bob = make_person("bob@example.org")
    with pytest.raises(ContactKeyRefused):
        Contacts(None).check(
            SERVER, "bob@example.org", bob.identity.public_key, claimed_fingerprint="A" * 40
        )
    with pytest.raises(ContactKeyRefused):
        Contacts(None).check(SERVER, "bob@example.org", "not a key")
    path = tmp_path / "contacts.json"
    path.write_text("{broken")
    with pytest.raises(ContactKeyRefused):  # never "nobody known"
        Contacts(path).check(SERVER, "bob@example.org", bob.identity.public_key)
    path.write_text(json.dumps({f"{SERVER} bob@example.org": "nonsense"}))
    with pytest.raises(ContactKeyRefused):
        Contacts(path).get(SERVER, "bob@example.org")
