"""Passkey routes (protocol §10, "Passkeys"): enrolment, and the options for a login's
second step or a sensitive action's proof. The answers themselves go where every
factor goes: ``/auth/login/factor`` and the ``factor`` field of sensitive actions
(``method: "passkey"``), checked by ``services.passkeys.verify_for``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from hygieia.api.deps import AuthDep, SessionDep, SettingsDep, ThrottleDep
from hygieia.api.schemas import (
    FactorConfirmedPublic,
    PasskeyCreate,
    PasskeyOptionsPublic,
    PendingTokenIn,
)
from hygieia.config import Settings
from hygieia.services import passkeys

router = APIRouter(tags=["factors"])


def _rp(request: Request, settings: Settings) -> passkeys.RelyingParty:
    """``HYGIEIA_PUBLIC_URL``'s origin, else the one this request came to (its Host
    header passed the allowed-hosts check)."""
    return passkeys.relying_party(
        public_url=settings.public_url,
        scheme=request.url.scheme,
        host=request.headers.get("host", ""),
        timeout_ms=settings.passkey_timeout_seconds * 1000,
    )


@router.post("/auth/factors/passkey/options", response_model=PasskeyOptionsPublic)
def passkey_creation_options(
    request: Request, auth: AuthDep, db: SessionDep, settings: SettingsDep
) -> PasskeyOptionsPublic:
    """Creation options for a new passkey (the challenge lives 5 minutes, used once)."""
    user, session = auth
    rp = _rp(request, settings)
    options = passkeys.start_registration(db, user=user, session=session, rp=rp)
    return PasskeyOptionsPublic(options=options)


@router.post("/auth/factors/passkey", response_model=FactorConfirmedPublic)
def add_passkey(
    body: PasskeyCreate,
    auth: AuthDep,
    db: SessionDep,
    throttle: ThrottleDep,
    settings: SettingsDep,
) -> FactorConfirmedPublic:
    """Enrol a passkey from the authenticator's answer; the account's first factor
    brings ten backup codes."""
    user, session = auth
    done = passkeys.finish_registration(
        db,
        user=user,
        session=session,
        label=body.label,
        credential=body.credential,
        address=throttle["address"],
        client=throttle["client"],
    )
    return FactorConfirmedPublic.model_validate(done)


@router.post("/auth/login/passkey/options", response_model=PasskeyOptionsPublic)
def passkey_login_options(
    body: PendingTokenIn, request: Request, db: SessionDep, settings: SettingsDep
) -> PasskeyOptionsPublic:
    """Request options for a pending login's passkeys (then ``/auth/login/factor``)."""
    rp = _rp(request, settings)
    options = passkeys.login_options(db, pending_token=body.pending_token, rp=rp)
    return PasskeyOptionsPublic(options=options)


@router.post("/auth/factors/proof/passkey-options", response_model=PasskeyOptionsPublic)
def passkey_proof_options(
    request: Request, auth: AuthDep, db: SessionDep, settings: SettingsDep
) -> PasskeyOptionsPublic:
    """Request options for proving a passkey to a sensitive action (its ``factor``)."""
    user, session = auth
    rp = _rp(request, settings)
    options = passkeys.proof_options(db, user=user, session=session, rp=rp)
    return PasskeyOptionsPublic(options=options)
