"""`resdb import`, `export`, `districts …`, `template` and `synth`: data in and out of the directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from resdb.cli.common import (
    acting_as,
    emit_json,
    err,
    fail,
    open_directory,
    out,
    progress_bar,
    refused,
)
from resdb.domain.vocab import KINDS

# Where an export or a template goes: a file, or stdout without it.
output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default stdout)",
)


@click.command("import")
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


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "geojson", "hsds", "event", "kaigo", "kosodate"]),
    default="csv",
    show_default=True,
    help="event / kaigo / kosodate: 自治体標準オープンデータセット イベント一覧 / 介護サービス事業所一覧 / 子育て施設一覧",
)
@output_option
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
    _write_out(data, output, f"{len(listings)} 件から {output} に書き出しました")


def _write_out(data: bytes, output: Path | None, written: str) -> None:
    """The bytes to OUTPUT (then `written` on stderr), or to stdout when no file is given."""
    if output:
        output.write_bytes(data)
        err.print(written)
    else:
        sys.stdout.buffer.write(data)


@click.group()
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


@click.command()
@click.argument(
    "fmt", metavar="FORMAT", type=click.Choice(["listing", "event", "kaigo", "kosodate"])
)
@output_option
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
    _write_out(data, output, f"{output} にひな形を書き出しました")


@click.command()
@click.option("--count", default=20000, show_default=True, type=int)
@click.option("--seed", default=1, type=int)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path))
def synth(count: int, seed: int, output: Path) -> None:
    """Write a synthetic region of `count` listings (JSON or CSV by extension) for benchmarks."""
    from resdb.synth import write_synthetic

    write_synthetic(output, count, seed=seed)
    err.print(f"{count} 件の合成データを {output} に書き出しました（合成・架空）")
