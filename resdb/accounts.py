"""Accounts, roles and API tokens (argon2 password hashes; tokens stored only as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import select

from resdb.db import read_session, write_session
from resdb.models import ApiToken, User

ROLES: dict[str, str] = {"admin": "管理者", "editor": "編集者（地域の担当者）", "coordinator": "参加支援コーディネーター"}
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

    @property
    def can_edit(self) -> bool:
        return self.role in WRITE_ROLES

    def may_edit(self, listing: dict) -> bool:
        """Editors limited to a municipality or an operator touch only those listings."""
        if self.role == "admin":
            return True
        if self.role != "editor":
            return False
        if self.municipality_code and listing.get("municipality_code") != self.municipality_code:
            return False
        if self.operator and listing.get("operator") != self.operator:
            return False
        return True


def _account(user: User) -> Account:
    assert user.id is not None
    return Account(user.id, user.email, user.role, user.municipality_code, user.operator)


def add_user(engine: Engine, email: str, role: str, password: str | None, *,
             municipality_code: str | None = None, operator: str | None = None) -> Account:
    if role not in ROLES:
        raise ValueError(f"不明な役割です: {role}（{', '.join(ROLES)}）")
    if password is not None and len(password) < 10:
        raise ValueError("パスワードは10文字以上にしてください")
    with write_session(engine) as session:
        if session.exec(select(User).where(User.email == email)).first() is not None:
            raise ValueError(f"{email} は既に登録されています")
        user = User(email=email, role=role, password_hash=_hasher.hash(password) if password else None,
                    municipality_code=municipality_code, operator=operator)
        session.add(user)
        session.flush()
        return _account(user)


def authenticate(engine: Engine, email: str, password: str) -> Account | None:
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.email == email, User.active == True)).first()  # noqa: E712
    if user is None or not user.password_hash:
        _hasher.hash(password)  # same work either way: no timing hint that the email exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return _account(user)


def account(engine: Engine, user_id: int) -> Account | None:
    with read_session(engine) as session:
        user = session.get(User, user_id)
    return _account(user) if user is not None and user.active else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, email: str) -> str:
    """A new API token for the user; only its hash is kept, so it is shown once."""
    token = "rdb_" + secrets.token_urlsafe(32)
    with write_session(engine) as session:
        user = session.exec(select(User).where(User.email == email)).first()
        if user is None or user.id is None:
            raise ValueError(f"{email} は登録されていません")
        session.add(ApiToken(user_id=user.id, token_hash=_digest(token)))
    return token


def account_for_token(engine: Engine, token: str) -> Account | None:
    with read_session(engine) as session:
        row = session.exec(
            select(User).join(ApiToken, ApiToken.user_id == User.id).where(
                ApiToken.token_hash == _digest(token), ApiToken.revoked == False, User.active == True  # noqa: E712
            )
        ).first()
    return _account(row) if row is not None else None
