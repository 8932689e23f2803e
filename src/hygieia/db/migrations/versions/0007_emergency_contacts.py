"""emergency_contacts: emergency access to a vault after a waiting period (protocol §8)

One row per (owner, contact email): the owner's vault key sealed by the owner's client
to the contact's key (the server can't open it), the waiting period, and the state of
a request (requested_at, release_at, approved_at). A contact email without an account
(sealed to its decoy key) has no contact_id and can never be requested. Rows go with
their owner or contact.

Self-contained on purpose (no imports from the application): a migration must keep
doing what it did when it was written, whatever the code looks like later.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emergency_contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("wait_days", sa.Integer(), nullable=False),
        sa.Column("sealed_vault_key", sa.LargeBinary(length=8192), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "email", name="uq_emergency_contacts_owner_email"),
    )
    with op.batch_alter_table("emergency_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_emergency_contacts_contact", ["contact_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("emergency_contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_emergency_contacts_contact")
    op.drop_table("emergency_contacts")
