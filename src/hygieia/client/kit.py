"""The recovery kit (protocol §6): one JSON file to list and open a vault without its server.

A kit holds what the server holds about an account and its records (locked key, wrapped
vault keys, KDF parameters, per record CID + PKESK + sealed metadata) and nothing more:
no plaintext metadata, no recovery verifier, no session token. This module

- builds a kit from a live session (:func:`fetch_kit`: ``GET /me`` and every page of
  ``GET /records``; no crypto) and writes it atomically, mode 0600 (:func:`write_kit`);
- keeps the CLI's cached copy, ``$HYGIEIA_HOME/kit.json``, in step (:func:`cache_path`,
  :func:`with_record`, :func:`without_record`);
- reads a kit strictly (:func:`parse_kit`, :func:`read_kit`): unknown or missing fields,
  another format, an unknown version, oversized values are refused with :class:`KitError`;
- unlocks it with the password or the recovery code (:func:`unlock_kit`) after checking
  what it can without a secret: fingerprint ↔ public key ↔ locked secret key, and the
  KDF parameters against this client's bounds and floor;
- lists it (:func:`list_kit`), each record's sealed metadata opened with the reader that
  binds it to the record's id and CID (:func:`hygieia.client.records.open_metadata`).

Why the remembered KDF parameters (``known_kdf.json``) are *not* consulted: they guard
against a server that hands out cheap parameters to harvest a cheaply guessable
``auth_key``. Unlocking a kit sends nothing anywhere, and a kit is trusted only once its
wrapped vault key unwraps under the derived key (AES-GCM), which only parameters chosen
by someone knowing the password can make happen; ``kit restore`` sends ``auth_key`` to a
server only after that. The floor and bounds still apply, so a forged kit can't make the
client spend gigabytes or minutes, and kits may be opened on a machine that never saw
the account.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from hygieia import crypto
from hygieia.client import session_store
from hygieia.client.kdf_policy import kdf_floor, vet_kdf
from hygieia.client.private_files import write_private
from hygieia.client.records import (
    Progress,
    RecordInfo,
    RecordMismatchError,
    RecordVerificationError,
    decrypt_into,
    open_metadata,
)
from hygieia.client.sdk import Account, HygieiaClient, RecordItem
from hygieia.encoding import from_b64, to_b64
from hygieia.ipfs import BlockSource, ContentError, parse_cid, verified_chunks

__all__ = [
    "KIT_FORMAT",
    "KIT_VERSION",
    "MAX_KIT_BYTES",
    "MAX_KIT_RECORDS",
    "ContentFetchError",
    "Kit",
    "KitAccount",
    "KitError",
    "KitRecord",
    "OpenedKit",
    "cache_path",
    "check_keys",
    "fetch_kit",
    "get_offline",
    "kit_from",
    "list_kit",
    "open_record",
    "parse_kit",
    "read_kit",
    "record_item",
    "unlock_kit",
    "with_record",
    "without_record",
    "write_kit",
]

KIT_FORMAT = "hygieia-recovery-kit"
KIT_VERSION = 1
MAX_KIT_BYTES = 2 << 30  # 2 GiB of JSON (protocol §6)
MAX_KIT_RECORDS = 1_000_000
# The API's limits (hygieia.api.schemas; not imported: the client runs without the server).
_MAX_KEY_CHARS = 64 * 1024
_MAX_PKESK = 1024
_MAX_ENVELOPE = 8 * 1024
_MAX_SEALED_METADATA = 64 * 1024
_MAX_CID_CHARS = 128
_MAX_RECORD_BYTES = 1 << 53  # any size a JSON number holds exactly


class KitError(ValueError):
    """A kit that can't be used: not a kit, another version, malformed, or failing a
    check (wrong fingerprint, a record not this account's). Nothing was written."""


def _b64(low: int, high: int) -> BeforeValidator:
    def decode(value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError("expected a base64 string")
        if len(value) > (high + 2) // 3 * 4:
            raise ValueError(f"longer than {high} bytes")
        try:
            raw = from_b64(value)
        except ValueError:
            raise ValueError("not standard base64") from None
        if not low <= len(raw) <= high:
            raise ValueError(f"must be {low}..{high} bytes")
        return raw

    return BeforeValidator(decode)


_AS_B64 = PlainSerializer(to_b64, return_type=str)
Salt = Annotated[bytes, _b64(crypto.SALT_SIZE, crypto.SALT_SIZE), _AS_B64]
Wrapped = Annotated[bytes, _b64(61, 61), _AS_B64]
Pkesk = Annotated[bytes, _b64(1, _MAX_PKESK), _AS_B64]
Envelope = Annotated[bytes, _b64(1, _MAX_ENVELOPE), _AS_B64]
SealedMetadata = Annotated[bytes, _b64(1, _MAX_SEALED_METADATA), _AS_B64]
ArmoredKey = Annotated[str, Field(min_length=1, max_length=_MAX_KEY_CHARS)]
Timestamp = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class KitKdf(_Strict):
    alg: Literal["argon2id"]
    v: int
    m: int
    t: int
    p: int

    def params(self) -> crypto.KdfParams:
        return crypto.KdfParams.from_dict(self.model_dump())


class KitAccount(_Strict):
    """``GET /me`` minus ``encryption_key_id`` and ``created_at``."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    email: Annotated[str, Field(min_length=3, max_length=254)]
    fingerprint: Annotated[str, Field(pattern=r"^[0-9A-F]{40}$")]
    public_key: ArmoredKey
    locked_secret_key: ArmoredKey
    kdf: KitKdf
    salt: Salt
    wrapped_vault_key: Wrapped
    recovery_salt: Salt
    recovery_wrapped_vault_key: Wrapped


class KitRecord(_Strict):
    """A record as ``RecordPublic`` (protocol §5)."""

    id: Annotated[str, Field(min_length=36, max_length=36)]
    cid: Annotated[str, Field(min_length=1, max_length=_MAX_CID_CHARS)]
    size: Annotated[int, Field(ge=0, le=_MAX_RECORD_BYTES)]
    segments: Annotated[int, Field(ge=1, le=_MAX_RECORD_BYTES)]
    created_at: Timestamp
    pkesk: Pkesk
    sealed_metadata: SealedMetadata
    envelope: Envelope

    @field_validator("id")
    @classmethod
    def _record_id(cls, value: str) -> str:
        if not crypto.is_record_id(value):
            raise ValueError("not a record id (a lowercase canonical UUIDv4)")
        return value

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str) -> str:
        parse_cid(value)  # ValueError for anything but a CID
        return value


class Kit(_Strict):
    """A recovery kit; field order is the order written (``format``/``version`` first)."""

    format: Literal["hygieia-recovery-kit"]
    version: Literal[1]
    created_at: Timestamp
    server: Annotated[str, Field(max_length=2048)]
    account: KitAccount
    records: Annotated[list[KitRecord], Field(max_length=MAX_KIT_RECORDS)]

    @field_validator("records")
    @classmethod
    def _unique(cls, value: list[KitRecord]) -> list[KitRecord]:
        ids = [r.id for r in value]
        if len(set(ids)) != len(ids):
            raise ValueError("a record id appears twice")
        return value

    def to_json(self) -> str:
        """Two-space indented JSON, ``format`` and ``version`` first (protocol §6)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def record(self, record_id: str) -> KitRecord:
        for rec in self.records:
            if rec.id == record_id:
                return rec
        raise KitError(f"record {record_id} is not in the kit")


# --- building ----------------------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kit_record(item: RecordItem) -> KitRecord:
    return KitRecord.model_validate(
        {
            "id": item.id,
            "cid": item.cid,
            "size": item.size,
            "segments": item.segments,
            "created_at": item.created_at,
            "pkesk": to_b64(item.pkesk),
            "sealed_metadata": to_b64(item.sealed_metadata),
            "envelope": to_b64(item.envelope),
        }
    )


def record_item(rec: KitRecord) -> RecordItem:
    """The kit's record in the SDK's shape, for the readers in :mod:`.records`."""
    return RecordItem(
        id=rec.id,
        cid=rec.cid,
        size=rec.size,
        segments=rec.segments,
        created_at=rec.created_at,
        pkesk=rec.pkesk,
        sealed_metadata=rec.sealed_metadata,
        envelope=rec.envelope,
    )


def kit_from(
    server: str, account: Account, items: Iterable[RecordItem], *, created_at: str | None = None
) -> Kit:
    """A kit of ``account`` with ``items`` (newest first, as the server lists them)."""
    try:
        return Kit.model_validate(
            {
                "format": KIT_FORMAT,
                "version": KIT_VERSION,
                "created_at": created_at or _now(),
                "server": server,
                "account": {
                    "id": account.id,
                    "email": account.email,
                    "fingerprint": account.fingerprint,
                    "public_key": account.public_key,
                    "locked_secret_key": account.locked_secret_key,
                    "kdf": dict(account.kdf),
                    "salt": to_b64(account.salt),
                    "wrapped_vault_key": to_b64(account.wrapped_vault_key),
                    "recovery_salt": to_b64(account.recovery_salt),
                    "recovery_wrapped_vault_key": to_b64(account.recovery_wrapped_vault_key),
                },
                "records": [_kit_record(item).model_dump(mode="json") for item in items],
            }
        )
    except ValidationError as exc:
        problem = _first_error(exc)
        raise KitError(f"the server's answers don't make a valid kit: {problem}") from None


def all_items(api: HygieiaClient) -> Iterator[RecordItem]:
    """Every record of the session's account, newest first (all pages)."""
    cursor: str | None = None
    while True:
        page = api.list_records(limit=200, cursor=cursor)
        yield from page.items
        cursor = page.next_cursor
        if not cursor:
            return


def fetch_kit(api: HygieiaClient, *, account: Account | None = None) -> Kit:
    """The session's current kit: ``GET /me`` (unless given) and every record page."""
    return kit_from(api.server, account or api.me(), all_items(api))


def with_record(kit: Kit, item: RecordItem) -> Kit:
    """``kit`` with ``item`` added (or replaced) as the newest record."""
    rest = [r for r in kit.records if r.id != item.id]
    return kit.model_copy(update={"records": [_kit_record(item), *rest], "created_at": _now()})


def without_record(kit: Kit, record_id: str) -> Kit:
    rest = [r for r in kit.records if r.id != record_id]
    return kit.model_copy(update={"records": rest, "created_at": _now()})


# --- files -------------------------------------------------------------------------------
def cache_path() -> Path:
    """The CLI's cached kit of the logged-in account: ``$HYGIEIA_HOME/kit.json``."""
    return session_store.home() / "kit.json"


def write_kit(path: Path, kit: Kit) -> None:
    """Write ``kit`` to ``path`` whole or not at all (temporary file, fsync, rename), 0600."""
    write_private(path.resolve(), kit.to_json())


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "kit"
    if first["type"] == "extra_forbidden":
        return f"unknown field {where}"
    if first["type"] == "missing":
        return f"missing field {where}"
    return f"{where}: {first['msg']}"


def parse_kit(text: str | bytes) -> Kit:
    """A kit from its JSON, checked strictly; :class:`KitError` says what is wrong."""
    if len(text) > MAX_KIT_BYTES:
        raise KitError("larger than 2 GiB: not a recovery kit")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise KitError("not JSON: not a recovery kit") from None
    if not isinstance(data, dict) or data.get("format") != KIT_FORMAT:
        raise KitError(f"not a recovery kit (format must be {KIT_FORMAT!r})")
    version = data.get("version")
    if type(version) is not int or version != KIT_VERSION:
        raise KitError(
            f"kit version {version!r} is not one this client reads (it reads {KIT_VERSION}); "
            "a newer Hygieia may"
        )
    try:
        return Kit.model_validate(data)
    except ValidationError as exc:
        raise KitError(f"malformed kit: {_first_error(exc)}") from None


def read_kit(path: Path) -> Kit:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise KitError(f"no kit at {path}") from None
    if size > MAX_KIT_BYTES:
        raise KitError(f"{path} is larger than 2 GiB: not a recovery kit")
    return parse_kit(path.read_bytes())


# --- unlocking and listing ---------------------------------------------------------------
@dataclass(frozen=True)
class OpenedKit:
    """A kit with its vault key and unlocked secret key (client memory only)."""

    kit: Kit
    key: crypto.UnlockedKey
    vault_key: bytes = field(repr=False)
    encryption_key_id: str


def check_keys(kit: Kit) -> crypto.KeyInfo:
    """The kit's public key must have its fingerprint, and the locked secret key must be
    that key's (what the server checked at sign-up, checked again: the kit is a file)."""
    account = kit.account
    try:
        info = crypto.inspect_keys(account.public_key, account.locked_secret_key)
    except crypto.InvalidKeyMaterial as exc:
        raise KitError(f"the kit's keys are unusable: {exc}") from None
    if info.fingerprint != account.fingerprint:
        raise KitError(
            f"the kit's fingerprint {account.fingerprint} is not its public key's "
            f"({info.fingerprint}): the kit was altered"
        )
    return info


def unlock_kit(
    kit: Kit,
    *,
    password: str | None = None,
    recovery_code: str | None = None,
    floor: crypto.KdfParams | None = None,
) -> OpenedKit:
    """Unwrap the vault key with the password or the recovery code and unlock the key.

    :class:`KitError` for a kit failing a check, :class:`KdfRefused` for KDF parameters
    outside the bounds or below the floor (checked before the password is derived),
    :class:`crypto.DecryptionError` for a wrong password or code.
    """
    if (password is None) == (recovery_code is None):
        raise ValueError("give exactly one of password and recovery_code")
    info = check_keys(kit)
    account = kit.account
    if password is not None:
        trusted = vet_kdf(
            account.kdf.model_dump(), account.salt, floor=floor or kdf_floor(), remembered=None
        )
        keys = crypto.derive_keys(password, trusted.salt, trusted.kdf)
        vault_key = crypto.unwrap_vault_key(account.wrapped_vault_key, keys.wrap_key)
    else:
        assert recovery_code is not None
        try:
            code = crypto.parse_recovery_code(recovery_code)
        except ValueError as exc:
            raise crypto.DecryptionError(str(exc)) from None
        rkeys = crypto.derive_recovery_keys(code, account.recovery_salt)
        vault_key = crypto.unwrap_vault_key(account.recovery_wrapped_vault_key, rkeys.wrap_key)
    key = crypto.unlock(account.locked_secret_key, vault_key)
    if key.fingerprint != account.fingerprint:  # pragma: no cover - check_keys saw to it
        raise KitError("the kit's secret key is not its fingerprint's")
    return OpenedKit(
        kit=kit, key=key, vault_key=vault_key, encryption_key_id=info.encryption_key_id
    )


def open_record(opened: OpenedKit, rec: KitRecord) -> RecordInfo:
    """One record of the kit with its metadata opened: it must be signed by the kit's
    key and name the record's id and CID, and its PKESK must be for the kit's key."""
    try:
        meta = open_metadata(record_item(rec), opened.key)
    except RecordMismatchError as exc:
        raise KitError(
            f"record {rec.id}: its sealed metadata is another record's, or names another "
            f"CID ({exc})"
        ) from None
    except RecordVerificationError:
        raise KitError(
            f"record {rec.id}: its sealed metadata is not this account's (not signed by the "
            "kit's key, or damaged)"
        ) from None
    try:
        pkesk_for = crypto.pkesk_key_id(rec.pkesk)
    except (ValueError, crypto.CryptoError):
        pkesk_for = ""
    if pkesk_for.upper() != opened.encryption_key_id.upper():
        raise KitError(f"record {rec.id}: its PKESK is not for the kit's key")
    return RecordInfo(id=rec.id, cid=rec.cid, size=rec.size, created_at=rec.created_at, meta=meta)


def list_kit(opened: OpenedKit) -> list[RecordInfo]:
    """Every record of the kit, newest first, each checked by :func:`open_record`."""
    return [open_record(opened, rec) for rec in opened.kit.records]


class ContentFetchError(RecordVerificationError):
    """The record's ciphertext could not be fetched from IPFS, or a block failed its CID
    (``code``: ``content_unavailable`` or ``content_invalid``). Nothing was written."""

    def __init__(self, exc: ContentError) -> None:
        super().__init__(f"{exc} ({exc.code})")
        self.code = exc.code


def verified_content(rec: KitRecord, source: BlockSource, *, canonical: bool) -> Iterator[bytes]:
    """The record's ciphertext from ``source``, every block checked against its CID
    (:func:`hygieia.ipfs.verified_chunks`); failures as :class:`ContentFetchError`."""
    try:
        yield from verified_chunks(rec.cid, source, size=rec.size, canonical=canonical)
    except ContentError as exc:
        raise ContentFetchError(exc) from None


def get_offline(
    opened: OpenedKit,
    record_id: str,
    source: BlockSource,
    target: Path,
    *,
    progress: Progress = lambda _n: None,
) -> dict[str, Any]:
    """Fetch, verify and decrypt one record of the kit into ``target`` (atomically); the
    record's verified metadata. No Hygieia server is involved.

    The sealed metadata must name ``record_id`` and the kit's CID; every block must hash
    to its CID; the bytes must re-import to the sealed CID (checked while decrypting, so
    the walker's own re-import is skipped) and every segment open and verify.
    """
    rec = opened.kit.record(record_id)
    info = open_record(opened, rec)
    decrypt_into(
        verified_content(rec, source, canonical=False),
        item=record_item(rec),
        meta=info.meta,
        key=opened.key,
        target=target,
        progress=progress,
    )
    return info.meta
