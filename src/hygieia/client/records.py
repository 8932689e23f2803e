"""Record flows done client-side: seal, upload, list, download, verify, open.

Upload: the file is sealed segment by segment (flat memory) into a temporary file while
its UnixFS CID is computed; the metadata (including that CID, the plaintext SHA-256 and
the record id this client chose) is sealed; then ciphertext and key packets go up in one
streaming multipart request.

Every read checks that what the server sent belongs to the record asked for: the sealed
metadata must name that id (:func:`hygieia.crypto.open_record_metadata`), and its CID
the content. Legacy records, sealed before the id was, open but say so (``bound``).

Download: the ciphertext streams in once; it is hashed into its CID and decrypted and
verified segment by segment on the way, into a temporary file next to the target. Only
when the CID, every signature, the segment order and the plaintext digest check out is
the file moved into place. Otherwise nothing is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from hygieia import crypto
from hygieia.client.account import LoggedIn, RotationError, pending_session
from hygieia.client.sdk import ApiError, HygieiaClient, RecordItem, SharedRecord
from hygieia.encoding import to_b64
from hygieia.errors import NotFound
from hygieia.ipfs import FileImporter, parse_cid

Progress = Callable[[int], None]


class RecordVerificationError(Exception):
    """A downloaded record failed a check (CID, signature, order, digest): nothing written."""


class RecordMismatchError(RecordVerificationError):
    """The server answered for a record with another record's data (swapped, moved or
    resurrected): the sealed id, the listed id and the id asked for must all agree."""


def _noop(_: int) -> None:
    pass


class _HashingReader:
    """File wrapper that hashes and reports what is read through it."""

    def __init__(self, raw: BinaryIO, progress: Progress) -> None:
        self._raw = raw
        self._progress = progress
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha256.update(data)
        self._progress(len(data))
        return data


def content_cid() -> tuple[FileImporter, Callable[[], str]]:
    importer = FileImporter(lambda _cid, _block: None)
    return importer, lambda: str(importer.finish())


@dataclass
class SealedFile:
    path: Path
    cid: str
    size: int
    segments: int
    metadata: dict[str, Any]


def seal_file(
    source: Path,
    *,
    session_key: bytes,
    signer: crypto.UnlockedKey,
    workdir: Path | None = None,
    progress: Progress = _noop,
) -> tuple[SealedFile, str]:
    """Seal ``source`` into a temporary file; returns it and the plaintext SHA-256."""
    size = source.stat().st_size
    importer, finish = content_cid()
    fd, tmp = tempfile.mkstemp(prefix=".hygieia-seal-", dir=workdir)
    count = written = 0
    try:
        with open(source, "rb") as raw, os.fdopen(fd, "wb") as out:
            reader = _HashingReader(raw, progress)
            for packet in crypto.seal_segments(
                cast(BinaryIO, reader), session_key=session_key, signer=signer, size=size
            ):
                out.write(packet)
                importer.write(packet)
                count += 1
                written += len(packet)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sealed = SealedFile(path=Path(tmp), cid=finish(), size=written, segments=count, metadata={})
    return sealed, reader.sha256.hexdigest()


@dataclass(frozen=True)
class RecordFields:
    """What the uploader says about a record (the rest of its metadata is measured).

    Left empty, the title is the file name, the type ``document`` and the media type
    guessed from the file name.
    """

    title: str | None = None
    record_type: str | None = None
    date: str | None = None
    provider: str | None = None
    tags: tuple[str, ...] = field(default=())
    media_type: str | None = None

    def __post_init__(self) -> None:
        if self.date:
            dt.date.fromisoformat(self.date)  # ValueError on a bad date, before any sealing


def build_metadata(
    source: Path, *, sealed: SealedFile, sha256: str, fields: RecordFields
) -> dict[str, Any]:
    # "v" and "id" are added when it is sealed (crypto.seal_record_metadata).
    return {
        "title": fields.title or source.name,
        "type": fields.record_type or "document",
        "date": fields.date,
        "provider": fields.provider,
        "tags": sorted(set(fields.tags)),
        "filename": source.name,
        "media_type": fields.media_type
        or mimetypes.guess_type(source.name)[0]
        or "application/octet-stream",
        "size": source.stat().st_size,
        "sha256": sha256,
        "cid": sealed.cid,
        "segments": sealed.segments,
        "segment_size": crypto.SEGMENT_SIZE,
    }


class _ProgressFile:
    """Read-only file object for httpx multipart that reports progress."""

    def __init__(self, raw: IO[bytes], progress: Progress) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._progress(len(data))
        return data

    def seek(self, *args: Any) -> int:
        return self._raw.seek(*args)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()


#: Metadata fields a re-sealed record measures anew rather than keeps.
_NOT_KEPT = frozenset(
    {"v", "id", "size", "sha256", "cid", "segments", "segment_size", "content_signer"}
)


@dataclass
class PreparedUpload:
    """A sealed file on disk and the ``meta`` part that goes with it."""

    sealed: SealedFile
    meta: dict[str, Any]

    def discard(self) -> None:
        self.sealed.path.unlink(missing_ok=True)


def prepare_upload(
    session: LoggedIn,
    source: Path,
    fields: RecordFields | None = None,
    *,
    seal_progress: Progress = _noop,
    workdir: Path | None = None,
    record_id: str | None = None,
    keep: Mapping[str, Any] | None = None,
) -> PreparedUpload:
    """Seal ``source`` and its metadata, and wrap the session key for the owner.

    ``record_id`` (default: a new one) is the id sealed in; ``keep`` is another
    record's opened metadata whose fields (all but the measured ones: size, digest,
    CID, segments) the new record takes over, as ``share rotate`` does.
    """
    signer = session.unlock()
    own_public = signer.public_key
    record_id = record_id or crypto.new_record_id()
    session_key = crypto.new_session_key()
    sealed, sha256 = seal_file(
        source, session_key=session_key, signer=signer, workdir=workdir, progress=seal_progress
    )
    try:
        metadata = build_metadata(
            source, sealed=sealed, sha256=sha256, fields=fields or RecordFields()
        )
        if keep is not None:
            metadata.update({k: v for k, v in keep.items() if k not in _NOT_KEPT})
        meta = {
            "id": record_id,
            "cid": sealed.cid,
            "size": sealed.size,
            "segments": sealed.segments,
            "pkesk": to_b64(crypto.make_pkesk(session_key, own_public)),
            "sealed_metadata": to_b64(
                crypto.seal_record_metadata(
                    metadata, record_id=record_id, recipients=[own_public], signer=signer
                )
            ),
            "envelope": to_b64(
                crypto.seal_session_key_envelope(
                    session_key, owner_public_key=own_public, signer=signer
                )
            ),
        }
    except BaseException:
        sealed.path.unlink(missing_ok=True)
        raise
    return PreparedUpload(sealed=sealed, meta=meta)


def upload(
    api: HygieiaClient, prepared: PreparedUpload, *, progress: Progress = _noop
) -> RecordItem:
    """Send a prepared upload (one streaming multipart request); returns the record."""
    with open(prepared.sealed.path, "rb") as fh:
        # The multipart file name is the CID, never the real file name.
        record = api.upload_record(
            prepared.meta,
            cast(IO[bytes], _ProgressFile(fh, progress)),
            filename=prepared.sealed.cid,
        )
    # Only the id this client sealed is any use: a record stored under another is
    # one that no reader would accept.
    if record.id != prepared.meta["id"] or not same_cid(record.cid, prepared.sealed.cid):
        raise RecordMismatchError("the server stored the record under another id or CID")
    return record


def record_exists(api: HygieiaClient, record_id: str) -> bool:
    """Whether the server lists ``record_id`` for this session (404: no; other errors raise)."""
    try:
        api.get_record(record_id)
    except ApiError as exc:
        if exc.code == NotFound.code:
            return False
        raise
    return True


def reseal_as(
    api: HygieiaClient,
    record_id: str,
    *,
    reader: LoggedIn,
    writer: LoggedIn,
    new_id: str,
    workdir: Path | None = None,
) -> None:
    """Upload ``record_id``'s verified plaintext again, sealed under a new session key
    for ``writer`` as record ``new_id`` with the same metadata fields (``share rotate``,
    ``key rotate --reencrypt``). ``reader`` opens the old record; the plaintext lives
    only in a private temporary file in ``workdir``, removed whatever happens."""
    fd, tmp = tempfile.mkstemp(prefix=".hygieia-reseal-", dir=workdir)
    os.close(fd)
    plain = Path(tmp)
    try:
        meta = get(api, reader, record_id, plain)
        prepared = prepare_upload(writer, plain, workdir=workdir, record_id=new_id, keep=meta)
        try:
            upload(api, prepared)
        finally:
            prepared.discard()
    finally:
        with contextlib.suppress(FileNotFoundError):
            plain.unlink()


def put(
    api: HygieiaClient,
    session: LoggedIn,
    source: Path,
    fields: RecordFields | None = None,
    *,
    seal_progress: Progress = _noop,
    upload_progress: Progress = _noop,
    workdir: Path | None = None,
) -> RecordItem:
    """Seal and upload one file; returns the server's record (id, cid, …)."""
    prepared = prepare_upload(session, source, fields, seal_progress=seal_progress, workdir=workdir)
    try:
        return upload(api, prepared, progress=upload_progress)
    finally:
        prepared.discard()


@dataclass(frozen=True)
class RecordInfo:
    """A listed record with its metadata opened and verified on this machine."""

    id: str
    cid: str
    size: int
    created_at: str
    meta: dict[str, Any]
    #: ``(good copies, stores)`` as the server counts them; None from an older server.
    copies: tuple[int, int] | None = None

    @property
    def bound(self) -> bool:
        """False for an unbound (legacy) record: its metadata doesn't name its id."""
        return crypto.metadata_is_bound(self.meta)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bound": self.bound,
            "cid": self.cid,
            "created_at": self.created_at,
            "title": self.meta.get("title"),
            "type": self.meta.get("type"),
            "date": self.meta.get("date"),
            "provider": self.meta.get("provider"),
            "tags": self.meta.get("tags", []),
            "filename": self.meta.get("filename"),
            "media_type": self.meta.get("media_type"),
            "size": self.meta.get("size"),
            "sha256": self.meta.get("sha256"),
            "ciphertext_size": self.size,
            "copies": None
            if self.copies is None
            else {"ok": self.copies[0], "total": self.copies[1]},
        }


def open_metadata(
    item: RecordItem, key: crypto.UnlockedKey, *, record_id: str | None = None
) -> dict[str, Any]:
    """The verified metadata of the record ``item`` the server sent for ``record_id``
    (the id asked for; a listing passes none and the item's own id is checked).

    :class:`RecordMismatchError` if the server's item, or the sealed metadata, is for
    another record, or the sealed CID is not the item's; legacy (version 1) metadata
    is returned, to be shown as unbound (:func:`hygieia.crypto.metadata_is_bound`).
    """
    expected = item.id if record_id is None else record_id
    if item.id != expected:
        raise RecordMismatchError(f"the server answered for record {expected} with another")
    try:
        meta = crypto.open_record_metadata(
            item.sealed_metadata, record_id=expected, key=key, signer_public_key=key.public_key
        )
    except crypto.RecordMismatch as exc:
        raise RecordMismatchError(str(exc)) from exc
    except crypto.DecryptionError as exc:
        raise RecordVerificationError("record metadata failed verification") from exc
    # Content is bound through the CID the metadata carries (and a legacy record's
    # content to its metadata, as before).
    if not same_cid(item.cid, str(meta.get("cid", ""))):
        raise RecordMismatchError("the server's CID differs from the sealed one")
    return meta


def record_info(item: RecordItem, key: crypto.UnlockedKey) -> RecordInfo:
    """A listed record (server's or recovery kit's) with its metadata verified and opened."""
    return RecordInfo(
        id=item.id,
        cid=item.cid,
        size=item.size,
        created_at=item.created_at,
        meta=open_metadata(item, key),
        copies=None if item.copies is None else (item.copies.ok, item.copies.total),
    )


class KeyRing:
    """The owner's keys for their own records: the account's, and while a key rotation
    is under way the pending one's, for the records already sealed to it (looked up and
    unlocked only when a record's PKESK names it; protocol "Key rotation")."""

    def __init__(self, api: HygieiaClient, session: LoggedIn) -> None:
        self._api = api
        self._session = session
        self._current: crypto.UnlockedKey | None = None
        self._pending: dict[str, crypto.UnlockedKey | None] = {}

    @property
    def current(self) -> crypto.UnlockedKey:
        if self._current is None:
            self._current = self._session.unlock()
        return self._current

    def for_item(self, item: RecordItem) -> crypto.UnlockedKey:
        """The key ``item``'s PKESK names (the current one when it names another: the
        checks that follow then fail as for any record not sealed to it)."""
        try:
            key_id = crypto.pkesk_key_id(item.pkesk)
        except crypto.InvalidFraming:
            return self.current
        if key_id == self._session.account.encryption_key_id.upper():
            return self.current
        if key_id not in self._pending:
            self._pending[key_id] = self._pending_key(key_id)
        return self._pending[key_id] or self.current

    def _pending_key(self, key_id: str) -> crypto.UnlockedKey | None:
        try:
            pending = self._api.key_rotation().pending
        except ApiError:
            return None
        if pending is None or pending.encryption_key_id.upper() != key_id:
            return None
        try:
            return pending_session(self._session, pending).unlock()
        except RotationError:
            return None


def iter_records(api: HygieiaClient, key: crypto.UnlockedKey) -> Iterator[RecordInfo]:
    cursor: str | None = None
    while True:
        page = api.list_records(limit=200, cursor=cursor)
        for item in page.items:
            yield record_info(item, key)
        cursor = page.next_cursor
        if not cursor:
            return


# The characters JavaScript's ``\s`` matches, so words split as the web app splits them
# (``str.split()`` also splits on U+001C..U+001F and U+0085, and not on U+FEFF).
_JS_WHITESPACE = re.compile(
    "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+"
)


def filter_records(
    records: Iterable[RecordInfo],
    *,
    text: str | None = None,
    record_type: str | None = None,
    tags: Iterable[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> list[RecordInfo]:
    """The records that pass every given filter, in their order.

    The same selection as the web app's filter form (``matches`` in
    ``web/src/records-ui.js``; ``tests/vectors/record_filter.json`` holds the cases both
    are tested against): ``record_type`` is the exact type; every one of ``tags`` must
    be on the record; ``since``/``until`` bound the record's date inclusively and drop
    records without one; every whitespace-separated word of ``text``, lower-cased, must
    occur in the title, type, provider, file name or a tag. ``ValueError`` if a bound
    is not a ``YYYY-MM-DD`` date.
    """
    for bound in (since, until):
        if bound:
            dt.date.fromisoformat(bound)
    wanted = list(tags)
    words = [w for w in _JS_WHITESPACE.split((text or "").lower()) if w]

    def keep(meta: Mapping[str, Any]) -> bool:
        date = meta.get("date")
        record_tags = meta.get("tags") or []
        if record_type and meta.get("type") != record_type:
            return False
        if any(tag not in record_tags for tag in wanted):
            return False
        if since and (not date or date < since):
            return False
        if until and (not date or date > until):
            return False
        fields = (meta.get(k) for k in ("title", "type", "provider", "filename"))
        hay = "\n".join("" if x is None else str(x) for x in (*fields, *record_tags)).lower()
        return all(word in hay for word in words)

    return [r for r in records if keep(r.meta)]


class _StreamReader:
    """A file-like view of an iterator of chunks that also hashes them into a CID."""

    def __init__(self, chunks: Iterator[bytes], importer: FileImporter, progress: Progress) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._importer = importer
        self._progress = progress
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._importer.write(chunk)
            self._progress(len(chunk))
            self.total += len(chunk)
            self._buf += chunk
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def same_cid(a: str, b: str) -> bool:
    try:
        return parse_cid(a) == parse_cid(b)
    except ValueError:
        return False


@contextlib.contextmanager
def _replace_when_done(target: Path, prefix: str) -> Iterator[IO[bytes]]:
    """A temporary file beside ``target`` that takes its place only if the block completes.

    Any exception (a failed check included) removes the temporary file, so a download
    either lands whole and synced or leaves nothing behind.
    """
    target = target.resolve()
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def get(
    api: HygieiaClient,
    session: LoggedIn,
    record_id: str,
    target: Path,
    *,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Download, verify and decrypt a record into ``target`` (atomically)."""
    item = api.get_record(record_id)
    key = KeyRing(api, session).for_item(item)
    meta = open_metadata(item, key, record_id=record_id)
    with api.record_content(record_id) as chunks:
        decrypt_into(chunks, item=item, meta=meta, key=key, target=target, progress=progress)
    return meta


def content_signer(meta: Mapping[str, Any], default: str) -> str:
    """The public key that signed a record's content segments.

    ``default`` (the key that signed the metadata) unless the metadata names another:
    after a key rotation the content, untouched, is still signed by the owner's earlier
    key, and the metadata, re-sealed and signed by the new key, carries that earlier
    public key as ``content_signer`` (protocol "Key rotation"). The metadata is verified
    before this is asked, so the signer named is the owner's word, and the content is
    bound to the metadata by its CID either way.
    """
    named = meta.get("content_signer")
    if named is None:
        return default
    if not isinstance(named, str) or not 0 < len(named) <= crypto.MAX_ARMORED_KEY_SIZE:
        raise RecordVerificationError("record metadata names an invalid content signer")
    return named


def decrypt_into(
    chunks: Iterator[bytes],
    *,
    item: RecordItem | SharedRecord,
    meta: Mapping[str, Any],
    key: crypto.UnlockedKey,
    target: Path,
    progress: Progress = _noop,
    signer_public_key: str | None = None,
) -> None:
    """Decrypt a record's ciphertext ``chunks`` into ``target``, whole or not at all.

    ``meta`` is the record's verified metadata (:func:`open_metadata`): the bytes must
    have its CID, every segment must open with ``key`` and verify with
    ``signer_public_key`` (default: ``key``'s own; a shared record's: its owner's), in
    order, and the plaintext must have its SHA-256. Used by ``get`` (from the server),
    ``offline get`` (from IPFS, :mod:`hygieia.client.kit`) and for records shared with
    me (:mod:`hygieia.client.sharing`).
    """
    signer = content_signer(
        meta, key.public_key if signer_public_key is None else signer_public_key
    )
    digest = hashlib.sha256()
    with _replace_when_done(target, ".hygieia-get-") as out:
        importer, finish = content_cid()
        reader = _StreamReader(chunks, importer, progress)
        try:
            for chunk in crypto.open_segments(
                cast(BinaryIO, reader), signer_public_key=signer, pkesk=item.pkesk, key=key
            ):
                out.write(chunk)
                digest.update(chunk)
        except crypto.DecryptionError as exc:
            raise RecordVerificationError(
                "record content failed decryption or signature verification"
            ) from exc
        reader.drain()
        if not same_cid(finish(), meta["cid"]):
            raise RecordVerificationError("downloaded ciphertext does not match its CID")
        if digest.hexdigest() != meta["sha256"]:
            raise RecordVerificationError("decrypted content does not match its digest")


def get_raw(
    api: HygieiaClient,
    session: LoggedIn,
    record_id: str,
    target: Path,
    *,
    progress: Progress = _noop,
) -> tuple[RecordItem, dict[str, Any]]:
    """The ciphertext exactly as stored plus its owner PKESK beside it; the record and
    its verified metadata.

    The sealed metadata is opened and checked first (it must name ``record_id``), and
    the ciphertext must have the CID sealed in it: a record's raw bytes are its own.
    """
    item = api.get_record(record_id)
    meta = open_metadata(item, KeyRing(api, session).for_item(item), record_id=record_id)
    importer, finish = content_cid()
    with (
        _replace_when_done(target, ".hygieia-raw-") as out,
        api.record_content(record_id) as chunks,
    ):
        for chunk in chunks:
            importer.write(chunk)
            out.write(chunk)
            progress(len(chunk))
        if not same_cid(finish(), meta["cid"]):
            raise RecordVerificationError("downloaded ciphertext does not match its CID")
    target = target.resolve()
    target.with_name(target.name + ".pkesk").write_bytes(item.pkesk)
    return item, meta


def remove(api: HygieiaClient, record_id: str) -> None:
    api.delete_record(record_id)
