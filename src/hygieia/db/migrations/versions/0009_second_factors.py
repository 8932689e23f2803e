"""user_factors, backup_codes, sessions.attempts/challenge: second factors (protocol §10)

TOTP secrets (sealed at rest) and passkeys per account, single-use backup codes (salted
hashes only), and on ``sessions`` the attempt counter of a pending login (kind "factor")
and a WebAuthn challenge.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_factors",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(length=256), nullable=True),
        sa.Column("credential_id", sa.LargeBinary(length=1024), nullable=True),
        sa.Column("credential_public_key", sa.LargeBinary(length=4096), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_totp_step", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    with op.batch_alter_table("user_factors", schema=None) as batch_op:
        batch_op.create_index("ix_user_factors_user_id", ["user_id"], unique=False)
    op.create_table(
        "backup_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backup_codes", schema=None) as batch_op:
        batch_op.create_index("ix_backup_codes_user_id", ["user_id"], unique=False)
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("challenge", sa.LargeBinary(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("challenge")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("backup_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_backup_codes_user_id")
    op.drop_table("backup_codes")
    with op.batch_alter_table("user_factors", schema=None) as batch_op:
        batch_op.drop_index("ix_user_factors_user_id")
    op.drop_table("user_factors")
