"""Record routes: upload (streaming multipart), list, get, download, delete."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from hygieia.api.deps import (
    AddressDep,
    BearerDep,
    ClientDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    StoreDep,
    client_address,
    client_info,
)
from hygieia.api.multipart import Batch, BodyPump, MultipartReader, Part, boundary_of
from hygieia.api.schemas import (
    MAX_META_JSON,
    RecordList,
    RecordMetaCreate,
    RecordPublic,
    render_record_list,
)
from hygieia.api.uploads import UploadSlots
from hygieia.config import Settings
from hygieia.db.models import Record, User
from hygieia.errors import ValidationFailed
from hygieia.services import accounts, audit, records
from hygieia.services.audit import ClientInfo
from hygieia.storage import BlobStore, StoreSet

router = APIRouter(tags=["records"])


def _record_json(db: Session, store: BlobStore, record: Record, status_code: int = 200) -> Response:
    """A record as the API shows it: its rendering stored at ingest (``records.listing``),
    the same bytes the listing serves, so there is one rendering of a record; and its
    copies."""
    body = records.public_json(db, record, _store_ids(store))
    return Response(body, status_code=status_code, media_type="application/json")


def _store_ids(store: BlobStore) -> list[str]:
    return store.ids if isinstance(store, StoreSet) else ["store"]


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
                            "description": "JSON {id, cid, size, segments, pkesk, "
                            "sealed_metadata, envelope}; must be the first part. "
                            "id: the record id the client chose and sealed into the "
                            "metadata (lowercase UUIDv4); 409 record_id_taken if any "
                            "record has it",
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
    client: ClientDep,
) -> Response:
    """Upload a sealed record: parts ``meta`` (JSON) then ``content`` (ciphertext)."""
    boundary = boundary_of(request.headers.get("content-type"))
    slots: UploadSlots = request.app.state.upload_slots
    with slots.take(user.id):
        # The token check left a database connection checked out: it goes back to the
        # pool while the body trickles in (forty stalled uploads held forty, and every
        # route that reads the database waited for one).
        await anyio.to_thread.run_sync(db.commit)
        form = _RecordForm(db, store, user=user, settings=settings)
        reader = MultipartReader(boundary, form)
        try:
            # The body is read on the event loop; parsing, checking and storing block,
            # so each batch that has arrived goes to a worker thread, and the thread
            # is given back before the next batch is awaited.
            async with BodyPump(request.receive) as pump:
                async for batch in pump.batches():
                    await anyio.to_thread.run_sync(_feed, reader, batch)
            record = await anyio.to_thread.run_sync(
                partial(form.commit, reader, address=address, client=client)
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(form.abort)
            raise
        body = await anyio.to_thread.run_sync(records.public_json, db, record, _store_ids(store))
    return Response(body, status_code=201, media_type="application/json")


def _feed(reader: MultipartReader, batch: Batch) -> None:
    for piece in batch:
        reader.feed(piece)


class _RecordForm:
    """An upload's parts as they arrive: ``meta`` first, then ``content``, nothing else.

    The meta part is checked (and the quota with it) before a byte of content is
    stored; content goes straight into the record's put. The record is committed only
    once the whole body has been read and found well formed.
    """

    def __init__(self, db: Session, store: BlobStore, *, user: User, settings: Settings) -> None:
        self._db = db
        self._store = store
        self._user = user
        self._settings = settings
        self._state = "start"
        self._meta = bytearray()
        self._upload: records.Upload | None = None

    def part(self, part: Part) -> None:
        if self._state == "start":
            if part.name != "meta":
                raise ValidationFailed("the first part must be 'meta'")
            self._state = "meta"
        elif self._state == "after meta":
            if part.name != "content":
                raise ValidationFailed("the second part must be 'content'")
            self._state = "content"
        else:
            raise ValidationFailed("unexpected extra multipart part")

    def data(self, data: bytes) -> None:
        if self._state == "meta":
            self._meta += data
            if len(self._meta) > MAX_META_JSON:
                raise ValidationFailed("form field too large")
        elif self._state == "content":
            assert self._upload is not None
            self._upload.write(data)

    def part_end(self) -> None:
        if self._state == "meta":
            meta = RecordMetaCreate.from_part(
                bytes(self._meta), max_record_bytes=self._settings.max_record_bytes
            )
            self._upload = records.start_upload(
                self._db,
                self._store,
                owner=self._user,
                meta=meta,
                quota_bytes=self._settings.quota_bytes,
            )
            self._db.commit()  # no connection held while the content streams
            self._state = "after meta"
        elif self._state == "content":
            self._state = "done"

    def commit(self, reader: MultipartReader, *, address: str, client: ClientInfo) -> Record:
        """The body has been read: if it was exactly meta + content, index the record."""
        reader.close()
        if self._state == "after meta":
            raise ValidationFailed("the second part must be 'content'")
        if self._state != "done" or self._upload is None:
            raise ValidationFailed("the first part must be 'meta'")
        return self._upload.commit(self._db, address=address, client=client)

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()


@router.get("/records", response_model=RecordList)
async def list_records(
    request: Request,
    token: BearerDep,
    limit: Annotated[int, Query(ge=1, le=records.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The caller's records, newest first (cursor pagination). The first page of a
    listing is one ``records.listed`` event in the trail (not one per record or page)."""

    store_ids = _store_ids(request.app.state.store)
    address = await client_address(request)
    client = await client_info(request)

    def page() -> bytes:
        # Core connection, no ORM session, autocommit: two small reads (and, at most once
        # a minute, the session's last use; on a first page, the audit event).
        with request.app.state.read_engine.connect() as conn:
            user_id, _ = accounts.authenticated_ids(conn, token=token)
            items, next_cursor = records.list_page(
                conn, owner_id=user_id, limit=limit, cursor=cursor, stores=store_ids
            )
            if cursor is None:
                audit.record_event_now(
                    conn, event="records.listed", user_id=user_id, address=address, client=client
                )
        return render_record_list(items, next_cursor)

    # The hot path: authentication, query and rendering in one worker-thread hop, on
    # the few threads of the read limiter (see Settings.read_threads).
    body = await anyio.to_thread.run_sync(page, limiter=request.app.state.read_limiter)
    return Response(body, media_type="application/json")


@router.get("/records/{record_id}", response_model=RecordPublic)
def get_record(
    record_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    address: AddressDep,
    client: ClientDep,
) -> Response:
    """One record's sealed metadata, CID, key packets and copies (``record.viewed``)."""
    record = records.viewed(db, owner=user, record_id=record_id, address=address, client=client)
    return _record_json(db, store, record)


@router.get(
    "/records/{record_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    record_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    address: AddressDep,
    client: ClientDep,
) -> StreamingResponse:
    """The record's ciphertext, streamed exactly as stored (``record.read``)."""
    row, stream = records.read(
        db, store, owner=user, record_id=record_id, address=address, client=client
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


@router.delete("/records/{record_id}", status_code=204)
def delete_record(
    record_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    address: AddressDep,
    client: ClientDep,
) -> Response:
    """Delete a record and release its pin."""
    records.remove(db, store, owner=user, record_id=record_id, address=address, client=client)
    return Response(status_code=204)
