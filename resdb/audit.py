"""The audit log: who did what, when, through any door (ids and actions only, never sensitive values)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from resdb.db import read_session, write_session
from resdb.models import AuditEntry

ACTOR_MAX = 200


def audit(
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Append one audit entry in the caller's transaction."""
    session.add(
        AuditEntry(
            actor=(actor or "?")[:ACTOR_MAX],
            action=action[:50],
            target_type=target_type[:30],
            target_id=target_id[:100] if target_id else None,
            detail=(detail or None) and detail[:300],
        )
    )


def audit_now(
    engine: Engine,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit entry in its own transaction (for events that write nothing else: sign-in, sign-out)."""
    with write_session(engine) as session:
        audit(session, actor, action, target_type, target_id, detail)


def audit_entries(
    engine: Engine,
    *,
    limit: int = 200,
    target_type: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    with read_session(engine) as session:
        statement = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        if target_type:
            statement = statement.where(AuditEntry.target_type == target_type)
        if target_id:
            statement = statement.where(AuditEntry.target_id == target_id)
        if action:
            statement = statement.where(AuditEntry.action == action)
        return [e.model_dump() for e in session.exec(statement).all()]


def audit_count(engine: Engine) -> int:
    from sqlmodel import func

    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(AuditEntry)).one())
