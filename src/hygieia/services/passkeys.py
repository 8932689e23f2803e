"""Passkeys (WebAuthn) as a second factor: the ceremonies, around py_webauthn.

A passkey here is only a *second* factor: the password's ``auth_key`` proof comes
first, and the passkey proves possession of a device on top. Nothing about the vault
keys changes; the server stores the credential's public key and its sign count only.

What this module decides (protocol §10, "Passkeys"):

- **Relying party.** The RP ID is the host name of ``HYGIEIA_PUBLIC_URL`` if it is set,
  else the host name the request came to (already checked against
  ``HYGIEIA_ALLOWED_HOSTS`` by ``api/hosts.py``). The expected origin is that origin,
  compared exactly (scheme, host and port). WebAuthn refuses IP addresses as RP IDs, so
  a server reached as ``http://127.0.0.1:8000`` answers 400 ``passkey_unavailable``:
  use ``http://localhost:8000`` (a secure context) or a real name over HTTPS.
- **Challenges** are 32 random bytes made here and kept on the ``sessions`` row they
  belong to (the pending login, or the caller's own session for an enrolment or a
  proof), with their purpose, time and origin; used up (committed) before an answer is
  checked, dead after :data:`CHALLENGE_TTL`.
- **User verification** is "preferred": asked for, not required (the password was
  already proven; a security key without a PIN still works as a second factor).
- **Sign count**: an assertion whose counter does not grow past the stored one (when
  either is non-zero) is refused as a possible clone.
- **Binding**: a credential is accepted only for the account it was enrolled on (it
  is looked up by id among the account's passkeys; a ``userHandle``, if the
  authenticator sends one, must be that account's id).

:func:`verify_for` is installed as ``services.factors.passkey_verifier``: the passkey
branch of ``verify_proof`` (login's second step, sensitive actions).

Every malformed or wrong answer raises :class:`hygieia.errors.FactorInvalid`; the
library's messages never reach the client.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hygieia.db.models import AuthSession, User, UserFactor
from hygieia.errors import (
    FactorExpired,
    FactorInvalid,
    FactorNotFound,
    PasskeyTaken,
    PasskeyUnavailable,
    TooManyFactors,
)
from hygieia.services import factors
from hygieia.services.accounts import MAX_FACTOR_ATTEMPTS
from hygieia.services.audit import ClientInfo
from hygieia.services.common import Clock, rowcount, token_hash, utcnow

RP_NAME = "Hygieia"
CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)
#: How long the browser waits for the user by default (HYGIEIA_PASSKEY_TIMEOUT_SECONDS).
DEFAULT_TIMEOUT_MS = 120_000
MAX_CREDENTIAL_ID = 1023  # WebAuthn: credential ids are at most 1023 bytes

# What a malformed answer can raise inside the library (base64, CBOR, JSON, structs).
_MALFORMED = (
    WebAuthnException,
    InvalidSignature,
    UnsupportedAlgorithm,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True)
class RelyingParty:
    """Who the ceremonies are for: the RP ID (a host name) and the one exact origin."""

    id: str
    origin: str
    name: str = RP_NAME
    timeout_ms: int = DEFAULT_TIMEOUT_MS


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what a ``user_factors`` row keeps."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]


@dataclass(frozen=True)
class StoredCredential:
    """An enrolled passkey, as the verification of an assertion needs it."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str] | None = None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def relying_party(
    *, public_url: str, scheme: str, host: str, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> RelyingParty:
    """The RP for a request: ``public_url`` wins; else the request's scheme and Host.

    ``host`` is the request's ``Host`` header (with the port), which the allowed-hosts
    middleware has already accepted. An IP address can't be an RP ID.
    """
    if public_url:
        parts = urlsplit(public_url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        name = (parts.hostname or "").lower()
    else:
        netloc = host.strip().lower()
        scheme = scheme.lower()
        # A browser's origin leaves the default port out; a Host header may carry it.
        default = {"http": ":80", "https": ":443"}.get(scheme)
        if default and netloc.endswith(default):
            netloc = netloc[: -len(default)]
        origin = f"{scheme}://{netloc}"
        name = (urlsplit(origin).hostname or "").lower()
    if not name or _is_ip(name):
        raise PasskeyUnavailable()
    return RelyingParty(id=name, origin=origin, timeout_ms=timeout_ms)


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def _descriptors(creds: Sequence[StoredCredential]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for cred in creds:
        transports = [
            AuthenticatorTransport(t)
            for t in cred.transports or []
            if t in AuthenticatorTransport._value2member_map_
        ]
        out.append(PublicKeyCredentialDescriptor(id=cred.credential_id, transports=transports))
    return out


def _json(options: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(options_to_json(options))
    return data


def registration_options(
    rp: RelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    existing: Sequence[StoredCredential],
    challenge: bytes,
) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptionsJSON`` for enrolling a passkey.

    The account's passkeys are excluded (one authenticator, one credential); no
    attestation is asked for (we trust no vendor list, and it would identify devices).
    """
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user_name,
        user_id=user_handle,
        challenge=challenge,
        timeout=rp.timeout_ms,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return _json(options)


def verify_registration(
    rp: RelyingParty, *, credential: Mapping[str, Any], challenge: bytes
) -> NewCredential:
    """Check a ``navigator.credentials.create()`` answer against ``challenge``."""
    try:
        verified = verify_registration_response(
            credential=dict(credential),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_presence=True,
            require_user_verification=False,
        )
        response = credential.get("response")
        raw = response.get("transports") if isinstance(response, Mapping) else None
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        raise FactorInvalid()
    transports = [
        t for t in (raw if isinstance(raw, list) else []) if isinstance(t, str) and len(t) <= 16
    ][:8]
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
    )


def authentication_options(
    rp: RelyingParty, *, allowed: Sequence[StoredCredential], challenge: bytes
) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptionsJSON`` naming the account's passkeys only."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=rp.timeout_ms,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return _json(options)


def credential_id_of(credential: Mapping[str, Any]) -> bytes:
    """The credential id an assertion claims (``rawId``), to find the stored key."""
    try:
        parsed = parse_authentication_credential_json(dict(credential))
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    if parsed.id != bytes_to_base64url(parsed.raw_id) or not parsed.raw_id:
        raise FactorInvalid()
    if len(parsed.raw_id) > MAX_CREDENTIAL_ID:
        raise FactorInvalid()
    return parsed.raw_id


def verify_assertion(
    rp: RelyingParty,
    *,
    credential: Mapping[str, Any],
    challenge: bytes,
    stored: StoredCredential,
    user_handle: bytes,
) -> int:
    """Check a ``navigator.credentials.get()`` answer; return the new sign count.

    Refused: another credential than ``stored``, a ``userHandle`` that is not
    ``user_handle``, a wrong challenge, origin or RP ID hash, a missing user-presence
    flag, a bad signature, or a sign count that did not grow.
    """
    try:
        parsed = parse_authentication_credential_json(dict(credential))
        if parsed.raw_id != stored.credential_id:
            raise FactorInvalid()
        handle = parsed.response.user_handle
        if handle is not None and handle != user_handle:
            raise FactorInvalid()
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=stored.public_key,
            credential_current_sign_count=stored.sign_count,
            require_user_verification=False,
        )
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    return verified.new_sign_count


# --- challenges and factors in the database ---------------------------------------------
# A challenge lives in the ``challenge`` column of the ``sessions`` row it belongs to: the
# pending login (kind "factor") for a login, the user's own session for an enrolment or a
# proof. Layout (57 bytes): purpose (1) | issued at, Unix seconds (8) | SHA-256 of the
# origin it was made for, first 16 bytes | the challenge (32). Verification takes the
# origin from the answer's clientDataJSON, insists it hashes to the stored one, and
# checks the answer against it exactly; the RP ID is that origin's host.
PURPOSE_LOGIN = 1
PURPOSE_REGISTER = 2
PURPOSE_PROOF = 3
_ORIGIN_HASH = 16
_PACKED = 1 + 8 + _ORIGIN_HASH + CHALLENGE_BYTES


def _origin_hash(origin: str) -> bytes:
    return hashlib.sha256(origin.encode("utf-8")).digest()[:_ORIGIN_HASH]


def _pack(purpose: int, at: datetime, rp: RelyingParty, challenge: bytes) -> bytes:
    return (
        bytes([purpose])
        + struct.pack(">q", int(at.timestamp()))
        + _origin_hash(rp.origin)
        + challenge
    )


@dataclass(frozen=True)
class _Pending:
    purpose: int
    issued_at: int
    origin_hash: bytes
    challenge: bytes


def _unpack(blob: bytes | None) -> _Pending:
    if blob is None or len(blob) != _PACKED:
        raise FactorInvalid()
    (issued,) = struct.unpack(">q", blob[1:9])
    return _Pending(blob[0], issued, blob[9 : 9 + _ORIGIN_HASH], blob[9 + _ORIGIN_HASH :])


def _claimed_rp(credential: Mapping[str, Any], pending: _Pending, timeout_ms: int) -> RelyingParty:
    """The RP the challenge was made for, from the answer's own ``origin``."""
    try:
        response = credential["response"]
        raw = base64url_to_bytes(response["clientDataJSON"])
        origin = json.loads(raw)["origin"]
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    if not isinstance(origin, str) or not hmac.compare_digest(
        _origin_hash(origin), pending.origin_hash
    ):
        raise FactorInvalid()
    host = urlsplit(origin).hostname
    if not host:
        raise FactorInvalid()
    return RelyingParty(id=host, origin=origin, timeout_ms=timeout_ms)


def _take_challenge(db: Session, *, row: AuthSession, purpose: int, now: Clock) -> _Pending:
    """Use up ``row``'s challenge (committed at once: a failed answer burns it too)."""
    blob = row.challenge
    pending = _unpack(blob)
    taken = db.execute(
        update(AuthSession)
        .where(AuthSession.id == row.id, AuthSession.challenge == blob)
        .values(challenge=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken) != 1:
        db.rollback()
        raise FactorInvalid()
    db.commit()
    db.refresh(row)
    if pending.purpose != purpose:
        raise FactorInvalid()
    if pending.issued_at + int(CHALLENGE_TTL.total_seconds()) <= int(now().timestamp()):
        raise FactorInvalid("the passkey request expired: try again")
    return pending


def _put_challenge(
    db: Session, *, row: AuthSession, purpose: int, rp: RelyingParty, now: Clock
) -> bytes:
    challenge = new_challenge()
    row.challenge = _pack(purpose, now(), rp, challenge)
    db.commit()
    return challenge


def user_handle(user: User) -> bytes:
    """The WebAuthn user handle: the account id (random, not the email)."""
    return user.id.encode("ascii")


def _passkeys(db: Session, user_id: str) -> list[UserFactor]:
    return list(
        db.scalars(
            select(UserFactor)
            .where(
                UserFactor.user_id == user_id,
                UserFactor.kind == "passkey",
                UserFactor.confirmed_at.is_not(None),
            )
            .order_by(UserFactor.created_at, UserFactor.id)
        )
    )


def _stored(factor: UserFactor) -> StoredCredential:
    assert factor.credential_id is not None and factor.credential_public_key is not None
    return StoredCredential(
        credential_id=factor.credential_id,
        public_key=factor.credential_public_key,
        sign_count=factor.sign_count,
        transports=list(factor.transports or []),
    )


def _count_factors(db: Session, user_id: str) -> int:
    count = db.scalar(
        select(func.count()).select_from(UserFactor).where(UserFactor.user_id == user_id)
    )
    return int(count or 0)


def start_registration(
    db: Session, *, user: User, session: AuthSession, rp: RelyingParty, now: Clock = utcnow
) -> dict[str, Any]:
    """Creation options for a new passkey of ``user``; the challenge goes on ``session``."""
    if _count_factors(db, user.id) >= factors.MAX_FACTORS:
        raise TooManyFactors()
    existing = [_stored(f) for f in _passkeys(db, user.id)]
    challenge = _put_challenge(db, row=session, purpose=PURPOSE_REGISTER, rp=rp, now=now)
    return registration_options(
        rp,
        user_handle=user_handle(user),
        user_name=user.email,
        existing=existing,
        challenge=challenge,
    )


def finish_registration(
    db: Session,
    *,
    user: User,
    session: AuthSession,
    label: str,
    credential: Mapping[str, Any],
    address: str | None = None,
    client: ClientInfo | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    now: Clock = utcnow,
) -> factors.Confirmed:
    """Check the authenticator's answer and enrol the passkey (confirmed at once: the
    answer to a fresh challenge is its first use). Audited ``auth.factor_added``."""
    pending = _take_challenge(db, row=session, purpose=PURPOSE_REGISTER, now=now)
    rp = _claimed_rp(credential, pending, timeout_ms)
    new = verify_registration(rp, credential=credential, challenge=pending.challenge)
    if _count_factors(db, user.id) >= factors.MAX_FACTORS:
        raise TooManyFactors()
    taken = db.scalar(select(UserFactor.id).where(UserFactor.credential_id == new.credential_id))
    if taken is not None:
        raise PasskeyTaken()
    factor = UserFactor(
        user_id=user.id,
        kind="passkey",
        label=label,
        credential_id=new.credential_id,
        credential_public_key=new.public_key,
        sign_count=new.sign_count,
        transports=new.transports,
        created_at=now(),
    )
    db.add(factor)
    try:
        db.flush()
    except IntegrityError as exc:  # the same credential enrolled by a racing request
        db.rollback()
        raise PasskeyTaken() from exc
    return factors.confirm_factor(
        db, user=user, factor=factor, address=address, client=client, now=now
    )


def _pending_login(db: Session, pending_token: str, now: Clock) -> AuthSession:
    row = db.scalar(select(AuthSession).where(AuthSession.token_hash == token_hash(pending_token)))
    if (
        row is None
        or row.kind != "factor"
        or row.revoked_at is not None
        or row.expires_at <= now()
        or (row.attempts or 0) >= MAX_FACTOR_ATTEMPTS
    ):
        raise FactorExpired()
    return row


def login_options(
    db: Session, *, pending_token: str, rp: RelyingParty, now: Clock = utcnow
) -> dict[str, Any]:
    """Request options for the second step of a login (the pending login's passkeys)."""
    row = _pending_login(db, pending_token, now)
    allowed = [_stored(f) for f in _passkeys(db, row.user_id)]
    if not allowed:
        raise FactorNotFound("this account has no passkey")
    challenge = _put_challenge(db, row=row, purpose=PURPOSE_LOGIN, rp=rp, now=now)
    return authentication_options(rp, allowed=allowed, challenge=challenge)


def proof_options(
    db: Session, *, user: User, session: AuthSession, rp: RelyingParty, now: Clock = utcnow
) -> dict[str, Any]:
    """Request options for proving a passkey to a sensitive action (``verify_proof``)."""
    allowed = [_stored(f) for f in _passkeys(db, user.id)]
    if not allowed:
        raise FactorNotFound("this account has no passkey")
    challenge = _put_challenge(db, row=session, purpose=PURPOSE_PROOF, rp=rp, now=now)
    return authentication_options(rp, allowed=allowed, challenge=challenge)


def verify_for(
    db: Session,
    user: User,
    credential: dict[str, Any],
    row: AuthSession | None,
    now: Clock = utcnow,
) -> UserFactor:
    """``factors.verify_proof``'s passkey branch: check an assertion of ``user`` against
    the challenge on ``row`` (a pending login, or the user's session for a proof).

    The challenge is used up and committed first; the new sign count and ``last_used_at``
    are left in ``db`` for the caller's commit.
    """
    if row is None or row.user_id != user.id or row.kind not in ("factor", "session"):
        raise FactorInvalid()
    purpose = PURPOSE_LOGIN if row.kind == "factor" else PURPOSE_PROOF
    pending = _take_challenge(db, row=row, purpose=purpose, now=now)
    rp = _claimed_rp(credential, pending, DEFAULT_TIMEOUT_MS)
    wanted = credential_id_of(credential)
    factor = next((f for f in _passkeys(db, user.id) if f.credential_id == wanted), None)
    if factor is None:
        raise FactorInvalid()
    count = verify_assertion(
        rp,
        credential=credential,
        challenge=pending.challenge,
        stored=_stored(factor),
        user_handle=user_handle(user),
    )
    # The count moves forward only (or stays 0 for authenticators without a counter),
    # compared in the UPDATE: of two racing answers with one count, one gets through.
    moved = db.execute(
        update(UserFactor)
        .where(
            UserFactor.id == factor.id,
            UserFactor.sign_count < count if count > 0 else UserFactor.sign_count == 0,
        )
        .values(sign_count=count, last_used_at=now())
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise FactorInvalid()
    db.refresh(factor)
    return factor


factors.passkey_verifier = verify_for
