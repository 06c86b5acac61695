"""`resdb user …`, `token …` and `sheets …`: accounts, API tokens and the retention of 相談依頼シート."""

from __future__ import annotations

import json
import os
import sys

import click

from resdb.cli.common import (
    err,
    fail,
    open_directory,
)


@click.group()
def user() -> None:
    """Accounts."""


@user.command("add")
@click.argument("email")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "editor", "coordinator", "host", "supporter"]),
)
@click.option(
    "--municipality", help="limit an editor to one municipality (code); a supporter's city"
)
@click.option(
    "--operator",
    help="limit an editor to one operator (運営主体); a host's organisation (required)",
)
@click.option(
    "--window",
    help="the 相談窓口 whose 相談依頼シート this account receives: a center's listing id or general:<code>",
)
@click.option(
    "--name", "display_name", help="name shown on the coordinator's print sheet and compare page"
)
def user_add(
    email: str,
    role: str,
    municipality: str | None,
    operator: str | None,
    window: str | None,
    display_name: str | None,
) -> None:
    """Create an account; the password is read from stdin or asked for."""
    from resdb.accounts import add_user
    from resdb.validation import municipality_code6

    if sys.stdin.isatty():
        password = click.prompt("パスワード", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    from resdb.audit import audit_now

    engine = open_directory().engine
    try:
        account = add_user(
            engine,
            email,
            role,
            password or None,
            municipality_code=municipality_code6(municipality) if municipality else None,
            operator=operator,
            window=window,
            display_name=display_name,
        )
    except ValueError as exc:
        fail(str(exc))
    audit_now(engine, _cli_actor(), "user.create", "user", str(account.id), f"role={role}")
    err.print(f"{email}（{role}）を登録しました")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("email")
def token_create(email: str) -> None:
    """Print a new API token for EMAIL (shown once; only its hash is stored)."""
    from resdb.accounts import create_token
    from resdb.audit import audit_now

    engine = open_directory().engine
    try:
        token = create_token(engine, email)
    except ValueError as exc:
        fail(str(exc))
    audit_now(engine, _cli_actor(), "token.create", "user", email.strip().lower())
    click.echo(token)


def _cli_actor() -> str:
    return f"cli:{os.environ.get('USER', 'cli')}"


@click.group()
def sheets() -> None:
    """相談依頼シート."""


@sheets.command("purge")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="keep closed sheets this many days (default RESDB_SHEET_RETENTION_DAYS)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
def sheets_purge(days: int | None, as_json: bool) -> None:
    """Delete closed sheets past the retention period (run daily; the window's queue also does it)."""
    from resdb.sheets import Sheets, retention_days

    days = days or retention_days()
    deleted = Sheets(open_directory(ready=False)).purge(days=days)
    if as_json:
        click.echo(json.dumps({"deleted": deleted, "retention_days": days}))
    else:
        err.print(f"保存期間（{days}日）を過ぎた終了済みのシートを {deleted} 件削除しました")
