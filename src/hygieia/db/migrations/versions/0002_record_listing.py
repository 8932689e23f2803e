"""records.listing: each record's API rendering, stored at ingest

Listing a page then reads one column per row instead of rendering eight (see
``hygieia.services.records.render_public``). Existing rows are rendered here in
batches; the column becomes NOT NULL once every row has it.

The rendering is a frozen copy of version 1 of ``render_public``, as a migration must
never import the application: its code changes, and this migration must do the same
thing forever. A later change of the format comes with a migration of its own.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:55:00
"""

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 500

records = sa.table(
    "records",
    sa.column("id", sa.String()),
    sa.column("cid", sa.String()),
    sa.column("size", sa.BigInteger()),
    sa.column("segments", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("owner_pkesk", sa.LargeBinary()),
    sa.column("sealed_metadata", sa.LargeBinary()),
    sa.column("session_key_envelope", sa.LargeBinary()),
    sa.column("listing", sa.Text()),
)

#: The columns the rendering reads.
RENDERED = (
    "id",
    "cid",
    "size",
    "segments",
    "created_at",
    "owner_pkesk",
    "sealed_metadata",
    "session_key_envelope",
)

_jstr = json.encoder.encode_basestring_ascii


def _iso(at: datetime) -> str:
    text = at.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _render_v1(row: Mapping[str, Any]) -> str:
    """A record's ``RecordPublic`` JSON, version 1: byte for byte what the API served
    when this migration was written (``created_at`` timezone-aware)."""
    b64 = base64.b64encode
    return (
        f'{{"id":{_jstr(row["id"])},"cid":{_jstr(row["cid"])},"size":{int(row["size"])},'
        f'"segments":{int(row["segments"])},"created_at":"{_iso(row["created_at"])}",'
        f'"pkesk":"{b64(row["owner_pkesk"]).decode()}",'
        f'"sealed_metadata":"{b64(row["sealed_metadata"]).decode()}",'
        f'"envelope":"{b64(row["session_key_envelope"]).decode()}"}}'
    )


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("listing", sa.Text(), nullable=True))
    conn = op.get_bind()
    columns = [records.c[name] for name in RENDERED]
    while True:
        rows = conn.execute(
            sa.select(*columns).where(records.c.listing.is_(None)).limit(BATCH)
        ).all()
        if not rows:
            break
        for values in rows:
            row = dict(zip(RENDERED, values, strict=True))
            if row["created_at"].tzinfo is None:  # SQLite keeps no offset; it is UTC
                row["created_at"] = row["created_at"].replace(tzinfo=UTC)
            conn.execute(
                records.update().where(records.c.id == row["id"]).values(listing=_render_v1(row))
            )
    with op.batch_alter_table("records") as batch:
        batch.alter_column("listing", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("listing")
