"""`resdb init`, `serve`, `reindex`, `check` and `index …`: run a host and keep its search index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resdb import config
from resdb.cli.common import (
    emit_json,
    err,
    fail,
    open_directory,
    out,
    progress_bar,
)

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts without the storage stack
    from flask import Flask


@click.command()
@click.option(
    "--demo/--no-demo",
    default=True,
    help="ship data: districts, plan facilities, venues and labelled samples",
)
@click.option(
    "--samples/--no-samples",
    default=True,
    help="include the invented demo listings (labelled サンプル)",
)
def init(demo: bool, samples: bool) -> None:
    """Create or upgrade the database and load the shipped data (idempotent)."""
    from resdb.demo import load_demo

    directory = open_directory()
    failed = False
    if demo:
        for path, report in load_demo(
            directory, samples=samples, progress=lambda line: err.print(line)
        ):
            for problem in report.problems:
                failed = True
                err.print(f"[red]✗[/red] {path.name} {problem}")
    err.print(
        f"準備完了: {directory.published_count()} 件の掲載 ({config.database_url().split('@')[-1]})"
    )
    if failed:
        fail("同梱データの一部を取り込めませんでした（上の一覧）", 1)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="gunicorn workers (default RESDB_WORKERS)")
@click.option("--dev", is_flag=True, help="Flask's single-process development server with reload")
def serve(host: str, port: int, workers: int | None, dev: bool) -> None:
    """Serve the web app and JSON API (gunicorn in production)."""
    directory = open_directory()
    status = directory.ensure_ready()
    err.print(f"索引: {status}")
    from resdb.web import signing_key

    if not directory.is_embedded and not directory.same_signing_key(signing_key({}, directory)):
        fail(
            "このホストの RESDB_SECRET_KEY が、同じデータベースを使う他のホストと異なります。"
            "すべてのホストで同じ値にするか、すべてのホストで未設定にしてください（未設定ならデータベースの鍵を共有します）",
            2,
        )
    if dev:
        from resdb.web import create_app

        create_app().run(host=host, port=port, debug=True)
        return
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers or int(config.setting("RESDB_WORKERS") or 3))
            self.cfg.set("threads", 4)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            # Query strings can hold what a coordinator typed; log the path only.
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss')
            self.cfg.set("timeout", 60)

        def load(self) -> Flask:
            from resdb.web import create_app, get_directory

            app = create_app()
            with app.app_context():
                get_directory().start_follower(
                    float(config.setting("RESDB_FOLLOW_SECONDS") or 0),
                    float(config.setting("RESDB_INDEX_COMMIT_SECONDS") or 0),
                )
            return app

    _Server().run()


@click.command()
def reindex() -> None:
    """Rebuild the search index from the database."""
    directory = open_directory(ready=False)
    from resdb.db import ensure_schema

    ensure_schema(directory.engine)
    with progress_bar("索引を再構築", directory.published_count()) as advance:
        count = directory.reindex(advance)
    err.print(f"{count} 件を索引しました")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def check(as_json: bool) -> None:
    """Check the index against the database and repair it (what start-up does)."""
    directory = open_directory(ready=False)
    status = directory.ensure_ready()
    not_indexed = [
        {"id": listing_id, "reason": reason}
        for listing_id, reason in sorted(directory.index_problems().items())
    ]
    payload: dict[str, Any] = {
        "index": status,
        "listings": directory.published_count(),
        "change_log_head": directory.head_seq(),
        "index_cursor": directory.index.cursor(),
        "not_indexed": not_indexed,
    }
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"索引: {status}（{payload['listings']} 件、変更ログ {payload['index_cursor']}/{payload['change_log_head']}）"
    )
    for problem in not_indexed:
        err.print(
            f"索引に入れられない掲載: {problem['id']}: {problem['reason']}（値を直すと自動で索引されます）"
        )


# In a copied index folder: the host snapshots (matching pool, map) copied beside it.
HOST_SNAPSHOTS = "host-snapshots"


@click.group("index")
def index_group() -> None:
    """The search index of this host (copy it to start another host quickly)."""


@index_group.command("rebuild")
def index_rebuild() -> None:
    """Rebuild this host's search index from the database (a new web host joins this way)."""
    reindex.callback()  # type: ignore[misc]


@index_group.command("copy")
@click.argument("out", type=click.Path(exists=False, file_okay=False, path_type=Path))
def index_copy(out: Path) -> None:
    """Copy this host's index, with its change-log position, into OUT (a new folder)."""
    from resdb.hostsnapshot import SNAPSHOTS_DIR, copy_newest

    directory = open_directory()
    cursor = directory.index.copy_to(out)
    kinds = copy_newest(directory.instance_dir / SNAPSHOTS_DIR, out / HOST_SNAPSHOTS)
    also = f"、ホストの写し（{'・'.join(kinds)}）も" if kinds else ""
    err.print(f"索引を {out} に写しました{also}（変更ログ {cursor} まで反映済み）")


@index_group.command("install")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
def index_install(source: Path) -> None:
    """Start this host from an index copied with `resdb index copy`, then catch up from the change log."""
    from resdb.search import IndexUnhealthy

    directory = open_directory(ready=False)
    from resdb.db import ensure_schema

    ensure_schema(directory.engine)
    try:
        cursor = directory.index.install(source)
    except IndexUnhealthy as exc:
        fail(str(exc), 1)
    from resdb.hostsnapshot import SNAPSHOTS_DIR, copy_newest

    copy_newest(source / HOST_SNAPSHOTS, directory.instance_dir / SNAPSHOTS_DIR)
    status = directory.ensure_ready()
    err.print(f"索引を取り込みました（変更ログ {cursor} から追いつき: {status}）")
