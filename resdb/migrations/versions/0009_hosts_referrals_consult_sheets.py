"""hosts, referrals and consult sheets

Revision ID: 0009
Revises: 0003
Create Date: 2026-11-30 14:10:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString
T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window", S(length=120), nullable=True))

    op.create_table(
        "capacity_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listing_id", S(length=100), nullable=False),
        sa.Column("open_places", sa.Integer(), nullable=False),
        sa.Column("month", S(length=7), nullable=False),
        sa.Column("reported_at", T(), nullable=False),
        sa.Column("actor", S(length=200), nullable=False),
        sa.Column("role", S(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_capacity_report_listing_id", "capacity_report", ["listing_id"], unique=False
    )

    op.create_table(
        "referral",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("placement_id", sa.Integer(), nullable=True),
        sa.Column("listing_id", S(length=100), nullable=False),
        sa.Column("host", S(length=200), nullable=False),
        sa.Column("coordinator_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", S(length=100), nullable=False),
        sa.Column("proposed_dates", S(length=300), nullable=True),
        sa.Column("helps", sa.Text(), nullable=True),
        sa.Column("contact_route", S(length=300), nullable=False),
        sa.Column("basis", S(length=20), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("answer", S(length=20), nullable=True),
        sa.Column("answer_reason", S(length=30), nullable=True),
        sa.Column("visit_date", sa.Date(), nullable=True),
        sa.Column("attended", sa.Integer(), nullable=False),
        sa.Column("sent_at", T(), nullable=False),
        sa.Column("answered_at", T(), nullable=True),
        sa.Column("updated_at", T(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["placement.id"],
        ),
        sa.ForeignKeyConstraint(
            ["coordinator_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in (
        "case_id",
        "placement_id",
        "listing_id",
        "host",
        "coordinator_id",
        "status",
        "sent_at",
    ):
        op.create_index(f"ix_referral_{column}", "referral", [column], unique=False)

    op.create_table(
        "referral_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("at", T(), nullable=False),
        sa.Column("actor", S(length=200), nullable=False),
        sa.Column("side", S(length=12), nullable=False),
        sa.Column("kind", S(length=20), nullable=False),
        sa.Column("from_status", S(length=20), nullable=True),
        sa.Column("to_status", S(length=20), nullable=True),
        sa.Column("on_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_referral_event_referral_id", "referral_event", ["referral_id"], unique=False
    )

    op.create_table(
        "consult_sheet",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", T(), nullable=False),
        sa.Column("updated_at", T(), nullable=False),
        sa.Column("supporter_id", sa.Integer(), nullable=False),
        sa.Column("window", S(length=120), nullable=False),
        sa.Column("municipality_code", S(length=6), nullable=True),
        sa.Column("area", S(length=300), nullable=False),
        sa.Column("observed", sa.Text(), nullable=False),
        sa.Column("consent", S(length=12), nullable=False),
        sa.Column("supporter_contact", S(length=200), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("referred_to", S(length=300), nullable=True),
        sa.Column("closed_at", T(), nullable=True),
        sa.ForeignKeyConstraint(
            ["supporter_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("created_at", "supporter_id", "window", "status"):
        op.create_index(f"ix_consult_sheet_{column}", "consult_sheet", [column], unique=False)


def downgrade() -> None:
    for column in ("created_at", "supporter_id", "window", "status"):
        op.drop_index(f"ix_consult_sheet_{column}", table_name="consult_sheet")
    op.drop_table("consult_sheet")
    op.drop_index("ix_referral_event_referral_id", table_name="referral_event")
    op.drop_table("referral_event")
    for column in (
        "case_id",
        "placement_id",
        "listing_id",
        "host",
        "coordinator_id",
        "status",
        "sent_at",
    ):
        op.drop_index(f"ix_referral_{column}", table_name="referral")
    op.drop_table("referral")
    op.drop_index("ix_capacity_report_listing_id", table_name="capacity_report")
    op.drop_table("capacity_report")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("window")
