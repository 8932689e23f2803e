"""Key and recovery-code rotation (protocol "Key rotation"; services.rotation)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hygieia.api.deps import (
    AddressDep,
    AuthDep,
    ClientDep,
    ClockDep,
    CurrentUser,
    SessionDep,
    ThrottleDep,
)
from hygieia.api.schemas import (
    KeyRotationCommit,
    KeyRotationCreate,
    KeyRotationPublic,
    PendingKeyPublic,
    RecordKeysUpdate,
    RecoveryRotate,
)
from hygieia.services import rotation

router = APIRouter(tags=["rotation"])


def _state(db: SessionDep, user: CurrentUser) -> KeyRotationPublic:
    st = rotation.state(db, user=user)
    return KeyRotationPublic(
        pending=None if st.pending is None else PendingKeyPublic.model_validate(st.pending),
        remaining=st.remaining,
        record_ids=st.record_ids,
        emergency_contact_ids=st.emergency_contact_ids,
        link_ids=st.link_ids,
    )


@router.post("/auth/keys/rotation", response_model=KeyRotationPublic, status_code=201)
def start_rotation(
    body: KeyRotationCreate, auth: AuthDep, db: SessionDep, throttle: ThrottleDep, clock: ClockDep
) -> KeyRotationPublic:
    """Store a new identity as pending (password proof and factor); records then move to it."""
    user, session = auth
    rotation.start(
        db,
        user=user,
        session=session,
        auth_key=body.auth_key,
        proof=body.proof(),
        public_key=body.public_key,
        locked_secret_key=body.locked_secret_key,
        wrapped_vault_key=body.wrapped_vault_key,
        recovery_wrapped_vault_key=body.recovery_wrapped_vault_key,
        now=clock,
        **throttle,
    )
    return _state(db, user)


@router.get("/auth/keys/rotation", response_model=KeyRotationPublic)
def rotation_state(user: CurrentUser, db: SessionDep) -> KeyRotationPublic:
    """The pending identity (null when none) and what is still on the old key."""
    return _state(db, user)


@router.post("/auth/keys/rotation/commit", status_code=204)
def commit_rotation(
    body: KeyRotationCommit,
    auth: AuthDep,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> Response:
    """Make the pending identity the account's; revokes every other session."""
    user, session = auth
    rotation.commit(
        db,
        user=user,
        session_id=session.id,
        emergency_keys={e.id: e.sealed_vault_key for e in body.emergency_keys},
        link_labels={lbl.id: lbl.sealed_label for lbl in body.link_labels},
        address=address,
        client=client,
        now=clock,
    )
    return Response(status_code=204)


@router.put("/records/{record_id}/keys", status_code=204)
def swap_record_keys(
    record_id: str, body: RecordKeysUpdate, user: CurrentUser, db: SessionDep, clock: ClockDep
) -> Response:
    """Re-seal one record's PKESK, metadata and envelope to the pending key."""
    rotation.swap_record_keys(
        db,
        owner=user,
        record_id=record_id,
        expected_fingerprint=body.expected_fingerprint,
        pkesk=body.pkesk,
        sealed_metadata=body.sealed_metadata,
        envelope=body.envelope,
        now=clock,
    )
    return Response(status_code=204)


@router.post("/auth/recovery/rotate", status_code=204)
def rotate_recovery(
    body: RecoveryRotate, auth: AuthDep, db: SessionDep, throttle: ThrottleDep, clock: ClockDep
) -> Response:
    """Install a new recovery code (password proof and factor); the old one stops working."""
    user, session = auth
    rotation.rotate_recovery(
        db,
        user=user,
        session=session,
        auth_key=body.auth_key,
        proof=body.proof(),
        recovery_salt=body.recovery_salt,
        recovery_verifier=body.recovery_verifier,
        recovery_wrapped_vault_key=body.recovery_wrapped_vault_key,
        now=clock,
        **throttle,
    )
    return Response(status_code=204)
