"""The `resdb` command line: serve, init, import, export, search, areas, match, reindex and admin tasks."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
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
from rich.table import Table

from resdb import config
from resdb.domain.vocab import KINDS, TARGETS, WEEKDAY_IDS

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts without the storage stack
    from flask import Flask

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """地域の社会資源ディレクトリ（resdb）。設定は環境変数 RESDB_DATABASE_URL, RESDB_INSTANCE など。"""


@main.command()
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


@main.command()
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
            from resdb.web import create_app

            return create_app()

    _Server().run()


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="report every problem and change nothing")
@click.option(
    "--actor", default=lambda: os.environ.get("USER", "cli"), help="who is recorded in the history"
)
@click.option(
    "--as", "as_email", help="act as this registered account (an editor's scope then applies)"
)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--publish", is_flag=True, help="new listings go public at once (default: 下書き for review)"
)
@click.option(
    "--good-rows-only", is_flag=True, help="import the rows without problems and list the others"
)
@click.option(
    "--source",
    "source",
    default=None,
    help="出典 for rows without one: the organisation or document (e.g. 「射水市 地域福祉課 イベント一覧」)",
)
@click.option(
    "--kind", "default_kind", default=None, help="種別 for rows that have none (id or label)"
)
@click.option(
    "--problems-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the problems (行, 項目, 内容, 値) to this CSV",
)
def import_(
    file: Path,
    dry_run: bool,
    actor: str,
    as_email: str | None,
    as_json: bool,
    publish: bool,
    good_rows_only: bool,
    source: str | None,
    default_kind: str | None,
    problems_csv: Path | None,
) -> None:
    """Import listings from CSV (also 自治体標準オープンデータセット イベント一覧 / 介護サービス事業所一覧 /
    子育て施設一覧), JSON, GeoJSON or Excel (.xlsx); all-or-nothing unless --good-rows-only; audited."""
    from resdb.domain.vocab import kind_id
    from resdb.exchange import iter_file
    from resdb.intake import CLI_LIMITS, FileProblem
    from resdb.intake import problems_csv as problems_text
    from resdb.services import REFUSALS, Services

    kind = kind_id(default_kind) if default_kind else None
    if default_kind and kind is None:
        fail(f"--kind: 不明な種別です（{'、'.join(KINDS.values())} のいずれか）", 2)
    directory = open_directory()
    who = acting_as(directory, as_email, actor)
    try:
        records, file_warnings = iter_file(file, default_kind=kind, limits=CLI_LIMITS)
        with progress_bar(f"検査 {file.name}", None) as advance:
            report = Services(directory).import_records(
                who,
                records,
                source_name=file.name,
                dry_run=dry_run,
                progress=advance,
                status="published" if publish else "draft",
                good_rows_only=good_rows_only,
                source=source,
            )
    except FileProblem as exc:
        if problems_csv:
            problems_csv.write_text(problems_text([exc.problem]), encoding="utf-8")
        if as_json:
            emit_json({"written": False, "problems": [exc.problem.as_dict()]})
            sys.exit(1)
        fail(f"{exc}（何も書き込んでいません）", 1)
    except REFUSALS as error:
        refused(error)
    report.warnings[:0] = file_warnings
    if problems_csv:
        problems_csv.write_text(problems_text(report.problems), encoding="utf-8")
    if as_json:
        emit_json(report.as_dict())
    else:
        for problem in report.problems:
            err.print(f"[red]✗[/red] {problem}")
        for warning in report.warnings:
            err.print(f"[yellow]![/yellow] {warning}")
        for duplicate in report.duplicates:
            err.print(
                f"[yellow]≒[/yellow] {duplicate['message']}（類似度 {duplicate['similarity']}）"
            )
        state = "公開" if publish else "下書き"
        if report.written:
            verb = f"取り込みました（新しい掲載は{state}）"
        elif dry_run and (not report.problems or good_rows_only):
            verb = f"取り込めます（新しい掲載は{state}）"
        else:
            verb = "取り込みません"
        good = "問題のないもの: " if report.problems else ""
        out.print(
            f"{report.total} 件を確認（イベント一覧は催しごとに1件）— {good}追加 {report.created} / 更新 {report.updated} / 変更なし {report.unchanged} — {verb}"
            + (
                f"（問題のある行 {len(report.skipped_rows)} 行"
                + (
                    "は取り込んでいません"
                    if report.written
                    else "。--good-rows-only で問題のない行だけ取り込めます"
                )
                + "）"
                if report.problems
                else ""
            )
        )
    if report.problems and not report.written:
        sys.exit(1)


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "geojson", "hsds", "event", "kaigo", "kosodate"]),
    default="csv",
    show_default=True,
    help="event / kaigo / kosodate: 自治体標準オープンデータセット イベント一覧 / 介護サービス事業所一覧 / 子育て施設一覧",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default stdout)",
)
@click.option(
    "--japanese-headers", is_flag=True, help="CSV with 自治体標準オープンデータセット style headers"
)
@click.option("--bom", is_flag=True, help="CSV with a UTF-8 BOM (for Excel)")
@click.option(
    "--encoding",
    type=click.Choice(["utf-8", "utf-8-sig", "cp932"]),
    default=None,
    help="CSV encoding (municipal formats default to utf-8-sig; cp932 = Shift_JIS)",
)
@click.option(
    "--private-locations",
    is_flag=True,
    help="staff copy: keep private hosts' street addresses and true points (never publish this file)",
)
def export(
    fmt: str,
    output: Path | None,
    japanese_headers: bool,
    bom: bool,
    encoding: str | None,
    private_locations: bool,
) -> None:
    """Export every published listing (CSV cells that look like formulas are neutralised).
    Private hosts appear at their 町字 only unless --private-locations is given."""
    from resdb import opendata
    from resdb.exchange import EXPORTERS, to_csv

    directory = open_directory()
    listings = list(directory.iter_published(public=not private_locations))
    if fmt in opendata.FORMATS:
        names = {
            r.municipality_code: r.name
            for r in directory.gazetteer().records
            if r.level == "municipality"
        }
        text = opendata.export_text(fmt, listings, municipality_names=names)
        encoding = encoding or "utf-8-sig"
    elif fmt == "hsds":  # open places carry the date they were reported
        from resdb.capacity import latest
        from resdb.exchange import to_hsds

        text = to_hsds(
            listings,
            latest(directory.engine, [x["id"] for x in listings if x.get("capacity") is not None]),
        )
        encoding = encoding or "utf-8"
    else:
        text = (
            to_csv(listings, japanese_headers=japanese_headers)
            if fmt == "csv"
            else EXPORTERS[fmt](listings)
        )
        encoding = encoding or ("utf-8-sig" if bom and fmt == "csv" else "utf-8")
    try:
        data = opendata.encode(text, encoding)
    except opendata.EncodeProblem as exc:
        fail(str(exc), 1)
    if output:
        output.write_bytes(data)
        err.print(f"{len(listings)} 件から {output} に書き出しました")
    else:
        sys.stdout.buffer.write(data)


def _parse_point(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    try:
        lat, lon = (float(x) for x in value.split(","))
    except ValueError:
        fail("--near は 緯度,経度 で指定してください（例: 36.7236,137.0991）")
    return lat, lon


def _municipality_code(value: str | None) -> str | None:
    if not value:
        return None
    from resdb import geo

    try:
        return geo.code6(value)
    except ValueError:
        raise click.UsageError(
            f"--municipality: 5桁または6桁の地方公共団体コードで指定してください（{value}）"
        ) from None


@main.command()
@click.argument("query", required=False, default="")
@click.option("--kind", multiple=True, type=click.Choice(list(KINDS)))
@click.option("--target", multiple=True, type=click.Choice(list(TARGETS)))
@click.option("--weekday", multiple=True, type=click.Choice(list(WEEKDAY_IDS)))
@click.option("--today", is_flag=True, help="open today")
@click.option("--this-week", is_flag=True, help="open in the next 7 days")
@click.option("--free", is_flag=True, help="cost 0 only")
@click.option("--max-cost", type=int)
@click.option("--near", help="LAT,LON")
@click.option("--radius-km", type=float)
@click.option("--municipality", help="5- or 6-digit code (default: every municipality)")
@click.option("--venues", is_flag=True, help="also list venues (buildings where activities happen)")
@click.option("--limit", default=20, show_default=True, type=int)
@click.option("--offset", default=0, type=int)
@click.option("--json", "as_json", is_flag=True)
def search(
    query: str,
    kind: tuple[str, ...],
    target: tuple[str, ...],
    weekday: tuple[str, ...],
    today: bool,
    this_week: bool,
    free: bool,
    max_cost: int | None,
    near: str | None,
    radius_km: float | None,
    municipality: str | None,
    venues: bool,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Search the directory (Japanese: kana/width/variant-blind, synonyms, typos)."""
    from resdb.search import SearchQuery

    point = _parse_point(near)
    open_on = (
        [date.today()]
        if today
        else [date.today() + timedelta(days=i) for i in range(7)]
        if this_week
        else []
    )
    result = open_directory().search(
        SearchQuery(
            q=query,
            kinds=kind,
            targets=target,
            weekdays=weekday,
            open_on=open_on,
            max_cost=0 if free else max_cost,
            near=point,
            radius_km=radius_km,
            limit=limit,
            offset=offset,
            municipality_code=_municipality_code(municipality),
            include_venues=venues,
        )
    )
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"「{query}」 {result['total']} 件", show_lines=False)
    for column in ("id", "名称", "種別", "地区", "距離"):
        table.add_column(column)
    for item in result["items"]:
        name = (
            "（サンプル）" if item.get("is_sample") and "サンプル" not in item["name"] else ""
        ) + item["name"]
        distance = f"{item['distance_km']:.1f}km" if item.get("distance_km") is not None else ""
        table.add_row(
            item["id"],
            name,
            KINDS.get(item["kind"], item["kind"]),
            item.get("district") or "",
            distance,
        )
    out.print(table)


@main.command()
@click.argument("lat", type=float)
@click.argument("lon", type=float)
@click.option("--json", "as_json", is_flag=True)
def areas(lat: float, lon: float, as_json: bool) -> None:
    """Which centers' 担当地区 hold this point."""
    directory = open_directory()
    centers = directory.areas_lookup(lat, lon)
    town = directory.gazetteer().town_at(lat, lon)
    payload = {
        "lat": lat,
        "lon": lon,
        "town": town.name if town else None,
        "municipality_code": town.municipality_code if town else None,
        "items": centers,
    }
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"地点 {lat}, {lon}（{payload['town'] or '町字不明'}）を担当する機関: {len(centers)} 件"
    )
    for center in centers:
        out.print(f"・{center['name']}　{center.get('phone') or ''}　{center.get('address') or ''}")
    if not centers:
        sys.exit(3)


@main.command()
def reindex() -> None:
    """Rebuild the search index from the database."""
    directory = open_directory(ready=False)
    from resdb.db import ensure_schema

    ensure_schema(directory.engine)
    with progress_bar("索引を再構築", directory.published_count()) as advance:
        count = directory.reindex(advance)
    err.print(f"{count} 件を索引しました")


@main.command()
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


@main.group("index")
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
    directory = open_directory()
    cursor = directory.index.copy_to(out)
    err.print(f"索引を {out} に写しました（変更ログ {cursor} まで反映済み）")


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
    status = directory.ensure_ready()
    err.print(f"索引を取り込みました（変更ログ {cursor} から追いつき: {status}）")


@main.group()
def districts() -> None:
    """District areas (町字, 地区)."""


@districts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--municipality", required=True, help="municipality code (5 or 6 digits)")
@click.option("--name-field", required=True, help="property holding the district name")
@click.option("--level", default="town", type=click.Choice(["town", "chiku"]), show_default=True)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="import the good features even when some cannot be read (each is listed)",
)
@click.option(
    "--encoding", default=None, help="shapefile .dbf encoding when it has no .cpg (e.g. cp932)"
)
@click.option("--json", "as_json", is_flag=True)
def districts_import(
    file: Path,
    municipality: str,
    name_field: str,
    level: str,
    skip_bad: bool,
    encoding: str | None,
    as_json: bool,
) -> None:
    """Replace approximate areas with real polygons (GeoJSON or shapefile). A feature that cannot be an area
    (no geometry, a point, bad coordinates) is named by its number; nothing is stored unless --skip-bad."""
    from resdb.districtfile import read_district_file
    from resdb.intake import FileProblem

    try:
        read = read_district_file(file, municipality, name_field, level=level, encoding=encoding)
    except FileProblem as exc:
        if as_json:
            emit_json({"imported": 0, "problems": [exc.problem.as_dict()]})
            sys.exit(1)
        fail(f"{exc.problem.message}（何も取り込んでいません）", 1)
    refused = bool(read.problems) and not skip_bad
    count = 0 if refused or not read.records else open_directory().load_districts(read.records)
    if as_json:
        emit_json(
            {
                "features": read.features,
                "imported": count,
                "problems": [p.as_dict() for p in read.problems],
            }
        )
    else:
        for problem in read.problems:
            err.print(f"[red]✗[/red] {problem.message}")
        if refused:
            err.print(
                f"{read.features} 件の地物のうち {len(read.problems)} 件を読めないため、何も取り込んでいません。"
                "読める地物だけ取り込むには --skip-bad を付けてください"
            )
        else:
            err.print(
                f"{count} 地区を取り込みました（近似の区域を置き換え）"
                + (
                    f"。読めなかった {len(read.problems)} 件の地物は取り込んでいません"
                    if read.problems
                    else ""
                )
            )
    if refused or (not count and not read.problems):
        sys.exit(1)


@districts.command("list")
@click.option("--municipality")
@click.option("--json", "as_json", is_flag=True)
def districts_list(municipality: str | None, as_json: bool) -> None:
    rows = open_directory().districts(municipality)
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "geometry"} for r in rows])
        return
    for r in rows:
        out.print(
            f"{r['municipality_code']} {r['level']:6} {r['name']} {'(近似)' if r['approximate'] else ''}"
        )


@main.command()
@click.argument(
    "fmt", metavar="FORMAT", type=click.Choice(["listing", "event", "kaigo", "kosodate"])
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default stdout)",
)
@click.option(
    "--encoding", type=click.Choice(["utf-8-sig", "cp932"]), default="utf-8-sig", show_default=True
)
def template(fmt: str, output: Path | None, encoding: str) -> None:
    """An empty CSV with the header row of a format to fill in (listing: this product's Japanese headers;
    event / kaigo / kosodate: 自治体標準オープンデータセット イベント一覧 / 介護サービス事業所一覧 / 子育て施設一覧)."""
    from resdb import opendata
    from resdb.exchange import to_csv

    text = to_csv([], japanese_headers=True) if fmt == "listing" else opendata.template_text(fmt)
    data = opendata.encode(text, encoding)
    if output:
        output.write_bytes(data)
        err.print(f"{output} にひな形を書き出しました")
    else:
        sys.stdout.buffer.write(data)


@main.command()
@click.option("--count", default=20000, show_default=True, type=int)
@click.option("--seed", default=1, type=int)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path))
def synth(count: int, seed: int, output: Path) -> None:
    """Write a synthetic region of `count` listings (JSON or CSV by extension) for benchmarks."""
    from resdb.synth import write_synthetic

    write_synthetic(output, count, seed=seed)
    err.print(f"{count} 件の合成データを {output} に書き出しました（合成・架空）")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path.name} を JSON として読めません: {exc}", 1)


def _day(value: str | None) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError:
        fail("--today は YYYY-MM-DD で指定してください")
    raise AssertionError


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", default=10, show_default=True, type=int)
@click.option("--today", help="date to plan from (YYYY-MM-DD; default today)")
@click.option("--json", "as_json", is_flag=True)
def match(file: Path, limit: int, today: str | None, as_json: bool) -> None:
    """Proposals for the person in FILE; a list of persons (or {"persons": [...]}) gets one placement each."""
    from resdb.domain.vocab import KINDS
    from resdb.matching import Matching, PersonError

    payload = _read_json(file)
    matching = Matching(open_directory())
    persons = (
        payload.get("persons") if isinstance(payload, dict) and "persons" in payload else payload
    )
    try:
        if isinstance(persons, list):
            result = matching.match_batch(persons, today=_day(today))
        elif isinstance(persons, dict):
            result = matching.match(persons, limit=limit, today=_day(today))
        else:
            fail("人の情報（オブジェクト）か、その一覧を指定してください", 1)
    except PersonError as exc:
        fail(str(exc), 1)
    if as_json:
        emit_json(result)
        return
    if "proposals" in result:
        heading = None
        for rank, proposal in enumerate(result["proposals"], 1):
            if proposal.get("fit_label") and proposal["fit_label"] != heading:
                heading = proposal["fit_label"]
                out.print(f"[bold underline]{heading}[/bold underline]")
            out.print(
                f"[bold]{rank}. {proposal['name']}[/bold]（{KINDS.get(proposal.get('kind', ''), '')}）スコア {proposal['score']:.2f}"
            )
            if proposal.get("to_confirm"):
                out.print(f"   [yellow]確認すること: {'・'.join(proposal['to_confirm'])}[/yellow]")
            for reason in proposal["reasons"]:
                out.print(f"   ・{reason['text']}")
            for caution in proposal["cautions"]:
                out.print(f"   [yellow]※ {caution}[/yellow]")
        if result.get("near_misses"):
            out.print("[bold underline]少し遠いが合う場所[/bold underline]")
            for miss in result["near_misses"]:
                out.print(f"   ・{miss['name']}: {miss['text']}")
        if result["excluded"]:
            out.print("[dim]提案しなかった主な場所:[/dim]")
            for item in result["excluded"]:
                out.print(
                    f"[dim]   ・{item.get('name', item['resource_id'])}: {item['reason']}[/dim]"
                )
    else:
        for assignment in result["assignments"]:
            out.print(
                f"{assignment['person'] + 1}人目 → {assignment.get('name', assignment['resource_id'])}（{assignment['score']:.2f}）"
            )
        for miss in result["unassigned"]:
            out.print(
                f"[yellow]{miss['person'] + 1}人目: 提案できる場所がありません — {miss['reason']}[/yellow]"
            )


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the report as CSV (Excel-ready, BOM)",
)
@click.option("--today", help="date to plan from (YYYY-MM-DD)")
@click.option("--json", "as_json", is_flag=True)
def gaps(file: Path, csv_path: Path | None, today: str | None, as_json: bool) -> None:
    """Gap report: which anonymous needs have no feasible place, by district (重層的支援会議 の資料に)."""
    import matcher
    from resdb.matching import Matching, PersonError

    payload = _read_json(file)
    needs = payload.get("needs") if isinstance(payload, dict) else payload
    if not isinstance(needs, list):
        fail('ニーズの一覧（配列、または {"needs": [...]}）を指定してください', 1)
    try:
        report = Matching(open_directory()).gaps(needs, today=_day(today))
    except PersonError as exc:
        fail(str(exc), 1)
    if csv_path:
        csv_path.write_text("\ufeff" + matcher.gap_csv(report), encoding="utf-8", newline="")
    if as_json:
        emit_json(report)
        return
    click.echo(matcher.gap_csv(report))


@main.group()
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


@main.group()
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


@main.group()
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


if __name__ == "__main__":
    main()
