"""Second-factor routes (protocol §10): list, TOTP enrolment, removal, backup codes.

The login's second step is in ``routes.auth``; passkey routes live with the passkey code.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from hygieia.api.deps import AuthDep, CurrentUser, SessionDep, ThrottleDep
from hygieia.api.schemas import (
    BackupCodesPublic,
    FactorConfirmedPublic,
    FactorListPublic,
    SensitiveProof,
    TotpConfirm,
    TotpCreate,
    TotpEnrolmentPublic,
)
from hygieia.services import accounts, factors

router = APIRouter(tags=["factors"])


@router.get("/auth/factors", response_model=FactorListPublic)
def list_factors(user: CurrentUser, db: SessionDep) -> FactorListPublic:
    """The account's confirmed second factors and how many backup codes are left."""
    return FactorListPublic.model_validate(factors.list_factors(db, user=user))


@router.post("/auth/factors/totp", response_model=TotpEnrolmentPublic, status_code=201)
def start_totp(body: TotpCreate, user: CurrentUser, db: SessionDep) -> TotpEnrolmentPublic:
    """A new TOTP secret (unconfirmed until ``…/confirm`` gets a first code)."""
    return TotpEnrolmentPublic.model_validate(factors.start_totp(db, user=user, label=body.label))


@router.post("/auth/factors/totp/{factor_id}/confirm", response_model=FactorConfirmedPublic)
def confirm_totp(
    factor_id: str,
    body: TotpConfirm,
    user: CurrentUser,
    db: SessionDep,
    throttle: ThrottleDep,
) -> FactorConfirmedPublic:
    """Confirm a TOTP enrolment; the account's first factor brings ten backup codes."""
    done = factors.confirm_totp(
        db,
        user=user,
        factor_id=factor_id,
        code=body.code,
        address=throttle["address"],
        client=throttle["client"],
    )
    return FactorConfirmedPublic.model_validate(done)


@router.post("/auth/factors/{factor_id}/remove", status_code=204)
def remove_factor(
    factor_id: str,
    body: SensitiveProof,
    auth: AuthDep,
    db: SessionDep,
    throttle: ThrottleDep,
) -> Response:
    """Remove a factor: needs the password proof and a current factor."""
    user, session = auth
    accounts.prove_sensitive(
        db,
        user=user,
        auth_key=body.auth_key,
        proof=body.proof(),
        session=session,
        **throttle,
    )
    factors.remove_factor(
        db, user=user, factor_id=factor_id, address=throttle["address"], client=throttle["client"]
    )
    return Response(status_code=204)


@router.post("/auth/factors/backup-codes", response_model=BackupCodesPublic)
def renew_backup_codes(
    body: SensitiveProof, auth: AuthDep, db: SessionDep, throttle: ThrottleDep
) -> BackupCodesPublic:
    """Ten new backup codes (the old ones die): needs the password proof and a factor."""
    user, session = auth
    accounts.prove_sensitive(
        db,
        user=user,
        auth_key=body.auth_key,
        proof=body.proof(),
        session=session,
        **throttle,
    )
    codes = factors.renew_backup_codes(
        db, user=user, address=throttle["address"], client=throttle["client"]
    )
    return BackupCodesPublic(backup_codes=codes)
