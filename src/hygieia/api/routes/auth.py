"""Zero-knowledge account routes (DESIGN §3, docs/protocol.md §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from hygieia.api.deps import AuthDep, CurrentUser, SessionDep, ThrottleDep
from hygieia.api.schemas import (
    AccountPublic,
    AuditEventPublic,
    Email,
    LoginCreate,
    LoginFactorCreate,
    PasswordChange,
    PendingLoginPublic,
    PreloginPublic,
    RecoverComplete,
    RecoverCreate,
    RecoveryPublic,
    SessionPublic,
    SignupCreate,
    SignupPublic,
    UserKeyLookup,
    UserKeyPublic,
)
from hygieia.services import accounts, audit

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
def logout(auth: AuthDep, db: SessionDep) -> Response:
    """Revoke the presented session token."""
    accounts.logout(db, session=auth[1])
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


@router.get("/audit", response_model=list[AuditEventPublic])
def audit_trail(
    user: CurrentUser, db: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[AuditEventPublic]:
    """Your own audit trail (logins, failures, password changes, record events)."""
    return [
        AuditEventPublic.model_validate(e)
        for e in audit.events_for(db, user_id=user.id, limit=limit)
    ]


@router.post("/users/key", response_model=UserKeyPublic)
def user_key(
    body: UserKeyLookup, auth: AuthDep, db: SessionDep, throttle: ThrottleDep
) -> UserKeyPublic:
    """Another account's public key, for sharing (a stable stand-in for unknown emails).

    A POST so the email stays out of URLs and logs; throttled per address and session.
    """
    info = accounts.public_key_of(db, email=body.email, session_id=auth[1].id, **throttle)
    return UserKeyPublic.model_validate(info)
