"""key_rotations, records.key_fingerprint: key rotation (protocol §10 "Key rotation")

A pending rotation per account (the new public key, the new locked secret key and the
new vault key wrapped under the password's and the recovery code's keys, all made by
the client), and on every record the fingerprint of the key its PKESK, sealed metadata
and envelope are sealed to. Existing records are sealed to their owner's key.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_rotations",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("locked_secret_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("encryption_key_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped_vault_key", sa.LargeBinary(length=128), nullable=False),
        sa.Column("recovery_wrapped_vault_key", sa.LargeBinary(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
        sa.UniqueConstraint("fingerprint"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_fingerprint", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE records SET key_fingerprint = "
        "(SELECT users.fingerprint FROM users WHERE users.id = records.owner_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_column("key_fingerprint")
    op.drop_table("key_rotations")
