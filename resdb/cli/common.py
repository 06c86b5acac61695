"""Shared pieces of the `resdb` commands: consoles, JSON output, failing with an exit code, acting as, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts without the storage stack
    from resdb.accounts import Account
    from resdb.directory import Directory


err = Console(stderr=True)
out = Console()


def emit_json(payload: Any) -> None:
    """Exactly one JSON document on stdout."""
    click.echo(json.dumps(payload, ensure_ascii=False, indent=1, default=str))


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]エラー:[/red] {message}")
    sys.exit(code)


def refused(error: BaseException) -> NoReturn:
    """A service's refusal with its exit code (the same table the web uses: resdb.services.OUTCOMES)."""
    from resdb import services

    result = services.outcome(error)
    if result is None:
        raise error
    fail(services.message(error), result.exit_code)


def acting_as(directory: Directory, email: str | None, actor: str) -> Account:
    """Who the command acts as: a registered account (`--as`, its scope applies) or the shell's user."""
    from resdb import accounts, services

    if not email:
        return services.system_actor(f"cli:{actor}")
    account = accounts.account_by_email(directory.engine, email)
    if account is None:
        fail(f"{email} は登録されていないか、無効なアカウントです", 4)
    return account


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (silent when stderr is not a terminal and CI is set)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(show_speed=True),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)

        yield advance


def open_directory(ready: bool = True) -> Directory:
    from resdb.directory import Directory

    return Directory.open(ready=ready)
