"""Record routes: upload (streaming multipart), list, get, download, delete."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from hygieia.api.deps import (
    AddressDep,
    BearerDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from hygieia.api.multipart import BodyPump, MultipartReader, boundary_of
from hygieia.api.schemas import (
    MAX_META_JSON,
    RecordList,
    RecordMetaCreate,
    RecordPublic,
    render_record_list,
)
from hygieia.config import Settings
from hygieia.db.models import Record, User
from hygieia.errors import ValidationFailed
from hygieia.services import accounts, records
from hygieia.storage import BlobStore

router = APIRouter(tags=["records"])


def _record_json(record: Record, status_code: int = 200) -> Response:
    """A record as the API shows it: its rendering stored at ingest (``records.listing``),
    the same bytes the listing serves, so there is one rendering of a record."""
    return Response(record.listing, status_code=status_code, media_type="application/json")


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["meta", "content"],
                    "properties": {
                        "meta": {
                            "type": "string",
                            "description": "JSON {cid, size, segments, pkesk, "
                            "sealed_metadata, envelope}; must be the first part",
                        },
                        "content": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@router.post("/records", response_model=RecordPublic, status_code=201, openapi_extra=UPLOAD_DOC)
async def upload(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    address: AddressDep,
) -> Response:
    """Upload a sealed record: parts ``meta`` (JSON) then ``content`` (ciphertext)."""
    boundary = boundary_of(request.headers.get("content-type"))
    async with BodyPump(request.receive) as pump:
        # Parsing, checking and storing block, so they run in a worker thread fed by
        # the pump, which keeps reading the socket meanwhile.
        record = await run_in_threadpool(
            _ingest,
            pump,
            boundary,
            user=user,
            db=db,
            store=store,
            settings=settings,
            address=address,
        )
    return _record_json(record, status_code=201)


def _ingest(
    pump: BodyPump,
    boundary: bytes,
    *,
    user: User,
    db: Session,
    store: BlobStore,
    settings: Settings,
    address: str,
) -> Record:
    reader = MultipartReader(pump.chunks(), boundary)
    part = reader.next_part()
    if part is None or part.name != "meta":
        raise ValidationFailed("the first part must be 'meta'")
    meta = RecordMetaCreate.from_part(
        reader.read_small(MAX_META_JSON), max_record_bytes=settings.max_record_bytes
    )
    part = reader.next_part()
    if part is None or part.name != "content":
        raise ValidationFailed("the second part must be 'content'")
    row = records.create(db, store, owner=user, meta=meta, content=reader.data(), address=address)
    reader.expect_end()
    return row


@router.get("/records", response_model=RecordList)
async def list_records(
    request: Request,
    token: BearerDep,
    limit: Annotated[int, Query(ge=1, le=records.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The caller's records, newest first (cursor pagination)."""

    def page() -> bytes:
        # Core connection, no ORM session, no transaction: two small reads.
        with request.app.state.read_engine.connect() as conn:
            user_id = accounts.authenticated_user_id(conn, token=token)
            items, next_cursor = records.list_page(
                conn, owner_id=user_id, limit=limit, cursor=cursor
            )
        return render_record_list(items, next_cursor)

    # The hot path: authentication, query and rendering in one worker-thread hop, on
    # the few threads of the read limiter (see Settings.read_threads).
    body = await anyio.to_thread.run_sync(page, limiter=request.app.state.read_limiter)
    return Response(body, media_type="application/json")


@router.get("/records/{record_id}", response_model=RecordPublic)
def get_record(record_id: str, user: CurrentUser, db: SessionDep) -> Response:
    """One record's sealed metadata, CID and key packets."""
    return _record_json(records.get(db, owner=user, record_id=record_id))


@router.get(
    "/records/{record_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    record_id: str, user: CurrentUser, db: SessionDep, store: StoreDep
) -> StreamingResponse:
    """The record's ciphertext, streamed exactly as stored."""
    row = records.get(db, owner=user, record_id=record_id)
    stream = records.open_content(store, row)
    return StreamingResponse(
        stream,
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.size),
            "x-hygieia-cid": row.cid,
            "content-disposition": f'attachment; filename="{row.id}.pgp"',
        },
    )


@router.delete("/records/{record_id}", status_code=204)
def delete_record(
    record_id: str, user: CurrentUser, db: SessionDep, store: StoreDep, address: AddressDep
) -> Response:
    """Delete a record and release its pin."""
    records.remove(db, store, owner=user, record_id=record_id, address=address)
    return Response(status_code=204)
