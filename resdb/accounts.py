"""Accounts, roles and API tokens (argon2 password hashes; tokens stored only as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from resdb.db import read_session, write_session
from resdb.models import ApiToken, StaffSession, User, utcnow

ROLES: dict[str, str] = {
    "admin": "管理者",
    "editor": "編集者（地域の担当者）",
    "coordinator": "参加支援コーディネーター",
    "host": "受け入れ先（協力企業・団体）",
    "supporter": "地域の支援者（民生委員など）",
}
WRITE_ROLES = {"admin", "editor"}
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Account:
    """Who is acting: enough to authorise without holding a session open."""

    id: int
    email: str
    role: str
    municipality_code: str | None = None
    operator: str | None = None
    window: str | None = None  # the 相談窓口 whose 相談依頼シート this account receives
    display_name: str | None = None

    @property
    def can_edit(self) -> bool:
        return self.role in WRITE_ROLES

    def may_edit(self, listing: Mapping[str, Any]) -> bool:
        """Editors limited to a municipality or an operator touch only those listings."""
        if self.role == "admin":
            return True
        if self.role == "host":  # a host organisation: its own listings only
            return bool(self.operator) and listing.get("operator") == self.operator
        if self.role != "editor":
            return False
        if self.municipality_code and listing.get("municipality_code") != self.municipality_code:
            return False
        if self.operator and listing.get("operator") != self.operator:
            return False
        return True


def _account(user: User) -> Account:
    assert user.id is not None
    return Account(
        user.id,
        user.email,
        user.role,
        user.municipality_code,
        user.operator,
        user.window,
        user.display_name,
    )


def add_user(
    engine: Engine,
    email: str,
    role: str,
    password: str | None,
    *,
    municipality_code: str | None = None,
    operator: str | None = None,
    window: str | None = None,
    display_name: str | None = None,
) -> Account:
    """A new account. A host is tied to its organisation (`operator`, created when new); `window` names the
    相談窓口 (a center's listing id, or general:<municipality code>) whose 相談依頼シート the account receives."""
    if role not in ROLES:
        raise ValueError(f"不明な役割です: {role}（{', '.join(ROLES)}）")
    if not email.strip() or len(email.strip()) > 200 or "\x00" in email:
        raise ValueError("メールアドレスは200文字以内で指定してください")
    operator = (operator or "").strip() or None
    if role == "host" and not operator:
        raise ValueError("受け入れ先のアカウントには団体名（--operator）が必要です")
    if password is not None and len(password) < 10:
        raise ValueError("パスワードは10文字以上にしてください")
    password_hash = _hasher.hash(password) if password else None  # argon2 outside the write lock
    with write_session(engine) as session:
        if (
            session.exec(select(User).where(User.email == email.strip().lower())).first()
            is not None
        ):
            raise ValueError(f"{email} は既に登録されています")
        if role == "host" and operator is not None:
            from resdb.models import Organization

            if (
                session.exec(select(Organization).where(Organization.name == operator)).first()
                is None
            ):
                session.add(Organization(name=operator))
        user = User(
            email=email.strip().lower(),
            role=role,
            password_hash=password_hash,
            municipality_code=municipality_code,
            operator=operator,
            window=(window or "").strip() or None,
            display_name=(display_name or "").strip()[:100] or None,
        )
        session.add(user)
        session.flush()
        return _account(user)


MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(hours=24)


class LockedOut(Exception):
    """Too many wrong passwords: the account waits until `until` (authenticate answers None instead, so the
    sign-in page cannot tell a locked account from an unknown one)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def _locked_user(session: Session, email: str) -> User | None:
    """The active user by email, its row locked for this transaction (SQLite: the whole database is)."""
    return session.exec(
        select(User).where(User.email == email, col(User.active).is_(True)).with_for_update()
    ).first()


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(engine: Engine, email: str, password: str) -> Account | None:
    """The account for a correct password, else None: the same answer for an unknown account, a wrong
    password and a locked account (nothing tells which accounts exist).

    Each attempt is counted under the row lock before the password is checked (so parallel guesses get at
    most MAX_FAILED_LOGINS evaluations before the lockout); argon2 runs outside any write transaction (so
    a login flood does not hold SQLite's write lock). Failures are audited without the password."""
    from resdb.audit import audit, audit_now

    email = (email or "").strip().lower()[:200]
    now = utcnow()
    stored: str | None = None
    user_id: int | None = None
    state = "unknown account"
    with write_session(engine) as session:
        user = _locked_user(session, email) if email else None
        if user is not None and user.password_hash:
            user_id = user.id
            if user.locked_until is not None and _aware(user.locked_until) > now:
                state = "locked"
            else:
                state = "wrong password"
                stored = user.password_hash
                user.failed_logins += 1
                if user.failed_logins >= MAX_FAILED_LOGINS:
                    user.locked_until, user.failed_logins = now + LOCKOUT, 0
                    audit(
                        session,
                        email,
                        "login.locked",
                        "user",
                        str(user_id),
                        f"{int(LOCKOUT.total_seconds() // 60)} min",
                    )
    correct = (
        _verify(stored or _dummy_hash(), password) and stored is not None
    )  # same work either way
    if not correct:
        known = user_id is not None
        audit_now(
            engine,
            email if known else "(unknown)",
            "login.failed",
            "user",
            str(user_id) if known else None,
            state,
        )
        return None
    new_hash = _hasher.hash(password) if _hasher.check_needs_rehash(stored or "") else None
    with write_session(engine) as session:
        user = _locked_user(session, email)
        if user is None or user.id != user_id:
            return None
        user.failed_logins, user.locked_until = 0, None
        if new_hash:
            user.password_hash = new_hash
        return _account(user)


def start_session(engine: Engine, account: Account) -> str:
    """A new server-side session (a fresh id at every sign-in); the cookie holds only the token."""
    token = secrets.token_urlsafe(32)
    with write_session(engine) as session:
        session.add(StaffSession(id=_digest(token), user_id=account.id))
    return token


def session_account(engine: Engine, token: str) -> Account | None:
    """The account of a live session token (idle 8 h or older than 24 h ends it)."""
    now = utcnow()
    with write_session(engine) as session:
        row = session.get(StaffSession, _digest(token))
        if row is None:
            return None
        if now - _aware(row.last_seen) > SESSION_IDLE or now - _aware(row.created_at) > SESSION_MAX:
            session.delete(row)
            return None
        if now - _aware(row.last_seen) > timedelta(minutes=5):
            row.last_seen = now
        user = session.get(User, row.user_id)
        return _account(user) if user is not None and user.active else None


def end_session(engine: Engine, token: str) -> None:
    with write_session(engine) as session:
        row = session.get(StaffSession, _digest(token))
        if row is not None:
            session.delete(row)


def account(engine: Engine, user_id: int) -> Account | None:
    with read_session(engine) as session:
        user = session.get(User, user_id)
    return _account(user) if user is not None and user.active else None


def account_by_email(engine: Engine, email: str) -> Account | None:
    with read_session(engine) as session:
        user = session.exec(
            select(User).where(User.email == email.strip().lower(), col(User.active).is_(True))
        ).first()
    return _account(user) if user is not None else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, email: str) -> str:
    """A new API token for the user; only its hash is kept, so it is shown once."""
    token = "rdb_" + secrets.token_urlsafe(32)
    with write_session(engine) as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        if user is None or user.id is None:
            raise ValueError(f"{email} は登録されていません")
        session.add(ApiToken(user_id=user.id, token_hash=_digest(token)))
    return token


def account_for_token(engine: Engine, token: str) -> Account | None:
    with read_session(engine) as session:
        row = session.exec(
            select(User)
            .join(ApiToken, col(ApiToken.user_id) == User.id)
            .where(
                ApiToken.token_hash == _digest(token),
                col(ApiToken.revoked).is_(False),
                col(User.active).is_(True),
            )
        ).first()
    return _account(row) if row is not None else None
