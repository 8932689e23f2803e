"""Accounts: zero-knowledge sign-up and login, sessions, password change, recovery.

The server only ever sees ``auth_key`` (a KDF output; stored as an Argon2id hash), the
recovery verifier (likewise), wrapped vault keys, the public key and the vault-key-locked
secret key. It can't unlock anything it holds (DESIGN §3).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from hygieia import crypto
from hygieia.db.models import AuthSession, ServerSecret, User
from hygieia.errors import (
    EmailTaken,
    HygieiaError,
    InvalidCredentials,
    InvalidKey,
    InvalidRecoveryCode,
    InvalidToken,
    KeyMismatch,
    NotFound,
    TokenExpired,
    TokenRevoked,
    UnlockedSecretKey,
    ValidationFailed,
)
from hygieia.services import ratelimit
from hygieia.services.audit import record_event
from hygieia.services.common import Clock, new_token, token_hash, utcnow

RECOVERY_TOKEN_TTL = timedelta(minutes=10)
SALT_BYTES = 16


@dataclass(frozen=True)
class Limits:
    session_ttl_seconds: int
    login_max_failures: int
    login_window_seconds: int


@dataclass(frozen=True)
class PreloginInfo:
    kdf: dict[str, Any]
    salt: bytes
    recovery_salt: bytes


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True)
class RecoveryGrant:
    token: str
    recovery_salt: bytes
    recovery_wrapped_vault_key: bytes


def server_secret(db: Session, name: str) -> bytes:
    """Return (creating once, race-safely) a random server-wide secret kept in the DB."""
    row = db.get(ServerSecret, name)
    if row is not None:
        return row.value
    try:
        with db.begin_nested():
            db.add(ServerSecret(name=name, value=secrets.token_bytes(32)))
    except IntegrityError:
        pass
    db.commit()
    row = db.get(ServerSecret, name)
    assert row is not None
    return row.value


def _find_user(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


def _check_kdf(kdf: dict[str, Any]) -> dict[str, Any]:
    try:
        return crypto.KdfParams.from_dict(kdf).to_dict()
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationFailed("unsupported KDF parameters") from exc


def prelogin(db: Session, *, email: str) -> PreloginInfo:
    """KDF parameters for ``email``; stable fake ones for unknown emails (no probing)."""
    user = _find_user(db, email)
    if user is not None:
        return PreloginInfo(kdf=user.kdf, salt=user.salt, recovery_salt=user.recovery_salt)
    key = server_secret(db, "prelogin")
    mac = hmac.new(key, email.encode("utf-8"), hashlib.sha256).digest()
    mac2 = hmac.new(key, b"recovery\x00" + email.encode("utf-8"), hashlib.sha256).digest()
    return PreloginInfo(
        kdf=crypto.DEFAULT_KDF.to_dict(), salt=mac[:SALT_BYTES], recovery_salt=mac2[:SALT_BYTES]
    )


def signup(
    db: Session,
    *,
    email: str,
    kdf: dict[str, Any],
    salt: bytes,
    recovery_salt: bytes,
    auth_key: bytes,
    public_key: str,
    locked_secret_key: str,
    wrapped_vault_key: bytes,
    recovery_wrapped_vault_key: bytes,
    recovery_verifier: bytes,
    address: str,
    now: Clock = utcnow,
) -> User:
    kdf = _check_kdf(kdf)
    if salt == recovery_salt:
        raise ValidationFailed("salt and recovery_salt must differ")
    try:
        info = crypto.inspect_keys(public_key, locked_secret_key)
    except crypto.InvalidKeyMaterial as exc:
        raise {
            "unlocked_secret_key": UnlockedSecretKey,
            "key_mismatch": KeyMismatch,
        }.get(exc.reason, InvalidKey)() from exc
    if _find_user(db, email) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        created_at=now(),
        kdf=kdf,
        salt=salt,
        auth_hash=crypto.hash_secret(auth_key),
        recovery_salt=recovery_salt,
        recovery_hash=crypto.hash_secret(recovery_verifier),
        public_key=public_key,
        locked_secret_key=locked_secret_key,
        fingerprint=info.fingerprint,
        encryption_key_id=info.encryption_key_id,
        wrapped_vault_key=wrapped_vault_key,
        recovery_wrapped_vault_key=recovery_wrapped_vault_key,
    )
    db.add(user)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise EmailTaken("an account with this email or key exists") from exc
    record_event(db, event="account.signup", user_id=user.id, address=address, now=now)
    db.commit()
    return user


def _issue(
    db: Session, *, user: User, kind: str, ttl: timedelta, now: Clock
) -> tuple[str, datetime]:
    token = new_token()
    at = now()
    db.add(
        AuthSession(
            user_id=user.id,
            token_hash=token_hash(token),
            kind=kind,
            created_at=at,
            expires_at=at + ttl,
        )
    )
    return token, at + ttl


@dataclass(frozen=True)
class NewPassword:
    """What a password change or a recovery installs: all of it made by the client."""

    auth_key: bytes
    salt: bytes
    kdf: dict[str, Any]
    wrapped_vault_key: bytes


def _rate_limit(db: Session, *, account: str, address: str, limits: Limits, now: Clock) -> None:
    ratelimit.check(
        db,
        account=account,
        address=address,
        max_failures=limits.login_max_failures,
        window_seconds=limits.login_window_seconds,
        now=now,
    )


def _prove(
    db: Session,
    *,
    account: str,
    user: User | None,
    secret: bytes,
    stored_hash: Callable[[User], str],
    address: str,
    failed_event: str,
    error: HygieiaError,
    now: Clock,
) -> User:
    """Check ``secret`` against the user's stored hash, or fail (counted, audited).

    An unknown account costs one dummy verification, so timing reveals nothing.
    """
    if user is None:
        crypto.dummy_verify(secret)
        ok = False
    else:
        ok = crypto.verify_secret(stored_hash(user), secret)
    if not ok:
        ratelimit.record_failure(db, account=account, address=address, now=now)
        record_event(
            db, event=failed_event, user_id=user.id if user else None, address=address, now=now
        )
        db.commit()
        raise error
    assert user is not None
    return user


def _install_password(user: User, new: NewPassword) -> None:
    """Re-wrap: new KDF salt/params, new auth hash, new wrapped vault key. The locked
    secret key, the vault key and the recovery material stay as they are."""
    kdf = _check_kdf(new.kdf)
    if new.salt == user.recovery_salt:
        raise ValidationFailed("salt and recovery_salt must differ")
    user.kdf = kdf
    user.salt = new.salt
    user.auth_hash = crypto.hash_secret(new.auth_key)
    user.wrapped_vault_key = new.wrapped_vault_key


def login(
    db: Session, *, email: str, auth_key: bytes, address: str, limits: Limits, now: Clock = utcnow
) -> IssuedSession:
    _rate_limit(db, account=email, address=address, limits=limits, now=now)
    user = _prove(
        db,
        account=email,
        user=_find_user(db, email),
        secret=auth_key,
        stored_hash=lambda u: u.auth_hash,
        address=address,
        failed_event="auth.login_failed",
        error=InvalidCredentials(),
        now=now,
    )
    return _open_session(db, user=user, event="auth.login", address=address, limits=limits, now=now)


def _open_session(
    db: Session, *, user: User, event: str, address: str, limits: Limits, now: Clock
) -> IssuedSession:
    """After a successful proof: clear the failure count, issue a token, audit, commit."""
    ratelimit.clear_account(db, account=user.email)
    token, expires = _issue(
        db, user=user, kind="session", ttl=timedelta(seconds=limits.session_ttl_seconds), now=now
    )
    record_event(db, event=event, user_id=user.id, address=address, now=now)
    db.commit()
    return IssuedSession(token=token, expires_at=expires, user=user)


def _check_live(
    kind: str, revoked_at: datetime | None, expires_at: datetime, *, want: str, now: Clock
) -> None:
    if kind != want:
        raise InvalidToken()
    if revoked_at is not None:
        raise TokenRevoked()
    if expires_at <= now():
        raise TokenExpired()


def _live_session(db: Session, *, token: str, kind: str, now: Clock) -> AuthSession:
    row = db.scalar(
        select(AuthSession)
        .options(joinedload(AuthSession.user))  # one query for the session and its user
        .where(AuthSession.token_hash == token_hash(token))
    )
    if row is None:
        raise InvalidToken()
    _check_live(row.kind, row.revoked_at, row.expires_at, want=kind, now=now)
    return row


def authenticate(db: Session, *, token: str, now: Clock = utcnow) -> tuple[User, AuthSession]:
    row = _live_session(db, token=token, kind="session", now=now)
    return row.user, row


# Built once: the hot path neither rebuilds the statement nor loads ORM objects.
_SESSION_OWNER = select(
    AuthSession.user_id, AuthSession.kind, AuthSession.revoked_at, AuthSession.expires_at
).where(AuthSession.token_hash == bindparam("token_hash"))


def authenticated_user_id(conn: Connection, *, token: str, now: Clock = utcnow) -> str:
    """:func:`authenticate` for read-only hot paths: the same checks, only the user's id."""
    row = conn.execute(_SESSION_OWNER, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise InvalidToken()
    user_id, kind, revoked_at, expires_at = row
    _check_live(kind, revoked_at, expires_at, want="session", now=now)
    return str(user_id)


def logout(db: Session, *, session: AuthSession, now: Clock = utcnow) -> None:
    session.revoked_at = now()
    record_event(db, event="auth.logout", user_id=session.user_id, now=now)
    db.commit()


def _revoke_all(db: Session, *, user_id: str, except_id: str | None, now: Clock) -> None:
    stmt = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if except_id is not None:
        stmt = stmt.where(AuthSession.id != except_id)
    db.execute(stmt.values(revoked_at=now()))


def change_password(
    db: Session,
    *,
    user: User,
    session: AuthSession,
    auth_key: bytes,
    new: NewPassword,
    address: str,
    limits: Limits,
    now: Clock = utcnow,
) -> None:
    """Re-wrap the vault key under a new password; the locked secret key never changes."""
    _rate_limit(db, account=user.email, address=address, limits=limits, now=now)
    _prove(
        db,
        account=user.email,
        user=user,
        secret=auth_key,
        stored_hash=lambda u: u.auth_hash,
        address=address,
        failed_event="auth.password_change_failed",
        error=InvalidCredentials("current password is wrong"),
        now=now,
    )
    _install_password(user, new)
    _revoke_all(db, user_id=user.id, except_id=session.id, now=now)
    record_event(db, event="auth.password_changed", user_id=user.id, address=address, now=now)
    db.commit()


def start_recovery(
    db: Session,
    *,
    email: str,
    recovery_auth: bytes,
    address: str,
    limits: Limits,
    now: Clock = utcnow,
) -> RecoveryGrant:
    _rate_limit(db, account=email, address=address, limits=limits, now=now)
    user = _prove(
        db,
        account=email,
        user=_find_user(db, email),
        secret=recovery_auth,
        stored_hash=lambda u: u.recovery_hash,
        address=address,
        failed_event="auth.recovery_failed",
        error=InvalidRecoveryCode(),
        now=now,
    )
    token, _ = _issue(db, user=user, kind="recovery", ttl=RECOVERY_TOKEN_TTL, now=now)
    record_event(db, event="auth.recovery_started", user_id=user.id, address=address, now=now)
    db.commit()
    return RecoveryGrant(
        token=token,
        recovery_salt=user.recovery_salt,
        recovery_wrapped_vault_key=user.recovery_wrapped_vault_key,
    )


def complete_recovery(
    db: Session,
    *,
    recovery_token: str,
    new: NewPassword,
    address: str,
    limits: Limits,
    now: Clock = utcnow,
) -> IssuedSession:
    grant = _live_session(db, token=recovery_token, kind="recovery", now=now)
    user = grant.user
    _install_password(user, new)
    _revoke_all(db, user_id=user.id, except_id=None, now=now)
    return _open_session(
        db, user=user, event="auth.recovered", address=address, limits=limits, now=now
    )


def public_key_of(db: Session, *, email: str) -> User:
    user = _find_user(db, email)
    if user is None:
        raise NotFound("no such user")
    return user
