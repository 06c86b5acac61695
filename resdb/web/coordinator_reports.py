"""Coordinator desk, reports: the gap report (不足の報告: needs from a file or the saved cases, counted
per 地区 on a map) and the plans' yearly indicators. Routes on the coordinator blueprint; the needs
themselves are read and counted by `resdb.needs`."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, g, request
from shapely.geometry import mapping

from resdb import needs as needs_core
from resdb.domain.vocab import GOALS
from resdb.matching import PersonError
from resdb.needs import ChikuAreas, int_or_none
from resdb.referrals import Referrals
from resdb.web import get_directory, get_matching
from resdb.web.auth import login_required
from resdb.web.common import app_today, no_store
from resdb.web.coordinator import ROLES, _map_settings, _page, _workspace, bp
from resdb.web.coordinator_cases import _open_cases
from resdb.web.errors import ApiError
from resdb.web.person_form import field_message
from resdb.workspace import Workspace, fiscal_year

MAX_NEEDS = needs_core.MAX_NEEDS


# -- gap report ---------------------------------------------------------------------------------------
def _chiku_areas() -> ChikuAreas:
    """The default municipality's 地区, built once per district revision (with the gazetteer)."""
    return ChikuAreas.of(get_directory().gazetteer(), current_app.config["DEFAULT_MUNICIPALITY"])


def needs_from_cases() -> list[dict[str, Any]]:
    """Anonymous needs from this coordinator's open cases: 地区・目的・対象・移動手段 only."""
    workspace = _workspace()
    persons = (
        workspace.case(summary["id"], g.account, audit_view=False)["person"]
        for summary in _open_cases()
    )
    return needs_core.needs_from_persons(persons, get_matching().resolve_home, _chiku_areas())


def _run_gaps(needs: list[dict[str, Any]]) -> dict[str, Any]:
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    prepared = [{**n, "municipality_code": n.get("municipality_code") or code} for n in needs]
    return get_matching().gaps(prepared, today=app_today())


def _gap_map(needs: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
    areas = _chiku_areas()
    counts = needs_core.count_by_chiku(
        needs,
        report,
        areas,
        get_matching().resolve_home,
        current_app.config["DEFAULT_MUNICIPALITY"],
    )
    features = [
        {
            "type": "Feature",
            "geometry": mapping(record.geometry),
            "properties": {
                "name": record.name,
                "approximate": bool(record.approximate),
                "unmet": counts.unmet.get(record.name, 0),
                "needs": counts.needs.get(record.name, 0),
            },
        }
        for record in areas.records
    ]
    return {
        **_map_settings(),
        "districts": {"type": "FeatureCollection", "features": features},
        "max": max(counts.unmet.values(), default=0),
    }


def _gap_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    from matcher.gaps import gap_rows

    return sorted(gap_rows(report), key=lambda r: (r["利用可能な場"] > 0, r["地区"], r["目的"]))


@bp.get("/gaps")
@login_required(*ROLES)
def gaps_form() -> Response:
    return _page("coordinator/gaps.html", report=None, needs_text="")


@bp.post("/gaps")
@login_required(*ROLES)
def gaps() -> Response:
    try:
        needs, needs_text = _needs_from_request()
        report = _run_gaps(needs)
    except (ValueError, PersonError) as exc:
        return _page(
            "coordinator/gaps.html",
            status=422,
            report=None,
            problem=field_message(str(exc)),
            needs_text=request.form.get("needs_text", ""),
        )
    return _page(
        "coordinator/gaps.html",
        report=report,
        rows=_gap_rows(report),
        needs_text=needs_text,
        needs_json=json.dumps(needs, ensure_ascii=False),
        map_config=_gap_map(needs, report),
        GOALS=GOALS,
    )


def _needs_from_request() -> tuple[list[dict[str, Any]], str]:
    if request.form.get("source") == "cases":
        needs = needs_from_cases()
        if not needs:
            raise ValueError("保存したケース（地区のわかるもの）がまだありません。")
        return needs, json.dumps(needs, ensure_ascii=False, indent=1)
    upload = request.files.get("needs_file")
    text = request.form.get("needs_json") or request.form.get("needs_text") or ""
    if upload is not None and upload.filename:
        text = needs_core.decode_needs_file(upload.read())
    return needs_core.check_needs_count(needs_core.parse_needs_text(text)), text


@bp.post("/gaps.csv")
@login_required(*ROLES)
def gaps_csv() -> Response:
    from matcher import gap_csv

    try:
        needs, _text = _needs_from_request()
        report = _run_gaps(needs)
    except (ValueError, PersonError) as exc:
        raise ApiError(400, field_message(str(exc))) from None
    response = Response("\ufeff" + gap_csv(report), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        "attachment; filename=\"gaps.csv\"; filename*=UTF-8''%E4%B8%8D%E8%B6%B3%E3%81%AE%E5%A0%B1%E5%91%8A.csv"
    )
    return no_store(response)


# -- indicators ---------------------------------------------------------------------------------------
def _indicator_rows() -> tuple[int, list[dict[str, Any]]]:
    year = int_or_none(request.args.get("year")) or fiscal_year(app_today())
    if not 2000 <= year <= 2100:
        raise ApiError(400, "年度は 2000〜2100 で指定してください。")
    workspace = _workspace()
    return year, [
        _with_hosts_and_sheets(workspace.indicators(year)),
        _with_hosts_and_sheets(workspace.indicators(year - 1)),
    ]


def _with_hosts_and_sheets(row: dict[str, Any]) -> dict[str, Any]:
    """協力企業・団体数 (hosts that accepted a referral in the 年度) and 相談依頼シート件数 by window."""
    from resdb.sheets import Sheets

    start, end = Workspace.fiscal_year_bounds(row["fiscal_year"])
    partners = Referrals(get_directory()).accepting_hosts(start, end)
    sheets = Sheets(get_directory()).counts_by_window(start, end)
    return {
        **row,
        "partner_hosts": len(partners),
        "partners": partners,
        "sheets": sheets,
        "sheets_total": sum(x["count"] for x in sheets),
    }


@bp.get("/indicators")
@login_required(*ROLES)
def indicators() -> Response:
    year, rows = _indicator_rows()
    return _page("coordinator/indicators.html", year=year, rows=rows)


@bp.get("/indicators.csv")
@login_required(*ROLES)
def indicators_csv() -> Response:
    year, rows = _indicator_rows()
    response = Response("\ufeff" + Workspace.indicators_csv(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="indicators-{year}.csv"'
    return response
