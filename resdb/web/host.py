"""Host organisation pages (phone first): its own listings and open places, and the referrals addressed to it.

A host sees of a referral only what the coordinator chose to send (pseudonym, proposed dates, what helps,
contact route, the basis it was sent on); never the case. Every view and change is in the audit log."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb import capacity
from resdb.directory import Conflict, NotFound, StaleEdit
from resdb.policy import Forbidden
from resdb.referrals import ANSWERS, DECLINE_REASONS, LATER_STATUSES, STATUS_FLOW, STATUSES
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web import get_directory
from resdb.web.auth import login_required
from resdb.web.common import app_today, private_page
from resdb.web.errors import ApiError
from resdb.workspace import LEGAL_BASES

bp = Blueprint("host", __name__, url_prefix="/host")
# What a host may change on its own listings from the phone form (the rest stays with the city's editors).
EDITABLE = ("description", "phone", "email", "url", "cost_yen", "group_size", "accepts_referrals")


def _services() -> Services:
    return Services(get_directory())


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return private_page(template, status, nav="host", **context)


def _guard() -> None:
    if g.account.role != "host" or not g.account.operator:
        raise ApiError(403, "この画面は受け入れ先（協力企業・団体）のアカウントで使います。")


def _own_listings() -> list[dict[str, Any]]:
    operator = g.account.operator
    return [
        x
        for x in get_directory().all_listings(include_unpublished=True)
        if x.get("operator") == operator and x["status"] != "deleted"
    ]


def _home(
    status: int = 200, problems: dict[str, list[str]] | None = None, message: str | None = None
) -> Response:
    listings = _own_listings()
    info = capacity.describe_many(get_directory().engine, listings, app_today())
    referrals = _services().referrals.for_host(g.account)
    return _page(
        "host/home.html",
        status=status,
        listings=listings,
        capacity=info,
        referrals=referrals,
        problems=problems or {},
        message=message or request.args.get("done"),
        STATUSES=STATUSES,
        organisation=g.account.operator,
        month=app_today().month,
    )


@bp.get("/")
@login_required("host")
def home() -> Response:
    _guard()
    return _home()


def _number(text: str | None) -> int | None:
    try:
        return int(str(text).strip().translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    except (TypeError, ValueError):
        return None


@bp.post("/listings/<listing_id>/capacity")
@login_required("host")
def report_capacity(listing_id: str) -> BaseResponse:
    _guard()
    try:
        _services().report_capacity(
            g.account, listing_id, _number(request.form.get("open_places")), today=app_today()
        )
    except ValidationFailed as exc:
        return _home(422, {listing_id: [p.message for p in exc.problems]})
    except (Forbidden, NotFound):
        raise ApiError(404, "この団体の掲載情報ではありません。") from None
    return redirect(url_for("host.home", done="capacity") + f"#listing-{listing_id}", code=303)


def _own(listing_id: str) -> dict[str, Any]:
    try:
        return _services().listing_for_edit(g.account, listing_id)
    except (Forbidden, NotFound):
        raise ApiError(404, "この団体の掲載情報ではありません。") from None


@bp.get("/listings/<listing_id>")
@login_required("host")
def edit_listing(listing_id: str) -> Response:
    _guard()
    return _page("host/listing.html", listing=_own(listing_id), problems=[], values=None)


@bp.post("/listings/<listing_id>")
@login_required("host")
def save_listing(listing_id: str) -> BaseResponse:
    _guard()
    listing = _own(listing_id)
    values = {k: (request.form.get(k) or "").strip() for k in EDITABLE if k != "accepts_referrals"}
    raw: dict[str, Any] = {k: (v or None) for k, v in values.items()}
    raw["accepts_referrals"] = request.form.get("accepts_referrals") == "1"
    version = _number(request.form.get("version"))
    if current_app.config.get("HOST_EDITS_REVIEWED"):
        try:
            _services().propose_edit(g.account, listing_id, raw)
        except ValidationFailed as exc:
            from resdb.services import message

            return _page(
                "host/listing.html",
                status=422,
                listing=listing,
                values=values,
                problems=[message(exc)],
            )
        return redirect(url_for("host.home", done="proposed") + f"#listing-{listing_id}", code=303)
    try:
        _services().update(
            g.account,
            listing_id,
            raw,
            expected_version=version,
            action="host_update",
            today=app_today(),
        )
    except ValidationFailed as exc:
        from resdb.services import message

        return _page(
            "host/listing.html", status=422, listing=listing, values=values, problems=[message(exc)]
        )
    except StaleEdit as exc:
        return _page(
            "host/listing.html",
            status=409,
            listing=exc.current,
            values=values,
            problems=[
                "ほかの人が先に更新しました。最新の内容を確かめてから、もう一度保存してください。"
            ],
        )
    except (Forbidden, NotFound):
        raise ApiError(404, "この団体の掲載情報ではありません。") from None
    return redirect(url_for("host.home", done="listing") + f"#listing-{listing_id}", code=303)


# -- referrals --------------------------------------------------------------------------------------
def _referral(referral_id: int, *, audit_view: bool = True) -> dict[str, Any]:
    try:
        return _services().referrals.get(g.account, referral_id, audit_view=audit_view)
    except (Forbidden, NotFound):  # another host's referral looks like a missing one
        raise ApiError(404, "紹介が見つかりません。") from None


def _referral_page(
    referral_id: int, status: int = 200, problems: list[str] | None = None
) -> Response:
    referral = _referral(referral_id, audit_view=status == 200)
    return _page(
        "host/referral.html",
        status=status,
        r=referral,
        problems=problems or [],
        ANSWERS=ANSWERS,
        REASONS=DECLINE_REASONS,
        STATUSES=STATUSES,
        STATUS_FLOW=STATUS_FLOW,
        LATER=LATER_STATUSES,
        LEGAL_BASES=LEGAL_BASES,
        today=app_today(),
        message=request.args.get("done"),
    )


@bp.get("/referrals/<int:referral_id>")
@login_required("host")
def referral(referral_id: int) -> Response:
    _guard()
    return _referral_page(referral_id)


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def _act(referral_id: int, action: Any) -> BaseResponse:
    _referral(referral_id, audit_view=False)
    try:
        action()
    except ValidationFailed as exc:
        return _referral_page(referral_id, 422, [p.message for p in exc.problems])
    except Conflict as exc:
        return _referral_page(referral_id, 409, [str(exc)])
    except (Forbidden, NotFound):
        raise ApiError(404, "紹介が見つかりません。") from None
    return redirect(url_for("host.referral", referral_id=referral_id, done="saved"), code=303)


@bp.post("/referrals/<int:referral_id>/answer")
@login_required("host")
def answer(referral_id: int) -> BaseResponse:
    _guard()
    return _act(
        referral_id,
        lambda: _services().answer_referral(
            g.account,
            referral_id,
            answer=request.form.get("answer", ""),
            reason=request.form.get("reason") or None,
            visit_date=_date(request.form.get("visit_date")),
            today=app_today(),
        ),
    )


@bp.post("/referrals/<int:referral_id>/status")
@login_required("host")
def status(referral_id: int) -> BaseResponse:
    _guard()
    return _act(
        referral_id,
        lambda: _services().referral_status(g.account, referral_id, request.form.get("status", "")),
    )


@bp.post("/referrals/<int:referral_id>/attended")
@login_required("host")
def attended(referral_id: int) -> BaseResponse:
    _guard()
    on = _date(request.form.get("on"))
    if on is None:
        return _referral_page(referral_id, 422, ["来た日を 2026-12-02 の形で入れてください"])
    return _act(
        referral_id,
        lambda: _services().referral_attended(g.account, referral_id, on, today=app_today()),
    )
