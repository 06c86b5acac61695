"""Staff sign-in and sign-out (server-side sessions, rotation at sign-in, lockout after wrong passwords)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for

from resdb import accounts
from resdb.audit import audit_now
from resdb.web import get_directory
from resdb.web.auth import session_account, sign_in, sign_out
from resdb.web.security import rate_limited_as

bp = Blueprint("staff", __name__)
LOGIN_FAILED = (
    "メールアドレスまたはパスワードが違います。誤りが続いたアカウントは15分間ログインできません。"
)


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: never redirect off the site after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(account: accounts.Account) -> str:
    if account.role == "coordinator":
        return url_for("coordinator.home")
    if account.role in {"host", "supporter"}:
        return url_for(f"{account.role}.home")
    return url_for("editor.home")


def _form(error: str | None = None, status: int = 200, email: str = "") -> Response:
    body = render_template(
        "login.html", error=error, email=email, next_url=request.values.get("next", ""), nav=""
    )
    return Response(body, status=status, mimetype="text/html")


@bp.get("/login")
def login() -> Any:
    account = session_account()
    if account is not None:
        return redirect(_safe_next(request.args.get("next")) or home_for(account))
    return _form()


@bp.post("/login")
@rate_limited_as("login")
def login_post() -> Any:
    email = (request.form.get("email") or "").strip()
    password = request.form.get("password") or ""
    engine = get_directory().engine
    account = accounts.authenticate(engine, email, password)
    if account is None:  # one answer for unknown, wrong and locked (no hint which accounts exist)
        return _form(LOGIN_FAILED, 401, email)
    sign_in(account)
    audit_now(engine, account.email, "login", "user", str(account.id))
    return redirect(_safe_next(request.form.get("next")) or home_for(account))


@bp.post("/logout")
def logout() -> Any:
    account = session_account()
    sign_out()
    if account is not None:
        audit_now(get_directory().engine, account.email, "logout", "user", str(account.id))
    return redirect(url_for("public.index"))
