"""Who is asking: API bearer tokens (401/403 for the JSON API) and a session sign-in guard for pages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, redirect, request, session, url_for

from resdb import accounts
from resdb.accounts import Account
from resdb.web import get_directory
from resdb.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


def bearer_account() -> Account | None:
    """The account of `Authorization: Bearer TOKEN`, or None when absent or not valid."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return accounts.account_for_token(get_directory().engine, token.strip())


def require_account() -> Account:
    """The token's account, or 401 with `WWW-Authenticate: Bearer`."""
    account = bearer_account()
    if account is None:
        has_header = bool(request.headers.get("Authorization"))
        raise ApiError(
            401,
            "API トークンが無効です"
            if has_header
            else "この操作には API トークン（Authorization: Bearer）が必要です",
            headers={
                "WWW-Authenticate": 'Bearer realm="resdb"'
                + (', error="invalid_token"' if has_header else "")
            },
        )
    g.account = account
    return account


def require_writer() -> Account:
    """An account whose role may edit listings (admin, editor), else 401/403."""
    account = require_account()
    if not account.can_edit:
        raise ApiError(
            403,
            f"役割「{accounts.ROLES.get(account.role, account.role)}」では掲載情報を編集できません",
        )
    return account


def require_scope(account: Account, listing: dict[str, Any]) -> None:
    """403 unless the editor's municipality / operator scope covers the listing."""
    if not account.may_edit(listing):
        scope = []
        if account.municipality_code:
            scope.append(f"地方公共団体コード {account.municipality_code}")
        if account.operator:
            scope.append(f"運営主体「{account.operator}」")
        raise ApiError(403, f"この掲載情報は担当範囲（{'、'.join(scope) or '—'}）の外です")


def session_account() -> Account | None:
    """The signed-in staff account: the cookie's token must name a live server-side session."""
    if "account" in g:
        known: Account | None = g.account
        return known
    token = session.get("sid")
    account = (
        accounts.session_account(get_directory().engine, token) if isinstance(token, str) else None
    )
    g.account = account
    return account


def sign_in(account: Account) -> None:
    """Rotate: a new server-side session and a fresh cookie (nothing from before sign-in carries over)."""
    old = session.get("sid")
    if isinstance(old, str):
        accounts.end_session(get_directory().engine, old)
    session.clear()
    session["sid"] = accounts.start_session(get_directory().engine, account)
    session.permanent = False
    g.account = account


def sign_out() -> None:
    token = session.get("sid")
    if isinstance(token, str):
        accounts.end_session(get_directory().engine, token)
    session.clear()
    g.pop("account", None)


def login_required(*roles: str) -> Callable[[F], F]:
    """Pages for signed-in staff: others are sent to the sign-in page (roles limit who may enter)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            account = session_account()
            if account is None:
                return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
            if roles and account.role not in roles and account.role != "admin":
                raise ApiError(403, "この画面を使う権限がありません")
            g.account = account
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
