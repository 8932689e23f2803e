"""records.listing: each record's API rendering, stored at ingest

Listing a page then reads one column per row instead of rendering eight (see
``hygieia.services.records.render_public``). Existing rows are rendered here in
batches; the column becomes NOT NULL once every row has it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:55:00
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

from hygieia.services.records import RecordRow, render_public

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


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("listing", sa.Text(), nullable=True))
    conn = op.get_bind()
    columns = [records.c[name] for name in RecordRow._fields]
    while True:
        rows = conn.execute(
            sa.select(*columns).where(records.c.listing.is_(None)).limit(BATCH)
        ).all()
        if not rows:
            break
        for values in rows:
            row = RecordRow(*values)
            if row.created_at.tzinfo is None:  # SQLite keeps no offset; it is UTC
                row = row._replace(created_at=row.created_at.replace(tzinfo=UTC))
            conn.execute(
                records.update().where(records.c.id == row.id).values(listing=render_public(row))
            )
    with op.batch_alter_table("records") as batch:
        batch.alter_column("listing", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("listing")
