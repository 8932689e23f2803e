"""throttle buckets replace login_failures; decoy_keys for key lookups

Failed attempts were rows per failure, counted per account: anyone could lock a
victim out, and a count-then-insert let parallel guesses all pass. ``throttle`` holds
one compare-and-swap counter per bucket (see ``hygieia.services.ratelimit``). Old
failure rows are dropped: at worst an attacker gets one fresh window after upgrading.
``decoy_keys`` keeps the creation time of the stand-in key shown for unknown emails.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "throttle",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.create_index("ix_throttle_last_at", ["last_at"], unique=False)
    op.create_table(
        "decoy_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_scope_key_at")
    op.drop_table("login_failures")


def downgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_login_failures_scope_key_at", ["scope", "key", "at"], unique=False
        )
    op.drop_table("decoy_keys")
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.drop_index("ix_throttle_last_at")
    op.drop_table("throttle")
