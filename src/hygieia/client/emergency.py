"""Emergency access done client-side (protocol §8): name contacts, ask, open a vault.

The owner: the contact's key comes from ``POST /users/key`` and is checked against the
fingerprint remembered for that email (:mod:`hygieia.client.contacts`, shared with
sharing); the vault key is sealed to that key only, signed by the owner
(:func:`hygieia.crypto.seal_emergency_vault_key`), and only that message is sent.

The contact, once the server releases access: the owner's key is pinned per (server,
owner email) like any contact's; the sealed vault key must be signed by that pinned key
and name it and the contact; the owner's locked secret key must unlock with it and be
that pinned key. Then the owner's records are read exactly like one's own (metadata
bound to the id, content to the CID, every signature by the owner's pinned key), through
the read-only emergency routes. The vault key and the owner's unlocked key live in this
process only: nothing of them is written to disk; ``hygieia emergency open`` remembers
only *which* owner's vault ``ls``/``get`` read (``$HYGIEIA_HOME/emergency.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hygieia import crypto
from hygieia.client import records as recs
from hygieia.client.account import LoggedIn
from hygieia.client.contacts import ContactKeyRefused, Contacts, Pinned
from hygieia.client.private_files import write_private_json
from hygieia.client.sdk import EmergencyAccess, EmergencyContact, HygieiaClient
from hygieia.client.sharing import check_recipient
from hygieia.encoding import to_b64

__all__ = [
    "EmergencyError",
    "OwnerVault",
    "Selection",
    "add_contact",
    "approve",
    "deny",
    "find_access",
    "find_contact",
    "get",
    "iter_records",
    "open_vault",
    "parse_wait",
    "remove_contact",
    "request",
]

MIN_WAIT_DAYS, MAX_WAIT_DAYS = 1, 30


class EmergencyError(Exception):
    """An emergency-access step the user can act on (nothing changed)."""


def _norm(email: str) -> str:
    return email.strip().lower()


def parse_wait(text: str) -> int:
    """``7d`` or ``7`` → 7 (days, 1 to 30); :class:`ValueError` otherwise."""
    value = text.strip().lower()
    value = value.removesuffix("days").removesuffix("day").removesuffix("d").strip()
    if not value.isdigit() or not MIN_WAIT_DAYS <= int(value) <= MAX_WAIT_DAYS:
        raise ValueError(f"a waiting period of {MIN_WAIT_DAYS} to {MAX_WAIT_DAYS} days, e.g. 7d")
    return int(value)


# --- the owner's side --------------------------------------------------------------------
def add_contact(
    api: HygieiaClient,
    session: LoggedIn,
    email: str,
    *,
    wait_days: int,
    contacts: Contacts,
    accept_new: bool = False,
) -> tuple[EmergencyContact, Pinned]:
    """Seal my vault key to ``email``'s pinned key and store it with the wait."""
    email = _norm(email)
    if email == _norm(session.account.email):
        raise EmergencyError("you can't be your own emergency contact")
    public_key, pinned = check_recipient(api, contacts, email, accept_new=accept_new)
    sealed = crypto.seal_emergency_vault_key(
        session.vault_key,
        contact_email=email,
        contact_public_key=public_key,
        signer=session.unlock(),
    )
    made = api.add_emergency_contact(
        email, wait_days=wait_days, sealed_vault_key_b64=to_b64(sealed)
    )
    if made.fingerprint != pinned.fingerprint:
        raise EmergencyError(f"the server filed {email} under another key than the one used")
    return made, pinned


def find_contact(api: HygieiaClient, email: str) -> EmergencyContact:
    for contact in api.emergency_contacts().items:
        if _norm(contact.email) == _norm(email):
            return contact
    raise EmergencyError(f"{email} is not one of your emergency contacts")


def remove_contact(api: HygieiaClient, email: str) -> EmergencyContact:
    contact = find_contact(api, email)
    api.remove_emergency_contact(contact.id)
    return contact


def approve(api: HygieiaClient, email: str) -> EmergencyContact:
    return api.approve_emergency(find_contact(api, email).id)


def deny(api: HygieiaClient, email: str) -> EmergencyContact:
    """Refuse ``email``'s waiting request, or end their granted access."""
    return api.deny_emergency(find_contact(api, email).id)


# --- the contact's side ------------------------------------------------------------------
def find_access(api: HygieiaClient, owner_email: str) -> EmergencyAccess:
    for access in api.emergency_access().items:
        if _norm(access.owner.email) == _norm(owner_email):
            return access
    raise EmergencyError(f"you are not an emergency contact of {owner_email}")


def request(api: HygieiaClient, owner_email: str) -> EmergencyAccess:
    return api.request_emergency(find_access(api, owner_email).id)


@dataclass(frozen=True)
class OwnerVault:
    """An owner's vault opened through a released emergency access (memory only)."""

    access_id: str
    owner: Pinned
    key: crypto.UnlockedKey


def open_vault(
    api: HygieiaClient,
    session: LoggedIn,
    owner_email: str,
    *,
    contacts: Contacts,
    accept_new: bool = False,
) -> OwnerVault:
    """The owner's unlocked key, from a released access, every step checked."""
    access = find_access(api, owner_email)
    if access.status != "granted":
        if access.status == "requested":
            raise EmergencyError(
                f"access to {owner_email}'s vault was requested at {access.requested_at}; "
                f"it is released at {access.release_at} unless they refuse"
            )
        raise EmergencyError(
            f"no access to {owner_email}'s vault: run `hygieia emergency request {owner_email}`"
        )
    vault = api.emergency_vault(access.id)
    if _norm(vault.owner.email) != _norm(owner_email) or vault.id != access.id:
        raise ContactKeyRefused(f"the server answered for another vault than {owner_email}'s")
    owner = contacts.check(
        api.server,
        _norm(owner_email),
        vault.owner.public_key,
        claimed_fingerprint=vault.owner.fingerprint,
        accept_new=accept_new,
    )
    try:
        vault_key = crypto.open_emergency_vault_key(
            vault.sealed_vault_key,
            key=session.unlock(),
            owner_public_key=vault.owner.public_key,
            owner_fingerprint=owner.fingerprint,
            contact_email=session.account.email,
        )
        key = crypto.unlock(vault.locked_secret_key, vault_key)
    except crypto.DecryptionError as exc:
        raise EmergencyError(
            f"{owner_email}'s sealed vault key or locked key failed verification "
            "(not signed by their remembered key, or not theirs)"
        ) from exc
    if key.fingerprint != owner.fingerprint:
        raise EmergencyError(f"the locked key the server sent is not {owner_email}'s")
    return OwnerVault(access_id=access.id, owner=owner, key=key)


def iter_records(api: HygieiaClient, vault: OwnerVault) -> Iterator[recs.RecordInfo]:
    """The owner's records, each metadata opened and checked as for one's own."""
    cursor: str | None = None
    while True:
        page = api.emergency_records(vault.access_id, limit=200, cursor=cursor)
        for item in page.items:
            yield recs.record_info(item, vault.key)
        cursor = page.next_cursor
        if not cursor:
            return


def get(
    api: HygieiaClient,
    vault: OwnerVault,
    record_id: str,
    target: Path | None,
    *,
    progress: recs.Progress = lambda _n: None,
) -> tuple[Path, dict[str, object]]:
    """Download, verify and decrypt one of the owner's records into ``target`` (default:
    its file name), atomically; nothing is written if any check fails."""
    item = api.emergency_record(vault.access_id, record_id)
    meta = recs.open_metadata(item, vault.key, record_id=record_id)
    target = target or Path(Path(str(meta.get("filename") or record_id)).name)
    with api.emergency_record_content(vault.access_id, record_id) as chunks:
        recs.decrypt_into(
            chunks, item=item, meta=meta, key=vault.key, target=target, progress=progress
        )
    return target, meta


class Selection:
    """Which owner's vault ``ls``/``get`` read (``hygieia emergency open``): the server,
    the contact's own email and the owner's email. No key, nothing secret."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, server: str, me: str) -> str | None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise EmergencyError(f"cannot read {self.path}: {exc}") from exc
        if (
            isinstance(data, dict)
            and data.get("server") == server.rstrip("/")
            and isinstance(data.get("me"), str)
            and _norm(data["me"]) == _norm(me)
            and isinstance(data.get("owner"), str)
        ):
            return str(data["owner"])
        return None

    def put(self, server: str, me: str, owner: str) -> None:
        write_private_json(
            self.path, {"server": server.rstrip("/"), "me": _norm(me), "owner": _norm(owner)}
        )

    def clear(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
