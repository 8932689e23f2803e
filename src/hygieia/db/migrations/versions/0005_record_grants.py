"""record_grants: records shared with other accounts (protocol §7)

One row per (record, recipient email): the recipient's PKESK of the record's session
key and the record's sealed metadata for them, both made by the owner's client. A
grant to an email without an account (made with its decoy key) has no recipient_id
and can never be opened. Grants go with their record, owner or recipient.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_id", sa.String(length=36), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("pkesk", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("sealed_metadata", sa.LargeBinary(length=65536), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "email", name="uq_record_grants_record_email"),
    )
    with op.batch_alter_table("record_grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_record_grants_owner_created", ["owner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_record_grants_recipient_created",
            ["recipient_id", "created_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("record_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_record_grants_recipient_created")
        batch_op.drop_index("ix_record_grants_owner_created")
    op.drop_table("record_grants")
