"""staff display name (the coordinator's name on compare and the print sheet)

Revision ID: 0008
Revises: 0003
Create Date: 2026-11-30 14:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("display_name")
