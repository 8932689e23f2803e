"""The reference for a record's API rendering: pydantic's ``RecordPublic`` of its values."""

from __future__ import annotations

import base64

from hygieia.api.schemas import RecordPublic
from hygieia.services.records import RecordRow


def record_public(row: RecordRow, copies: tuple[int, int] | None = None) -> RecordPublic:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return RecordPublic.model_validate(
        {
            "id": row.id,
            "cid": row.cid,
            "size": row.size,
            "segments": row.segments,
            "created_at": row.created_at,
            "pkesk": b64(row.owner_pkesk),
            "sealed_metadata": b64(row.sealed_metadata),
            "envelope": b64(row.session_key_envelope),
            "copies": None if copies is None else {"ok": copies[0], "total": copies[1]},
        }
    )
