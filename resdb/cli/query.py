"""`resdb search`, `areas`, `match` and `gaps`: ask the directory and the matcher from the shell."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from resdb.cli.common import (
    emit_json,
    fail,
    open_directory,
    out,
)
from resdb.domain.vocab import KINDS, TARGETS, WEEKDAY_IDS


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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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
