"""share_links, share_link_files: SMART Health Links (protocol §9)

A link's policy and state (token hash, flag, sealed label, passcode hash and attempts
left, opens, expiry, end) and its files: compact JWEs in the blob store, by CID.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_links",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("flag", sa.String(length=8), nullable=False),
        sa.Column("sealed_label", sa.LargeBinary(length=16384), nullable=True),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("passcode_hash", sa.String(length=255), nullable=True),
        sa.Column("attempts_left", sa.Integer(), nullable=False),
        sa.Column("max_opens", sa.Integer(), nullable=True),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_share_links_owner_created", ["owner_id", "created_at", "id"], unique=False
        )
    op.create_table(
        "share_link_files",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("link_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["share_links.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "position", name="uq_share_link_files_pos"),
    )
    with op.batch_alter_table("share_link_files", schema=None) as batch_op:
        batch_op.create_index("ix_share_link_files_cid", ["cid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("share_link_files", schema=None) as batch_op:
        batch_op.drop_index("ix_share_link_files_cid")
    op.drop_table("share_link_files")
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.drop_index("ix_share_links_owner_created")
    op.drop_table("share_links")
