"""Editor workspace (over 500 lines: one view per editor action on one blueprint, already split into
`editor_form`, `editor_import` and `editor_review`): community workers find, edit, verify,
delete/restore and import listings, review residents' corrections; admins read the audit log. Every
change goes through `resdb.services`. The form ⇄ listing shape lives in `editor_form`, the import
screens in `editor_import`, the corrections queue and audit log in `editor_review`."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb.accounts import Account
from resdb.directory import Conflict, NotFound, StaleEdit
from resdb.domain.vocab import KINDS, WEEKDAYS
from resdb.policy import Forbidden
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web import get_directory
from resdb.web.auth import login_required
from resdb.web.common import app_today, private_page
from resdb.web.editor_form import (
    FIELD_LABELS,
    form_context,
    form_from_request,
    form_values,
    problem_map,
    raw_from_values,
)
from resdb.web.errors import ApiError
from resdb.workspace import Workspace

bp = Blueprint("editor", __name__, url_prefix="/editor")

ACTION_LABELS = {
    "create": "作成",
    "update": "編集",
    "verify": "確認",
    "delete": "削除",
    "restore": "復元",
    "import": "取り込み",
    "correction": "訂正依頼の反映",
}
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(csv|txt|tsv|json|geojson|xlsx|xlsm)$")
HIDDEN_DIFF = {"version", "updated_at"}


def _workspace() -> Workspace:
    return Workspace(get_directory())


def _services() -> Services:
    return Services(get_directory())


def _account() -> Account:
    account: Account = g.account
    return account


def _listing_for_edit(listing_id: str, *, allow_deleted: bool = False) -> dict[str, Any]:
    """The listing (drafts too), 404 when missing, 403 when outside the editor's scope."""
    return _services().listing_for_edit(_account(), listing_id, allow_deleted=allow_deleted)


def _render(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("labels", FIELD_LABELS)
    return private_page(template, status, nav=context.pop("nav", "editor"), **context)


# -- home, lists --------------------------------------------------------------------------------------
def _editable_listings() -> list[dict[str, Any]]:
    account = _account()
    return [
        x for x in get_directory().all_listings(include_unpublished=True) if account.may_edit(x)
    ]


def _municipality_names() -> dict[str, str]:
    gazetteer = get_directory().gazetteer()
    return {r.municipality_code: r.name for r in gazetteer.records if r.level == "municipality"}


@bp.get("/")
@login_required("admin", "editor")
def home() -> Response:
    """Search and filters first; the verification queue is one click away (its own paged page)."""
    account = _account()
    q = (request.args.get("q") or "").strip()
    municipality = (request.args.get("municipality") or "").strip()
    kind = (request.args.get("kind") or "").strip()
    status = (request.args.get("status") or "").strip()
    listings = [x for x in _editable_listings() if x["status"] != "deleted"]
    if q:
        needle = q.lower()
        listings = [
            x
            for x in listings
            if any(
                needle in str(x.get(k) or "").lower()
                for k in ("id", "name", "name_kana", "address", "operator", "district")
            )
        ]
    if municipality:
        listings = [x for x in listings if x.get("municipality_code") == municipality]
    if kind:
        listings = [x for x in listings if x.get("kind") == kind]
    if status in {"draft", "published"}:
        listings = [x for x in listings if x["status"] == status]
    workspace = _workspace()
    today = app_today()
    queue = workspace.verification_queue(account=account, today=today)
    by_municipality: dict[str, int] = {}
    for item in queue:
        code = item.get("municipality_code") or ""
        by_municipality[code] = by_municipality.get(code, 0) + 1
    drafts = [x for x in _editable_listings() if x["status"] == "draft"]
    open_corrections = len(workspace.corrections("open", account))
    return _render(
        "editor/home.html",
        q=q,
        municipality=municipality,
        kind=kind,
        status_filter=status,
        listings=listings[: 200 if q or municipality or kind or status else 50],
        total=len(listings),
        queue_total=len(queue),
        queue_by_municipality=sorted(by_municipality.items()),
        municipalities=_municipality_names(),
        drafts=drafts,
        open_corrections=open_corrections,
        account=account,
        kinds=KINDS,
        searched=bool(q or municipality or kind or status),
        attention=needs_attention(listings),
        index_problems=get_directory().index_problems(),
    )


def needs_attention(listings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Listings a resident could not act on: no way to contact anyone, or no address (placed only at a
    地区 / 担当地区 because the source named the place without one)."""
    real = [x for x in listings if not x.get("is_sample") and x.get("source") != "synthetic"]
    return {
        "no_contact": [x for x in real if not any(x.get(k) for k in ("phone", "email", "url"))],
        "no_address": [
            x
            for x in real
            if not x.get("location_private")
            and (
                not x.get("address")
                or x.get("location_precision") in {"district", "service_area", "municipality"}
            )
        ],
    }


@bp.get("/queue")
@login_required("admin", "editor")
def queue() -> Response:
    """The verification queue for one municipality and kind, oldest first, a page at a time."""
    from resdb.web.editor_views import ISSUES, queue_page

    account = _account()
    today = app_today()
    municipality = (request.args.get("municipality") or "").strip()
    kind = (request.args.get("kind") or "").strip()
    issue = (request.args.get("issue") or "").strip()
    try:
        page_no = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page_no = 1
    everything = _workspace().verification_queue(account=account, today=today)
    page = queue_page(
        everything,
        municipality=municipality or None,
        kind=kind or None,
        issue=issue if issue in ISSUES else None,
        page=page_no,
    )
    names = _municipality_names()
    present = sorted({x.get("municipality_code") or "" for x in everything} - {""})
    return _render(
        "editor/queue.html",
        page=page,
        municipality=municipality,
        kind=kind,
        issue=issue,
        municipalities=[(c, names.get(c, c)) for c in present],
        kinds=KINDS,
        ISSUES=ISSUES,
        verified=request.args.get("verified"),
        total_all=len(everything),
    )


@bp.get("/deleted")
@login_required("admin", "editor")
def deleted() -> Response:
    items = [x for x in _editable_listings() if x["status"] == "deleted"]
    return _render("editor/deleted.html", items=items, just_deleted=request.args.get("done") or "")


# -- one listing --------------------------------------------------------------------------------------
@bp.get("/listings/new")
@login_required("admin", "editor")
def new_listing() -> Response:
    account = _account()
    values = form_values(
        {
            "status": "draft",
            "municipality_code": account.municipality_code,
            "operator": account.operator,
            "accepts_referrals": True,
            "holidays_closed": True,
        }
    )
    return _render("editor/edit.html", **form_context(values, listing=None))


@bp.post("/listings/new")
@login_required("admin", "editor")
def create_listing() -> BaseResponse:
    account = _account()
    values = form_from_request(request.form)
    try:
        created = _services().create(account, raw_from_values(values))
    except ValidationFailed as error:
        return _render(
            "editor/edit.html",
            422,
            **form_context(values, listing=None, problems=problem_map(error.problems)),
        )
    except Forbidden as error:
        return _render(
            "editor/edit.html",
            422,
            **form_context(values, listing=None, problems={"municipality_code": [str(error)]}),
        )
    except Conflict as error:
        return _render(
            "editor/edit.html",
            409,
            **form_context(values, listing=None, problems={"id": [str(error)]}),
        )
    return redirect(url_for("editor.edit_listing", listing_id=created["id"], saved=1), 303)


@bp.get("/listings/<listing_id>")
@login_required("admin", "editor")
def edit_listing(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    back = request.args.get("back") or ""
    return _render(
        "editor/edit.html",
        **form_context(
            form_values(listing),
            listing=listing,
            saved=request.args.get("saved") == "1",
            verified=request.args.get("verified") == "1",
            back=back if _local(back) else "",
        ),
    )


@bp.post("/listings/<listing_id>")
@login_required("admin", "editor")
def save_listing(listing_id: str) -> BaseResponse:
    listing = _listing_for_edit(listing_id)
    account = _account()
    values = form_from_request(request.form)
    values["id"] = listing_id
    try:
        version = int(values["version"])
    except ValueError:
        version = None
    if version is None:
        return _render(
            "editor/edit.html",
            400,
            **form_context(
                values,
                listing=listing,
                problems={"version": ["読み込んだ版が分かりません。画面を読み込み直してください"]},
            ),
        )
    try:
        raw = raw_from_values(values)
        raw.pop("id", None)
        _services().update(account, listing_id, raw, expected_version=version)
    except Forbidden as error:
        field = "municipality_code" if account.municipality_code else "operator"
        return _render(
            "editor/edit.html",
            422,
            **form_context(values, listing=listing, problems={field: [str(error)]}),
        )
    except StaleEdit as error:
        current = error.current
        mine = dict(values)
        return _render(
            "editor/conflict.html",
            409,
            **form_context(
                {**values, "version": str(current["version"])},
                listing=current,
                theirs=form_values(current),
                yours=mine,
                differs=_differing(form_values(current), mine),
            ),
        )
    except ValidationFailed as error:
        return _render(
            "editor/edit.html",
            422,
            **form_context(values, listing=listing, problems=problem_map(error.problems)),
        )
    return redirect(url_for("editor.edit_listing", listing_id=listing_id, saved=1), 303)


def _differing(theirs: dict[str, Any], yours: dict[str, Any]) -> list[str]:
    keys = [k for k in theirs if k not in {"version", "area_geometry"}]
    return [k for k in keys if _norm(theirs.get(k)) != _norm(yours.get(k))]


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value if not isinstance(value, str) else value.strip()


@bp.post("/listings/<listing_id>/verify")
@login_required("admin", "editor")
def verify_listing(listing_id: str) -> BaseResponse:
    """「確認しました」 only from the listing's page, after ticking that what it shows was confirmed."""
    listing = _listing_for_edit(listing_id)
    if request.form.get("confirm") != "yes":
        return _render(
            "editor/edit.html",
            400,
            **form_context(
                form_values(listing),
                listing=listing,
                verify_problem="確かめた内容にチェックを入れてから「確認しました」を押してください",
            ),
        )
    today: date = min(app_today(), date.today())  # never a future date
    _services().verify(
        _account(), listing_id, on=today
    )  # one door: scope, history and audit together
    back = request.form.get("back") or ""
    target = url_for(
        "editor.edit_listing",
        listing_id=listing_id,
        verified=1,
        back=back if _local(back) else None,
    )
    return redirect(target, 303)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _local(target: str | None) -> bool:
    return (
        target is not None
        and target.startswith("/editor")
        and "//" not in target
        and "\\" not in target
    )


@bp.get("/listings/<listing_id>/delete")
@login_required("admin", "editor")
def confirm_delete(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    return _render("editor/delete.html", listing=listing)


@bp.post("/listings/<listing_id>/delete")
@login_required("admin", "editor")
def delete_listing(listing_id: str) -> BaseResponse:
    listing = _listing_for_edit(listing_id)
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        version = None
    if request.form.get("confirm") != "yes":
        return _render(
            "editor/delete.html",
            400,
            listing=listing,
            problem="削除してよいか確認のチェックを入れてください",
        )
    try:
        _services().delete(_account(), listing_id, expected_version=version)
    except StaleEdit as error:
        return _render(
            "editor/delete.html",
            409,
            listing=error.current,
            problem="読み込んだ後に他の人が変更しました。内容を確かめてから、もう一度削除してください",
        )
    return redirect(url_for("editor.deleted", done=listing_id), 303)


@bp.post("/listings/<listing_id>/restore")
@login_required("admin", "editor")
def restore_listing(listing_id: str) -> BaseResponse:
    before = _listing_for_edit(listing_id, allow_deleted=True)
    raw_version = request.form.get("to_version", "").strip()
    to_version = int(raw_version) if raw_version.isdigit() else None
    keep_verified = request.form.get("keep_verified") == "yes" and before.get("verified_at")
    try:
        _services().restore(_account(), listing_id, to_version=to_version)
        restored = get_directory().get(listing_id, include_unpublished=True)
        if (
            keep_verified
            and restored.get("verified_at") != before.get("verified_at")
            and restored["status"] == "published"
        ):
            # The editor chose to keep the confirmation date the listing had before the restore.
            _services().verify(_account(), listing_id, on=_as_date(before["verified_at"]))
    except NotFound:
        raise ApiError(404, "その版は見つかりません") from None
    except ValidationFailed as error:
        raise ApiError(
            422, "この版には戻せません: " + "; ".join(str(p) for p in error.problems)
        ) from None
    return redirect(url_for("editor.history", listing_id=listing_id, restored=1), 303)


@bp.get("/listings/<listing_id>/history")
@login_required("admin", "editor")
def history(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id, allow_deleted=True)
    entries = []
    from resdb.web.editor_views import field_value

    for entry in reversed(get_directory().history(listing_id)):
        before, after = entry["before"] or {}, entry["after"] or {}
        keys = [
            k
            for k in (*after.keys(), *[k for k in before if k not in after])
            if k not in HIDDEN_DIFF
        ]
        diff = [
            (k, field_value(k, before.get(k)), field_value(k, after.get(k)))
            for k in keys
            if before.get(k) != after.get(k)
        ]
        entries.append(
            {
                **entry,
                "diff": diff,
                "action_label": ACTION_LABELS.get(entry["action"], entry["action"]),
                "verified_at": after.get("verified_at"),
            }
        )
    return _render(
        "editor/history.html",
        listing=listing,
        entries=entries,
        restored=request.args.get("restored") == "1",
    )


@bp.app_template_filter("jst")
def jst_filter(value: Any) -> str:
    from resdb.web.editor_views import jst

    return jst(value)


@bp.app_template_filter("jst_iso")
def jst_iso_filter(value: Any) -> str:
    from resdb.web.editor_views import jst_iso

    return jst_iso(value)


@bp.app_template_filter("field_value")
def field_value_filter(value: Any, key: str) -> str:
    """A stored value of field `key` in Japanese (codes → labels), as plain text."""
    from resdb.web.editor_views import field_value

    return editor_value(field_value(key, value))


@bp.app_template_filter("editor_value")
def editor_value(value: Any) -> str:
    """A stored or typed value as plain Japanese text for comparisons (escaped by the template)."""
    if value is None or value == "" or value == []:
        return "（なし）"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, list):
        return "、".join(editor_value(v) for v in value)
    if isinstance(value, dict):
        if "weekday" in value:
            weeks = value.get("weeks") or []
            day = WEEKDAYS.get(value.get("weekday") or "", value.get("weekday") or "")
            prefix = ("第" + "・".join(str(w) for w in weeks) + " ") if weeks else ""
            return f"{prefix}{day} {value.get('start') or ''}–{value.get('end') or ''}".strip()
        return "、".join(
            f"{FIELD_LABELS.get(k, k)}: {editor_value(v)}"
            for k, v in value.items()
            if v not in (None, [], "")
        )
    return str(value)


# The import and review screens register on this blueprint (endpoints stay editor.*).
from resdb.web import editor_import, editor_review  # noqa: E402, F401
