"""OpenPGP identities for the crypto tests: a key pair with its vault key, unlocked."""

from __future__ import annotations

from dataclasses import dataclass

from hygieia import crypto


@dataclass(frozen=True)
class Person:
    identity: crypto.Identity
    vault_key: bytes
    key: crypto.UnlockedKey


def make_person(email: str) -> Person:
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    return Person(identity, vault_key, crypto.unlock(identity.locked_secret_key, vault_key))
