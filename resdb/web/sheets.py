"""相談依頼シート pages (phone first): the community supporter's form and the receiving window's queue.

The supporter sees only that a sheet was received or closed; what it says about the person is shown only to
accounts registered with the receiving window. Sheet text never goes into a URL (POST, then redirect by id)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb.directory import Conflict, NotFound
from resdb.policy import Forbidden
from resdb.services import Services
from resdb.sheets import CONSENT, STATUS_FLOW, STATUSES
from resdb.validation import ValidationFailed
from resdb.web import get_directory
from resdb.web.auth import login_required
from resdb.web.common import private_page
from resdb.web.errors import ApiError

supporter_bp = Blueprint("supporter", __name__, url_prefix="/supporter")
window_bp = Blueprint("window", __name__, url_prefix="/window")
FORM_FIELDS = ("area", "observed", "consent", "supporter_contact")


def _services() -> Services:
    return Services(get_directory())


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return private_page(template, status, nav="sheets", **context)


# -- the supporter ----------------------------------------------------------------------------------
def _municipality() -> str:
    return str(g.account.municipality_code or current_app.config["DEFAULT_MUNICIPALITY"])


def _supporter_home(
    status: int = 200, values: dict[str, str] | None = None, problems: list[str] | None = None
) -> Response:
    if g.account.role != "supporter":
        raise ApiError(
            403, "相談依頼シートは登録された地域の支援者（民生委員など）のアカウントで送ります。"
        )
    services = _services()
    return _page(
        "supporter/home.html",
        status=status,
        values=values or {},
        problems=problems or [],
        sheets=services.sheets.mine(g.account),
        CONSENT=CONSENT,
        city=services.sheets.municipality_name(_municipality()),
        sent=request.args.get("sent"),
    )


@supporter_bp.get("/")
@login_required("supporter")
def home() -> Response:
    return _supporter_home()


@supporter_bp.post("/sheets")
@login_required("supporter")
def submit() -> BaseResponse:
    values = {k: (request.form.get(k) or "").strip() for k in FORM_FIELDS}
    if g.account.role != "supporter":
        raise ApiError(
            403, "相談依頼シートは登録された地域の支援者（民生委員など）のアカウントで送ります。"
        )
    try:
        sheet = _services().submit_sheet(g.account, municipality_code=_municipality(), **values)
    except ValidationFailed as exc:
        return _supporter_home(422, values, [p.message for p in exc.problems])
    return redirect(url_for("supporter.home", sent=sheet["id"]) + "#sheets", code=303)


# -- the receiving window ---------------------------------------------------------------------------
def _window_guard() -> None:
    if g.account.role in {"supporter", "host"} or not g.account.window:
        raise ApiError(403, "相談依頼シートは受け付けた窓口の職員だけが見られます。")


@window_bp.get("/")
@login_required()
def queue() -> Response:
    _window_guard()
    services = _services()
    return _page(
        "window/queue.html",
        sheets=services.sheets.queue(g.account),
        window_name=services.sheets.window_name(g.account.window or ""),
        STATUSES=STATUSES,
    )


def _sheet_page(sheet_id: int, status: int = 200, problems: list[str] | None = None) -> Response:
    try:
        sheet = _services().sheets.get(g.account, sheet_id)
    except (Forbidden, NotFound):  # another window's sheet looks like a missing one
        raise ApiError(404, "シートが見つかりません。") from None
    return _page(
        "window/sheet.html",
        status=status,
        s=sheet,
        problems=problems or [],
        STATUSES=STATUSES,
        STATUS_FLOW=STATUS_FLOW,
        message=request.args.get("done"),
    )


@window_bp.get("/sheets/<int:sheet_id>")
@login_required()
def sheet(sheet_id: int) -> Response:
    _window_guard()
    return _sheet_page(sheet_id)


@window_bp.post("/sheets/<int:sheet_id>")
@login_required()
def update(sheet_id: int) -> BaseResponse:
    _window_guard()
    try:
        _services().update_sheet(
            g.account,
            sheet_id,
            status=request.form.get("status", ""),
            referred_to=request.form.get("referred_to"),
        )
    except ValidationFailed as exc:
        return _sheet_page(sheet_id, 422, [p.message for p in exc.problems])
    except Conflict as exc:
        return _sheet_page(sheet_id, 409, [str(exc)])
    except (Forbidden, NotFound):
        raise ApiError(404, "シートが見つかりません。") from None
    return redirect(url_for("window.sheet", sheet_id=sheet_id, done="saved"), code=303)
