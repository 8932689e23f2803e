"""Request and response schemas. Binary values travel as standard base64 strings.

Request models are strict (no extra fields, no coercion) and bound every value; response
models are built straight from the services' objects (``from_attributes``), their bytes
rendered as base64 by the same types.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from hygieia import crypto
from hygieia.encoding import from_b64, to_b64
from hygieia.errors import BadRequest, PayloadTooLarge, from_validation_errors
from hygieia.ipfs import parse_cid
from hygieia.services.accounts import NewPassword
from hygieia.services.factors import FactorProof

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,190}$")
MAX_KEY_CHARS = 64 * 1024
#: Bounds of an upload's ``meta`` part and of the key packets it carries.
MAX_META_JSON = 256 * 1024
MAX_PKESK = 1024
MAX_ENVELOPE = 8 * 1024
MAX_SEALED_METADATA = 64 * 1024
MAX_CID_CHARS = 128


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise ValueError("not a valid email address")
    return value


def _b64_decoder(min_len: int, max_len: int | None = None) -> BeforeValidator:
    """A base64 string on the wire becomes ``bytes`` of a bounded length in Python.

    ``bytes`` given in Python (a response built from a row) are taken as they are: JSON
    has no bytes, so this opens nothing on the wire.
    """
    max_chars = None if max_len is None else (max_len + 2) // 3 * 4

    def decode(value: object) -> bytes:
        if isinstance(value, bytes):
            raw = value
        elif not isinstance(value, str):
            raise ValueError("must be a base64 string")
        elif max_chars is not None and len(value) > max_chars:
            raise ValueError("value too long")
        else:
            try:
                raw = from_b64(value)
            except (UnicodeEncodeError, ValueError) as exc:
                raise ValueError("invalid base64") from exc
        if len(raw) < min_len or (max_len is not None and len(raw) > max_len):
            raise ValueError(f"decoded length must be {min_len}..{max_len} bytes")
        return raw

    return BeforeValidator(decode)


_B64_OUT = PlainSerializer(to_b64, return_type=str)
_B64_SCHEMA = WithJsonSchema({"type": "string", "contentEncoding": "base64"})


def _record_id(value: str) -> str:
    # One spelling only: clients compare the id they asked for with the sealed one.
    if not crypto.is_record_id(value):
        raise ValueError("a random UUID (version 4) in lowercase canonical form")
    return value


def _canonical_cid(value: str) -> str:
    try:
        return str(parse_cid(value))
    except ValueError as exc:
        raise ValueError("not a valid CID") from exc


Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_email)]
Key32 = Annotated[bytes, _b64_decoder(32, 32), _B64_OUT, _B64_SCHEMA]
Salt = Annotated[bytes, _b64_decoder(16, 16), _B64_OUT, _B64_SCHEMA]
Wrapped = Annotated[bytes, _b64_decoder(61, 61), _B64_OUT, _B64_SCHEMA]
Pkesk = Annotated[bytes, _b64_decoder(1, MAX_PKESK), _B64_OUT, _B64_SCHEMA]
Envelope = Annotated[bytes, _b64_decoder(1, MAX_ENVELOPE), _B64_OUT, _B64_SCHEMA]
SealedMetadata = Annotated[bytes, _b64_decoder(1, MAX_SEALED_METADATA), _B64_OUT, _B64_SCHEMA]
#: Bytes in a response: base64 on the wire, unbounded (the server made them).
Base64 = Annotated[bytes, _b64_decoder(0), _B64_OUT, _B64_SCHEMA]
ArmoredKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]
Token = Annotated[str, Field(min_length=1, max_length=256)]
Cid = Annotated[str, Field(min_length=1, max_length=MAX_CID_CHARS), AfterValidator(_canonical_cid)]
RecordId = Annotated[str, Field(min_length=36, max_length=36), AfterValidator(_record_id)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Public(BaseModel):
    """A response, read from a service's object (an ORM row or a dataclass)."""

    model_config = ConfigDict(from_attributes=True)


class KdfParamsIn(Strict):
    alg: str = Field(max_length=16)
    v: int
    m: int
    t: int
    p: int


class PreloginPublic(Public):
    kdf: dict[str, Any]
    salt: Base64
    recovery_salt: Base64


class SignupCreate(Strict):
    email: Email
    kdf: KdfParamsIn
    salt: Salt
    recovery_salt: Salt
    auth_key: Key32
    public_key: ArmoredKey
    locked_secret_key: ArmoredKey
    wrapped_vault_key: Wrapped
    recovery_wrapped_vault_key: Wrapped
    recovery_verifier: Key32


class SignupPublic(Public):
    id: str
    email: str
    fingerprint: str


class LoginCreate(Strict):
    email: Email
    auth_key: Key32


class AccountPublic(Public):
    id: str
    email: str
    fingerprint: str
    encryption_key_id: str
    public_key: str
    locked_secret_key: str
    wrapped_vault_key: Base64
    kdf: dict[str, Any]
    salt: Base64
    #: For the recovery kit (protocol §6): the account's own, already on the server.
    recovery_salt: Base64
    recovery_wrapped_vault_key: Base64
    created_at: datetime


class SessionPublic(Public):
    token: str
    expires_at: datetime
    account: AccountPublic
    #: A recovery removed the account's second factors (protocol §10).
    factors_removed: bool = False


# --- second factors (protocol §10) -------------------------------------------------------
MAX_CREDENTIAL_JSON = 16 * 1024


def _label(value: str) -> str:
    value = value.strip()
    if not value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("a label is 1-64 printable characters")
    return value


def _credential(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False)) > MAX_CREDENTIAL_JSON:
        raise ValueError("credential too large")
    return value


FactorLabel = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_label)]
FactorCode = Annotated[str, Field(min_length=1, max_length=64)]
Credential = Annotated[dict[str, Any], AfterValidator(_credential)]
MethodName = Literal["totp", "backup_code", "passkey"]


class PendingLoginPublic(Public):
    """``POST /auth/login`` when the account has a second factor: no session yet."""

    factor_required: Literal[True]
    pending_token: str
    methods: list[MethodName]
    expires_at: datetime


class FactorProofIn(Strict):
    method: MethodName
    code: FactorCode | None = None
    credential: Credential | None = None

    def proof(self) -> FactorProof:
        return FactorProof(method=self.method, code=self.code, credential=self.credential)


class LoginFactorCreate(FactorProofIn):
    pending_token: Token


class PendingTokenIn(Strict):
    pending_token: Token


class FactorPublic(Public):
    id: str
    kind: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


class FactorListPublic(Public):
    factors: list[FactorPublic]
    backup_codes_left: int


class TotpCreate(Strict):
    label: FactorLabel = "Authenticator app"


class TotpEnrolmentPublic(Public):
    factor_id: str
    secret: str
    otpauth_uri: str


class TotpConfirm(Strict):
    code: FactorCode


class FactorConfirmedPublic(Public):
    factor: FactorPublic
    #: The ten backup codes, shown once: only with the account's first factor.
    backup_codes: list[str] | None


class SensitiveProof(Strict):
    """The password proof and, for an account with factors, a current factor."""

    auth_key: Key32
    factor: FactorProofIn | None = None

    def proof(self) -> FactorProof | None:
        return None if self.factor is None else self.factor.proof()


class PasskeyCreate(Strict):
    """``navigator.credentials.create()``'s answer (``RegistrationResponseJSON``)."""

    label: FactorLabel = "Passkey"
    credential: Credential


class PasskeyOptionsPublic(Public):
    """WebAuthn options as JSON (``PublicKeyCredential{Creation,Request}OptionsJSON``)."""

    options: dict[str, Any]


class BackupCodesPublic(Public):
    backup_codes: list[str]


class _NewPasswordIn(Strict):
    """What a password change and a recovery both install, all of it made by the client."""

    new_auth_key: Key32
    new_salt: Salt
    new_kdf: KdfParamsIn
    new_wrapped_vault_key: Wrapped

    def new_password(self) -> NewPassword:
        return NewPassword(
            auth_key=self.new_auth_key,
            salt=self.new_salt,
            kdf=self.new_kdf.model_dump(),
            wrapped_vault_key=self.new_wrapped_vault_key,
        )


class PasswordChange(_NewPasswordIn):
    auth_key: Key32


class RecoverCreate(Strict):
    email: Email
    recovery_auth: Key32


class RecoveryPublic(Public):
    recovery_token: str
    recovery_salt: Base64
    recovery_wrapped_vault_key: Base64
    #: Only during a key rotation (protocol "Key rotation"): the pending vault key.
    pending_recovery_wrapped_vault_key: Base64 | None = None


class RecoverComplete(_NewPasswordIn):
    recovery_token: Token
    #: Required during a key rotation: the pending vault key under the new password.
    new_pending_wrapped_vault_key: Wrapped | None = None


class UserKeyLookup(Strict):
    email: Email


class UserKeyPublic(Public):
    email: str
    fingerprint: str
    public_key: str


class ClientConfigPublic(BaseModel):
    idle_lock_seconds: int
    max_record_bytes: int
    #: Gateway origins the page's CSP lets it connect to (``HYGIEIA_GATEWAY_ORIGINS``).
    gateway_origins: list[str] = []
    #: The largest share link, in JWE bytes (``HYGIEIA_MAX_LINK_BYTES``, protocol §9).
    max_link_bytes: int = 0


class RecordMetaCreate(Strict):
    """The ``meta`` part of an upload: what the client announces about the ciphertext.

    ``id`` is the record id the client chose and sealed into the metadata (protocol §3,
    "Binding"); clients from before that send none and the server makes one.
    """

    id: RecordId | None = None
    cid: Cid
    size: int = Field(ge=1)
    segments: int = Field(ge=1)
    pkesk: Pkesk
    sealed_metadata: SealedMetadata
    envelope: Envelope

    @model_validator(mode="after")
    def _segments_fit_size(self) -> Self:
        # Checked before a byte is stored: a record of this size has at most this many.
        if self.segments > self.size // crypto.SEGMENT_SIZE + 1:
            raise ValueError("segments: more than a record of this size has")
        return self

    @classmethod
    def from_part(cls, raw: bytes, *, max_record_bytes: int) -> RecordMetaCreate:
        """Parse the part's bytes; bad JSON (too deeply nested included) is a
        :class:`BadRequest`, a record over the configured limit :class:`PayloadTooLarge`."""
        if len(raw) > MAX_META_JSON:
            raise PayloadTooLarge("meta part too large")
        try:
            meta = cls.model_validate_json(raw)
        except ValidationError as exc:
            unparseable = BadRequest("meta part is not valid UTF-8 JSON")
            raise from_validation_errors(exc.errors(), unparseable=unparseable) from None
        if meta.size > max_record_bytes:
            raise PayloadTooLarge("record larger than the configured limit")
        return meta


class CopiesPublic(BaseModel):
    """How many of the configured stores hold a good copy of the record (by the last
    check), of how many. Counts only: which stores they are is the operator's business."""

    ok: int
    total: int


class RecordPublic(Public):
    id: str
    cid: str
    size: int
    segments: int
    created_at: datetime
    pkesk: Base64
    sealed_metadata: Base64
    envelope: Base64
    copies: CopiesPublic | None = None


class RecordList(BaseModel):
    items: list[RecordPublic]
    next_cursor: str | None


def render_record_list(items: list[str], next_cursor: str | None) -> bytes:
    """``RecordList`` JSON from the records' stored renderings (``records.render_public``)."""
    cursor = "null" if next_cursor is None else json.dumps(next_cursor)
    return f'{{"items":[{",".join(items)}],"next_cursor":{cursor}}}'.encode()


class AuditDetailPublic(BaseModel):
    """What an audit event may show of its ``detail``: sharing events' record, grant and
    recipient (protocol §7), emergency events' contact (§9), link events' link,
    recipient and passcode attempts left (§9). Nothing else in a ``detail`` is ever
    returned."""

    model_config = ConfigDict(extra="ignore")

    record_id: str | None = None
    grant_id: str | None = None
    recipient: str | None = None
    #: Emergency access events (protocol §8): the contact entry and the contact's email.
    emergency_id: str | None = None
    contact: str | None = None
    link_id: str | None = None
    remaining_attempts: int | None = None
    #: Session events (protocol §11): which session was revoked.
    session_id: str | None = None


class AuditEventPublic(Public):
    """One event of the owner's trail: what, when, from which address and client (the
    client's own claims: ``X-Hygieia-Client`` kind and cleaned ``User-Agent``)."""

    id: int
    event: str
    at: datetime
    address: str | None
    #: "cli", "web", "other"; null for events no client caused (protocol §11).
    client: str | None
    user_agent: str | None
    detail: AuditDetailPublic = Field(default_factory=AuditDetailPublic)

    @model_validator(mode="before")
    @classmethod
    def _safe_detail(cls, value: Any) -> Any:
        # From an AuditEvent row: only the keys AuditDetailPublic names, never None ones.
        detail = getattr(value, "detail", None)
        if detail is None:
            return value
        safe = {
            k: v
            for k, v in dict(detail).items()
            if k in _AUDIT_DETAIL_KEYS and v is not None and v != ""
        }
        return {
            "id": value.id,
            "event": value.event,
            "at": value.at,
            "address": value.address,
            "client": value.client,
            "user_agent": value.user_agent,
            "detail": safe,
        }


_AUDIT_DETAIL_KEYS = frozenset(AuditDetailPublic.model_fields)


class AuditPage(Public):
    """``GET /audit``: one page of the trail, newest first; ``next`` is the ``before``
    cursor of the next page (``null`` on the last)."""

    events: list[AuditEventPublic]
    next: int | None


class SessionInfoPublic(Public):
    """One of my live sessions (protocol §11); ``current`` marks the one asking."""

    id: str
    client: str
    user_agent: str | None
    address: str | None
    created_at: datetime
    last_used_at: datetime | None
    current: bool


class SessionsRevoked(Public):
    revoked: int


# --- sharing (protocol §7) ----------------------------------------------------------------
MAX_GRANTS_PER_REQUEST = 100


class GrantCreate(Strict):
    """One grant: the recipient's PKESK of the record's session key and the record's
    sealed metadata for the recipient (signed by the owner), made by the owner's client."""

    record_id: RecordId
    email: Email
    pkesk: Pkesk
    sealed_metadata: SealedMetadata


class GrantsCreate(Strict):
    grants: list[GrantCreate] = Field(min_length=1, max_length=MAX_GRANTS_PER_REQUEST)

    @model_validator(mode="after")
    def _no_pair_twice(self) -> Self:
        pairs = [(g.record_id, g.email) for g in self.grants]
        if len(set(pairs)) != len(pairs):
            raise ValueError("a (record_id, email) pair appears twice")
        return self


class GrantPublic(Public):
    id: str
    record_id: str
    email: str
    fingerprint: str
    created_at: datetime


class GrantList(BaseModel):
    items: list[GrantPublic]


class GrantPage(BaseModel):
    items: list[GrantPublic]
    next_cursor: str | None


class SharedOwnerPublic(Public):
    email: str
    fingerprint: str
    public_key: str


class SharedRecordPublic(Public):
    """A record shared with the caller: the record's CID and sizes, the caller's own key
    packets, and who shared it."""

    id: str
    grant_id: str
    cid: str
    size: int
    segments: int
    created_at: datetime
    granted_at: datetime
    owner: SharedOwnerPublic
    pkesk: Base64
    sealed_metadata: Base64


class SharedRecordPage(BaseModel):
    items: list[SharedRecordPublic]
    next_cursor: str | None


# --- emergency access (protocol §8) -------------------------------------------------------
MAX_SEALED_VAULT_KEY = 8 * 1024
SealedVaultKey = Annotated[bytes, _b64_decoder(1, MAX_SEALED_VAULT_KEY), _B64_OUT, _B64_SCHEMA]


class EmergencyContactCreate(Strict):
    """A trusted contact: the owner's vault key sealed by the owner's client to the
    contact's key, and the waiting period in days."""

    email: Email
    wait_days: int = Field(ge=1, le=30)
    sealed_vault_key: SealedVaultKey


class EmergencyContactPublic(Public):
    id: str
    email: str
    fingerprint: str
    wait_days: int
    created_at: datetime
    #: ``idle`` (nothing asked), ``requested`` (waiting until ``release_at``), ``granted``.
    status: str
    requested_at: datetime | None
    release_at: datetime | None


class EmergencyContactList(BaseModel):
    items: list[EmergencyContactPublic]


class EmergencyAccessPublic(Public):
    """An owner whose emergency contact the caller is."""

    id: str
    owner: SharedOwnerPublic
    wait_days: int
    created_at: datetime
    status: str
    requested_at: datetime | None
    release_at: datetime | None


class EmergencyAccessList(BaseModel):
    items: list[EmergencyAccessPublic]


class EmergencyVaultPublic(Public):
    """A released access: the sealed vault key and the owner's locked secret key."""

    id: str
    owner: SharedOwnerPublic
    sealed_vault_key: Base64
    locked_secret_key: str


# --- SMART Health Links (protocol §9) -------------------------------------------------------
MAX_SEALED_LABEL = 16 * 1024
SealedLabel = Annotated[bytes, _b64_decoder(1, MAX_SEALED_LABEL), _B64_OUT, _B64_SCHEMA]


class LinkFileCreate(Strict):
    content_type: Annotated[str, Field(min_length=1, max_length=64)]
    size: Annotated[int, Field(ge=1)]


class LinkCreate(Strict):
    """A link's policy (the ``meta`` part of ``POST /links``); its files follow."""

    flag: Annotated[str, Field(max_length=8)] = ""
    # An aware ISO 8601 time (strict mode takes it as a string: JSON has no datetime).
    expires_at: Annotated[datetime, Field(strict=False)]
    max_opens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    passcode: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    sealed_label: SealedLabel | None = None
    record_ids: Annotated[list[RecordId], Field(max_length=20)] = Field(default_factory=list)
    files: Annotated[list[LinkFileCreate], Field(min_length=1, max_length=20)]

    @model_validator(mode="after")
    def _aware(self) -> Self:
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a UTC offset")
        return self

    @classmethod
    def from_part(cls, raw: bytes) -> LinkCreate:
        if len(raw) > MAX_META_JSON:
            raise PayloadTooLarge("meta part too large")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            unparseable = BadRequest("meta part is not valid UTF-8 JSON")
            raise from_validation_errors(exc.errors(), unparseable=unparseable) from None


class LinkPublic(Public):
    """A link as its owner sees it (never its token, key or passcode)."""

    id: str
    flag: str
    state: str
    sealed_label: Base64 | None
    record_ids: list[str]
    passcode: bool
    attempts_left: int | None
    max_opens: int | None
    opens: int
    files: int
    size: int
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None


class LinkCreated(LinkPublic):
    """The new link with its manifest path: shown once, the server keeps a hash."""

    path: str


class LinkList(BaseModel):
    items: list[LinkPublic]


class ManifestRequestIn(BaseModel):
    """The SHL spec's manifest request body (unknown members are ignored, as the spec
    asks of its JSON)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    recipient: Annotated[str, Field(min_length=1, max_length=1024)]
    passcode: Annotated[str | None, Field(max_length=256)] = None
    embeddedLengthMax: Annotated[int | None, Field(ge=0)] = None  # the spec's name


# --- key and recovery-code rotation (protocol "Key rotation") -----------------------------
Uuid = Annotated[str, Field(min_length=36, max_length=36)]


class KeyRotationCreate(SensitiveProof):
    """A new identity made by the client: the new vault key wrapped under the same
    password-derived and recovery-derived keys as the current one (with the password
    proof and, for an account with factors, a current factor)."""

    public_key: ArmoredKey
    locked_secret_key: ArmoredKey
    wrapped_vault_key: Wrapped
    recovery_wrapped_vault_key: Wrapped


class PendingKeyPublic(Public):
    fingerprint: str
    encryption_key_id: str
    public_key: str
    locked_secret_key: str
    wrapped_vault_key: Base64
    recovery_wrapped_vault_key: Base64
    started_at: datetime


class KeyRotationPublic(Public):
    pending: PendingKeyPublic | None
    #: Records still sealed to the old key, and (at most 500 of) their ids, oldest first.
    remaining: int
    record_ids: list[str]
    #: What the commit must re-seal: every emergency contact, every labelled link.
    emergency_contact_ids: list[str]
    link_ids: list[str]


class RecordKeysUpdate(Strict):
    """A record's key packets for the pending key; ``expected_fingerprint`` is the key
    the record is sealed to now (the swap is refused if it is not)."""

    expected_fingerprint: Annotated[str, Field(min_length=40, max_length=40)]
    pkesk: Pkesk
    sealed_metadata: SealedMetadata
    envelope: Envelope


class EmergencyKeyIn(Strict):
    id: Uuid
    sealed_vault_key: SealedVaultKey


class LinkLabelIn(Strict):
    id: Uuid
    sealed_label: SealedLabel


class KeyRotationCommit(Strict):
    emergency_keys: Annotated[list[EmergencyKeyIn], Field(max_length=100)] = Field(
        default_factory=list
    )
    link_labels: Annotated[list[LinkLabelIn], Field(max_length=10_000)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if len({e.id for e in self.emergency_keys}) != len(self.emergency_keys):
            raise ValueError("an emergency contact twice")
        if len({lbl.id for lbl in self.link_labels}) != len(self.link_labels):
            raise ValueError("a link twice")
        return self


class RecoveryRotate(SensitiveProof):
    """A new recovery code (with the password proof and, if the account has any, a factor)."""

    recovery_salt: Salt
    recovery_verifier: Key32
    recovery_wrapped_vault_key: Wrapped
