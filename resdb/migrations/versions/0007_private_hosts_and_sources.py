"""private hosts (location shown at 町字 level) and where a fact was read (source URL, date read)

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-30 13:45:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("listing", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("location_private", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("source_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("source_read_at", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("listing", schema=None) as batch_op:
        batch_op.drop_column("source_read_at")
        batch_op.drop_column("source_url")
        batch_op.drop_column("location_private")
