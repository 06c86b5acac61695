"""Database tables and API models (SQLModel): listings, organisations, districts, service areas, history, users."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from resdb.fields import max_length as L


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# Fields of the contract's flat listing shape; lengths come from the one declaration (resdb.fields).
class ListingBase(SQLModel):
    name: str = Field(max_length=L("name"))
    name_kana: str | None = Field(default=None, max_length=L("name_kana"))
    kind: str = Field(max_length=L("kind"), index=True)
    description: str | None = Field(default=None, sa_type=Text)
    municipality_code: str | None = Field(
        default=None, max_length=L("municipality_code"), index=True
    )
    address: str | None = Field(default=None, max_length=L("address"))
    lat: float | None = None
    lon: float | None = None
    district: str | None = Field(default=None, max_length=L("district"))
    location_precision: str | None = Field(default=None, max_length=L("location_precision"))
    venue: str | None = Field(default=None, max_length=L("venue"))
    operator: str | None = Field(default=None, max_length=L("operator"))
    phone: str | None = Field(default=None, max_length=L("phone"))
    email: str | None = Field(default=None, max_length=L("email"))
    url: str | None = Field(default=None, max_length=L("url"))
    targets: list[str] = Field(default_factory=list, sa_type=JSON)
    activities: list[str] = Field(default_factory=list, sa_type=JSON)
    schedule: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    holidays_closed: bool = True
    reservation_required: bool | None = None
    cost_yen: int | None = None
    capacity: int | None = None
    accepts_referrals: bool = True
    group_size: str | None = Field(default=None, max_length=L("group_size"))
    barrier_free: bool | None = None
    pickup: bool | None = None
    eligibility: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    service_area: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    verified_at: date | None = None
    source: str | None = Field(default=None, max_length=L("source"))
    source_detail: str | None = Field(default=None, max_length=L("source_detail"))
    source_url: str | None = Field(default=None, max_length=L("source_url"))
    source_read_at: date | None = (
        None  # when the source was read (verified_at stays empty until an editor confirms)
    )
    location_private: bool = False  # held in a private home: public outputs show the 町字 only
    is_sample: bool = False
    notes: str | None = Field(default=None, sa_type=Text)


class Organization(SQLModel, table=True):
    """Who runs services (HSDS organization); listings keep the operator's name at the edges."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


class Listing(ListingBase, table=True):
    __table_args__ = (Index("ix_listing_status_kind", "status", "kind"),)

    id: str = Field(primary_key=True, max_length=L("id"))
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    status: str = Field(default="published", max_length=L("status"), index=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ListingHistory(SQLModel, table=True):
    """One accepted change of a listing: who, when, what it was before and after."""

    __tablename__ = "listing_history"

    id: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(max_length=100, index=True)
    version: int
    action: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    at: datetime = Field(default_factory=utcnow)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    note: str | None = Field(default=None, max_length=500)


class District(SQLModel, table=True):
    """A named area: a municipality, a 町字 or a 地区, with its (possibly approximate) polygon."""

    __table_args__ = (UniqueConstraint("municipality_code", "level", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    municipality_code: str = Field(max_length=6, index=True)
    name: str = Field(max_length=100)
    kana: str | None = Field(default=None, max_length=200)
    level: str = Field(max_length=20)
    geometry: str = Field(sa_type=Text)  # GeoJSON geometry text, WGS84
    approximate: bool = True
    method: str | None = Field(default=None, max_length=100)
    source: str | None = Field(default=None, max_length=300)
    members: list[str] = Field(default_factory=list, sa_type=JSON)
    lat: float | None = None
    lon: float | None = None


class ServiceArea(SQLModel, table=True):
    """A center's 担当地区 resolved to geometry."""

    __tablename__ = "service_area"

    listing_id: str = Field(primary_key=True, foreign_key="listing.id", max_length=100)
    geometry: str = Field(sa_type=Text)
    districts: list[str] = Field(default_factory=list, sa_type=JSON)
    unresolved: list[str] = Field(default_factory=list, sa_type=JSON)


class Meta(SQLModel, table=True):
    """Key/value facts about the store (e.g. `districts`: bumped when district areas change;
    `change_log_pruned_through`: the highest change-log sequence number already pruned)."""

    key: str = Field(primary_key=True, max_length=50)
    value: str = Field(max_length=200)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=200, unique=True)
    role: str = Field(max_length=20)
    password_hash: str | None = Field(default=None, max_length=300)
    display_name: str | None = Field(
        default=None, max_length=100
    )  # shown to the person on the print sheet
    municipality_code: str | None = Field(default=None, max_length=6)
    operator: str | None = Field(default=None, max_length=200)
    window: str | None = Field(
        default=None, max_length=120
    )  # the 相談窓口 whose sheets this account receives
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked: bool = False


class ChangeLog(SQLModel, table=True):
    """The durable, ordered log of listing changes, written in the changing transaction: every host's
    search index (and every cache derived from listings) follows it by sequence number."""

    __tablename__ = "change_log"

    seq: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, index=True)


class AuditEntry(SQLModel, table=True):
    """Who did what, when: every write and every view of a saved case. No sensitive values here."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=50)
    target_type: str = Field(max_length=30)
    target_id: str | None = Field(default=None, max_length=100)
    detail: str | None = Field(default=None, max_length=300)


class ChangeRequest(SQLModel, table=True):
    """A resident's 「情報の誤りを報告」: proposed corrections an editor accepts or rejects."""

    __tablename__ = "change_request"

    id: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(max_length=100, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="open", max_length=12, index=True)
    message: str = Field(sa_type=Text)
    proposed: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    contact: str | None = Field(default=None, max_length=200)
    client_key: str | None = Field(default=None, max_length=64)
    reviewed_by: str | None = Field(default=None, max_length=200)
    reviewed_at: datetime | None = None
    review_note: str | None = Field(default=None, max_length=500)


class Case(SQLModel, table=True):
    """A saved, pseudonymous 参加支援 case: only what the coordinator chose to save, with its legal basis."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=30, unique=True)
    pseudonym: str = Field(max_length=100)
    legal_basis: str = Field(max_length=20)  # consent (本人同意) | support_meeting (支援会議)
    person: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    notes: str | None = Field(default=None, sa_type=Text)
    status: str = Field(default="open", max_length=12)
    coordinator_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Placement(SQLModel, table=True):
    """One place proposed to a case, moving 提案 → 見学 → 体験 → 参加中 → 定着 / 中断."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    listing_id: str = Field(max_length=100, index=True)
    stage: str = Field(default="proposed", max_length=20)
    score: float | None = None
    next_follow_up: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PlacementEvent(SQLModel, table=True):
    """A stage change, follow-up (定着支援) or host support (受け入れ先支援) note on a placement."""

    __tablename__ = "placement_event"

    id: int | None = Field(default=None, primary_key=True)
    placement_id: int = Field(foreign_key="placement.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # stage | follow_up | host_support
    from_stage: str | None = Field(default=None, max_length=20)
    to_stage: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, sa_type=Text)


class StaffSession(SQLModel, table=True):
    """A signed-in staff session held on the server: logout (or expiry) really ends it."""

    __tablename__ = "staff_session"

    id: str = Field(primary_key=True, max_length=64)  # SHA-256 of the cookie's token
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)


class CapacityReport(SQLModel, table=True):
    """Open places as reported (「今月の受け入れ可能: 2人」), with who reported them and when."""

    __tablename__ = "capacity_report"

    id: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(max_length=100, index=True)
    open_places: int
    month: str = Field(max_length=7)  # YYYY-MM the report is for
    reported_at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=200)
    role: str = Field(max_length=20)  # host | editor | admin


class Referral(SQLModel, table=True):
    """A coordinator's referral of a saved case to a host: only what the coordinator chose to send."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    placement_id: int | None = Field(default=None, foreign_key="placement.id", index=True)
    listing_id: str = Field(max_length=100, index=True)
    host: str = Field(max_length=200, index=True)  # the host organisation (the listing's operator)
    coordinator_id: int = Field(foreign_key="user.id", index=True)
    pseudonym: str = Field(max_length=100)
    proposed_dates: str | None = Field(default=None, max_length=300)
    helps: str | None = Field(default=None, sa_type=Text)
    contact_route: str = Field(max_length=300)
    basis: str = Field(max_length=20)  # consent | support_meeting
    status: str = Field(default="sent", max_length=20, index=True)
    answer: str | None = Field(default=None, max_length=20)  # accept | visit | decline
    answer_reason: str | None = Field(default=None, max_length=30)
    visit_date: date | None = None
    attended: int = 0
    sent_at: datetime = Field(default_factory=utcnow, index=True)
    answered_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ReferralEvent(SQLModel, table=True):
    """One step of a referral seen by both sides (sent, answer, status, attended); no free text."""

    __tablename__ = "referral_event"

    id: int | None = Field(default=None, primary_key=True)
    referral_id: int = Field(foreign_key="referral.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=200)
    side: str = Field(max_length=12)  # coordinator | host
    kind: str = Field(max_length=20)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    on_date: date | None = None


class ConsultSheet(SQLModel, table=True):
    """相談依頼シート: a community supporter passes someone to the window that serves their area."""

    __tablename__ = "consult_sheet"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    supporter_id: int = Field(foreign_key="user.id", index=True)
    window: str = Field(
        max_length=120, index=True
    )  # a window listing id, or general:<municipality code>
    municipality_code: str | None = Field(default=None, max_length=6)
    area: str = Field(max_length=300)
    observed: str = Field(sa_type=Text)
    consent: str = Field(max_length=12)  # agreed | not_yet | unknown
    supporter_contact: str = Field(max_length=200)
    status: str = Field(default="received", max_length=20, index=True)
    referred_to: str | None = Field(default=None, max_length=300)
    closed_at: datetime | None = None
