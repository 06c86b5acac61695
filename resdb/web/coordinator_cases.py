"""Coordinator desk, saved cases: a case with its placements and follow-up (定着支援), referrals to
hosts, and caseload placement (batch). Routes on the coordinator blueprint."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Response, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb.directory import Conflict, NotFound
from resdb.matching import PersonError
from resdb.needs import int_or_none
from resdb.referrals import DECLINE_REASONS, LATER_STATUSES, Referrals
from resdb.referrals import STATUSES as REFERRAL_STATUSES
from resdb.validation import ValidationFailed
from resdb.web import get_directory, get_matching
from resdb.web.auth import login_required
from resdb.web.common import app_today, float_or_none
from resdb.web.coordinator import (
    ROLES,
    _capacity_and_hosts,
    _page,
    _services,
    _workspace,
    bp,
)
from resdb.web.errors import ApiError
from resdb.web.person_form import field_message, person_summary
from resdb.workspace import EVENT_KINDS, LEGAL_BASES, STAGES, Forbidden

STAGE_FLOW = ("proposed", "visited", "trial", "participating", "settled", "stopped")


def _load_case(case_id: int, *, audit_view: bool = True) -> dict[str, Any]:
    """The case for the signed-in coordinator (403 / 404 otherwise); a view is audited unless a write follows."""
    try:
        return _workspace().case(case_id, g.account, audit_view=audit_view)
    except Forbidden:
        raise ApiError(403, "このケースは担当のコーディネーターだけが見られます。") from None
    except NotFound:
        raise ApiError(404, "ケースが見つかりません。") from None


def _to_placement(case_id: int, placement_id: int, done: str) -> BaseResponse:
    """Back to the case page at the placement just changed, with its notice."""
    url = url_for("coordinator.case_page", case_id=case_id, done=done)
    return redirect(f"{url}#placement-{placement_id}", code=303)


@bp.get("/cases/<int:case_id>")
@login_required(*ROLES)
def case_page(case_id: int) -> Response:
    case = _load_case(case_id)
    today = app_today()
    placed = {p["listing_id"] for p in case["placements"]}
    suggestions: list[dict[str, Any]] = []
    try:
        answer = get_matching().match(_with_active_places(case), limit=10, today=today)
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
    listings = get_directory().get_many(
        [p["listing_id"] for p in case["placements"]], include_unpublished=True
    )
    capacities, hosts = _capacity_and_hosts(listings)
    by_listing = {x["id"]: x for x in listings}
    return _page(
        "coordinator/case.html",
        status=status,
        case=case,
        today=app_today(),
        STAGES=STAGES,
        STAGE_FLOW=STAGE_FLOW,
        EVENT_KINDS=EVENT_KINDS,
        LEGAL_BASES=LEGAL_BASES,
        suggestions=suggestions,
        summary=person_summary(case["person"]),
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
def send_referral(case_id: int, placement_id: int) -> BaseResponse:
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
    return _to_placement(case_id, placement_id, "referred")


@bp.post("/referrals/<int:referral_id>/status")
@login_required(*ROLES)
def referral_status(referral_id: int) -> BaseResponse:
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
    return _to_placement(referral["case_id"], referral["placement_id"], "recorded")


@bp.post("/cases/<int:case_id>/placements/<int:placement_id>")
@login_required(*ROLES)
def record(case_id: int, placement_id: int) -> BaseResponse:
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
    return _to_placement(case_id, placement_id, "recorded")


@bp.post("/cases/<int:case_id>/places")
@login_required(*ROLES)
def add_place(case_id: int) -> BaseResponse:
    listing_id = (request.form.get("listing_id") or "").strip()
    if not listing_id:
        raise ApiError(400, "追加する場所を選んでください。")
    try:
        _services().add_placement(
            g.account, case_id, listing_id, float_or_none(request.form.get("score"))
        )
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
    wanted = {i for i in (int_or_none(x) for x in request.form.getlist("case")) if i is not None}
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
        answer = get_matching().match_batch(
            [_with_active_places(c) for c in full], today=app_today()
        )
    except PersonError as exc:
        return _page(
            "coordinator/batch.html",
            status=422,
            cases=cases,
            result=None,
            problem=field_message(str(exc)),
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
def batch_apply() -> BaseResponse:
    """Add the chosen placements; every case is checked first, so a bad row adds nothing."""
    chosen: list[tuple[int, str, float | None]] = []
    for item in request.form.getlist("assign"):
        case_text, _, rest = item.partition(":")
        listing_id, _, score_text = rest.rpartition(":")
        case_id = int_or_none(case_text)
        if case_id is not None and listing_id:
            chosen.append((case_id, listing_id, float_or_none(score_text)))
    workspace = _workspace()
    mine = {case["id"] for case in workspace.cases(g.account)}
    known = {x["id"] for x in workspace.directory.get_many([listing for _, listing, _ in chosen])}
    if any(case_id not in mine or listing_id not in known for case_id, listing_id, _ in chosen):
        raise ApiError(403, "選んだケースの中に、担当でないケースか見つからない場所があります。")
    for case_id, listing_id, score in chosen:
        _services().add_placement(g.account, case_id, listing_id, score)
    return redirect(url_for("coordinator.home", added=len(chosen)), code=303)
