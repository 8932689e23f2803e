"""Accounts: zero-knowledge sign-up and login, sessions, password change, recovery.

The server only ever sees ``auth_key`` (a KDF output; stored as an Argon2id hash), the
recovery verifier (likewise), wrapped vault keys, the public key and the vault-key-locked
secret key. It can't unlock anything it holds (DESIGN §3).

Abuse (security review, findings 2-4 and 9; docs/security.md):

- every check of a secret is throttled per (account, client address) with growing
  delays, claimed atomically before the check; the login, recovery and password-change
  counters are separate, so guessing one never blocks another;
- no answer tells whether an email has an account: prelogin and key lookups answer
  for unknown emails with stable stand-ins, sign-up conflicts all look alike;
- the server's own Argon2id work goes through one bounded :class:`HashLimiter`.

Second factors (protocol §10, ``services.factors``): an account with a confirmed factor
gets a pending login (a ``sessions`` row of kind "factor": 5 minutes, at most 5 factor
attempts) instead of a session; :func:`login_factor` turns it into one. A wrong factor
counts in the same (account, address) bucket as a wrong password, and a right password
does not end that streak while the factor is still owed: only a complete login does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from hygieia import crypto
from hygieia.db.models import AuthSession, DecoyKey, KeyRotation, User
from hygieia.errors import (
    EmailTaken,
    FactorExpired,
    FactorInvalid,
    FactorRequired,
    HygieiaError,
    InvalidCredentials,
    InvalidKey,
    InvalidRecoveryCode,
    InvalidToken,
    KeyMismatch,
    NotFound,
    RotationPending,
    SaltChanged,
    TokenExpired,
    TokenRevoked,
    UnlockedSecretKey,
    ValidationFailed,
    WeakKdf,
)
from hygieia.services import factors, ratelimit
from hygieia.services.audit import UNKNOWN_CLIENT, ClientInfo, record_event
from hygieia.services.common import (
    Clock,
    new_token,
    rowcount,
    token_hash,
    utcnow,
)
from hygieia.services.common import (
    server_secret as server_secret,  # re-exported: services.links uses it
)
from hygieia.services.hashing import HashLimiter
from hygieia.services.ratelimit import Bucket, Policy, client_key

RECOVERY_TOKEN_TTL = timedelta(minutes=10)
#: How long a pending login (password proven, second factor owed) lives, and how many
#: second-factor attempts it allows.
FACTOR_TOKEN_TTL = timedelta(minutes=5)
MAX_FACTOR_ATTEMPTS = 5
SALT_BYTES = 16


@dataclass(frozen=True)
class Limits:
    """What bounds the account routes: session lifetime, throttles, hashing."""

    session_ttl_seconds: int
    #: Per (account, client address): logins, recoveries, password checks (apart).
    login: Policy
    #: Per client address over all accounts: logins, recoveries (apart).
    login_address: Policy
    #: Per client address: sign-ups.
    signup: Policy
    #: Per client address and per session: public-key lookups.
    key_lookup: Policy
    hashing: HashLimiter
    #: The weakest KDF parameters a new password may use (HYGIEIA_KDF_MIN_*).
    kdf_floor: crypto.KdfParams = crypto.DEFAULT_KDF


@dataclass(frozen=True)
class PreloginInfo:
    kdf: dict[str, Any]
    salt: bytes
    recovery_salt: bytes


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime
    account: User
    #: A recovery removed the account's second factors (the client says so).
    factors_removed: bool = False


@dataclass(frozen=True)
class PendingLogin:
    """The password was right; a second factor is owed before a session exists."""

    pending_token: str
    methods: list[factors.Method]
    expires_at: datetime
    factor_required: bool = True


@dataclass(frozen=True)
class RecoveryGrant:
    recovery_token: str
    recovery_salt: bytes
    recovery_wrapped_vault_key: bytes
    #: During a key rotation: the pending vault key under the same recovery key, for
    #: the client to wrap under the new password too (services.rotation).
    pending_recovery_wrapped_vault_key: bytes | None = None


def _find_user(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


#: crypto names what is wrong with key material by the API's codes for it.
_KEY_MATERIAL_ERRORS: dict[str, type[InvalidKey]] = {
    cls.code: cls for cls in (InvalidKey, UnlockedSecretKey, KeyMismatch)
}


def _check_kdf(kdf: dict[str, Any], floor: crypto.KdfParams) -> dict[str, Any]:
    """Parameters a new password may be derived with: supported, and not below the
    configured floor (a weak KDF makes a stolen database cheap to crack, and clients
    refuse to log in with one anyway)."""
    try:
        params = crypto.KdfParams.from_dict(kdf)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationFailed("unsupported KDF parameters") from exc
    if not params.at_least(floor):
        raise WeakKdf(
            f"KDF parameters below this server's minimum (m ≥ {floor.m} KiB, t ≥ {floor.t})"
        )
    return params.to_dict()


def prelogin(db: Session, *, email: str) -> PreloginInfo:
    """KDF parameters for ``email``; stable fake ones for unknown emails (no probing).

    The stand-in is made for every email, and the account read by the same small
    query either way: a known email used to skip the server-secret read, which made
    it answer measurably faster (0.1-0.2 ms) on an unthrottled route.
    """
    key = server_secret(db, "prelogin")
    mac = hmac.new(key, email.encode("utf-8"), hashlib.sha256).digest()
    mac2 = hmac.new(key, b"recovery\x00" + email.encode("utf-8"), hashlib.sha256).digest()
    row = db.execute(
        select(User.kdf, User.salt, User.recovery_salt).where(User.email == email)
    ).first()
    if row is not None:
        return PreloginInfo(kdf=row.kdf, salt=row.salt, recovery_salt=row.recovery_salt)
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
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> User:
    kdf = _check_kdf(kdf, limits.kdf_floor)
    if salt == recovery_salt:
        raise ValidationFailed("salt and recovery_salt must differ")
    try:
        info = crypto.inspect_keys(public_key, locked_secret_key)
    except crypto.InvalidKeyMaterial as exc:
        raise _KEY_MATERIAL_ERRORS.get(exc.reason, InvalidKey)() from exc
    per_address = ratelimit.bucket("signup", limits.signup, client_key(address))
    ratelimit.check(db, [per_address], now=now)
    with limits.hashing.slot():
        ratelimit.claim(db, [per_address], now=now)
        # Uniqueness first, then the same two hashes whether or not anything clashed:
        # an existing email, an existing key and a lost race all answer alike, after
        # the same work (security review, finding 3). The hashing limiter and the
        # per-address throttle bound what that work can cost (finding 4).
        taken = db.scalar(
            select(func.count())
            .select_from(User)
            .where(or_(User.email == email, User.fingerprint == info.fingerprint))
        )
        auth_hash = crypto.hash_secret(auth_key)
        recovery_hash = crypto.hash_secret(recovery_verifier)
    if taken:
        raise EmailTaken()
    user = User(
        email=email,
        created_at=now(),
        kdf=kdf,
        salt=salt,
        auth_hash=auth_hash,
        recovery_salt=recovery_salt,
        recovery_hash=recovery_hash,
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
        raise EmailTaken() from exc
    record_event(
        db, event="account.signup", user_id=user.id, address=address, client=client, now=now
    )
    db.commit()
    return user


def _issue(
    db: Session,
    *,
    user: User,
    kind: str,
    ttl: timedelta,
    address: str | None,
    client: ClientInfo,
    now: Clock,
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
            attempts=0 if kind == "factor" else None,
            client=client.kind,
            user_agent=client.user_agent,
            address=(address or "")[:64] or None,
            last_used_at=at,
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


def _prove(
    db: Session,
    *,
    buckets: list[Bucket],
    user: User | None,
    secret: bytes,
    stored_hash: Callable[[User], str],
    address: str,
    client: ClientInfo,
    failed_event: str,
    error: HygieiaError,
    limits: Limits,
    now: Clock,
) -> User:
    """Check ``secret`` against the user's stored hash, or fail (throttled, audited).

    The attempt is claimed in ``buckets`` (committed) before the hash is checked, so
    parallel guesses can't outrun the limit; the caller forgives it on success. An
    unknown account costs one dummy verification, so timing reveals nothing.
    """
    ratelimit.check(db, buckets, now=now)  # a throttled client doesn't queue for a slot
    with limits.hashing.slot():
        ratelimit.claim(db, buckets, now=now)
        if user is None:
            crypto.dummy_verify(secret)
            ok = False
        else:
            ok = crypto.verify_secret(stored_hash(user), secret)
    if not ok:
        record_event(
            db,
            event=failed_event,
            user_id=user.id if user else None,
            address=address,
            client=client,
            now=now,
        )
        db.commit()
        raise error
    assert user is not None
    return user


def _check_salt(user: User, new: NewPassword) -> None:
    """The salt stays the account's for good.

    Prelogin shows it to anyone, and a salt that changed would tell that the email
    has an account, since the stand-in salt of an unknown email never changes
    (security review, finding 3; docs/security.md).
    """
    if not hmac.compare_digest(new.salt, user.salt):
        raise SaltChanged()


def _install_password(user: User, new: NewPassword, kdf: dict[str, Any], auth_hash: str) -> None:
    """Re-wrap: new KDF params, new auth hash, new wrapped vault key. The salt, the
    locked secret key, the vault key and the recovery material stay as they are."""
    user.kdf = kdf
    user.auth_hash = auth_hash
    user.wrapped_vault_key = new.wrapped_vault_key


def _login_buckets(limits: Limits, *, email: str, address: str) -> tuple[Bucket, Bucket]:
    ck = client_key(address)
    return (
        ratelimit.bucket("login", limits.login, email, ck),
        ratelimit.bucket("login-address", limits.login_address, ck),
    )


def login(
    db: Session,
    *,
    email: str,
    auth_key: bytes,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> IssuedSession | PendingLogin:
    """The ``auth_key`` proof: a session, or a pending login if a second factor is owed."""
    pair, per_address = _login_buckets(limits, email=email, address=address)
    user = _prove(
        db,
        buckets=[pair, per_address],
        user=_find_user(db, email),
        secret=auth_key,
        stored_hash=lambda u: u.auth_hash,
        address=address,
        client=client,
        failed_event="auth.login_failed",
        error=InvalidCredentials(),
        limits=limits,
        now=now,
    )
    ratelimit.refund(db, per_address)
    methods = factors.methods_for(db, user.id)
    if not methods:
        return _open_session(
            db,
            user=user,
            event="auth.login",
            address=address,
            client=client,
            limits=limits,
            now=now,
        )
    # The right password doesn't end the streak while the factor is owed (else each
    # password login would reset the delays that wrong codes earned): its claimed
    # attempt stays counted and pays for the pending login's first factor attempt.
    token, expires = _issue(
        db,
        user=user,
        kind="factor",
        ttl=FACTOR_TOKEN_TTL,
        address=address,
        client=client,
        now=now,
    )
    db.commit()
    return PendingLogin(pending_token=token, methods=methods, expires_at=expires)


def login_factor(
    db: Session,
    *,
    pending_token: str,
    proof: factors.FactorProof,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> IssuedSession:
    """The second step: a pending login and a factor make a session.

    Each attempt is counted in the login buckets (the password's) and on the pending
    login before the factor is checked: the first was claimed by the password step
    itself, every later one is claimed here. The fifth failure ends the pending login.
    """
    row = db.scalar(
        select(AuthSession)
        .options(joinedload(AuthSession.user))
        .where(AuthSession.token_hash == token_hash(pending_token))
    )
    if (
        row is None
        or row.kind != "factor"
        or row.revoked_at is not None
        or row.expires_at <= now()
        or (row.attempts or 0) >= MAX_FACTOR_ATTEMPTS
    ):
        raise FactorExpired()
    user, row_id = row.user, row.id
    pair, per_address = _login_buckets(limits, email=user.email, address=address)

    def count(first: bool) -> bool:
        at = now()
        done = db.execute(
            update(AuthSession)
            .where(
                AuthSession.id == row_id,
                AuthSession.kind == "factor",
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > at,
                func.coalesce(AuthSession.attempts, 0) == 0
                if first
                else func.coalesce(AuthSession.attempts, 0) < MAX_FACTOR_ATTEMPTS,
            )
            .values(attempts=func.coalesce(AuthSession.attempts, 0) + 1)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        return rowcount(done) == 1

    claimed = not count(first=True)  # the first attempt was paid for by the password step
    if claimed:
        ratelimit.check(db, [pair, per_address], now=now)
        ratelimit.claim(db, [pair, per_address], now=now)  # commits
        if not count(first=False):
            raise FactorExpired()
    at = now()
    db.refresh(row)
    try:
        factors.verify_proof(
            db, user=user, proof=proof, session=row, address=address, client=client, now=now
        )
    except (FactorInvalid, FactorRequired):
        db.rollback()
        if (row.attempts or 0) >= MAX_FACTOR_ATTEMPTS:
            _end_pending(db, row_id, at)
        _factor_failed(db, user=user, method=proof.method, address=address, client=client, now=now)
        raise FactorInvalid() from None
    # Consume the pending login: of racing requests with one token, one gets through.
    if not _end_pending(db, row_id, at):
        db.rollback()
        raise FactorExpired()
    if claimed:
        ratelimit.refund(db, per_address)
    return _open_session(
        db, user=user, event="auth.login", address=address, client=client, limits=limits, now=now
    )


def prove_sensitive(
    db: Session,
    *,
    user: User,
    auth_key: bytes,
    proof: factors.FactorProof | None,
    session: AuthSession | None,
    address: str,
    limits: Limits,
    failed_event: str = "auth.password_check_failed",
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> None:
    """The password proof and, if the account has any, a second factor: for removing a
    factor, new backup codes, deleting the account, rotating the keys or the recovery
    code. A wrong password is audited as ``failed_event``.

    One attempt in the account's "password" bucket (per address) covers both; it is
    forgiven only when both succeed. The factor's use (TOTP step, backup code) is left
    in ``db`` for the caller's commit.
    """
    attempt = ratelimit.bucket("password", limits.login, user.id, client_key(address))
    _prove(
        db,
        buckets=[attempt],
        user=user,
        secret=auth_key,
        stored_hash=lambda u: u.auth_hash,
        address=address,
        client=client,
        failed_event=failed_event,
        error=InvalidCredentials("current password is wrong"),
        limits=limits,
        now=now,
    )
    try:
        factors.verify_proof(
            db, user=user, proof=proof, session=session, address=address, client=client, now=now
        )
    except (FactorInvalid, FactorRequired) as exc:
        db.rollback()
        if isinstance(exc, FactorInvalid) and proof is not None:
            _factor_failed(
                db, user=user, method=proof.method, address=address, client=client, now=now
            )
        raise
    ratelimit.forgive(db, attempt)


def _end_pending(db: Session, row_id: str, at: datetime) -> bool:
    """Revoke a pending login unless already revoked; whether this call did it."""
    done = db.execute(
        update(AuthSession)
        .where(AuthSession.id == row_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return rowcount(done) == 1


def _factor_failed(
    db: Session, *, user: User, method: str, address: str, client: ClientInfo, now: Clock
) -> None:
    """Audit a wrong second factor (the method tried, never the code) and commit."""
    record_event(
        db,
        event="auth.factor_failed",
        user_id=user.id,
        address=address,
        client=client,
        detail={"kind": method},
        now=now,
    )
    db.commit()


def _open_session(
    db: Session,
    *,
    user: User,
    event: str,
    address: str,
    client: ClientInfo,
    limits: Limits,
    now: Clock,
    factors_removed: bool = False,
) -> IssuedSession:
    """After a successful proof: end the login streak, issue a token, audit, commit."""
    pair, _ = _login_buckets(limits, email=user.email, address=address)
    ratelimit.forgive(db, pair)
    token, expires = _issue(
        db,
        user=user,
        kind="session",
        ttl=timedelta(seconds=limits.session_ttl_seconds),
        address=address,
        client=client,
        now=now,
    )
    record_event(db, event=event, user_id=user.id, address=address, client=client, now=now)
    db.commit()
    return IssuedSession(
        token=token, expires_at=expires, account=user, factors_removed=factors_removed
    )


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


#: A session's ``last_used_at`` is written at most this often (not once per request).
TOUCH_INTERVAL = timedelta(seconds=60)


def _touch(session_id: str, last_used_at: datetime | None, at: datetime) -> Any:
    """The UPDATE that records a use of the session, or None if the last one is recent.

    Conditional on the stored value, so concurrent requests write it once.
    """
    if last_used_at is not None and at - last_used_at < TOUCH_INTERVAL:
        return None
    return (
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            or_(
                AuthSession.last_used_at.is_(None),
                AuthSession.last_used_at <= at - TOUCH_INTERVAL,
            ),
        )
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )


def authenticate(db: Session, *, token: str, now: Clock = utcnow) -> tuple[User, AuthSession]:
    """The session's user; records the use (at most once a minute, committed at once)."""
    row = _live_session(db, token=token, kind="session", now=now)
    at = now()
    stmt = _touch(row.id, row.last_used_at, at)
    if stmt is not None:
        db.execute(stmt)
        db.commit()
        row.last_used_at = at
    return row.user, row


# Built once: the hot path neither rebuilds the statement nor loads ORM objects.
_SESSION_OWNER = select(
    AuthSession.user_id,
    AuthSession.kind,
    AuthSession.revoked_at,
    AuthSession.expires_at,
    AuthSession.id,
    AuthSession.last_used_at,
).where(AuthSession.token_hash == bindparam("token_hash"))


def authenticated_ids(conn: Connection, *, token: str, now: Clock = utcnow) -> tuple[str, str]:
    """:func:`authenticate` for hot paths on an autocommit connection: the same checks,
    the user's and the session's ids only; records the use like it."""
    row = conn.execute(_SESSION_OWNER, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise InvalidToken()
    user_id, kind, revoked_at, expires_at, session_id, last_used_at = row
    _check_live(kind, revoked_at, expires_at, want="session", now=now)
    stmt = _touch(str(session_id), last_used_at, now())
    if stmt is not None:
        conn.execute(stmt)
    return str(user_id), str(session_id)


def authenticated_user_id(conn: Connection, *, token: str, now: Clock = utcnow) -> str:
    """:func:`authenticated_ids`, the user's id only."""
    return authenticated_ids(conn, token=token, now=now)[0]


def logout(
    db: Session,
    *,
    session: AuthSession,
    address: str | None = None,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> None:
    session.revoked_at = now()
    record_event(
        db, event="auth.logout", user_id=session.user_id, address=address, client=client, now=now
    )
    db.commit()


@dataclass(frozen=True)
class SessionView:
    """One of the account's live sessions, as its owner sees it (protocol §11)."""

    id: str
    client: str
    user_agent: str | None
    address: str | None
    created_at: datetime
    last_used_at: datetime | None
    current: bool


def _live_sessions_of(user_id: str, at: datetime) -> Any:
    return select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.kind == "session",
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > at,
    )


def list_sessions(
    db: Session, *, user: User, current: AuthSession, now: Clock = utcnow
) -> list[SessionView]:
    """The account's live login sessions (not recovery grants), most recently used first."""
    rows = db.scalars(_live_sessions_of(user.id, now()).order_by(AuthSession.created_at.desc()))
    views = [
        SessionView(
            id=r.id,
            client=r.client or "other",
            user_agent=r.user_agent,
            address=r.address,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            current=r.id == current.id,
        )
        for r in rows
    ]
    return sorted(views, key=lambda v: v.last_used_at or v.created_at, reverse=True)


def _revoke_sessions(
    db: Session,
    rows: list[AuthSession],
    *,
    user: User,
    address: str,
    client: ClientInfo,
    now: Clock,
) -> int:
    at = now()
    for row in rows:
        row.revoked_at = at
        record_event(
            db,
            event="auth.session_revoked",
            user_id=user.id,
            address=address,
            client=client,
            detail={"session_id": row.id},
            now=now,
        )
    db.commit()
    return len(rows)


def revoke_session(
    db: Session,
    *,
    user: User,
    session_id: str,
    address: str,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> None:
    """Revoke one of the account's live sessions (the current one too: a logout).

    Another account's session, a revoked or expired one and an unknown id all answer
    404 alike: nothing tells whether the id exists.
    """
    row = db.scalar(_live_sessions_of(user.id, now()).where(AuthSession.id == session_id))
    if row is None:
        raise NotFound("no such session")
    _revoke_sessions(db, [row], user=user, address=address, client=client, now=now)


def revoke_other_sessions(
    db: Session,
    *,
    user: User,
    current: AuthSession,
    address: str,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> int:
    """Revoke every live session of the account but ``current``; how many were."""
    rows = list(db.scalars(_live_sessions_of(user.id, now()).where(AuthSession.id != current.id)))
    return _revoke_sessions(db, rows, user=user, address=address, client=client, now=now)


def _revoke_all(db: Session, *, user_id: str, except_id: str | None, now: Clock) -> None:
    stmt = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if except_id is not None:
        stmt = stmt.where(AuthSession.id != except_id)
    db.execute(stmt.values(revoked_at=now()))


def revoke_others_uncommitted(db: Session, *, user_id: str, except_id: str, now: Clock) -> None:
    """Revoke every live session of ``user_id`` but ``except_id``, in the caller's
    transaction (a key rotation's commit: one transaction with the key swap)."""
    _revoke_all(db, user_id=user_id, except_id=except_id, now=now)


def change_password(
    db: Session,
    *,
    user: User,
    session: AuthSession,
    auth_key: bytes,
    new: NewPassword,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> None:
    """Re-wrap the vault key under a new password; the locked secret key is not
    touched (a key rotation, services.rotation, replaces it; refused while one is pending).

    Throttled on its own counter: failed logins never block a signed-in user here.
    """
    kdf = _check_kdf(new.kdf, limits.kdf_floor)
    attempt = ratelimit.bucket("password", limits.login, user.id, client_key(address))
    _prove(
        db,
        buckets=[attempt],
        user=user,
        secret=auth_key,
        stored_hash=lambda u: u.auth_hash,
        address=address,
        client=client,
        failed_event="auth.password_change_failed",
        error=InvalidCredentials("current password is wrong"),
        limits=limits,
        now=now,
    )
    ratelimit.forgive(db, attempt)
    db.commit()  # the proof succeeded, whatever becomes of the change
    _check_salt(user, new)  # after the proof: a wrong password learns nothing else
    if db.get(KeyRotation, user.id) is not None:
        # The pending vault key is wrapped under the current password's key: finish
        # the rotation first (services.rotation).
        raise RotationPending()
    with limits.hashing.slot():
        auth_hash = crypto.hash_secret(new.auth_key)
    _install_password(user, new, kdf, auth_hash)
    _revoke_all(db, user_id=user.id, except_id=session.id, now=now)
    record_event(
        db,
        event="auth.password_changed",
        user_id=user.id,
        address=address,
        client=client,
        now=now,
    )
    db.commit()


def start_recovery(
    db: Session,
    *,
    email: str,
    recovery_auth: bytes,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> RecoveryGrant:
    """Prove the recovery code. Its own counters: failed logins never block recovery."""
    ck = client_key(address)
    pair = ratelimit.bucket("recover", limits.login, email, ck)
    per_address = ratelimit.bucket("recover-address", limits.login_address, ck)
    user = _prove(
        db,
        buckets=[pair, per_address],
        user=_find_user(db, email),
        secret=recovery_auth,
        stored_hash=lambda u: u.recovery_hash,
        address=address,
        client=client,
        failed_event="auth.recovery_failed",
        error=InvalidRecoveryCode(),
        limits=limits,
        now=now,
    )
    ratelimit.forgive(db, pair)
    ratelimit.refund(db, per_address)
    token, _ = _issue(
        db,
        user=user,
        kind="recovery",
        ttl=RECOVERY_TOKEN_TTL,
        address=address,
        client=client,
        now=now,
    )
    record_event(
        db,
        event="auth.recovery_started",
        user_id=user.id,
        address=address,
        client=client,
        now=now,
    )
    db.commit()
    pending = db.get(KeyRotation, user.id)
    return RecoveryGrant(
        recovery_token=token,
        recovery_salt=user.recovery_salt,
        recovery_wrapped_vault_key=user.recovery_wrapped_vault_key,
        pending_recovery_wrapped_vault_key=None
        if pending is None
        else pending.recovery_wrapped_vault_key,
    )


def complete_recovery(
    db: Session,
    *,
    recovery_token: str,
    new: NewPassword,
    address: str,
    limits: Limits,
    pending_wrapped_vault_key: bytes | None = None,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> IssuedSession:
    """Install the new password. During a key rotation the pending vault key must come
    wrapped under the new password too (``pending_wrapped_vault_key``), or the rotation
    could never be finished: 409 ``rotation_pending`` without it."""
    grant = _live_session(db, token=recovery_token, kind="recovery", now=now)
    user = grant.user
    kdf = _check_kdf(new.kdf, limits.kdf_floor)
    _check_salt(user, new)
    pending = db.get(KeyRotation, user.id)
    if pending is not None and pending_wrapped_vault_key is None:
        raise RotationPending("a key rotation is under way: this client can't recover now")
    with limits.hashing.slot():
        auth_hash = crypto.hash_secret(new.auth_key)
    # Consume the grant with a conditional update that must change exactly one row:
    # of several requests racing with one grant, only the first gets past this line
    # (the others wait for its row lock, then find it used). Security review, finding 9.
    at = now()
    consumed = db.execute(
        update(AuthSession)
        .where(
            AuthSession.id == grant.id,
            AuthSession.kind == "recovery",
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > at,
        )
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    if rowcount(consumed) != 1:
        db.rollback()
        raise TokenRevoked()
    _install_password(user, new, kdf, auth_hash)
    if pending is not None and pending_wrapped_vault_key is not None:
        pending.wrapped_vault_key = pending_wrapped_vault_key
    _revoke_all(db, user_id=user.id, except_id=None, now=now)
    # The recovery code stands in for every factor: lost factors must not lock the
    # owner out, and whoever holds the code could remove them anyway (protocol §10).
    removed = factors.remove_all(db, user_id=user.id, address=address, client=client, now=now)
    return _open_session(
        db,
        user=user,
        event="auth.recovered",
        address=address,
        client=client,
        limits=limits,
        now=now,
        factors_removed=removed,
    )


@dataclass(frozen=True)
class PublicKeyInfo:
    email: str
    fingerprint: str
    public_key: str


def _decoy_created(db: Session, *, key: str, seed: bytes, now: Clock) -> datetime:
    """The decoy's creation time: picked once, at the first lookup, then kept.

    Uniform between the oldest account and now (as a real account's would be), so a
    prober who looks up a fresh address doesn't see a key "made just now".
    """
    row = db.get(DecoyKey, key)
    if row is not None:
        return row.created_at
    at = now()
    oldest = db.scalar(select(func.min(User.created_at))) or at
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=at.tzinfo)
    fraction = int.from_bytes(seed[:8], "big") / 2**64
    created = oldest + (at - oldest) * fraction
    try:
        with db.begin_nested():
            db.add(DecoyKey(key=key, created_at=created))
        db.commit()
    except IntegrityError:  # a concurrent first lookup: keep the time it chose
        db.rollback()
    row = db.get(DecoyKey, key)
    assert row is not None
    return row.created_at


def public_key_of(
    db: Session,
    *,
    email: str,
    session_id: str,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> PublicKeyInfo:
    """Another account's public key (for sharing), throttled per address and session.

    An unknown email gets a decoy in the same shape, the same on every lookup
    (``crypto.decoy_public_key``): the answer never tells whether an account exists.
    """
    ratelimit.claim(
        db,
        [
            ratelimit.bucket("key-lookup-address", limits.key_lookup, client_key(address)),
            ratelimit.bucket("key-lookup-session", limits.key_lookup, session_id),
        ],
        now=now,
    )
    return resolve_key(db, email=email, now=now).info


@dataclass(frozen=True)
class ResolvedKey:
    """The key ``POST /users/key`` answers for an email, and whose it is."""

    info: PublicKeyInfo
    encryption_key_id: str
    #: None for an email without an account: ``info`` is then its decoy.
    user: User | None


def resolve_key(db: Session, *, email: str, now: Clock = utcnow) -> ResolvedKey:
    """The key an email's lookup answers (the account's, or the email's stable decoy),
    unthrottled: for :func:`public_key_of` and for checking grants (services.sharing).

    May commit (the decoy's creation time is kept at first use): call it before
    anything else of the transaction is added.
    """
    # The decoy is made whether or not the account exists: the same work either way.
    seed = hmac.new(server_secret(db, "decoy-key"), email.encode("utf-8"), hashlib.sha256).digest()
    key = hashlib.sha256(b"decoy-key\x00" + seed).hexdigest()
    created = _decoy_created(db, key=key, seed=seed, now=now)
    decoy = crypto.decoy_public_key(seed, email, int(created.timestamp()))
    decoy_key_id = crypto.public_key_info(decoy.public_key).encryption_key_id
    user = _find_user(db, email)
    if user is not None:
        info = PublicKeyInfo(
            email=user.email, fingerprint=user.fingerprint, public_key=user.public_key
        )
        return ResolvedKey(info=info, encryption_key_id=user.encryption_key_id, user=user)
    info = PublicKeyInfo(email=email, fingerprint=decoy.fingerprint, public_key=decoy.public_key)
    return ResolvedKey(info=info, encryption_key_id=decoy_key_id, user=None)
