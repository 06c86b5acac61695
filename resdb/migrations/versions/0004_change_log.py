"""durable change log replaces the delete-on-read index outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 14:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("listing_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_log_at"), ["at"], unique=False)
    # Changes still queued in the old outbox become the first log entries (nothing is lost on upgrade).
    op.execute(
        "INSERT INTO change_log (listing_id, at) SELECT listing_id, CURRENT_TIMESTAMP FROM index_outbox ORDER BY seq"
    )
    op.execute("DELETE FROM meta WHERE key = 'revision'")
    op.drop_table("index_outbox")


def downgrade() -> None:
    op.create_table(
        "index_outbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("listing_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_log_at"))
    op.drop_table("change_log")
