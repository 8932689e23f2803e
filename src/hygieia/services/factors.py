"""Second factors (protocol §10): TOTP, backup codes, and the proof of either.

A second factor is asked for after the zero-knowledge ``auth_key`` proof and before a
session exists (``services.accounts.login`` then ``login_factor``), and again, with the
password proof, for sensitive actions (removing a factor, new backup codes, deleting the
account): :func:`verify_proof`. Nothing about the password or the keys changes.

- TOTP (RFC 6238: SHA-1, 6 digits, 30 s): the server makes the secret (it must check
  codes), seals it at rest with AES-256-GCM under a random key kept in
  ``server_secrets`` (name ``totp-seal``), bound to the factor's id. A code is accepted
  one step either side of now, and only once: ``last_totp_step`` moves forward with a
  conditional update, so a replayed (or raced) code is refused.
- Backup codes: ten per account, 60 random bits each (12 base32 characters), shown
  once; only a salted HMAC-SHA-256 of each is kept; each works once.
- Passkeys (WebAuthn) plug in here: :func:`verify_proof` hands ``method == "passkey"``
  to :data:`passkey_verifier`, which refuses until a passkey module installs one.

Nothing here logs or audits a secret, a code or a token; audit ``detail`` holds at most
``{factor_id, kind, label}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from hygieia.db.models import AuthSession, BackupCode, User, UserFactor
from hygieia.errors import FactorInvalid, FactorNotFound, FactorRequired, TooManyFactors
from hygieia.services.audit import ClientInfo, record_event
from hygieia.services.common import Clock, rowcount, server_secret, utcnow

Method = Literal["totp", "backup_code", "passkey"]

ISSUER = "Hygieia"
TOTP_PERIOD = 30
TOTP_DIGITS = 6
#: Steps either side of now that a code may come from (clock drift, typing time).
TOTP_WINDOW = 1
BACKUP_CODES = 10
BACKUP_CODE_CHARS = 12  # base32: 60 bits
#: Confirmed and unconfirmed factors together, per account.
MAX_FACTORS = 10
SEAL_KEY_NAME = "totp-seal"
_NONCE = 12
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class FactorProof:
    """What a client offers as a second factor (wire: protocol §10 ``FactorProof``)."""

    method: Method
    code: str | None = None
    credential: dict[str, Any] | None = None


@dataclass(frozen=True)
class TotpEnrolment:
    factor_id: str
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class Confirmed:
    factor: UserFactor
    #: Fresh backup codes when this was the account's first confirmed factor.
    backup_codes: list[str] | None


@dataclass(frozen=True)
class FactorList:
    factors: list[UserFactor]
    backup_codes_left: int


#: Checks a passkey assertion (the passkey module installs the real one). Arguments: the
#: database, the account, the assertion, the row holding the challenge, the clock.
#: Returns the factor used, or raises :class:`FactorInvalid`.
PasskeyVerifier = Callable[[Session, User, dict[str, Any], AuthSession | None, Clock], UserFactor]


def _no_passkeys(
    db: Session, user: User, credential: dict[str, Any], row: AuthSession | None, now: Clock
) -> UserFactor:
    raise FactorInvalid("passkeys are not supported by this server")


passkey_verifier: PasskeyVerifier = _no_passkeys


# --- TOTP secrets at rest ----------------------------------------------------------------
def _seal_key(db: Session) -> bytes:
    return server_secret(db, SEAL_KEY_NAME)


def seal_secret(key: bytes, factor_id: str, secret: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    aad = b"hygieia-totp\x00" + factor_id.encode("ascii")
    return nonce + AESGCM(key).encrypt(nonce, secret.encode("ascii"), aad)


def open_secret(key: bytes, factor_id: str, sealed: bytes) -> str:
    aad = b"hygieia-totp\x00" + factor_id.encode("ascii")
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad).decode("ascii")
    except (InvalidTag, ValueError) as exc:  # a row moved between factors, or damaged
        raise FactorInvalid() from exc


# --- small helpers -----------------------------------------------------------------------
def _confirmed(db: Session, user_id: str) -> list[UserFactor]:
    return list(
        db.scalars(
            select(UserFactor)
            .where(UserFactor.user_id == user_id, UserFactor.confirmed_at.is_not(None))
            .order_by(UserFactor.created_at, UserFactor.id)
        )
    )


def _unused_codes(db: Session, user_id: str) -> list[BackupCode]:
    return list(
        db.scalars(
            select(BackupCode).where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
        )
    )


def methods_for(db: Session, user_id: str) -> list[Method]:
    """The second factors a login may use now; empty: the account has none."""
    kinds = {f.kind for f in _confirmed(db, user_id)}
    if not kinds:
        return []
    out: list[Method] = []
    if "totp" in kinds:
        out.append("totp")
    if "passkey" in kinds:
        out.append("passkey")
    if _unused_codes(db, user_id):
        out.append("backup_code")
    return out


def has_factors(db: Session, user_id: str) -> bool:
    count = db.scalar(
        select(func.count())
        .select_from(UserFactor)
        .where(UserFactor.user_id == user_id, UserFactor.confirmed_at.is_not(None))
    )
    return bool(count)


def _digits(code: str) -> str:
    return "".join(ch for ch in code if not ch.isspace())


def normalise_backup_code(code: str) -> str:
    """Upper case, without spaces or dashes (how codes are shown: ``ABCD-EFGH-JKLM``)."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def _hash_code(code: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    mac = hmac.new(salt, normalise_backup_code(code).encode("ascii"), hashlib.sha256)
    return f"{salt.hex()}${mac.hexdigest()}"


def _code_matches(code: str, stored: str) -> bool:
    salt_hex, _, _ = stored.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return hmac.compare_digest(_hash_code(code, salt), stored)


def _new_backup_code() -> str:
    raw = "".join(secrets.choice(_B32) for _ in range(BACKUP_CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, BACKUP_CODE_CHARS, 4))


def _step(at: datetime) -> int:
    return int(at.timestamp()) // TOTP_PERIOD


# --- enrolment ---------------------------------------------------------------------------
def start_totp(db: Session, *, user: User, label: str, now: Clock = utcnow) -> TotpEnrolment:
    """A new, unconfirmed TOTP factor; earlier unconfirmed ones of the account go."""
    key = _seal_key(db)  # may commit: before anything else is added
    db.execute(
        delete(UserFactor).where(UserFactor.user_id == user.id, UserFactor.confirmed_at.is_(None))
    )
    count = db.scalar(
        select(func.count()).select_from(UserFactor).where(UserFactor.user_id == user.id)
    )
    if (count or 0) >= MAX_FACTORS:
        db.rollback()
        raise TooManyFactors()
    secret = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    factor = UserFactor(user_id=user.id, kind="totp", label=label, created_at=now(), sign_count=0)
    db.add(factor)
    db.flush()  # the id binds the sealed secret
    factor.totp_secret = seal_secret(key, factor.id, secret)
    db.commit()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return TotpEnrolment(factor_id=factor.id, secret=secret, otpauth_uri=uri)


def _own_factor(db: Session, user: User, factor_id: str) -> UserFactor:
    factor = db.get(UserFactor, factor_id)
    if factor is None or factor.user_id != user.id:
        raise FactorNotFound()
    return factor


def _check_totp(db: Session, factor: UserFactor, code: str, key: bytes, now: Clock) -> bool:
    """True if ``code`` is a current code of ``factor`` not used before; uses it up."""
    code = _digits(code)
    if len(code) != TOTP_DIGITS or not code.isdigit() or factor.totp_secret is None:
        return False
    totp = pyotp.TOTP(open_secret(key, factor.id, factor.totp_secret))
    at = now()
    current = _step(at)
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if not hmac.compare_digest(totp.generate_otp(step), code):
            continue
        # Single use: only a step later than the last accepted one, claimed atomically.
        used = db.execute(
            update(UserFactor)
            .where(
                UserFactor.id == factor.id,
                or_(UserFactor.last_totp_step.is_(None), UserFactor.last_totp_step < step),
            )
            .values(last_totp_step=step, last_used_at=at)
            .execution_options(synchronize_session=False)
        )
        if rowcount(used) == 1:
            db.refresh(factor)  # the update bypassed the ORM
            return True
        return False
    return False


def confirm_totp(
    db: Session,
    *,
    user: User,
    factor_id: str,
    code: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> Confirmed:
    """Confirm an enrolment with its first code; the first factor brings backup codes."""
    key = _seal_key(db)
    factor = _own_factor(db, user, factor_id)
    if factor.kind != "totp" or factor.confirmed_at is not None:
        raise FactorNotFound()
    if not _check_totp(db, factor, code, key, now):
        db.rollback()
        raise FactorInvalid()
    return _confirm(db, user=user, factor=factor, address=address, client=client, now=now)


def _confirm(
    db: Session,
    *,
    user: User,
    factor: UserFactor,
    address: str | None,
    client: ClientInfo | None = None,
    now: Clock,
) -> Confirmed:
    """Mark ``factor`` confirmed (audited, committed); passkey enrolment uses it too."""
    first = not has_factors(db, user.id)
    factor.confirmed_at = now()
    codes = _replace_backup_codes(db, user_id=user.id, now=now) if first else None
    record_event(
        db,
        event="auth.factor_added",
        user_id=user.id,
        address=address,
        client=client,
        detail=_detail(factor),
        now=now,
    )
    db.commit()
    return Confirmed(factor=factor, backup_codes=codes)


confirm_factor = _confirm


def _detail(factor: UserFactor) -> dict[str, Any]:
    return {"factor_id": factor.id, "kind": factor.kind, "label": factor.label}


def _replace_backup_codes(db: Session, *, user_id: str, now: Clock) -> list[str]:
    db.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    codes = [_new_backup_code() for _ in range(BACKUP_CODES)]
    at = now()
    for code in codes:
        db.add(BackupCode(user_id=user_id, code_hash=_hash_code(code), created_at=at))
    return codes


def list_factors(db: Session, *, user: User) -> FactorList:
    return FactorList(
        factors=_confirmed(db, user.id), backup_codes_left=len(_unused_codes(db, user.id))
    )


# --- proofs ------------------------------------------------------------------------------
def _use_backup_code(db: Session, user: User, code: str, now: Clock) -> BackupCode | None:
    normal = normalise_backup_code(code)
    if len(normal) != BACKUP_CODE_CHARS or any(ch not in _B32 for ch in normal):
        return None
    for row in _unused_codes(db, user.id):
        if not _code_matches(normal, row.code_hash):
            continue
        used = db.execute(
            update(BackupCode)
            .where(BackupCode.id == row.id, BackupCode.used_at.is_(None))
            .values(used_at=now())
            .execution_options(synchronize_session=False)
        )
        return row if rowcount(used) == 1 else None
    return None


def verify_proof(
    db: Session,
    *,
    user: User,
    proof: FactorProof | None,
    session: AuthSession | None = None,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> UserFactor | BackupCode | None:
    """Check a second factor of ``user``; None if the account has none (nothing to prove).

    Raises :class:`FactorRequired` when the account has factors and ``proof`` is None,
    :class:`FactorInvalid` when the proof is wrong or was used before. ``session`` is the
    row holding a passkey challenge (a pending login or the user's session). The use
    (step, backup code) is written in ``db`` and not committed: the caller commits with
    the rest of what the proof allowed, or records the failure. A backup code used is
    audited here (``auth.backup_code_used``).
    """
    factors = _confirmed(db, user.id)
    if not factors:
        return None
    if proof is None:
        raise FactorRequired()
    if proof.method == "totp":
        key = _seal_key(db)
        for factor in factors:
            if factor.kind == "totp" and _check_totp(db, factor, proof.code or "", key, now):
                return factor
        raise FactorInvalid()
    if proof.method == "backup_code":
        used = _use_backup_code(db, user, proof.code or "", now)
        if used is None:
            raise FactorInvalid()
        record_event(
            db,
            event="auth.backup_code_used",
            user_id=user.id,
            address=address,
            client=client,
            now=now,
        )
        return used
    if proof.method == "passkey":
        if proof.credential is None or not any(f.kind == "passkey" for f in factors):
            raise FactorInvalid()
        return passkey_verifier(db, user, proof.credential, session, now)
    raise FactorInvalid()


# --- removal -----------------------------------------------------------------------------
def remove_factor(
    db: Session,
    *,
    user: User,
    factor_id: str,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> None:
    """Delete a factor (after the caller's password and factor proof); the last one
    takes the backup codes with it. Part of the caller's transaction; commits."""
    factor = _own_factor(db, user, factor_id)
    detail = _detail(factor)
    db.delete(factor)
    db.flush()
    if not has_factors(db, user.id):
        db.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    record_event(
        db,
        event="auth.factor_removed",
        user_id=user.id,
        address=address,
        client=client,
        detail=detail,
        now=now,
    )
    db.commit()


def renew_backup_codes(
    db: Session,
    *,
    user: User,
    address: str | None = None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> list[str]:
    """Ten new backup codes (after the caller's proofs); the old ones die. Commits."""
    if not has_factors(db, user.id):
        raise FactorNotFound("backup codes come with a second factor: add one first")
    codes = _replace_backup_codes(db, user_id=user.id, now=now)
    record_event(
        db,
        event="auth.backup_codes_renewed",
        user_id=user.id,
        address=address,
        client=client,
        now=now,
    )
    db.commit()
    return codes


def remove_all(
    db: Session,
    *,
    user_id: str,
    address: str | None,
    client: ClientInfo | None = None,
    now: Clock = utcnow,
) -> bool:
    """Recovery: every factor and backup code of the account goes (not committed).

    True if the account had a confirmed factor (then ``auth.factors_removed`` is recorded).
    """
    had = has_factors(db, user_id)
    db.execute(delete(UserFactor).where(UserFactor.user_id == user_id))
    db.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    if had:
        record_event(
            db,
            event="auth.factors_removed",
            user_id=user_id,
            address=address,
            client=client,
            detail={"by": "recovery"},
            now=now,
        )
    return had
