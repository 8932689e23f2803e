"""A record's sealed metadata, bound to the record's id (protocol §3, "Binding").

The metadata is a sealed message (:mod:`._messages`) whose literal is UTF-8 JSON.
Version 2 names the record it belongs to: ``{"v": 2, "id": "<record id>", ...}``, the
id being chosen by the uploading client before it seals anything. A reader passes the
id it asked the server for and gets the metadata back only if the signed id is that
one, so a server can't serve one record's metadata (and, through the ``cid`` it
carries, its content) under another record's id: swapped or resurrected records fail
with :class:`RecordMismatch`.

Version 1 metadata (written before the binding) carries no id. It still opens, because
the server can't rewrite it and its owner may have nothing else, but callers must show
such a record as *unbound (legacy)*: nothing ties it to the id it is listed under.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ._errors import DecryptionError, RecordMismatch
from ._identity import UnlockedKey
from ._messages import open_message, seal_message

__all__ = [
    "LEGACY_METADATA_VERSION",
    "METADATA_VERSION",
    "is_record_id",
    "metadata_is_bound",
    "new_record_id",
    "open_record_metadata",
    "seal_record_metadata",
]

METADATA_VERSION = 2
LEGACY_METADATA_VERSION = 1

# A random (version 4) UUID in its canonical lowercase form: the one spelling of an
# id, so that the id a reader asks for and the id in the metadata compare as strings.
_RECORD_ID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")


def new_record_id() -> str:
    """A fresh record id (122 random bits), chosen by the client before sealing."""
    return str(uuid.uuid4())


def is_record_id(value: object) -> bool:
    """True for a record id in its one accepted spelling (lowercase canonical UUIDv4)."""
    return isinstance(value, str) and _RECORD_ID.match(value) is not None


def seal_record_metadata(
    fields: Mapping[str, Any], *, record_id: str, recipients: list[str], signer: UnlockedKey
) -> bytes:
    """Seal ``fields`` (title, type, …, cid, sha256) as version-2 metadata of ``record_id``."""
    if not is_record_id(record_id):
        raise ValueError("record_id must be a lowercase canonical UUIDv4")
    if "v" in fields or "id" in fields:
        raise ValueError("'v' and 'id' are set by seal_record_metadata")
    body = {"v": METADATA_VERSION, "id": record_id, **fields}
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return seal_message(data, recipients=recipients, signer=signer)


def open_record_metadata(
    sealed: bytes, *, record_id: str, key: UnlockedKey, signer_public_key: str
) -> dict[str, Any]:
    """Open, verify and check the metadata of the record asked for as ``record_id``.

    Returns the JSON object. Version 2 must name ``record_id``, or
    :class:`RecordMismatch` is raised (the server sent another record's metadata);
    version 1 has no id and is returned as is (see :func:`metadata_is_bound`).
    Anything else (a bad signature, not JSON, an unknown version, a version-2 object
    without an id) raises :class:`DecryptionError`.
    """
    raw = open_message(sealed, key=key, signer_public_key=signer_public_key)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DecryptionError("record metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise DecryptionError("record metadata is not a JSON object")
    version = meta.get("v")
    # type() rather than ==: JSON true would otherwise pass as version 1.
    if type(version) is int and version == LEGACY_METADATA_VERSION and "id" not in meta:
        return meta
    if type(version) is not int or version != METADATA_VERSION:
        raise DecryptionError("unknown record metadata version")
    bound_to = meta.get("id")
    if not isinstance(bound_to, str):
        raise DecryptionError("record metadata names no record")
    if bound_to != record_id:
        raise RecordMismatch(record_id, bound_to if is_record_id(bound_to) else None)
    return meta


def metadata_is_bound(meta: Mapping[str, Any]) -> bool:
    """True if metadata returned by :func:`open_record_metadata` names its record.

    False for legacy (version 1) metadata: show the record as unbound.
    """
    return meta.get("v") == METADATA_VERSION
