"""Sharing routes (protocol §7): grants by the owner, shared records for the recipient."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from hygieia.api.deps import AddressDep, ClientDep, CurrentUser, SessionDep, StoreDep
from hygieia.api.schemas import (
    GrantList,
    GrantPage,
    GrantPublic,
    GrantsCreate,
    SharedRecordPage,
    SharedRecordPublic,
)
from hygieia.services import sharing

router = APIRouter(tags=["sharing"])

Limit = Annotated[int, Query(ge=1, le=sharing.MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.post("/grants", response_model=GrantList, status_code=201)
def create_grants(
    body: GrantsCreate, user: CurrentUser, db: SessionDep, address: AddressDep, client: ClientDep
) -> GrantList:
    """Share records: one grant per (record, recipient email), all or none."""
    rows = sharing.create_grants(db, owner=user, grants=body.grants, address=address, client=client)
    return GrantList(items=[GrantPublic.model_validate(r) for r in rows])


@router.get("/grants", response_model=GrantPage)
def list_grants(
    user: CurrentUser, db: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> GrantPage:
    """The grants of all your records, newest first."""
    rows, next_cursor = sharing.grants_page(db, owner=user, limit=limit, cursor=cursor)
    return GrantPage(items=[GrantPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/records/{record_id}/grants", response_model=GrantList)
def record_grants(record_id: str, user: CurrentUser, db: SessionDep) -> GrantList:
    """One of your records' grants, oldest first."""
    rows = sharing.grants_of_record(db, owner=user, record_id=record_id)
    return GrantList(items=[GrantPublic.model_validate(r) for r in rows])


@router.delete("/grants/{grant_id}", status_code=204)
def revoke_grant(
    grant_id: str, user: CurrentUser, db: SessionDep, address: AddressDep, client: ClientDep
) -> Response:
    """Revoke a grant: the recipient gets 404 from now on."""
    sharing.revoke(db, owner=user, grant_id=grant_id, address=address, client=client)
    return Response(status_code=204)


@router.get("/shared", response_model=SharedRecordPage)
def list_shared(
    user: CurrentUser, db: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> SharedRecordPage:
    """Records shared with you, newest grant first."""
    items, next_cursor = sharing.shared_page(db, recipient=user, limit=limit, cursor=cursor)
    return SharedRecordPage(
        items=[SharedRecordPublic.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.get("/shared/{record_id}", response_model=SharedRecordPublic)
def get_shared(record_id: str, user: CurrentUser, db: SessionDep) -> SharedRecordPublic:
    """A record shared with you: its CID, your key packets, and who shared it."""
    return SharedRecordPublic.model_validate(
        sharing.get_shared(db, recipient=user, record_id=record_id)
    )


@router.get(
    "/shared/{record_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def shared_content(
    record_id: str, user: CurrentUser, db: SessionDep, store: StoreDep
) -> StreamingResponse:
    """A shared record's ciphertext, streamed exactly as stored."""
    row, stream = sharing.open_shared_content(db, store, recipient=user, record_id=record_id)
    return StreamingResponse(
        stream,
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.size),
            "x-hygieia-cid": row.cid,
            "content-disposition": f'attachment; filename="{row.id}.pgp"',
        },
    )


@router.delete("/shared/{record_id}", status_code=204)
def remove_shared(record_id: str, user: CurrentUser, db: SessionDep) -> Response:
    """Remove a record shared with you from your list (it stays its owner's)."""
    sharing.remove_shared(db, recipient=user, record_id=record_id)
    return Response(status_code=204)
