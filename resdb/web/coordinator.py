"""Coordinator desk (参加支援): caseload, matching form, print sheet, saved cases with placements and
follow-up (定着支援), caseload placement, gap report and the plans' yearly indicators.

要配慮個人情報: the matching form is POSTed and the person travels in the request body only. Nothing typed
goes into a URL, a cookie, the session, a log line or the database until the coordinator saves a case
(pseudonym + legal basis). Every response that shows person data carries `Cache-Control: no-store`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb import capacity
from resdb.matching import PersonError
from resdb.needs import int_or_none
from resdb.referrals import Referrals
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web import get_directory, get_matching
from resdb.web.auth import login_required
from resdb.web.common import app_today, private_page
from resdb.web.labels import describe_schedule, session_ja, yen
from resdb.web.person_form import (
    AVAILABLE_ROWS,
    PERIODS,
    PERSON_FIELDS,
    field_message,
    form_context,
    form_values,
    hidden_fields,
    person_from_values,
    values_from_person,
)
from resdb.web.results import DEFAULT_TTL_SECONDS, ResultGone, ResultStore, valid_token
from resdb.workspace import LEGAL_BASES, Workspace

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")

ROLES = ("admin", "coordinator")
MAX_PICK_COMPARE = 3
__all__ = [  # the person form's names, long reached through this module
    "AVAILABLE_ROWS",
    "PERIODS",
    "PERSON_FIELDS",
    "form_values",
    "hidden_fields",
    "person_from_values",
    "values_from_person",
]


# -- helpers ------------------------------------------------------------------------------------------
def _workspace() -> Workspace:
    return Workspace(get_directory())


def _services() -> Services:
    return Services(get_directory())


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return private_page(template, status, nav="coordinator", **context)


def _map_settings() -> dict[str, Any]:
    from resdb.web.basemap import map_settings

    return map_settings(current_app.config["DEFAULT_MUNICIPALITY"])


def _session_label(iso: str) -> str:
    from datetime import datetime

    try:
        return session_ja(datetime.fromisoformat(iso))
    except ValueError:
        return iso


def enrich(proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Proposals with their listings (for the list, the map and the print sheet)."""
    listings = {x["id"]: x for x in get_directory().get_many([p["resource_id"] for p in proposals])}
    capacities, hosts = _capacity_and_hosts(list(listings.values()))
    out = []
    for p in proposals:
        listing = listings.get(p["resource_id"]) or {}
        p = {
            **p,
            "capacity_info": capacities.get(p["resource_id"]),
            "host_stats": hosts.get(listing.get("operator") or ""),
        }
        travel = next(
            (r["text"] for r in p.get("reasons", []) if r.get("factor") == "travel"), None
        )
        out.append(
            {
                **p,
                "listing": listing,
                "travel_text": travel,
                "session_labels": [_session_label(s) for s in p.get("next_sessions") or []],
                "schedule_text": describe_schedule(listing.get("schedule")) if listing else "",
                "cost_text": yen(listing.get("cost_yen")) if listing else "不明",
            }
        )
    return out


def _capacity_and_hosts(listings: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open places with the age of their report, and each host's responsiveness (shown from 5 referrals)."""
    directory = get_directory()
    stats = Referrals(directory).host_stats([x.get("operator") or "" for x in listings])
    return capacity.describe_many(directory.engine, listings, app_today()), stats


def _map_points(items: list[dict[str, Any]], person: Mapping[str, Any] | None) -> dict[str, Any]:
    points = [
        {
            "id": x["resource_id"],
            "name": x["name"],
            "n": i + 1,
            "lat": x["listing"].get("lat"),
            "lon": x["listing"].get("lon"),
            "travel": x.get("travel_text") or "",
            "url": url_for("public.resource", listing_id=x["resource_id"]),
        }
        for i, x in enumerate(items)
        if x["listing"].get("lat") is not None
    ]
    home = None
    if person:
        try:
            placed = get_matching().resolve_home(person)["home"]
            if placed.get("lat") is not None and placed.get("lon") is not None:
                home = {
                    "lat": round(float(placed["lat"]), 5),
                    "lon": round(float(placed["lon"]), 5),
                }
        except (PersonError, TypeError, ValueError):
            home = None
    return {**_map_settings(), "points": points, "home": home}


def _run_match(
    values: dict[str, Any], *, all_excluded: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    person, problems = person_from_values(values)
    if problems:
        return person, None, problems
    try:
        answer = get_matching().match(
            person, limit=10, today=app_today(), all_excluded=all_excluded
        )
    except PersonError as exc:
        return person, None, [field_message(str(exc))]
    return person, answer, []


def _posted_match() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(form values, person, answer) from the POSTed form; a form with problems goes back as 422, filled in."""
    values = form_values(request.form)
    all_excluded = request.form.get("all_excluded") == "1"
    person, answer, problems = _run_match(values, all_excluded=all_excluded)
    if problems or answer is None or person is None:
        abort(_page("coordinator/match_form.html", status=422, **form_context(values, problems)))
    answer["all_excluded"] = (
        all_excluded  # kept with the stored result, so the page after the redirect says so
    )
    return values, person, answer


def _picked(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    ids = request.form.getlist("pick")
    return [
        p
        for p in [*answer["proposals"], *(answer.get("near_misses") or [])]
        if p["resource_id"] in ids
    ]


# -- desk home ----------------------------------------------------------------------------------------
QUIET_CHOICES = (7, 14, 30, 60)


def _caseload_facts(case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per case: its coordinator (id, name) and the last contact (the newest recorded event, else the save)."""
    from sqlalchemy import select
    from sqlmodel import col

    from resdb.db import read_session
    from resdb.models import Case, Placement, PlacementEvent, User

    if not case_ids:
        return {}
    with read_session(get_directory().engine) as db:
        rows = db.execute(  # five columns: more than sqlmodel's select() is typed for
            select(
                col(Case.id),
                col(Case.coordinator_id),
                col(Case.created_at),
                col(User.email),
                col(User.display_name),
            )
            .join(User, col(User.id) == col(Case.coordinator_id))
            .where(col(Case.id).in_(case_ids))
        ).all()
        events = db.execute(
            select(col(Placement.case_id), col(PlacementEvent.at))
            .join(PlacementEvent, col(PlacementEvent.placement_id) == col(Placement.id))
            .where(col(Placement.case_id).in_(case_ids))
        ).all()
    last: dict[int, Any] = {}
    for case_id, at in events:
        if case_id not in last or at > last[case_id]:
            last[case_id] = at
    return {
        case_id: {
            "coordinator_id": coordinator_id,
            "coordinator": display_name or email,
            "last_contact": last.get(case_id, created_at),
        }
        for case_id, coordinator_id, created_at, email, display_name in rows
    }


def _jst_date(moment: datetime) -> date:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo("Asia/Tokyo")).date()


@bp.get("/")
@login_required(*ROLES)
def home() -> Response:
    today = app_today()
    cases = _workspace().cases(g.account)
    facts = _caseload_facts([c["id"] for c in cases])
    for case in cases:
        follow = case.get("next_follow_up")
        case["overdue"] = bool(follow and follow < today)
        case["due_today"] = bool(follow and follow == today)
        fact = facts.get(case["id"], {})
        case["coordinator"] = fact.get("coordinator") or "—"
        case["coordinator_id"] = fact.get("coordinator_id")
        contact = fact.get("last_contact")
        case["last_contact"] = _jst_date(contact) if contact else None
        case["quiet_days"] = (today - case["last_contact"]).days if case["last_contact"] else None
    coordinators = sorted(
        {(c["coordinator_id"], c["coordinator"]) for c in cases if c["coordinator_id"]},
        key=lambda x: x[1],
    )
    who = int_or_none(request.args.get("coordinator"))
    quiet = int_or_none(request.args.get("quiet"))
    quiet = quiet if quiet in QUIET_CHOICES else None
    shown = [
        c
        for c in cases
        if (who is None or c["coordinator_id"] == who)
        and (quiet is None or (c["quiet_days"] is not None and c["quiet_days"] >= quiet))
    ]
    if quiet is not None:
        shown.sort(key=lambda c: -(c["quiet_days"] or 0))
    overdue = sum(1 for c in cases if c["overdue"])
    referrals = Referrals(get_directory()).by_case(g.account, [c["id"] for c in shown])
    return _page(
        "coordinator/home.html",
        cases=shown,
        total=len(cases),
        overdue=overdue,
        today=today,
        LEGAL_LABELS=LEGAL_BASES,
        coordinators=coordinators,
        who=who,
        quiet=quiet,
        QUIET_CHOICES=QUIET_CHOICES,
        show_coordinator=g.account.role == "admin" or len(coordinators) > 1,
        referrals=referrals,
    )


# -- matching -----------------------------------------------------------------------------------------
@bp.get("/match")
@login_required(*ROLES)
def match_form() -> Response:
    return _page(
        "coordinator/match_form.html", **form_context({"need_barrier_free": "", "need_pickup": ""})
    )


# Post/Redirect/Get: each POST below stores its answer (encrypted, minutes) and redirects to /coordinator/r/<token>,
# so the browser's Back button finds it again; nothing about the person is in that URL.
def _results() -> ResultStore:
    store = current_app.extensions.get("resdb.results")
    if store is None:
        instance = get_directory().instance_dir
        folder = (
            Path(instance) / "results"
            if instance
            else Path(tempfile.mkdtemp(prefix="resdb-results-"))
        )
        store = ResultStore(
            folder, int(current_app.config.get("RESULT_TTL_SECONDS", DEFAULT_TTL_SECONDS))
        )
        current_app.extensions["resdb.results"] = store
    return store


def _session_id() -> str:
    sid = session.get("sid")
    return sid if isinstance(sid, str) else ""


def _redirect_to_result(
    view: str, values: dict[str, Any], answer: dict[str, Any], **extra: Any
) -> BaseResponse:
    token = _results().put(
        {"view": view, "values": values, "answer": answer, **extra}, _session_id()
    )
    return redirect(url_for("coordinator.result", token=token), code=303)


def _back_token() -> str | None:
    token = request.form.get("result_token") or ""
    return token if valid_token(token) else None


@bp.post("/match")
@login_required(*ROLES)
def match() -> BaseResponse:
    values, _person, answer = _posted_match()
    return _redirect_to_result("match", values, answer)


@bp.post("/match/sheet")
@login_required(*ROLES)
def sheet() -> BaseResponse:
    """A print-friendly sheet in plain Japanese for the person (no scores): picked places, or the top three."""
    values, _person, answer = _posted_match()
    return _redirect_to_result("sheet", values, answer, picks=request.form.getlist("pick"))


@bp.post("/match/compare")
@login_required(*ROLES)
def compare() -> BaseResponse:
    values, _person, answer = _posted_match()
    return _redirect_to_result(
        "compare", values, answer, picks=request.form.getlist("pick"), back=_back_token()
    )


def _match_page(
    token: str, values: dict[str, Any], answer: dict[str, Any], status: int = 200, **extra: Any
) -> Response:
    person, _problems = person_from_values(values)
    items = enrich(answer["proposals"])
    return _page(
        "coordinator/match_result.html",
        status=status,
        items=items,
        excluded=answer["excluded"],
        near_misses=enrich(answer.get("near_misses") or []),
        all_excluded=bool(answer.get("all_excluded")) or values.get("all_excluded") == "1",
        hidden=hidden_fields(values),
        values=values,
        person=person,
        map_config=_map_points(items, person),
        LEGAL_BASES=LEGAL_BASES,
        max_compare=MAX_PICK_COMPARE,
        result_token=token,
        expires=_results().expires_at(token) if token else None,
        **extra,
    )


@bp.get("/r/<token>")
@login_required(*ROLES)
def result(token: str) -> Response:
    """A stored answer (match list, compare or sheet) for the session that made it, until it expires."""
    try:
        payload = _results().get(token, _session_id())
    except ResultGone:
        minutes = _results().ttl // 60
        return _page("coordinator/result_gone.html", status=410, minutes=minutes)
    values, answer, view = payload["values"], payload["answer"], payload.get("view")
    picks = list(payload.get("picks") or [])
    # A place can be picked from the proposals or from the near misses (「少し遠いが…」).
    chosen = [
        p
        for p in [*answer["proposals"], *(answer.get("near_misses") or [])]
        if p["resource_id"] in picks
    ]
    if view == "sheet":
        chosen = chosen or answer["proposals"][:3]
        return _page(
            "coordinator/sheet.html", items=enrich(chosen), today=app_today(), coordinator=g.account
        )
    if view == "compare":
        message = None
        if not 2 <= len(chosen) <= MAX_PICK_COMPARE:
            message = f"比べる場所を2〜{MAX_PICK_COMPARE}か所選んでください。"
            chosen = (
                answer["proposals"][:MAX_PICK_COMPARE]
                if len(chosen) < 2
                else chosen[:MAX_PICK_COMPARE]
            )
        back = payload.get("back")
        return _page(
            "coordinator/compare.html",
            items=enrich(chosen),
            message=message,
            hidden=hidden_fields(values),
            back_url=url_for("coordinator.result", token=back) if back else None,
            coordinator=g.account,
        )
    return _match_page(token, values, answer, picked=picks)


@bp.post("/match/save")
@login_required(*ROLES)
def save() -> BaseResponse:
    """「ケースとして保存」: what the coordinator chose to keep, with the legal basis (then redirect: no data in the URL)."""
    values, person, answer = _posted_match()
    chosen = _picked(answer)
    try:
        case = _services().save_case(
            g.account,
            pseudonym=request.form.get("pseudonym", ""),
            legal_basis=request.form.get("legal_basis", ""),
            person=person,
            notes=(request.form.get("notes") or values.get("memo") or "").strip() or None,
            proposals=[{"resource_id": p["resource_id"], "score": p["score"]} for p in chosen],
        )
    except ValidationFailed as exc:
        return _match_page(
            _back_token() or "",
            values,
            answer,
            status=422,
            save_problems=[p.message for p in exc.problems],
            picked=[p["resource_id"] for p in chosen],
            save_values={
                "pseudonym": request.form.get("pseudonym", ""),
                "notes": request.form.get("notes", ""),
                "legal_basis": request.form.get("legal_basis", ""),
            },
        )
    return redirect(url_for("coordinator.case_page", case_id=case["id"], done="saved"), code=303)


# The desk's other screens register on this blueprint (endpoints stay coordinator.*).
from resdb.web import coordinator_cases, coordinator_reports  # noqa: E402, F401
