"""Share links for people without an account: SMART Health Links (protocol §9).

Making a link: each record is downloaded, verified and decrypted on this machine; a
FHIR record (``application/fhir+json``, or JSON with a ``resourceType``) is linked as
it is, any other file wrapped in a FHIR R4 ``DocumentReference`` (title, type, date,
the file as an attachment with its content type and base64 data) so that every SHL
viewer can show it. Each file becomes a compact JWE under a fresh 32-byte link key
(:func:`hygieia.crypto.jwe.encrypt_link_file`); the JWEs and the link's policy go to the
server, the key only into the link after ``#``.

A link's files are built in memory (a JWE is one string): the server's
``HYGIEIA_MAX_LINK_BYTES`` (``GET /config``) bounds them, and a record too large for it
is refused before it is downloaded, with the limit in the message.

Opening a link (:func:`open_link`) follows the spec as any SHL viewer does, for links
from Hygieia or from any other SHL implementation.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hygieia import crypto
from hygieia.client.account import LoggedIn
from hygieia.client.records import decrypt_into, open_metadata
from hygieia.client.sdk import HygieiaClient, check_transport
from hygieia.client.shlink import LinkError, LinkPayload, decode_link, encode_link
from hygieia.crypto import jwe as link_jwe

__all__ = [
    "LinkError",
    "LinkFile",
    "LinkInfo",
    "OpenedFile",
    "PasscodeRequired",
    "create_link",
    "document_reference",
    "list_links",
    "open_link",
    "revoke_link",
]

FHIR_JSON = "application/fhir+json"
#: What a reader holds of one link at most, if the link's server says nothing.
OPEN_MAX_BYTES = 256 * 1024**2
MAX_LABEL = 80


class PasscodeRequired(LinkError):
    """The manifest wants a (right) passcode: ``remaining`` attempts are left."""

    def __init__(self, remaining: int | None, *, given: bool) -> None:
        self.remaining = remaining
        self.given = given
        left = "" if remaining is None else f" ({remaining} attempts left before it is disabled)"
        what = "the passcode is wrong" if given else "this link needs a passcode"
        super().__init__(what + left)


# --- making a link ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkFile:
    """One file of a link, in the clear (this machine only)."""

    content_type: str
    data: bytes


def _instant(meta: dict[str, Any], fallback: str) -> str:
    date = meta.get("date")
    if isinstance(date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        return f"{date}T00:00:00Z"
    return fallback


def document_reference(meta: dict[str, Any], content: bytes, *, created_at: str) -> bytes:
    """A FHIR R4 DocumentReference carrying ``content`` as its attachment."""
    title = str(meta.get("title") or meta.get("filename") or "Document")
    media_type = str(meta.get("media_type") or "application/octet-stream")
    attachment: dict[str, Any] = {
        "contentType": media_type,
        "data": base64.b64encode(content).decode("ascii"),
        "title": title,
        "size": len(content),
    }
    when = _instant(meta, created_at)
    if meta.get("date"):
        attachment["creation"] = when
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": str(meta.get("type") or "document")},
        "date": when,
        "description": title,
        "content": [{"attachment": attachment}],
    }
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _is_fhir(meta: dict[str, Any], content: bytes) -> bool:
    media = str(meta.get("media_type") or "").split(";")[0].strip().lower()
    if media in (FHIR_JSON, "application/json+fhir"):
        return True
    if media != "application/json" and not str(meta.get("filename", "")).endswith(".json"):
        return False
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("resourceType"), str)


def _estimate(meta: dict[str, Any]) -> int:
    """JWE bytes a record becomes at most (wrapped: base64 inside base64url)."""
    size = int(meta.get("size") or 0)
    return (size * 4 // 3 + 4096) * 4 // 3 + 1024


def link_file(meta: dict[str, Any], content: bytes, *, created_at: str) -> LinkFile:
    if _is_fhir(meta, content):
        return LinkFile(FHIR_JSON, content)
    return LinkFile(FHIR_JSON, document_reference(meta, content, created_at=created_at))


def _decrypt_record(
    api: HygieiaClient, key: crypto.UnlockedKey, record_id: str, workdir: Path
) -> tuple[dict[str, Any], bytes, str]:
    item = api.get_record(record_id)
    meta = open_metadata(item, key, record_id=record_id)
    target = workdir / "record"
    with api.record_content(record_id) as chunks:
        decrypt_into(chunks, item=item, meta=meta, key=key, target=target)
    try:
        return meta, target.read_bytes(), item.created_at
    finally:
        target.unlink(missing_ok=True)


def create_link(
    api: HygieiaClient,
    session: LoggedIn,
    record_ids: Sequence[str],
    *,
    expires_in: timedelta,
    passcode: str | None = None,
    max_opens: int | None = None,
    label: str | None = None,
    direct: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[str, dict[str, Any]]:
    """Make a link to ``record_ids``; returns the viewer-prefixed link and the server's
    view of it (``LinkCreated``)."""
    if not record_ids:
        raise LinkError("name at least one record")
    if label is not None and len(label) > MAX_LABEL:
        raise LinkError(f"the label is longer than {MAX_LABEL} characters")
    if direct and (passcode is not None or len(record_ids) != 1):
        raise LinkError("a direct (U) link is one record without a passcode")
    key = session.unlock()
    cap = api.config().max_link_bytes or OPEN_MAX_BYTES
    metas = []
    for record_id in record_ids:
        meta = open_metadata(api.get_record(record_id), key, record_id=record_id)
        metas.append(meta)
    if sum(_estimate(m) for m in metas) > cap:
        raise LinkError(
            f"too large for a share link: this server's limit is {cap // 1024**2} MiB of "
            "encrypted files (HYGIEIA_MAX_LINK_BYTES); a wrapped file takes about 1.8 times "
            "its size"
        )
    link_key = link_jwe.new_link_key()
    jwes: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="hygieia-link-") as tmp:
        for record_id in record_ids:
            meta, content, created_at = _decrypt_record(api, key, record_id, Path(tmp))
            f = link_file(meta, content, created_at=created_at)
            del content
            jwe = link_jwe.encrypt_link_file(f.data, key=link_key, content_type=f.content_type)
            jwes.append(jwe.encode("ascii"))
    expires_at = now() + expires_in
    body: dict[str, Any] = {
        "flag": "U" if direct else ("P" if passcode is not None else ""),
        "expires_at": expires_at.isoformat(),
        "record_ids": list(record_ids),
        "files": [{"content_type": FHIR_JSON, "size": len(j)} for j in jwes],
    }
    if passcode is not None:
        body["passcode"] = passcode
    if max_opens is not None:
        body["max_opens"] = max_opens
    if label:
        sealed = crypto.seal_message(
            json.dumps({"v": 1, "label": label}).encode("utf-8"),
            recipients=[key.public_key],
            signer=key,
        )
        body["sealed_label"] = base64.b64encode(sealed).decode("ascii")
    created = api.create_link(body, jwes)
    payload = LinkPayload(
        url=api.server + created["path"],
        key=link_key,
        flag=body["flag"],
        exp=int(expires_at.timestamp()),
        label=label or None,
    )
    return encode_link(payload, viewer=api.server + "/"), created


@dataclass(frozen=True)
class LinkInfo:
    """A link as ``link ls`` shows it (its label opened on this machine)."""

    id: str
    label: str | None
    records: list[str]
    state: str
    flag: str
    opens: int
    max_opens: int | None
    attempts_left: int | None
    created_at: str
    expires_at: str
    ended_at: str | None


def _label(sealed_b64: str | None, key: crypto.UnlockedKey) -> str | None:
    if not sealed_b64:
        return None
    try:
        raw = crypto.open_message(
            base64.b64decode(sealed_b64), key=key, signer_public_key=key.public_key
        )
        label = json.loads(raw).get("label")
    except (crypto.DecryptionError, ValueError, AttributeError):
        return "(label unreadable)"
    return label if isinstance(label, str) else None


def list_links(api: HygieiaClient, session: LoggedIn) -> list[LinkInfo]:
    key = session.unlock()
    return [
        LinkInfo(
            id=item["id"],
            label=_label(item.get("sealed_label"), key),
            records=list(item.get("record_ids") or []),
            state=item["state"],
            flag=item["flag"],
            opens=item["opens"],
            max_opens=item.get("max_opens"),
            attempts_left=item.get("attempts_left"),
            created_at=item["created_at"],
            expires_at=item["expires_at"],
            ended_at=item.get("ended_at"),
        )
        for item in api.list_links()
    ]


def revoke_link(api: HygieiaClient, link: str) -> str:
    """Revoke the link with id ``link`` (or the one id it uniquely begins); its id."""
    link = link.strip().lower()
    if len(link) != 36:
        matches = [i["id"] for i in api.list_links() if i["id"].startswith(link)]
        if len(link) < 4 or len(matches) != 1:
            raise LinkError(f"no single link id begins with {link!r} (see `hygieia link ls`)")
        link = matches[0]
    api.revoke_link(link)
    return link


# --- opening a link (any SHL implementation's) -----------------------------------------------
@dataclass(frozen=True)
class OpenedFile:
    """A decrypted file of a link and where it was written."""

    content_type: str
    path: Path
    size: int
    #: The attachment of a DocumentReference, written beside it (None otherwise).
    attachment: Path | None = None


def _bounded_text(resp: httpx.Response, limit: int) -> str:
    out = bytearray()
    for chunk in resp.iter_bytes():
        out += chunk
        if len(out) > limit:
            raise LinkError("a link file is larger than this client accepts")
    return out.decode("ascii", errors="replace")


def _fetch_jwe(
    http: httpx.Client, url: str, limit: int, *, params: dict[str, str] | None = None
) -> str:
    check_transport(url)
    with http.stream("GET", url, params=params) as resp:
        if resp.status_code == 404:
            raise LinkError("the link is not active (expired, revoked or used up)")
        if resp.status_code == 429:
            raise _busy(resp)
        if not resp.is_success:
            raise LinkError(f"the link's server answered HTTP {resp.status_code}")
        return _bounded_text(resp, limit)


def _busy(resp: httpx.Response) -> LinkError:
    return LinkError(f"too many requests; retry in {resp.headers.get('retry-after', '60')} s")


def _manifest(
    http: httpx.Client, payload: LinkPayload, *, recipient: str, passcode: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": recipient}
    if passcode is not None:
        body["passcode"] = passcode
    check_transport(payload.url)
    resp = http.post(payload.url, json=body)
    if resp.status_code == 401:
        try:
            remaining = int(resp.json()["remainingAttempts"])
        except (ValueError, KeyError, TypeError):
            remaining = None
        raise PasscodeRequired(remaining, given=passcode is not None)
    if resp.status_code == 404:
        raise LinkError("the link is not active (expired, revoked, used up or disabled)")
    if resp.status_code == 429:
        raise _busy(resp)
    if not resp.is_success:
        raise LinkError(f"the link's server answered HTTP {resp.status_code}")
    try:
        manifest = resp.json()
    except ValueError:
        raise LinkError("the manifest is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise LinkError("the manifest has no files")
    return manifest


_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "text/plain": ".txt",
    "application/json": ".json",
    "application/fhir+json": ".json",
    "application/dicom": ".dcm",
}


def _write_new(directory: Path, name: str, data: bytes) -> Path:
    """``data`` into a new file ``name`` in ``directory`` (never over an existing one),
    written to a temporary file first and renamed whole."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    suffix = "." + ext if ext else ""
    for n in range(1000):
        target = directory / (f"{stem}{suffix}" if n == 0 else f"{stem} ({n}){suffix}")
        if not target.exists():
            break
    fd, tmp = tempfile.mkstemp(prefix=".hygieia-link-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, target)  # fails rather than replace a file made meanwhile
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def _attachment(doc: Any) -> tuple[str, str, bytes] | None:
    """(title, content type, bytes) of a DocumentReference's first inline attachment."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "DocumentReference":
        return None
    for content in doc.get("content") or []:
        att = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(att, dict) and isinstance(att.get("data"), str):
            try:
                data = base64.b64decode(att["data"], validate=True)
            except ValueError:
                return None
            title = str(att.get("title") or doc.get("description") or "document")
            return title, str(att.get("contentType") or "application/octet-stream"), data
    return None


def _save(directory: Path, index: int, content_type: str, data: bytes) -> OpenedFile:
    base = content_type.split(";")[0].strip().lower()
    if base == "application/smart-health-card":
        path = _write_new(directory, f"link-{index + 1}.smart-health-card", data)
        return OpenedFile(content_type, path, len(data))
    path = _write_new(directory, f"link-{index + 1}.json", data)
    attachment = None
    if base == FHIR_JSON:
        try:
            found = _attachment(json.loads(data))
        except (ValueError, UnicodeDecodeError):
            found = None
        if found is not None:
            title, media, raw = found
            name = _SAFE.sub("_", title).strip(" .")[:100] or "document"
            ext = _EXTENSIONS.get(media.split(";")[0].strip().lower(), "")
            if ext and not name.lower().endswith(ext):
                name += ext
            attachment = _write_new(directory, name, raw)
    return OpenedFile(content_type, path, len(data), attachment)


def open_link(
    link: str,
    directory: Path,
    *,
    passcode: str | None = None,
    recipient: str = "Hygieia CLI",
    max_bytes: int = OPEN_MAX_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> list[OpenedFile]:
    """Open a SMART Health Link (``shlink:/…``, bare or behind a viewer URL): fetch its
    files, decrypt them here and write them into ``directory``."""
    payload = decode_link(link)
    if urlsplit(payload.url).scheme == "http":
        check_transport(payload.url)  # plain http only to this machine
    directory.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, str]] = []
    with httpx.Client(
        timeout=httpx.Timeout(60.0, connect=10.0),
        transport=transport,
        headers={"user-agent": "hygieia-cli"},
        follow_redirects=False,
    ) as http:
        try:
            if "U" in payload.flag:
                jwe = _fetch_jwe(http, payload.url, max_bytes, params={"recipient": recipient})
                files.append(("", jwe))
            else:
                manifest = _manifest(http, payload, recipient=recipient, passcode=passcode)
                for entry in manifest["files"]:
                    if not isinstance(entry, dict):
                        raise LinkError("a manifest entry is not an object")
                    ctype = str(entry.get("contentType") or "")
                    if isinstance(entry.get("embedded"), str):
                        files.append((ctype, entry["embedded"]))
                    elif isinstance(entry.get("location"), str):
                        files.append((ctype, _fetch_jwe(http, entry["location"], max_bytes)))
                    else:
                        raise LinkError("a manifest entry has neither embedded nor location")
        except httpx.TransportError as exc:
            raise LinkError(f"cannot reach the link's server: {type(exc).__name__}") from exc
    out = []
    for i, (ctype, jwe) in enumerate(files):
        try:
            data, cty = link_jwe.decrypt_link_file(jwe, key=payload.key, max_bytes=max_bytes)
        except crypto.DecryptionError:
            raise LinkError("a link file did not decrypt with the link's key") from None
        out.append(_save(directory, i, ctype or cty or "application/octet-stream", data))
    return out
