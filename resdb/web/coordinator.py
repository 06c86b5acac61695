"""Coordinator desk (参加支援): caseload, matching form, print sheet, saved cases with placements and
follow-up (定着支援), caseload placement, gap report and the plans' yearly indicators.

要配慮個人情報: the matching form is POSTed and the person travels in the request body only. Nothing typed
goes into a URL, a cookie, the session, a log line or the database until the coordinator saves a case
(pseudonym + legal basis). Every response that shows person data carries `Cache-Control: no-store`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from shapely.geometry import Point, shape

from resdb import capacity
from resdb.directory import Conflict, NotFound
from resdb.domain.vocab import GOALS, GROUP_SIZES, MOBILITY, TARGETS, WEEKDAYS, target_id
from resdb.matching import Matching, PersonError
from resdb.referrals import DECLINE_REASONS, LATER_STATUSES, Referrals
from resdb.referrals import STATUSES as REFERRAL_STATUSES
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web import get_directory, get_matching
from resdb.web.auth import login_required
from resdb.web.errors import ApiError
from resdb.web.labels import describe_schedule, session_ja, yen
from resdb.web.results import DEFAULT_TTL_SECONDS, ResultGone, ResultStore, valid_token
from resdb.workspace import EVENT_KINDS, LEGAL_BASES, STAGES, Forbidden, Workspace

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")

ROLES = ("admin", "coordinator")
AVAILABLE_ROWS = 4
MAX_PICK_COMPARE = 3
MAX_NEEDS = 2000
STAGE_FLOW = ("proposed", "visited", "trial", "participating", "settled", "stopped")
# Form fields that describe the person (carried back as hidden fields; never stored until 保存).
PERSON_FIELDS = (
    "goals",
    "interests",
    "mobility",
    "max_minutes",
    "home_address",
    "home_district",
    "home_lat",
    "home_lon",
    "age",
    "targets",
    "need_barrier_free",
    "need_pickup",
    "budget_yen",
    "group_size",
    "memo",
    "avail_grid",
    *[f"avail_{k}_{i}" for i in range(AVAILABLE_ROWS) for k in ("weekday", "start", "end")],
)
_TIME = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
# The availability grid: a week × 午前 / 午後 / 夜 (one checkbox each; exact times in the rows below it).
PERIODS: dict[str, tuple[str, str, str]] = {
    "am": ("午前", "09:00", "12:00"),
    "pm": ("午後", "13:00", "17:00"),
    "eve": ("夜", "18:00", "21:00"),
}


# -- helpers ------------------------------------------------------------------------------------------
def _matching() -> Matching:
    return get_matching()  # built once in create_app


def _workspace() -> Workspace:
    return Workspace(get_directory())


def _services() -> Services:
    return Services(get_directory())


def _today() -> date:
    return current_app.config["TODAY"]()


def _private(body: str, status: int = 200) -> Response:
    """An HTML page showing person data: never cached, never stored by the browser or a proxy."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return _private(render_template(template, nav="coordinator", **context), status)


def _map_settings() -> dict[str, Any]:
    from resdb.web.basemap import map_settings

    return map_settings(current_app.config["DEFAULT_MUNICIPALITY"])


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,、，・\n]+", text or "") if p.strip()]


def form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The person fields of a (Multi)dict as plain values: lists for the checkboxes, strings otherwise."""
    out: dict[str, Any] = {}
    for name in PERSON_FIELDS:
        if name in ("goals", "targets", "avail_grid"):
            values = form.getlist(name) if hasattr(form, "getlist") else form.get(name) or []
            out[name] = [v for v in values if v]
        else:
            out[name] = (form.get(name) or "").strip()
    return out


def hidden_fields(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs that carry the person back in the next POST (no server storage)."""
    pairs: list[tuple[str, str]] = []
    for name in PERSON_FIELDS:
        value = values.get(name)
        if isinstance(value, list):
            pairs.extend((name, v) for v in value)
        elif value:
            pairs.append((name, str(value)))
    return pairs


def person_from_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A contract Person from the form values, and the problems (Japanese, naming the field)."""
    problems: list[str] = []
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    home: dict[str, Any] = {}
    lat, lon = _float(values.get("home_lat")), _float(values.get("home_lon"))
    if values.get("home_lat") or values.get("home_lon"):
        if lat is None or lon is None or not (20 <= lat <= 46 and 122 <= lon <= 154):
            problems.append(
                "自宅の緯度・経度: 日本国内の数値で入れてください（例: 36.77 と 137.13）"
            )
        else:
            home.update(lat=lat, lon=lon)
    if values.get("home_address"):
        home["address"] = values["home_address"]
    if values.get("home_district"):
        home["district"] = values["home_district"]
    if not home:
        problems.append("自宅: 住所・地区・緯度経度のどれかを入れてください")
    home["municipality_code"] = code
    person: dict[str, Any] = {"home": home}
    goals = [x for x in values.get("goals") or [] if x in GOALS]
    if goals:
        person["goals"] = goals
    targets = [x for x in values.get("targets") or [] if x in TARGETS]
    if targets:
        person["targets"] = targets
    interests = _split(values.get("interests") or "")
    if interests:
        person["interests"] = interests
    if values.get("age"):
        age = _int(values["age"])
        if age is None or not 0 <= age <= 120:
            problems.append("年齢: 0〜120 の数字で入れてください")
        else:
            person["age"] = age
    if values.get("mobility"):
        if values["mobility"] not in MOBILITY:
            problems.append("移動手段: 一覧から選んでください")
        else:
            person["mobility"] = values["mobility"]
    if values.get("max_minutes"):
        minutes = _int(values["max_minutes"])
        if minutes is None or not 1 <= minutes <= 240:
            problems.append("移動にかけられる時間: 1〜240 分で入れてください")
        else:
            person["max_minutes"] = minutes
    if values.get("budget_yen"):
        budget = _int(values["budget_yen"])
        if budget is None or budget < 0:
            problems.append("1回に払える費用: 0 以上の数字（円）で入れてください")
        else:
            person["budget_yen"] = budget
    available = []
    for cell in values.get("avail_grid") or []:
        weekday, _, period = str(cell).partition("_")
        if weekday in WEEKDAYS and period in PERIODS:
            _label, start, end = PERIODS[period]
            available.append({"weekday": weekday, "start": start, "end": end})
    for i in range(AVAILABLE_ROWS):
        weekday, start, end = (
            values.get(f"avail_{k}_{i}") or "" for k in ("weekday", "start", "end")
        )
        if not (weekday or start or end):
            continue
        if weekday not in WEEKDAYS:
            problems.append(f"都合のよい時間 {i + 1} 行目: 曜日を選んでください")
            continue
        start, end = start or "00:00", end or "23:59"
        if not (_TIME.match(start) and _TIME.match(end)) or start.zfill(5) >= end.zfill(5):
            problems.append(
                f"都合のよい時間 {i + 1} 行目: 「9:00」から「12:00」のように、始まりより遅い終わりを入れてください"
            )
            continue
        available.append({"weekday": weekday, "start": start.zfill(5), "end": end.zfill(5)})
    if available:
        person["available"] = available
    person["needs"] = {
        "barrier_free": bool(values.get("need_barrier_free")),
        "pickup": bool(values.get("need_pickup")),
    }
    if values.get("group_size") in GROUP_SIZES:
        person["prefers"] = {"group_size": values["group_size"]}
    return person, problems


def values_from_person(person: Mapping[str, Any]) -> dict[str, Any]:
    """The form values of a saved or demo person (to fill the form again)."""
    home = person.get("home") or {}
    values: dict[str, Any] = {
        "goals": list(person.get("goals") or []),
        "targets": list(person.get("targets") or []),
        "interests": "、".join(person.get("interests") or []),
        "mobility": person.get("mobility") or "",
        "max_minutes": str(person.get("max_minutes") or ""),
        "age": "" if person.get("age") is None else str(person["age"]),
        "budget_yen": "" if person.get("budget_yen") is None else str(person["budget_yen"]),
        "home_address": home.get("address") or "",
        "home_district": home.get("district") or "",
        "home_lat": "" if home.get("lat") is None else str(home["lat"]),
        "home_lon": "" if home.get("lon") is None else str(home["lon"]),
        "need_barrier_free": "1" if (person.get("needs") or {}).get("barrier_free") else "",
        "need_pickup": "1" if (person.get("needs") or {}).get("pickup") else "",
        "group_size": (person.get("prefers") or {}).get("group_size") or "",
        "memo": "",
    }
    grid_times = {(start, end): key for key, (_label, start, end) in PERIODS.items()}
    rows: list[dict[str, Any]] = []
    values["avail_grid"] = []
    for slot in person.get("available") or []:
        period = grid_times.get((slot.get("start"), slot.get("end")))
        if period and slot.get("weekday") in WEEKDAYS:
            values["avail_grid"].append(f"{slot['weekday']}_{period}")
        else:
            rows.append(slot)
    for i, slot in enumerate(rows[:AVAILABLE_ROWS]):
        values.update(
            {
                f"avail_weekday_{i}": slot.get("weekday", ""),
                f"avail_start_{i}": slot.get("start", ""),
                f"avail_end_{i}": slot.get("end", ""),
            }
        )
    return values


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
    return capacity.describe_many(directory.engine, listings, _today()), stats


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
            placed = _matching().resolve_home(person)["home"]
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
        answer = _matching().match(person, limit=10, today=_today(), all_excluded=all_excluded)
    except PersonError as exc:
        return person, None, [_field_message(str(exc))]
    return person, answer, []


_FIELD_NAMES = {
    "home.address": "自宅の住所",
    "home.district": "自宅の地区",
    "home": "自宅",
    "age": "年齢",
    "mobility": "移動手段",
    "available": "都合のよい時間",
    "max_minutes": "移動にかけられる時間",
}


def _posted_match() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(form values, person, answer) from the POSTed form; a form with problems goes back as 422, filled in."""
    values = form_values(request.form)
    all_excluded = request.form.get("all_excluded") == "1"
    person, answer, problems = _run_match(values, all_excluded=all_excluded)
    if problems or answer is None or person is None:
        abort(_page("coordinator/match_form.html", status=422, **_form_context(values, problems)))
    answer["all_excluded"] = (
        all_excluded  # kept with the stored result, so the page after the redirect says so
    )
    return values, person, answer


def _field_message(message: str) -> str:
    field, sep, rest = message.partition(": ")
    return f"{_FIELD_NAMES.get(field, field)}: {rest}" if sep else message


def _form_context(
    values: dict[str, Any] | None = None, problems: list[str] | None = None
) -> dict[str, Any]:
    return {
        "values": values or {},
        "problems": problems or [],
        "GOALS": GOALS,
        "TARGET_CHOICES": TARGETS,
        "MOBILITY": MOBILITY,
        "GROUP_SIZES": GROUP_SIZES,
        "WEEKDAYS": WEEKDAYS,
        "rows": range(AVAILABLE_ROWS),
        "PERIODS": PERIODS,
    }


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
    from sqlmodel import col, select

    from resdb.db import read_session
    from resdb.models import Case, Placement, PlacementEvent, User

    if not case_ids:
        return {}
    with read_session(get_directory().engine) as db:
        rows = db.exec(
            select(Case.id, Case.coordinator_id, Case.created_at, User.email, User.display_name)
            .join(User, col(User.id) == col(Case.coordinator_id))
            .where(col(Case.id).in_(case_ids))
        ).all()
        events = db.exec(
            select(Placement.case_id, PlacementEvent.at)
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


def _jst_date(moment: Any) -> date:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo("Asia/Tokyo")).date()


@bp.get("/")
@login_required(*ROLES)
def home() -> Response:
    today = _today()
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
    who = _int(request.args.get("coordinator"))
    quiet = _int(request.args.get("quiet"))
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
        "coordinator/match_form.html", **_form_context({"need_barrier_free": "", "need_pickup": ""})
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
) -> Response:
    token = _results().put(
        {"view": view, "values": values, "answer": answer, **extra}, _session_id()
    )
    return redirect(url_for("coordinator.result", token=token), code=303)


def _back_token() -> str | None:
    token = request.form.get("result_token") or ""
    return token if valid_token(token) else None


@bp.post("/match")
@login_required(*ROLES)
def match() -> Response:
    values, _person, answer = _posted_match()
    return _redirect_to_result("match", values, answer)


@bp.post("/match/sheet")
@login_required(*ROLES)
def sheet() -> Response:
    """A print-friendly sheet in plain Japanese for the person (no scores): picked places, or the top three."""
    values, _person, answer = _posted_match()
    return _redirect_to_result("sheet", values, answer, picks=request.form.getlist("pick"))


@bp.post("/match/compare")
@login_required(*ROLES)
def compare() -> Response:
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
        return _private(
            render_template(
                "coordinator/sheet.html",
                items=enrich(chosen),
                today=_today(),
                coordinator=g.account,
            )
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
def save() -> Response:
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


# -- cases --------------------------------------------------------------------------------------------
def _load_case(case_id: int, *, audit_view: bool = True) -> dict[str, Any]:
    """The case for the signed-in coordinator (403 / 404 otherwise); a view is audited unless a write follows."""
    try:
        return _workspace().case(case_id, g.account, audit_view=audit_view)
    except Forbidden:
        raise ApiError(403, "このケースは担当のコーディネーターだけが見られます。") from None
    except NotFound:
        raise ApiError(404, "ケースが見つかりません。") from None


@bp.get("/cases/<int:case_id>")
@login_required(*ROLES)
def case_page(case_id: int) -> Response:
    case = _load_case(case_id)
    today = _today()
    placed = {p["listing_id"] for p in case["placements"]}
    suggestions: list[dict[str, Any]] = []
    try:
        answer = _matching().match(_with_active_places(case), limit=10, today=today)
        suggestions = [p for p in answer["proposals"] if p["resource_id"] not in placed]
    except PersonError:
        pass
    return _case_page(case, suggestions, message=request.args.get("done"))


def _case_page(
    case: dict[str, Any],
    suggestions: list[dict[str, Any]],
    *,
    status: int = 200,
    message: str | None = None,
    referral_problems: dict[int, list[str]] | None = None,
    referral_values: dict[str, str] | None = None,
) -> Response:
    referrals = Referrals(get_directory()).for_case(g.account, case["id"])
    listings = get_directory().get_many_any([p["listing_id"] for p in case["placements"]])
    capacities, hosts = _capacity_and_hosts(listings)
    by_listing = {x["id"]: x for x in listings}
    return _page(
        "coordinator/case.html",
        status=status,
        case=case,
        today=_today(),
        STAGES=STAGES,
        STAGE_FLOW=STAGE_FLOW,
        EVENT_KINDS=EVENT_KINDS,
        LEGAL_BASES=LEGAL_BASES,
        suggestions=suggestions,
        summary=_person_summary(case["person"]),
        message=message,
        referrals={r["placement_id"]: r for r in referrals},
        all_referrals=referrals,
        REFERRAL_STATUSES=REFERRAL_STATUSES,
        REFERRAL_LATER=LATER_STATUSES,
        REASONS=DECLINE_REASONS,
        capacities=capacities,
        host_stats=hosts,
        listings=by_listing,
        referral_problems=referral_problems or {},
        referral_values=referral_values or {},
    )


@bp.post("/cases/<int:case_id>/placements/<int:placement_id>/referral")
@login_required(*ROLES)
def send_referral(case_id: int, placement_id: int) -> Response:
    """「受け入れ先へ紹介を送る」: only the fields filled in here travel to the host."""
    case = _load_case(case_id, audit_view=False)
    if placement_id not in {p["id"] for p in case["placements"]}:
        raise ApiError(404, "この場所はこのケースにありません。")
    values = {
        k: (request.form.get(k) or "").strip()
        for k in ("pseudonym", "proposed_dates", "helps", "contact_route")
    }
    try:
        _services().send_referral(
            g.account,
            case_id,
            placement_id,
            confirmed=request.form.get("confirm") == "yes",
            **values,
        )
    except ValidationFailed as exc:
        return _case_page(
            case,
            [],
            status=422,
            referral_problems={placement_id: [p.message for p in exc.problems]},
            referral_values=values,
        )
    except Conflict as exc:
        return _case_page(
            case,
            [],
            status=409,
            referral_problems={placement_id: [str(exc)]},
            referral_values=values,
        )
    return redirect(
        url_for("coordinator.case_page", case_id=case_id, done="referred")
        + f"#placement-{placement_id}",
        code=303,
    )


@bp.post("/referrals/<int:referral_id>/status")
@login_required(*ROLES)
def referral_status(referral_id: int) -> Response:
    """The coordinator's side of the shared status (見学 → 体験 → 参加中 → 定着 / 中断)."""
    try:
        referral = Referrals(get_directory()).get(g.account, referral_id, audit_view=False)
        _services().referral_status(g.account, referral_id, request.form.get("status", ""))
    except (Forbidden, NotFound):
        raise ApiError(404, "紹介が見つかりません。") from None
    except (ValidationFailed, Conflict) as exc:
        text = (
            "、".join(p.message for p in exc.problems)
            if isinstance(exc, ValidationFailed)
            else str(exc)
        )
        raise ApiError(409, text) from None
    return redirect(
        url_for("coordinator.case_page", case_id=referral["case_id"], done="recorded")
        + f"#placement-{referral['placement_id']}",
        code=303,
    )


def _person_summary(person: Mapping[str, Any]) -> list[tuple[str, str]]:
    home = person.get("home") or {}
    rows = [
        (
            "自宅",
            home.get("district")
            or home.get("address")
            or ("緯度経度で指定" if home.get("lat") is not None else "—"),
        )
    ]
    if person.get("age") is not None:
        rows.append(("年齢", f"{person['age']}歳"))
    if person.get("goals"):
        rows.append(("目的", "、".join(GOALS.get(x, x) for x in person["goals"])))
    if person.get("interests"):
        rows.append(("興味", "、".join(person["interests"])))
    if person.get("targets"):
        rows.append(("対象", "、".join(TARGETS.get(x, x) for x in person["targets"])))
    if person.get("mobility"):
        rows.append(
            (
                "移動",
                MOBILITY.get(person["mobility"], person["mobility"])
                + (f"（{person['max_minutes']}分まで）" if person.get("max_minutes") else ""),
            )
        )
    if person.get("available"):
        rows.append(
            (
                "都合のよい時間",
                "、".join(
                    f"{WEEKDAYS.get(a['weekday'], a['weekday'])}曜 {a['start']}〜{a['end']}"
                    for a in person["available"]
                ),
            )
        )
    needs = person.get("needs") or {}
    wanted = [
        label
        for key, label in (("barrier_free", "バリアフリー"), ("pickup", "送迎"))
        if needs.get(key)
    ]
    if wanted:
        rows.append(("必要な配慮", "、".join(wanted)))
    if person.get("budget_yen") is not None:
        rows.append(("費用の上限", yen(person["budget_yen"])))
    return rows


@bp.post("/cases/<int:case_id>/placements/<int:placement_id>")
@login_required(*ROLES)
def record(case_id: int, placement_id: int) -> Response:
    case = _load_case(case_id, audit_view=False)
    if placement_id not in {p["id"] for p in case["placements"]}:
        raise ApiError(404, "この場所はこのケースにありません。")
    kind = request.form.get("kind", "")
    follow = request.form.get("next_follow_up") or ""
    next_date = None
    if follow:
        try:
            next_date = date.fromisoformat(follow)
        except ValueError:
            raise ApiError(
                400, "次回フォローアップの日付は 2026-12-24 の形で入れてください。"
            ) from None
    try:
        _services().record(
            g.account,
            placement_id,
            kind=kind,
            to_stage=request.form.get("to_stage") or None,
            note=(request.form.get("note") or "").strip() or None,
            next_follow_up=next_date,
        )
    except ValidationFailed as exc:
        raise ApiError(400, "、".join(p.message for p in exc.problems)) from None
    return redirect(
        url_for("coordinator.case_page", case_id=case_id, done="recorded")
        + f"#placement-{placement_id}",
        code=303,
    )


@bp.post("/cases/<int:case_id>/places")
@login_required(*ROLES)
def add_place(case_id: int) -> Response:
    listing_id = (request.form.get("listing_id") or "").strip()
    if not listing_id:
        raise ApiError(400, "追加する場所を選んでください。")
    try:
        _services().add_placement(g.account, case_id, listing_id, _float(request.form.get("score")))
    except Forbidden:
        raise ApiError(403, "このケースは担当のコーディネーターだけが扱えます。") from None
    except NotFound:
        raise ApiError(404, "ケースまたは場所が見つかりません。") from None
    return redirect(url_for("coordinator.case_page", case_id=case_id, done="added"), code=303)


# -- caseload placement (batch) -----------------------------------------------------------------------
def _open_cases() -> list[dict[str, Any]]:
    return [c for c in _workspace().cases(g.account) if c["status"] == "open"]


def _with_active_places(case: Mapping[str, Any]) -> dict[str, Any]:
    """The case's person plus the places they are already placed at (not 中断): never proposed again."""
    active = [p["listing_id"] for p in case.get("placements") or [] if p.get("stage") != "stopped"]
    return {**case["person"], "active_places": active}


@bp.get("/batch")
@login_required(*ROLES)
def batch_form() -> Response:
    return _page("coordinator/batch.html", cases=_open_cases(), result=None)


@bp.post("/batch")
@login_required(*ROLES)
def batch() -> Response:
    wanted = {i for i in (_int(x) for x in request.form.getlist("case")) if i is not None}
    cases = _open_cases()
    chosen = [c for c in cases if c["id"] in wanted]
    if not chosen:
        return _page(
            "coordinator/batch.html",
            status=422,
            cases=cases,
            result=None,
            problem="配置するケースを1件以上選んでください。",
        )
    full = [_load_case(c["id"], audit_view=False) for c in chosen]
    try:
        answer = _matching().match_batch([_with_active_places(c) for c in full], today=_today())
    except PersonError as exc:
        return _page(
            "coordinator/batch.html",
            status=422,
            cases=cases,
            result=None,
            problem=_field_message(str(exc)),
        )
    names = {
        x["id"]: x
        for x in get_directory().get_many([a["resource_id"] for a in answer["assignments"]])
    }
    assigned = [
        {
            "case": full[a["person"]],
            "resource_id": a["resource_id"],
            "score": a["score"],
            "listing": names.get(a["resource_id"], {"name": a["resource_id"]}),
        }
        for a in answer["assignments"]
    ]
    unassigned = [{"case": full[u["person"]], "reason": u["reason"]} for u in answer["unassigned"]]
    capacities, _hosts = _capacity_and_hosts(list(names.values()))
    return _page(
        "coordinator/batch.html",
        cases=cases,
        result={"assigned": assigned, "unassigned": unassigned},
        selected=wanted,
        capacities=capacities,
    )


@bp.post("/batch/apply")
@login_required(*ROLES)
def batch_apply() -> Response:
    """Add the chosen placements; every case is checked first, so a bad row adds nothing."""
    chosen: list[tuple[int, str, float | None]] = []
    for item in request.form.getlist("assign"):
        case_text, _, rest = item.partition(":")
        listing_id, _, score = rest.rpartition(":")
        case_id = _int(case_text)
        if case_id is not None and listing_id:
            chosen.append((case_id, listing_id, _float(score)))
    workspace = _workspace()
    mine = {case["id"] for case in workspace.cases(g.account)}
    known = {x["id"] for x in workspace.directory.get_many([listing for _, listing, _ in chosen])}
    if any(case_id not in mine or listing_id not in known for case_id, listing_id, _ in chosen):
        raise ApiError(403, "選んだケースの中に、担当でないケースか見つからない場所があります。")
    for case_id, listing_id, score in chosen:
        _services().add_placement(g.account, case_id, listing_id, score)
    return redirect(url_for("coordinator.home", added=len(chosen)), code=303)


# -- gap report ---------------------------------------------------------------------------------------
def _choice(value: str, table: Mapping[str, str]) -> str | None:
    text = (value or "").strip()
    if text in table:
        return text
    for key, label in table.items():
        if text == label:
            return key
    return None


def parse_needs_text(text: str) -> list[dict[str, Any]]:
    """Needs from JSON (a list, or {"needs": [...]}) or CSV (地区,目的,対象,移動手段,件数); ValueError names the row."""
    text = (text or "").lstrip("\ufeff").strip()
    if not text:
        raise ValueError("ニーズが空です。CSV か JSON を貼り付けるか、ファイルを選んでください。")
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"JSON を読めません（{exc.lineno}行目）") from None
        needs = data.get("needs") if isinstance(data, dict) else data
        if not isinstance(needs, list) or not all(isinstance(n, dict) for n in needs):
            raise ValueError('JSON は [{"district": …, "goal": …}, …] の形にしてください')
        return needs
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader if any(c.strip() for c in r)]
    header = [c.strip() for c in rows[0]] if rows else []
    aliases = {
        "地区": "district",
        "district": "district",
        "目的": "goal",
        "goal": "goal",
        "対象": "targets",
        "targets": "targets",
        "移動手段": "mobility",
        "mobility": "mobility",
        "件数": "count",
        "count": "count",
    }
    if "地区" in header or "district" in header:
        columns = [aliases.get(h) for h in header]
        rows = rows[1:]
    else:
        columns = ["district", "goal", "targets", "mobility", "count"]
    needs = []
    for n, row in enumerate(
        rows,
        start=2
        if header and columns != ["district", "goal", "targets", "mobility", "count"]
        else 1,
    ):
        cells = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(columns) if c}
        need: dict[str, Any] = {"district": cells.get("district", "")}
        if not need["district"]:
            raise ValueError(f"{n}行目: 地区を入れてください")
        if cells.get("goal"):
            goal = _choice(cells["goal"], GOALS)
            if goal is None:
                raise ValueError(
                    f"{n}行目 目的: 「{cells['goal']}」は使えません（{'、'.join(GOALS.values())}）"
                )
            need["goal"] = goal
        targets = []
        for t in _split(cells.get("targets", "")):
            tid = target_id(t)
            if tid is None:
                raise ValueError(f"{n}行目 対象: 「{t}」は使えません")
            targets.append(tid)
        need["targets"] = targets
        if cells.get("mobility"):
            mobility = _choice(cells["mobility"], MOBILITY)
            if mobility is None:
                raise ValueError(
                    f"{n}行目 移動手段: 「{cells['mobility']}」は使えません（{'、'.join(MOBILITY.values())}）"
                )
            need["mobility"] = mobility
        if cells.get("count"):
            count = _int(cells["count"])
            if count is None or count < 1:
                raise ValueError(f"{n}行目 件数: 1 以上の数字にしてください")
            need["count"] = count
        needs.append(need)
    return needs


def _chiku() -> list[dict[str, Any]]:
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    return get_directory().districts(code, "chiku")


def _chiku_of(lat: float | None, lon: float | None, areas: list[tuple[str, Any]]) -> str | None:
    if lat is None or lon is None:
        return None
    point = Point(float(lon), float(lat))
    return next((name for name, geometry in areas if geometry.covers(point)), None)


def _chiku_by_name(text: str | None, districts: list[dict[str, Any]]) -> str | None:
    """The 地区 a stated name belongs to: the 地区 itself (with or without 「地区」) or one of its 町字."""
    text = (text or "").strip()
    if not text:
        return None
    for d in districts:
        if text in (d["name"], d["name"].removesuffix("地区")):
            return d["name"]
    return next((d["name"] for d in districts if text in (d.get("members") or [])), None)


def needs_from_cases() -> list[dict[str, Any]]:
    """Anonymous needs from this coordinator's open cases: 地区・目的・対象・移動手段 only."""
    districts = _chiku()
    areas = [(d["name"], shape(d["geometry"])) for d in districts]
    matching = _matching()
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for summary in _open_cases():
        person = _workspace().case(summary["id"], g.account, audit_view=False)["person"]
        try:
            home = matching.resolve_home(person)["home"]
        except PersonError:
            continue
        district = (
            _chiku_by_name(home.get("district"), districts)
            or _chiku_of(home.get("lat"), home.get("lon"), areas)
            or home.get("district")
        )
        if not district:
            continue
        goal = (person.get("goals") or [""])[0]
        key = (
            district,
            goal,
            tuple(sorted(person.get("targets") or [])),
            person.get("mobility") or "",
        )
        need = out.setdefault(
            key,
            {
                "district": district,
                "goal": goal or None,
                "targets": list(key[2]),
                "mobility": key[3] or None,
                "count": 0,
            },
        )
        need["count"] += 1
    return [{k: v for k, v in n.items() if v is not None} for n in out.values()]


def _run_gaps(needs: list[dict[str, Any]]) -> dict[str, Any]:
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    prepared = [{**n, "municipality_code": n.get("municipality_code") or code} for n in needs]
    return _matching().gaps(prepared, today=_today())


def _gap_map(needs: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
    districts = _chiku()
    areas = [(d["name"], shape(d["geometry"])) for d in districts]
    matching = _matching()
    unmet: dict[str, int] = {}
    total: dict[str, int] = {}
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    for row in report["needs"]:
        need = needs[row["need"]]
        name = _chiku_by_name(need.get("district"), districts)
        if name is None:
            try:
                home = matching.resolve_home(
                    {
                        "home": {k: need.get(k) for k in ("lat", "lon", "address", "district")}
                        | {"municipality_code": code}
                    }
                )["home"]
                name = _chiku_of(home.get("lat"), home.get("lon"), areas)
            except PersonError:
                name = None
        if name is None:
            continue
        total[name] = total.get(name, 0) + row["count"]
        if row["available"] < 1:
            unmet[name] = unmet.get(name, 0) + row["count"]
    features = [
        {
            "type": "Feature",
            "geometry": d["geometry"],
            "properties": {
                "name": d["name"],
                "approximate": bool(d["approximate"]),
                "unmet": unmet.get(d["name"], 0),
                "needs": total.get(d["name"], 0),
            },
        }
        for d in districts
    ]
    return {
        **_map_settings(),
        "districts": {"type": "FeatureCollection", "features": features},
        "max": max(unmet.values(), default=0),
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
            problem=_field_message(str(exc)),
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
        raw = upload.read()
        for encoding in ("utf-8-sig", "cp932"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ValueError(
                "ファイルの文字コードを読めません（UTF-8 か Shift_JIS にしてください）"
            )
    needs = parse_needs_text(text)
    if len(needs) > MAX_NEEDS:
        raise ValueError(f"ニーズは一度に {MAX_NEEDS} 件までです")
    return needs, text


@bp.post("/gaps.csv")
@login_required(*ROLES)
def gaps_csv() -> Response:
    from matcher import gap_csv

    try:
        needs, _text = _needs_from_request()
        report = _run_gaps(needs)
    except (ValueError, PersonError) as exc:
        raise ApiError(400, _field_message(str(exc))) from None
    response = Response("\ufeff" + gap_csv(report), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        "attachment; filename=\"gaps.csv\"; filename*=UTF-8''%E4%B8%8D%E8%B6%B3%E3%81%AE%E5%A0%B1%E5%91%8A.csv"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# -- indicators ---------------------------------------------------------------------------------------
def _fiscal_year(today: date) -> int:
    return today.year if today.month >= 4 else today.year - 1


def _indicator_rows() -> tuple[int, list[dict[str, Any]]]:
    year = _int(request.args.get("year")) or _fiscal_year(_today())
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
