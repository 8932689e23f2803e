"""record_copies: each record's copy on each configured store

A record is pinned on several stores (Kubo nodes, the embedded store, remote pinning
services); this table keeps, per record and store, the copy's state (ok / pending /
bad), when it was last checked, the replicator's retry schedule and a pinning
service's request id. Rows for records that exist already are made by the replicator
on its first run (it knows the configured stores; a migration doesn't).

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_copies",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("store", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "store"),
    )
    with op.batch_alter_table("record_copies", schema=None) as batch_op:
        batch_op.create_index("ix_record_copies_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_record_copies_checked", ["checked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("record_copies", schema=None) as batch_op:
        batch_op.drop_index("ix_record_copies_checked")
        batch_op.drop_index("ix_record_copies_due")
    op.drop_table("record_copies")
