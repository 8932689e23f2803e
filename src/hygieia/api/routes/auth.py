"""Zero-knowledge account routes (DESIGN §3, docs/protocol.md §4)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from hygieia.api.deps import (
    AddressDep,
    AuthDep,
    ClientDep,
    CurrentUser,
    SessionDep,
    StoreDep,
    ThrottleDep,
)
from hygieia.api.schemas import (
    AccountPublic,
    AuditEventPublic,
    AuditPage,
    Email,
    LoginCreate,
    LoginFactorCreate,
    PasswordChange,
    PendingLoginPublic,
    PreloginPublic,
    RecoverComplete,
    RecoverCreate,
    RecoveryPublic,
    SensitiveProof,
    SessionInfoPublic,
    SessionPublic,
    SessionsRevoked,
    SignupCreate,
    SignupPublic,
    UserKeyLookup,
    UserKeyPublic,
)
from hygieia.errors import ValidationFailed
from hygieia.services import accounts, audit, leaving

router = APIRouter(tags=["accounts"])


@router.get("/auth/prelogin", response_model=PreloginPublic)
def prelogin(db: SessionDep, email: Annotated[Email, Query()]) -> PreloginPublic:
    """KDF parameters and salts for an email (stable fake ones for unknown emails)."""
    return PreloginPublic.model_validate(accounts.prelogin(db, email=email))


@router.post("/auth/signup", response_model=SignupPublic, status_code=201)
def signup(body: SignupCreate, db: SessionDep, throttle: ThrottleDep) -> SignupPublic:
    """Create an account from client-made keys and KDF outputs."""
    user = accounts.signup(
        db,
        email=body.email,
        kdf=body.kdf.model_dump(),
        salt=body.salt,
        recovery_salt=body.recovery_salt,
        auth_key=body.auth_key,
        public_key=body.public_key,
        locked_secret_key=body.locked_secret_key,
        wrapped_vault_key=body.wrapped_vault_key,
        recovery_wrapped_vault_key=body.recovery_wrapped_vault_key,
        recovery_verifier=body.recovery_verifier,
        **throttle,
    )
    return SignupPublic.model_validate(user)


@router.post("/auth/login", response_model=SessionPublic | PendingLoginPublic)
def login(
    body: LoginCreate, db: SessionDep, throttle: ThrottleDep
) -> SessionPublic | PendingLoginPublic:
    """Exchange ``auth_key`` for a session token, or, if the account has a second
    factor, for a pending login (``factor_required``) that ``/auth/login/factor`` ends."""
    issued = accounts.login(db, email=body.email, auth_key=body.auth_key, **throttle)
    if isinstance(issued, accounts.PendingLogin):
        return PendingLoginPublic.model_validate(issued)
    return SessionPublic.model_validate(issued)


@router.post("/auth/login/factor", response_model=SessionPublic)
def login_factor(body: LoginFactorCreate, db: SessionDep, throttle: ThrottleDep) -> SessionPublic:
    """The second step of a login: a pending login and a second factor make a session."""
    issued = accounts.login_factor(
        db, pending_token=body.pending_token, proof=body.proof(), **throttle
    )
    return SessionPublic.model_validate(issued)


@router.post("/auth/logout", status_code=204)
def logout(auth: AuthDep, db: SessionDep, address: AddressDep, client: ClientDep) -> Response:
    """Revoke the presented session token."""
    accounts.logout(db, session=auth[1], address=address, client=client)
    return Response(status_code=204)


@router.get("/me", response_model=AccountPublic)
def me(user: CurrentUser) -> AccountPublic:
    """The account, its public key, locked secret key and wrapped vault key."""
    return AccountPublic.model_validate(user)


@router.post("/auth/password", status_code=204)
def change_password(
    body: PasswordChange, auth: AuthDep, db: SessionDep, throttle: ThrottleDep
) -> Response:
    """Re-wrap the vault key under a new password; revokes every other session."""
    user, session = auth
    accounts.change_password(
        db, user=user, session=session, auth_key=body.auth_key, new=body.new_password(), **throttle
    )
    return Response(status_code=204)


@router.post("/auth/account/delete", status_code=204)
def delete_account(
    body: SensitiveProof,
    auth: AuthDep,
    db: SessionDep,
    store: StoreDep,
    throttle: ThrottleDep,
) -> Response:
    """Delete the account and everything of it (password proof, and factor if any)."""
    user, session = auth
    leaving.delete_account(
        db,
        store,
        user=user,
        session=session,
        auth_key=body.auth_key,
        proof=body.proof(),
        **throttle,
    )
    return Response(status_code=204)


@router.post("/auth/recover", response_model=RecoveryPublic)
def recover(body: RecoverCreate, db: SessionDep, throttle: ThrottleDep) -> RecoveryPublic:
    """Prove the recovery code; get the recovery-wrapped vault key and a one-time grant."""
    grant = accounts.start_recovery(
        db, email=body.email, recovery_auth=body.recovery_auth, **throttle
    )
    return RecoveryPublic.model_validate(grant)


@router.post("/auth/recover/complete", response_model=SessionPublic)
def recover_complete(body: RecoverComplete, db: SessionDep, throttle: ThrottleDep) -> SessionPublic:
    """Set a new password with a recovery grant; revokes every earlier session."""
    issued = accounts.complete_recovery(
        db,
        recovery_token=body.recovery_token,
        new=body.new_password(),
        pending_wrapped_vault_key=body.new_pending_wrapped_vault_key,
        **throttle,
    )
    return SessionPublic.model_validate(issued)


@router.get("/auth/sessions", response_model=list[SessionInfoPublic])
def list_sessions(auth: AuthDep, db: SessionDep) -> list[SessionInfoPublic]:
    """Your live sessions: client, user agent, address, created and last used (§11)."""
    user, session = auth
    return [
        SessionInfoPublic.model_validate(v)
        for v in accounts.list_sessions(db, user=user, current=session)
    ]


@router.delete("/auth/sessions/{session_id}", status_code=204)
def revoke_session(
    session_id: Annotated[str, Path(max_length=64)],
    user: CurrentUser,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
) -> Response:
    """Revoke one of your sessions; its next request answers 401. Not yours: 404."""
    accounts.revoke_session(db, user=user, session_id=session_id, address=address, client=client)
    return Response(status_code=204)


@router.post("/auth/sessions/revoke-others", response_model=SessionsRevoked)
def revoke_other_sessions(
    auth: AuthDep, db: SessionDep, address: AddressDep, client: ClientDep
) -> SessionsRevoked:
    """Revoke every session of yours but the one asking."""
    user, session = auth
    n = accounts.revoke_other_sessions(
        db, user=user, current=session, address=address, client=client
    )
    return SessionsRevoked(revoked=n)


#: An event kind or a family of kinds (a dot-separated prefix: ``record`` → ``record.*``).
KIND_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)?$"


@router.get("/audit", response_model=AuditPage)
def audit_trail(
    user: CurrentUser,
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    kind: Annotated[list[str] | None, Query(max_length=16)] = None,
) -> AuditPage:
    """Your own audit trail, newest first, a page at a time (protocol §11).

    ``kind`` (repeatable) is an event (``record.read``) or a family (``record`` matches
    every ``record.*``); ``since`` is inclusive, ``until`` exclusive (ISO 8601 with an
    offset); ``before`` is the ``next`` of the previous page.
    """
    for k in kind or []:
        if len(k) > 64 or not re.match(KIND_PATTERN, k):
            raise ValidationFailed("kind: an event kind or a family (e.g. record, auth.login)")
    for name, at in (("since", since), ("until", until)):
        if at is not None and at.tzinfo is None:
            raise ValidationFailed(f"{name}: a time with a UTC offset")
    rows, nxt = audit.events_page(
        db, user_id=user.id, limit=limit, before=before, since=since, until=until, kinds=kind
    )
    return AuditPage(events=[AuditEventPublic.model_validate(e) for e in rows], next=nxt)


@router.post("/users/key", response_model=UserKeyPublic)
def user_key(
    body: UserKeyLookup, auth: AuthDep, db: SessionDep, throttle: ThrottleDep
) -> UserKeyPublic:
    """Another account's public key, for sharing (a stable stand-in for unknown emails).

    A POST so the email stays out of URLs and logs; throttled per address and session.
    """
    info = accounts.public_key_of(db, email=body.email, session_id=auth[1].id, **throttle)
    return UserKeyPublic.model_validate(info)
