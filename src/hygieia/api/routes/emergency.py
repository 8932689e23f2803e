"""Emergency access routes (protocol §8): contacts by the owner, access for the contact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from hygieia.api.deps import AddressDep, ClientDep, ClockDep, CurrentUser, SessionDep, StoreDep
from hygieia.api.schemas import (
    EmergencyAccessList,
    EmergencyAccessPublic,
    EmergencyContactCreate,
    EmergencyContactList,
    EmergencyContactPublic,
    EmergencyVaultPublic,
    RecordList,
    RecordPublic,
    render_record_list,
)
from hygieia.services import emergency, records
from hygieia.storage import BlobStore, StoreSet

router = APIRouter(prefix="/emergency", tags=["emergency access"])


# --- the owner's side --------------------------------------------------------------------
@router.post("/contacts", response_model=EmergencyContactPublic, status_code=201)
def add_contact(
    body: EmergencyContactCreate,
    user: CurrentUser,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> EmergencyContactPublic:
    """Name a trusted contact (or replace one): your vault key sealed to their key."""
    view = emergency.add_contact(
        db,
        owner=user,
        email=body.email,
        wait_days=body.wait_days,
        sealed_vault_key=body.sealed_vault_key,
        address=address,
        client=client,
        now=clock,
    )
    return EmergencyContactPublic.model_validate(view)


@router.get("/contacts", response_model=EmergencyContactList)
def list_contacts(user: CurrentUser, db: SessionDep, clock: ClockDep) -> EmergencyContactList:
    """Your emergency contacts and their requests."""
    views = emergency.contacts_of(db, owner=user, now=clock)
    return EmergencyContactList(items=[EmergencyContactPublic.model_validate(v) for v in views])


@router.delete("/contacts/{contact_id}", status_code=204)
def remove_contact(
    contact_id: str,
    user: CurrentUser,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> Response:
    """Remove a contact: its sealed vault key goes, any access ends at once."""
    emergency.remove_contact(
        db, owner=user, contact_id=contact_id, address=address, client=client, now=clock
    )
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/approve", response_model=EmergencyContactPublic)
def approve(
    contact_id: str,
    user: CurrentUser,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> EmergencyContactPublic:
    """Grant a waiting request now, without the rest of the wait."""
    view = emergency.approve(
        db, owner=user, contact_id=contact_id, address=address, client=client, now=clock
    )
    return EmergencyContactPublic.model_validate(view)


@router.post("/contacts/{contact_id}/deny", response_model=EmergencyContactPublic)
def deny(
    contact_id: str,
    user: CurrentUser,
    db: SessionDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> EmergencyContactPublic:
    """Refuse a waiting request, or end a granted access."""
    view = emergency.deny(
        db, owner=user, contact_id=contact_id, address=address, client=client, now=clock
    )
    return EmergencyContactPublic.model_validate(view)


# --- the contact's side ------------------------------------------------------------------
@router.get("/access", response_model=EmergencyAccessList)
def list_access(user: CurrentUser, db: SessionDep, clock: ClockDep) -> EmergencyAccessList:
    """The vaults you are an emergency contact for."""
    views = emergency.accesses_of(db, contact=user, now=clock)
    return EmergencyAccessList(items=[EmergencyAccessPublic.model_validate(v) for v in views])


@router.post("/access/{access_id}/request", response_model=EmergencyAccessPublic)
def request_access(
    access_id: str, user: CurrentUser, db: SessionDep, clock: ClockDep
) -> EmergencyAccessPublic:
    """Ask for access: granted after the waiting period unless the owner refuses."""
    view = emergency.request(db, contact=user, access_id=access_id, now=clock)
    return EmergencyAccessPublic.model_validate(view)


@router.get("/access/{access_id}/vault", response_model=EmergencyVaultPublic)
def get_vault(
    access_id: str, user: CurrentUser, db: SessionDep, clock: ClockDep
) -> EmergencyVaultPublic:
    """Once granted: the sealed vault key and the owner's locked secret key."""
    view = emergency.vault(db, contact=user, access_id=access_id, now=clock)
    return EmergencyVaultPublic.model_validate(view)


def _store_ids(store: BlobStore) -> list[str]:
    # As the owner's own record routes count copies (routes.records).
    return store.ids if isinstance(store, StoreSet) else ["store"]


Limit = Annotated[int, Query(ge=1, le=records.MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/access/{access_id}/records", response_model=RecordList)
def list_records(
    access_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    clock: ClockDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Once granted: the owner's records, newest first (read-only)."""
    items, next_cursor = emergency.records_page(
        db,
        contact=user,
        access_id=access_id,
        limit=limit,
        cursor=cursor,
        stores=_store_ids(store),
        now=clock,
    )
    return Response(render_record_list(items, next_cursor), media_type="application/json")


@router.get("/access/{access_id}/records/{record_id}", response_model=RecordPublic)
def get_record(
    access_id: str,
    record_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    clock: ClockDep,
) -> Response:
    """Once granted: one of the owner's records."""
    row = emergency.record(db, contact=user, access_id=access_id, record_id=record_id, now=clock)
    body = records.public_json(db, row, _store_ids(store))
    return Response(body, media_type="application/json")


@router.get(
    "/access/{access_id}/records/{record_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def record_content(
    access_id: str,
    record_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    clock: ClockDep,
) -> StreamingResponse:
    """Once granted: one of the owner's records' ciphertext, streamed as stored."""
    row, stream = emergency.open_content(
        db, store, contact=user, access_id=access_id, record_id=record_id, now=clock
    )
    return StreamingResponse(
        stream,
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.size),
            "x-hygieia-cid": row.cid,
            "content-disposition": f'attachment; filename="{row.id}.pgp"',
        },
    )
