"""Request and response schemas. Binary values travel as standard base64 strings."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from hygieia.encoding import to_b64

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,190}$")
MAX_KEY_CHARS = 64 * 1024


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise ValueError("not a valid email address")
    return value


def _b64_decoder(min_len: int, max_len: int) -> BeforeValidator:
    """A base64 string on the wire becomes ``bytes`` of a bounded length in Python."""
    max_chars = (max_len + 2) // 3 * 4

    def decode(value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("must be a base64 string")
        if len(value) > max_chars:
            raise ValueError("value too long")
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise ValueError("invalid base64") from exc
        if not min_len <= len(raw) <= max_len:
            raise ValueError(f"decoded length must be {min_len}..{max_len} bytes")
        return raw

    return BeforeValidator(decode)


_B64_OUT = PlainSerializer(to_b64, return_type=str)
_B64_SCHEMA = WithJsonSchema({"type": "string", "contentEncoding": "base64"})


Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_email)]
Key32 = Annotated[bytes, _b64_decoder(32, 32), _B64_OUT, _B64_SCHEMA]
Salt = Annotated[bytes, _b64_decoder(16, 16), _B64_OUT, _B64_SCHEMA]
Wrapped = Annotated[bytes, _b64_decoder(61, 61), _B64_OUT, _B64_SCHEMA]
ArmoredKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]
Token = Annotated[str, Field(min_length=1, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class KdfParamsIn(Strict):
    alg: str = Field(max_length=16)
    v: int
    m: int
    t: int
    p: int


class PreloginPublic(BaseModel):
    kdf: dict[str, Any]
    salt: str
    recovery_salt: str


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


class SignupPublic(BaseModel):
    id: str
    email: str
    fingerprint: str


class LoginCreate(Strict):
    email: Email
    auth_key: Key32


class AccountPublic(BaseModel):
    id: str
    email: str
    fingerprint: str
    encryption_key_id: str
    public_key: str
    locked_secret_key: str
    wrapped_vault_key: str
    kdf: dict[str, Any]
    salt: str
    created_at: datetime


class SessionPublic(BaseModel):
    token: str
    expires_at: datetime
    account: AccountPublic


class PasswordChange(Strict):
    auth_key: Key32
    new_auth_key: Key32
    new_salt: Salt
    new_kdf: KdfParamsIn
    new_wrapped_vault_key: Wrapped


class RecoverCreate(Strict):
    email: Email
    recovery_auth: Key32


class RecoveryPublic(BaseModel):
    recovery_token: str
    recovery_salt: str
    recovery_wrapped_vault_key: str


class RecoverComplete(Strict):
    recovery_token: Token
    new_auth_key: Key32
    new_salt: Salt
    new_kdf: KdfParamsIn
    new_wrapped_vault_key: Wrapped


class UserKeyLookup(Strict):
    email: Email


class UserKeyPublic(BaseModel):
    email: str
    fingerprint: str
    public_key: str


class ClientConfigPublic(BaseModel):
    idle_lock_seconds: int
    max_record_bytes: int


class ErrorPublic(BaseModel):
    code: str
    detail: str


class RecordPublic(BaseModel):
    id: str
    cid: str
    size: int
    segments: int
    created_at: datetime
    pkesk: str
    sealed_metadata: str
    envelope: str


class RecordList(BaseModel):
    items: list[RecordPublic]
    next_cursor: str | None


def render_record_list(items: list[str], next_cursor: str | None) -> bytes:
    """``RecordList`` JSON from the records' stored renderings (``records.render_public``)."""
    cursor = "null" if next_cursor is None else json.dumps(next_cursor)
    return f'{{"items":[{",".join(items)}],"next_cursor":{cursor}}}'.encode()


class AuditEventPublic(BaseModel):
    event: str
    at: datetime
    address: str | None
