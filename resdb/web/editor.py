"""Editor workspace: community workers find, edit, verify, delete/restore and import listings, review
residents' corrections; admins read the audit log. Thin glue over `Directory` and `Workspace`."""

from __future__ import annotations

import re
import secrets
from datetime import date
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from resdb.accounts import Account
from resdb.directory import Conflict, Directory, NotFound, StaleEdit
from resdb.exchange import FileProblem, read_bytes
from resdb.validation import Problem, ValidationFailed, validate_listing
from resdb.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAYS
from resdb.web.auth import login_required
from resdb.web.errors import ApiError
from resdb.workspace import Forbidden, Workspace, audit_entries, audit_now

bp = Blueprint("editor", __name__, url_prefix="/editor")


TEXT_FIELDS = ("name", "name_kana", "description", "address", "district", "venue", "operator", "phone", "email",
               "url", "notes", "source")
NUMBER_FIELDS = ("lat", "lon", "cost_yen", "capacity")
OPTIONAL_BOOLS = ("barrier_free", "pickup", "reservation_required")
REQUIRED_BOOLS = ("accepts_referrals", "holidays_closed")
FIELD_LABELS: dict[str, str] = {
    "id": "ID", "name": "名称", "name_kana": "名称（かな）", "kind": "種別", "description": "説明",
    "municipality_code": "地方公共団体コード", "address": "住所", "district": "地区", "venue": "会場",
    "lat": "緯度", "lon": "経度", "operator": "運営主体", "phone": "電話番号", "email": "メール", "url": "URL",
    "targets": "対象", "activities": "活動", "schedule": "日程", "cost_yen": "費用（円）", "capacity": "受け入れ可能人数",
    "accepts_referrals": "紹介を受け入れる", "group_size": "集まりの規模", "barrier_free": "バリアフリー", "pickup": "送迎",
    "reservation_required": "予約", "holidays_closed": "祝日は休み", "eligibility": "参加条件",
    "service_area": "担当地区", "verified_at": "確認日", "source": "出典", "notes": "備考", "status": "公開状態",
    "location_precision": "位置の精度", "is_sample": "サンプル", "source_detail": "出典の詳細", "version": "版",
    "updated_at": "更新日時", "message": "内容", "row": "行", "file": "ファイル",
}
ACTION_LABELS = {"create": "作成", "update": "編集", "verify": "確認", "delete": "削除", "restore": "復元",
                 "import": "取り込み", "correction": "訂正依頼の反映"}
BLANK_SCHEDULE_ROWS = 3
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(csv|txt|tsv|json|geojson|xlsx|xlsm)$")
HIDDEN_DIFF = {"version", "updated_at"}


def _directory() -> Directory:
    from resdb.web import get_directory

    return get_directory()


def _workspace() -> Workspace:
    return Workspace(_directory())


def _account() -> Account:
    return g.account


def _listing_for_edit(listing_id: str, *, allow_deleted: bool = False) -> dict[str, Any]:
    """The listing (drafts too), 404 when missing, 403 when outside the editor's scope."""
    try:
        listing = _directory().get(listing_id, include_unpublished=True)
    except NotFound:
        raise ApiError(404, "掲載情報が見つかりません") from None
    if listing["status"] == "deleted" and not allow_deleted:
        raise ApiError(404, "この掲載情報は削除されています")
    _require_scope(listing)
    return listing


def _require_scope(listing: dict[str, Any]) -> None:
    if not _account().may_edit(listing):
        raise ApiError(403, "この掲載情報は担当範囲の外です")


def _render(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("nav", "editor")
    context.setdefault("labels", FIELD_LABELS)
    response = current_app.make_response(render_template(template, **context))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _audit(action: str, target_id: str | None, detail: str | None = None, target_type: str = "listing") -> None:
    audit_now(_directory().engine, _account().email, action, target_type, target_id, detail)


def _problem_map(problems: list[Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in problems:
        key = problem.field.split(".")[0].split("[")[0]
        out.setdefault(key, []).append(problem.message)
    return out


# -- form ⇄ listing --------------------------------------------------------------------------------
def _bool_text(value: Any) -> str:
    return "" if value is None else ("true" if value else "false")


def form_values(listing: dict[str, Any]) -> dict[str, Any]:
    """The edit form's values (strings, as typed) for a stored listing."""
    values: dict[str, Any] = {k: ("" if listing.get(k) is None else str(listing.get(k))) for k in TEXT_FIELDS}
    for key in NUMBER_FIELDS:
        values[key] = "" if listing.get(key) is None else str(listing[key])
    for key in (*OPTIONAL_BOOLS, *REQUIRED_BOOLS):
        values[key] = _bool_text(listing.get(key))
    eligibility = listing.get("eligibility") or {}
    area = listing.get("service_area") or {}
    values.update(
        id=listing.get("id") or "", kind=listing.get("kind") or "", municipality_code=listing.get("municipality_code") or "",
        targets=list(listing.get("targets") or []), activities="、".join(listing.get("activities") or []),
        group_size=listing.get("group_size") or "", status=listing.get("status") or "published",
        verified_at=listing.get("verified_at") or "",
        min_age="" if eligibility.get("min_age") is None else str(eligibility["min_age"]),
        max_age="" if eligibility.get("max_age") is None else str(eligibility["max_age"]),
        residents_only=bool(eligibility.get("residents_only")),
        districts="、".join(area.get("districts") or []), area_geometry=bool(area.get("geometry")),
        schedule=[{"weekday": s.get("weekday", ""), "weeks": [str(w) for w in s.get("weeks") or []],
                   "start": s.get("start") or "", "end": s.get("end") or ""} for s in listing.get("schedule") or []],
        version=str(listing.get("version") or ""),
    )
    return values


def form_from_request(form: Any) -> dict[str, Any]:
    """The edit form's values as the user sent them (kept on every error)."""
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in (*TEXT_FIELDS, *NUMBER_FIELDS, *OPTIONAL_BOOLS,
                                                                   *REQUIRED_BOOLS)}
    values.update(
        id=form.get("id", "").strip(), kind=form.get("kind", "").strip(),
        municipality_code=form.get("municipality_code", "").strip(), targets=form.getlist("targets"),
        activities=form.get("activities", "").strip(), group_size=form.get("group_size", "").strip(),
        status=form.get("status", "published"), verified_at=form.get("verified_at", "").strip(),
        min_age=form.get("min_age", "").strip(), max_age=form.get("max_age", "").strip(),
        residents_only=bool(form.get("residents_only")), districts=form.get("districts", "").strip(),
        area_geometry=form.get("area_geometry") == "1", version=form.get("version", "").strip(),
    )
    indices = sorted({int(m.group(1)) for key in form for m in [re.match(r"^schedule-(\d+)-weekday$", key)] if m})
    rows = []
    for i in indices:
        row = {"weekday": form.get(f"schedule-{i}-weekday", "").strip(), "weeks": form.getlist(f"schedule-{i}-weeks"),
               "start": form.get(f"schedule-{i}-start", "").strip(), "end": form.get(f"schedule-{i}-end", "").strip()}
        if row["weekday"] or row["start"] or row["end"] or row["weeks"]:
            rows.append(row)
    values["schedule"] = rows
    return values


def raw_from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The listing record (for Directory validation) the form's values describe."""
    raw: dict[str, Any] = {k: values[k] for k in (*TEXT_FIELDS, *NUMBER_FIELDS, *OPTIONAL_BOOLS)}
    for key in REQUIRED_BOOLS:
        if values.get(key):
            raw[key] = values[key]
    raw.update(kind=values["kind"], municipality_code=values["municipality_code"] or None,
               targets=values["targets"], activities=values["activities"], group_size=values["group_size"] or None,
               status=values["status"] if values["status"] in {"draft", "published"} else "published",
               verified_at=values["verified_at"] or None)
    raw["schedule"] = [
        {"weekday": r["weekday"], "start": r["start"], "end": r["end"],
         **({"weeks": [int(w) for w in r["weeks"] if str(w).isdigit()]} if r["weeks"] else {})}
        for r in values["schedule"]
    ]
    problems: list[Problem] = []
    eligibility: dict[str, Any] = {"residents_only": values["residents_only"]}
    for key in ("min_age", "max_age"):
        text = values[key]
        if not text:
            eligibility[key] = None
        elif text.isdigit():
            eligibility[key] = int(text)
        else:
            problems.append(Problem("eligibility", f"{'下限' if key == 'min_age' else '上限'}の年齢は整数で入れてください", None, text))
    raw["eligibility"] = eligibility
    if not values.get("area_geometry"):
        districts = [d.strip() for d in re.split(r"[、,，;；\n]+", values["districts"]) if d.strip()]
        raw["service_area"] = {"districts": districts} if districts else None
    if values.get("id"):
        raw["id"] = values["id"]
    if problems:
        raise ValidationFailed(problems)
    return raw


def _form_context(values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    blank = {"weekday": "", "weeks": [], "start": "", "end": ""}
    rows = list(values["schedule"]) + [dict(blank) for _ in range(BLANK_SCHEDULE_ROWS)]
    lat, lon = values.get("lat"), values.get("lon")
    from resdb.web.basemap import map_settings

    map_config = map_settings(values.get("municipality_code") or current_app.config["DEFAULT_MUNICIPALITY"])
    return {"values": values, "schedule_rows": rows, "kinds": KINDS, "targets": TARGETS, "weekdays": WEEKDAYS,
            "group_sizes": GROUP_SIZES, "map_config": map_config, "point": bool(lat and lon),
            "problems": {}, **extra}


# -- home, lists --------------------------------------------------------------------------------------
def _editable_listings() -> list[dict[str, Any]]:
    account = _account()
    return [x for x in _directory().all_listings(include_unpublished=True) if account.may_edit(x)]


def _municipality_names() -> dict[str, str]:
    gazetteer = _directory().gazetteer()
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
        listings = [x for x in listings if any(needle in str(x.get(k) or "").lower()
                                                for k in ("id", "name", "name_kana", "address", "operator", "district"))]
    if municipality:
        listings = [x for x in listings if x.get("municipality_code") == municipality]
    if kind:
        listings = [x for x in listings if x.get("kind") == kind]
    if status in {"draft", "published"}:
        listings = [x for x in listings if x["status"] == status]
    workspace = _workspace()
    today = current_app.config["TODAY"]()
    queue = workspace.verification_queue(account=account, today=today)
    by_municipality: dict[str, int] = {}
    for item in queue:
        code = item.get("municipality_code") or ""
        by_municipality[code] = by_municipality.get(code, 0) + 1
    drafts = [x for x in _editable_listings() if x["status"] == "draft"]
    open_corrections = len(workspace.corrections("open", account))
    return _render("editor/home.html", q=q, municipality=municipality, kind=kind, status_filter=status,
                   listings=listings[:200 if q or municipality or kind or status else 50], total=len(listings),
                   queue_total=len(queue),
                   queue_by_municipality=sorted(by_municipality.items()), municipalities=_municipality_names(),
                   drafts=drafts, open_corrections=open_corrections, account=account, kinds=KINDS,
                   searched=bool(q or municipality or kind or status))


@bp.get("/queue")
@login_required("admin", "editor")
def queue() -> Response:
    """The verification queue for one municipality and kind, oldest first, a page at a time."""
    from resdb.web.editor_views import ISSUES, queue_page

    account = _account()
    today = current_app.config["TODAY"]()
    municipality = (request.args.get("municipality") or "").strip()
    kind = (request.args.get("kind") or "").strip()
    issue = (request.args.get("issue") or "").strip()
    try:
        page_no = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page_no = 1
    everything = _workspace().verification_queue(account=account, today=today)
    page = queue_page(everything, municipality=municipality or None, kind=kind or None,
                      issue=issue if issue in ISSUES else None, page=page_no)
    names = _municipality_names()
    present = sorted({x.get("municipality_code") or "" for x in everything} - {""})
    return _render("editor/queue.html", page=page, municipality=municipality, kind=kind, issue=issue,
                   municipalities=[(c, names.get(c, c)) for c in present], kinds=KINDS, ISSUES=ISSUES,
                   verified=request.args.get("verified"), total_all=len(everything))


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
    values = form_values({"status": "draft", "municipality_code": account.municipality_code, "operator": account.operator,
                          "accepts_referrals": True, "holidays_closed": True})
    return _render("editor/edit.html", **_form_context(values, listing=None))


@bp.post("/listings/new")
@login_required("admin", "editor")
def create_listing() -> Response:
    account = _account()
    values = form_from_request(request.form)
    try:
        raw = raw_from_values(values)
        if account.municipality_code and not raw.get("municipality_code"):
            raw["municipality_code"] = account.municipality_code
        if account.operator and not raw.get("operator"):
            raw["operator"] = account.operator
        clean, problems = validate_listing(dict(raw))
        if problems:
            raise ValidationFailed(problems)
        _directory().place(clean)
        if not account.may_edit(clean):
            raise ValidationFailed([Problem("municipality_code", "担当範囲の外の掲載情報は作成できません")])
        created = _directory().create(raw, actor=account.email)
    except ValidationFailed as error:
        return _render("editor/edit.html", 422, **_form_context(values, listing=None, problems=_problem_map(error.problems)))
    except Conflict as error:
        return _render("editor/edit.html", 409, **_form_context(values, listing=None, problems={"id": [str(error)]}))
    _audit("listing.create", created["id"])
    return redirect(url_for("editor.edit_listing", listing_id=created["id"], saved=1), 303)


@bp.get("/listings/<listing_id>")
@login_required("admin", "editor")
def edit_listing(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    back = request.args.get("back") or ""
    return _render("editor/edit.html", **_form_context(form_values(listing), listing=listing,
                                                       saved=request.args.get("saved") == "1",
                                                       verified=request.args.get("verified") == "1",
                                                       back=back if _local(back) else ""))


@bp.post("/listings/<listing_id>")
@login_required("admin", "editor")
def save_listing(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    account = _account()
    values = form_from_request(request.form)
    values["id"] = listing_id
    try:
        version = int(values["version"])
    except ValueError:
        version = None
    if version is None:
        return _render("editor/edit.html", 400, **_form_context(values, listing=listing, problems={
            "version": ["読み込んだ版が分かりません。画面を読み込み直してください"]}))
    try:
        raw = raw_from_values(values)
        raw.pop("id", None)
        if account.municipality_code and raw.get("municipality_code") not in (None, account.municipality_code):
            raise ValidationFailed([Problem("municipality_code", "担当範囲の外の地方公共団体コードには変更できません")])
        if account.operator and raw.get("operator") != account.operator:
            raise ValidationFailed([Problem("operator", "担当の運営主体から変更できません")])
        saved = _directory().update(listing_id, raw, account.email, expected_version=version)
    except StaleEdit as error:
        current = error.current
        mine = dict(values)
        return _render("editor/conflict.html", 409, **_form_context(
            {**values, "version": str(current["version"])}, listing=current, theirs=form_values(current), yours=mine,
            differs=_differing(form_values(current), mine)))
    except ValidationFailed as error:
        return _render("editor/edit.html", 422, **_form_context(values, listing=listing, problems=_problem_map(error.problems)))
    except NotFound:
        raise ApiError(404, "掲載情報が見つかりません") from None
    if saved["version"] != listing["version"] or saved["version"] != version:
        _audit("listing.update", listing_id, f"version {saved['version']}")
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
def verify_listing(listing_id: str) -> Response:
    """「確認しました」 only from the listing's page, after ticking that what it shows was confirmed."""
    listing = _listing_for_edit(listing_id)
    if request.form.get("confirm") != "yes":
        return _render("editor/edit.html", 400, **_form_context(
            form_values(listing), listing=listing, verify_problem="確かめた内容にチェックを入れてから「確認しました」を押してください"))
    today: date = min(current_app.config["TODAY"](), date.today())  # never a future date
    _directory().verify(listing_id, _account().email, on=today)
    _audit("listing.verify", listing_id, today.isoformat())
    back = request.form.get("back") or ""
    target = url_for("editor.edit_listing", listing_id=listing_id, verified=1, back=back if _local(back) else None)
    return redirect(target, 303)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _local(target: str | None) -> bool:
    return bool(target) and target.startswith("/editor") and "//" not in target and "\\" not in target  # type: ignore[union-attr]


@bp.get("/listings/<listing_id>/delete")
@login_required("admin", "editor")
def confirm_delete(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    return _render("editor/delete.html", listing=listing)


@bp.post("/listings/<listing_id>/delete")
@login_required("admin", "editor")
def delete_listing(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        version = None
    if request.form.get("confirm") != "yes":
        return _render("editor/delete.html", 400, listing=listing, problem="削除してよいか確認のチェックを入れてください")
    try:
        _directory().delete(listing_id, _account().email, expected_version=version)
    except StaleEdit as error:
        return _render("editor/delete.html", 409, listing=error.current,
                       problem="読み込んだ後に他の人が変更しました。内容を確かめてから、もう一度削除してください")
    _audit("listing.delete", listing_id)
    return redirect(url_for("editor.deleted", done=listing_id), 303)


@bp.post("/listings/<listing_id>/restore")
@login_required("admin", "editor")
def restore_listing(listing_id: str) -> Response:
    before = _listing_for_edit(listing_id, allow_deleted=True)
    raw_version = request.form.get("to_version", "").strip()
    to_version = int(raw_version) if raw_version.isdigit() else None
    keep_verified = request.form.get("keep_verified") == "yes" and before.get("verified_at")
    try:
        _directory().restore(listing_id, _account().email, to_version=to_version)
        restored = _directory().get(listing_id, include_unpublished=True)
        if keep_verified and restored.get("verified_at") != before.get("verified_at") and restored["status"] == "published":
            # The editor chose to keep the confirmation date the listing had before the restore.
            _directory().verify(listing_id, _account().email, on=_as_date(before["verified_at"]))
    except NotFound:
        raise ApiError(404, "その版は見つかりません") from None
    except ValidationFailed as error:
        raise ApiError(422, "この版には戻せません: " + "; ".join(str(p) for p in error.problems)) from None
    _audit("listing.restore", listing_id, f"version {to_version}" if to_version else "undelete")
    return redirect(url_for("editor.history", listing_id=listing_id, restored=1), 303)


@bp.get("/listings/<listing_id>/history")
@login_required("admin", "editor")
def history(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id, allow_deleted=True)
    entries = []
    from resdb.web.editor_views import field_value

    for entry in reversed(_directory().history(listing_id)):
        before, after = entry["before"] or {}, entry["after"] or {}
        keys = [k for k in (*after.keys(), *[k for k in before if k not in after]) if k not in HIDDEN_DIFF]
        diff = [(k, field_value(k, before.get(k)), field_value(k, after.get(k)))
                for k in keys if before.get(k) != after.get(k)]
        entries.append({**entry, "diff": diff, "action_label": ACTION_LABELS.get(entry["action"], entry["action"]),
                        "verified_at": after.get("verified_at")})
    return _render("editor/history.html", listing=listing, entries=entries, restored=request.args.get("restored") == "1")


# -- import -----------------------------------------------------------------------------------------
def _uploads() -> Path:
    path = _directory().instance_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _scope_problems(records: list[tuple[int, dict[str, Any]]]) -> list[Problem]:
    """Rows a limited editor may not import (outside their municipality / operator, or changing such a listing)."""
    account = _account()
    if account.role == "admin" or (not account.municipality_code and not account.operator):
        return []
    directory = _directory()
    existing = {x["id"]: x for x in directory.get_many_any([r.get("id") for _, r in records if r.get("id")])}
    problems = []
    for row_no, raw in records:
        if "__row_error__" in raw:
            continue
        clean, invalid = validate_listing(raw, row_no)
        if invalid:
            continue  # the dry run names these
        directory.place(clean, row_no)
        stored = existing.get(clean.get("id") or "")
        if not account.may_edit(clean) or (stored is not None and not account.may_edit(stored)):
            scope = account.municipality_code or account.operator
            problems.append(Problem("municipality_code" if account.municipality_code else "operator",
                                    f"担当範囲（{scope}）の外の行は取り込めません", row_no,
                                    clean.get("municipality_code") or clean.get("operator")))
    return problems


def _run_import(stored_name: str, original: str, *, dry_run: bool) -> tuple[Any, list[Problem]]:
    data = (_uploads() / stored_name).read_bytes()
    records, read_problems = read_bytes(data, stored_name)
    scope = _scope_problems(records)
    if scope or read_problems:
        report = _directory().import_records(records, actor=_account().email, source_name=original, dry_run=True)
        report.problems = read_problems + scope + report.problems
        return report, scope
    report = _directory().import_records(records, actor=_account().email, source_name=original, dry_run=dry_run)
    return report, scope


@bp.get("/import")
@login_required("admin", "editor")
def import_page() -> Response:
    return _render("editor/import.html", report=None)


@bp.post("/import")
@login_required("admin", "editor")
def import_dry_run() -> Response:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render("editor/import.html", 400, report=None, error="ファイルを選んでください")
    original = Path(upload.filename).name[:200]
    suffix = Path(original).suffix.lower()
    if suffix not in {".csv", ".txt", ".tsv", ".json", ".geojson", ".xlsx", ".xlsm"}:
        return _render("editor/import.html", 400, report=None,
                       error="対応していない形式です。CSV, JSON, GeoJSON, Excel (.xlsx) が使えます")
    stored = f"{secrets.token_urlsafe(24)}{suffix}"
    (_uploads() / stored).write_bytes(upload.read())
    try:
        report, _scope = _run_import(stored, original, dry_run=True)
    except FileProblem as error:
        (_uploads() / stored).unlink(missing_ok=True)
        return _render("editor/import.html", 422, report=None, error=str(error.args[0] if error.args else error))
    status = 422 if report.problems else 200
    if report.problems:
        (_uploads() / stored).unlink(missing_ok=True)
    return _render("editor/import.html", status, report=report, stored=stored, original=original)


@bp.post("/import/confirm")
@login_required("admin", "editor")
def import_confirm() -> Response:
    stored = request.form.get("upload", "")
    original = Path(request.form.get("original", "") or "upload").name[:200]
    if not UPLOAD_NAME.match(stored) or not (_uploads() / stored).exists():
        return _render("editor/import.html", 400, report=None,
                       error="取り込むファイルが見つかりません。もう一度ファイルを選んで確認してください")
    try:
        report, _scope = _run_import(stored, original, dry_run=False)
    except FileProblem as error:
        return _render("editor/import.html", 422, report=None, error=str(error.args[0] if error.args else error))
    if report.written:
        (_uploads() / stored).unlink(missing_ok=True)
        _audit("import", None, f"{original}: created {report.created}, updated {report.updated}", target_type="import")
        return _render("editor/import.html", report=report, done=True, original=original)
    return _render("editor/import.html", 422, report=report, stored=None, original=original)


# -- corrections queue ------------------------------------------------------------------------------
@bp.get("/corrections")
@login_required("admin", "editor")
def corrections() -> Response:
    account = _account()
    items = _workspace().corrections("open", account)
    listings = {x["id"]: x for x in _directory().get_many_any([i["listing_id"] for i in items])}
    for item in items:
        current = listings.get(item["listing_id"]) or {}
        item["rows"] = [(k, current.get(k), v) for k, v in (item.get("proposed") or {}).items()]
    done = [x for x in _workspace().corrections(None, account) if x["status"] != "open"][:30]
    return _render("editor/corrections.html", items=items, done=done, notice=request.args.get("done"),
                   notice_fields=request.args.get("fields"))


@bp.post("/corrections/<int:request_id>")
@login_required("admin", "editor")
def review_correction(request_id: int) -> Response:
    decision = request.form.get("decision")
    if decision not in {"accept", "reject"}:
        raise ApiError(400, "採用か不採用を選んでください")
    fields: dict[str, Any] | None = None
    taken: list[str] = []
    if decision == "accept" and request.form.get("per_field") == "1":
        # Per-field: only the ticked proposals are applied; the rest are left as they are.
        proposed = next((c.get("proposed") or {} for c in _workspace().corrections("open", _account())
                         if c["id"] == request_id), {})
        taken = [k for k in request.form.getlist("take") if k in proposed]
        fields = {k: proposed[k] for k in taken}
    try:
        _workspace().review_correction(request_id, _account(), accept=decision == "accept", fields=fields,
                                       note=(request.form.get("note") or "").strip()[:500] or None)
    except NotFound:
        raise ApiError(404, "訂正依頼が見つからないか、処理済みです") from None
    except Forbidden:
        raise ApiError(403, "この掲載を編集する権限がありません") from None
    except ValidationFailed as error:
        raise ApiError(422, "提案された値を反映できません: " + "; ".join(str(p) for p in error.problems)) from None
    return redirect(url_for("editor.corrections", done=decision, fields=",".join(taken) or None), 303)


# -- audit (admin only, read-only) ---------------------------------------------------------------------
@bp.get("/audit")
@login_required("admin")
def audit_log() -> Response:
    target = (request.args.get("target") or "").strip() or None
    entries = audit_entries(_directory().engine, limit=500, target_id=target)
    return _render("editor/audit.html", entries=entries, target=target or "")


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
        return "、".join(f"{FIELD_LABELS.get(k, k)}: {editor_value(v)}" for k, v in value.items() if v not in (None, [], ""))
    return str(value)
