"""SMART Health Link routes (protocol §9): the owner's (create, list, revoke) under
``/links``, and the spec's public ones, unauthenticated by design: the manifest
(``POST /shl/{token}``), a ``U`` link's file (``GET /shl/{token}?recipient=``) and the
short-lived ``location`` files (``GET /shl-files/{ticket}``). The public routes are
throttled per client address and answer browsers of any origin (CORS, in
``api/middleware.py``)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from hygieia.api.deps import (
    AddressDep,
    ClientDep,
    ClockDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from hygieia.api.multipart import Batch, BodyPump, MultipartReader, Part, boundary_of
from hygieia.api.schemas import (
    MAX_META_JSON,
    LinkCreate,
    LinkCreated,
    LinkList,
    LinkPublic,
    ManifestRequestIn,
)
from hygieia.api.uploads import UploadSlots
from hygieia.config import Settings
from hygieia.db.models import ShareLink, User
from hygieia.errors import ValidationFailed
from hygieia.services import links, ratelimit
from hygieia.services.audit import ClientInfo
from hygieia.services.common import Clock
from hygieia.services.hashing import HashLimiter
from hygieia.storage import BlobStore

router = APIRouter(tags=["links"])
public = APIRouter(tags=["smart-health-links"])

JOSE = "application/jose"


def policy_of(settings: Settings) -> links.LinkPolicy:
    return links.LinkPolicy(
        max_link_bytes=settings.max_link_bytes,
        max_days=settings.link_max_days,
        passcode_attempts=settings.link_passcode_attempts,
        location_seconds=settings.link_location_seconds,
    )


def _public(db: Session, link: ShareLink, now: datetime) -> dict[str, object]:
    files = links.files_of(db, link)
    return {
        "id": link.id,
        "flag": link.flag,
        "state": links.state_of(link, now),
        "sealed_label": link.sealed_label,
        "record_ids": list(link.record_ids or []),
        "passcode": link.passcode_hash is not None,
        "attempts_left": link.attempts_left if link.passcode_hash is not None else None,
        "max_opens": link.max_opens,
        "opens": link.opens,
        "files": len(files),
        "size": sum(f.size for f in files),
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "ended_at": link.ended_at,
    }


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["meta", "file"],
                    "properties": {
                        "meta": {
                            "type": "string",
                            "description": "JSON LinkCreate {flag, expires_at, max_opens, "
                            "passcode, sealed_label, record_ids, files: [{content_type, "
                            "size}]}; must be the first part",
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "one part per file, in order: a compact JWE",
                        },
                    },
                }
            }
        },
    }
}


@router.post("/links", response_model=LinkCreated, status_code=201, openapi_extra=UPLOAD_DOC)
async def create_link(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> LinkCreated:
    """Make a SMART Health Link: parts ``meta`` (JSON) then one ``file`` per JWE."""
    boundary = boundary_of(request.headers.get("content-type"))
    slots: UploadSlots = request.app.state.upload_slots
    hashing: HashLimiter = request.app.state.hash_limiter
    with slots.take(user.id):
        await anyio.to_thread.run_sync(db.commit)
        form = _LinkForm(db, store, user=user, settings=settings, hashing=hashing, clock=clock)
        reader = MultipartReader(boundary, form)
        try:
            async with BodyPump(request.receive) as pump:
                async for batch in pump.batches():
                    await anyio.to_thread.run_sync(_feed, reader, batch)
            link, token = await anyio.to_thread.run_sync(
                partial(form.commit, reader, address=address, client=client)
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(form.abort)
            raise
        body = await anyio.to_thread.run_sync(_public, db, link, clock())
    return LinkCreated.model_validate({**body, "path": links.MANIFEST_PATH + token})


def _feed(reader: MultipartReader, batch: Batch) -> None:
    for piece in batch:
        reader.feed(piece)


class _LinkForm:
    """A link upload's parts: ``meta`` first, then one ``file`` part per announced file."""

    def __init__(
        self,
        db: Session,
        store: BlobStore,
        *,
        user: User,
        settings: Settings,
        hashing: HashLimiter,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._db = db
        self._store = store
        self._user = user
        self._settings = settings
        self._hashing = hashing
        self._state = "start"
        self._meta = bytearray()
        self._upload: links.LinkUpload | None = None

    def part(self, part: Part) -> None:
        if self._state == "start":
            if part.name != "meta":
                raise ValidationFailed("the first part must be 'meta'")
            self._state = "meta"
        elif self._state == "files":
            if part.name != "file":
                raise ValidationFailed("parts after 'meta' must be 'file'")
            assert self._upload is not None
            self._upload.start_file()
            self._state = "file"
        else:
            raise ValidationFailed("unexpected multipart part")

    def data(self, data: bytes) -> None:
        if self._state == "meta":
            self._meta += data
            if len(self._meta) > MAX_META_JSON:
                raise ValidationFailed("form field too large")
        elif self._state == "file":
            assert self._upload is not None
            self._upload.write(data)

    def part_end(self) -> None:
        if self._state == "meta":
            meta = LinkCreate.from_part(bytes(self._meta))
            self._upload = links.start_link(
                self._db,
                self._store,
                owner=self._user,
                link=meta,
                policy=policy_of(self._settings),
                hashing=self._hashing,
                now=self._clock,
            )
            self._state = "files"
        elif self._state == "file":
            assert self._upload is not None
            self._upload.end_file()
            self._state = "files"

    def commit(
        self, reader: MultipartReader, *, address: str, client: ClientInfo
    ) -> tuple[ShareLink, str]:
        reader.close()
        if self._upload is None:
            raise ValidationFailed("the first part must be 'meta'")
        if self._state != "files":
            raise ValidationFailed("the body ended inside a part")
        return self._upload.commit(self._db, address=address, client=client, now=self._clock)

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()


@router.get("/links", response_model=LinkList)
def list_links(user: CurrentUser, db: SessionDep, clock: ClockDep) -> LinkList:
    """Your share links, newest first (ended ones too, with why they ended)."""
    now = clock()
    rows = links.list_links(db, owner=user)
    items = [LinkPublic.model_validate(_public(db, k, now)) for k in rows]
    return LinkList(items=items)


@router.get("/links/{link_id}", response_model=LinkPublic)
def get_link(link_id: str, user: CurrentUser, db: SessionDep, clock: ClockDep) -> LinkPublic:
    """One of your share links."""
    link = links.get(db, owner=user, link_id=link_id)
    return LinkPublic.model_validate(_public(db, link, clock()))


@router.delete("/links/{link_id}", status_code=204)
def revoke_link(
    link_id: str,
    user: CurrentUser,
    db: SessionDep,
    store: StoreDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> Response:
    """Revoke a link: it answers 404 from now on, and its files are unpinned."""
    links.revoke(db, store, owner=user, link_id=link_id, address=address, client=client, now=clock)
    return Response(status_code=204)


# --- public (the SHL spec) -------------------------------------------------------------------
def _throttle(db: Session, settings: Settings, address: str, clock: Clock) -> None:
    policy = ratelimit.Policy(
        free=settings.link_requests_per_hour, delay_seconds=10, window_seconds=ratelimit.HOUR
    )
    bucket = ratelimit.bucket("shl", policy, ratelimit.client_key(address))
    ratelimit.claim(db, [bucket], now=clock)


@public.post("/shl/{token}")
def manifest(
    token: str,
    body: ManifestRequestIn,
    request: Request,
    db: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> JSONResponse:
    """SHL manifest request: ``{recipient, passcode?, embeddedLengthMax?}`` → ``files``."""
    _throttle(db, settings, address, clock)
    out = links.open_manifest(
        db,
        store,
        token=token,
        request=links.ManifestRequest(
            recipient=body.recipient,
            passcode=body.passcode,
            embedded_length_max=body.embeddedLengthMax,
        ),
        base_url=settings.public_url or str(request.base_url),
        address=address,
        client=client,
        policy=policy_of(settings),
        hashing=request.app.state.hash_limiter,
        now=clock,
    )
    return JSONResponse(out)


def _jose(size: int, stream: object) -> StreamingResponse:
    return StreamingResponse(
        stream,  # type: ignore[arg-type]
        media_type=JOSE,
        headers={"content-length": str(size)},
    )


@public.get(
    "/shl/{token}",
    response_class=StreamingResponse,
    responses={200: {"content": {JOSE: {}}}},
)
def direct_file(
    token: str,
    db: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
    recipient: Annotated[str, Query(max_length=1024)] = "",
) -> StreamingResponse:
    """A ``U`` link's one encrypted file (``GET url?recipient=``)."""
    _throttle(db, settings, address, clock)
    f, stream = links.open_direct(
        db, store, token=token, recipient=recipient, address=address, client=client, now=clock
    )
    return _jose(f.size, stream)


@public.get(
    "/shl-files/{ticket}",
    response_class=StreamingResponse,
    responses={200: {"content": {JOSE: {}}}},
)
def location_file(
    ticket: str,
    db: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    address: AddressDep,
    client: ClientDep,
    clock: ClockDep,
) -> StreamingResponse:
    """A file by a manifest's ``location`` URL (valid for minutes, at most an hour)."""
    _throttle(db, settings, address, clock)
    f, stream = links.open_location(
        db, store, ticket=ticket, address=address, client=client, now=clock
    )
    return _jose(f.size, stream)
