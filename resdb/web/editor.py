"""Editor workspace: community workers find, edit, verify, delete/restore and import listings, review
residents' corrections; admins read the audit log. Every change goes through `resdb.services`."""

from __future__ import annotations

import re
import secrets
from datetime import date
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from resdb import fields, intake, opendata
from resdb.accounts import Account
from resdb.audit import audit_entries
from resdb.directory import Conflict, Directory, NotFound, StaleEdit
from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAYS
from resdb.exchange import FileProblem, read_bytes, to_csv
from resdb.importjobs import ImportJobs
from resdb.policy import Forbidden
from resdb.services import Services
from resdb.validation import Problem, ValidationFailed
from resdb.web.auth import login_required
from resdb.web.errors import ApiError
from resdb.workspace import Workspace

bp = Blueprint("editor", __name__, url_prefix="/editor")


TEXT_FIELDS = (
    "name",
    "name_kana",
    "description",
    "address",
    "district",
    "venue",
    "operator",
    "phone",
    "email",
    "url",
    "notes",
    "source",
    "source_url",
    "source_read_at",
)
NUMBER_FIELDS = ("lat", "lon", "cost_yen", "capacity")
OPTIONAL_BOOLS = ("barrier_free", "pickup", "reservation_required")
REQUIRED_BOOLS = ("accepts_referrals", "holidays_closed", "location_private")
FIELD_LABELS: dict[str, str] = {
    **fields.labels(),
    "message": "内容",
    "row": "行",
    "file": "ファイル",
}
ACTION_LABELS = {
    "create": "作成",
    "update": "編集",
    "verify": "確認",
    "delete": "削除",
    "restore": "復元",
    "import": "取り込み",
    "correction": "訂正依頼の反映",
}
BLANK_SCHEDULE_ROWS = 3
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(csv|txt|tsv|json|geojson|xlsx|xlsm)$")
HIDDEN_DIFF = {"version", "updated_at"}


def _directory() -> Directory:
    from resdb.web import get_directory

    return get_directory()


def _workspace() -> Workspace:
    return Workspace(_directory())


def _services() -> Services:
    return Services(_directory())


def _account() -> Account:
    return g.account


def _listing_for_edit(listing_id: str, *, allow_deleted: bool = False) -> dict[str, Any]:
    """The listing (drafts too), 404 when missing, 403 when outside the editor's scope."""
    return _services().listing_for_edit(_account(), listing_id, allow_deleted=allow_deleted)


def _render(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("nav", "editor")
    context.setdefault("labels", FIELD_LABELS)
    response = current_app.make_response(render_template(template, **context))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


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
    values: dict[str, Any] = {
        k: ("" if listing.get(k) is None else str(listing.get(k))) for k in TEXT_FIELDS
    }
    for key in NUMBER_FIELDS:
        values[key] = "" if listing.get(key) is None else str(listing[key])
    for key in (*OPTIONAL_BOOLS, *REQUIRED_BOOLS):
        values[key] = _bool_text(listing.get(key))
    eligibility = listing.get("eligibility") or {}
    area = listing.get("service_area") or {}
    values.update(
        id=listing.get("id") or "",
        kind=listing.get("kind") or "",
        municipality_code=listing.get("municipality_code") or "",
        targets=list(listing.get("targets") or []),
        activities="、".join(listing.get("activities") or []),
        group_size=listing.get("group_size") or "",
        status=listing.get("status") or "published",
        verified_at=listing.get("verified_at") or "",
        min_age="" if eligibility.get("min_age") is None else str(eligibility["min_age"]),
        max_age="" if eligibility.get("max_age") is None else str(eligibility["max_age"]),
        residents_only=bool(eligibility.get("residents_only")),
        districts="、".join(area.get("districts") or []),
        area_geometry=bool(area.get("geometry")),
        schedule=[
            {
                "weekday": s.get("weekday", ""),
                "weeks": [str(w) for w in s.get("weeks") or []],
                "start": s.get("start") or "",
                "end": s.get("end") or "",
            }
            for s in listing.get("schedule") or []
        ],
        version=str(listing.get("version") or ""),
    )
    return values


def form_from_request(form: Any) -> dict[str, Any]:
    """The edit form's values as the user sent them (kept on every error)."""
    values: dict[str, Any] = {
        k: form.get(k, "").strip()
        for k in (*TEXT_FIELDS, *NUMBER_FIELDS, *OPTIONAL_BOOLS, *REQUIRED_BOOLS)
    }
    values.update(
        id=form.get("id", "").strip(),
        kind=form.get("kind", "").strip(),
        municipality_code=form.get("municipality_code", "").strip(),
        targets=form.getlist("targets"),
        activities=form.get("activities", "").strip(),
        group_size=form.get("group_size", "").strip(),
        status=form.get("status", "published"),
        verified_at=form.get("verified_at", "").strip(),
        min_age=form.get("min_age", "").strip(),
        max_age=form.get("max_age", "").strip(),
        residents_only=bool(form.get("residents_only")),
        districts=form.get("districts", "").strip(),
        area_geometry=form.get("area_geometry") == "1",
        version=form.get("version", "").strip(),
    )
    indices = sorted(
        {int(m.group(1)) for key in form for m in [re.match(r"^schedule-(\d+)-weekday$", key)] if m}
    )
    rows = []
    for i in indices:
        row = {
            "weekday": form.get(f"schedule-{i}-weekday", "").strip(),
            "weeks": form.getlist(f"schedule-{i}-weeks"),
            "start": form.get(f"schedule-{i}-start", "").strip(),
            "end": form.get(f"schedule-{i}-end", "").strip(),
        }
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
    raw.update(
        kind=values["kind"],
        municipality_code=values["municipality_code"] or None,
        targets=values["targets"],
        activities=values["activities"],
        group_size=values["group_size"] or None,
        status=values["status"] if values["status"] in {"draft", "published"} else "published",
        verified_at=values["verified_at"] or None,
    )
    raw["schedule"] = [
        {
            "weekday": r["weekday"],
            "start": r["start"],
            "end": r["end"],
            **({"weeks": [int(w) for w in r["weeks"] if str(w).isdigit()]} if r["weeks"] else {}),
        }
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
            problems.append(
                Problem(
                    "eligibility",
                    f"{'下限' if key == 'min_age' else '上限'}の年齢は整数で入れてください",
                    None,
                    text,
                )
            )
    raw["eligibility"] = eligibility
    if not values.get("area_geometry"):
        districts = [
            d.strip() for d in re.split(r"[、,，;；\n]+", values["districts"]) if d.strip()
        ]
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

    map_config = map_settings(
        values.get("municipality_code") or current_app.config["DEFAULT_MUNICIPALITY"]
    )
    return {
        "values": values,
        "schedule_rows": rows,
        "kinds": KINDS,
        "targets": TARGETS,
        "weekdays": WEEKDAYS,
        "group_sizes": GROUP_SIZES,
        "map_config": map_config,
        "point": bool(lat and lon),
        "problems": {},
        **extra,
    }


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
    today = current_app.config["TODAY"]()
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
        index_problems=_directory().index_problems(),
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
    today = current_app.config["TODAY"]()
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
    return _render("editor/edit.html", **_form_context(values, listing=None))


@bp.post("/listings/new")
@login_required("admin", "editor")
def create_listing() -> Response:
    account = _account()
    values = form_from_request(request.form)
    try:
        created = _services().create(account, raw_from_values(values))
    except ValidationFailed as error:
        return _render(
            "editor/edit.html",
            422,
            **_form_context(values, listing=None, problems=_problem_map(error.problems)),
        )
    except Forbidden as error:
        return _render(
            "editor/edit.html",
            422,
            **_form_context(values, listing=None, problems={"municipality_code": [str(error)]}),
        )
    except Conflict as error:
        return _render(
            "editor/edit.html",
            409,
            **_form_context(values, listing=None, problems={"id": [str(error)]}),
        )
    return redirect(url_for("editor.edit_listing", listing_id=created["id"], saved=1), 303)


@bp.get("/listings/<listing_id>")
@login_required("admin", "editor")
def edit_listing(listing_id: str) -> Response:
    listing = _listing_for_edit(listing_id)
    back = request.args.get("back") or ""
    return _render(
        "editor/edit.html",
        **_form_context(
            form_values(listing),
            listing=listing,
            saved=request.args.get("saved") == "1",
            verified=request.args.get("verified") == "1",
            back=back if _local(back) else "",
        ),
    )


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
        return _render(
            "editor/edit.html",
            400,
            **_form_context(
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
            **_form_context(values, listing=listing, problems={field: [str(error)]}),
        )
    except StaleEdit as error:
        current = error.current
        mine = dict(values)
        return _render(
            "editor/conflict.html",
            409,
            **_form_context(
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
            **_form_context(values, listing=listing, problems=_problem_map(error.problems)),
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
def verify_listing(listing_id: str) -> Response:
    """「確認しました」 only from the listing's page, after ticking that what it shows was confirmed."""
    listing = _listing_for_edit(listing_id)
    if request.form.get("confirm") != "yes":
        return _render(
            "editor/edit.html",
            400,
            **_form_context(
                form_values(listing),
                listing=listing,
                verify_problem="確かめた内容にチェックを入れてから「確認しました」を押してください",
            ),
        )
    today: date = min(current_app.config["TODAY"](), date.today())  # never a future date
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
        bool(target) and target.startswith("/editor") and "//" not in target and "\\" not in target
    )  # type: ignore[union-attr]


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
def restore_listing(listing_id: str) -> Response:
    before = _listing_for_edit(listing_id, allow_deleted=True)
    raw_version = request.form.get("to_version", "").strip()
    to_version = int(raw_version) if raw_version.isdigit() else None
    keep_verified = request.form.get("keep_verified") == "yes" and before.get("verified_at")
    try:
        _services().restore(_account(), listing_id, to_version=to_version)
        restored = _directory().get(listing_id, include_unpublished=True)
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

    for entry in reversed(_directory().history(listing_id)):
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


# -- import -----------------------------------------------------------------------------------------
IMPORT_OPTIONS = ("publish", "good_rows_only", "source", "kind")


def _uploads() -> Path:
    path = _directory().instance_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    intake.expire_uploads(path)  # a dry run never confirmed is not kept
    return path


def _import_options(form: Any) -> dict[str, Any]:
    kind = (form.get("kind") or "").strip()
    return {
        "publish": form.get("publish") == "1",
        "good_rows_only": form.get("good_rows_only") == "1",
        "source": (form.get("source") or "").strip()[:300],
        "kind": kind if kind in KINDS else "",
    }


def _run_import(
    stored_name: str,
    original: str,
    options: dict[str, Any],
    *,
    dry_run: bool,
    account: Account | None = None,
    directory: Directory | None = None,
    folder: Path | None = None,
    progress: Any = None,
) -> tuple[Any, list[Problem]]:
    """Read the stored upload and import it (or check it). Outside a request (a job), pass account,
    directory and upload folder explicitly."""
    account = account or _account()
    directory = directory or _directory()
    data = ((folder or _uploads()) / stored_name).read_bytes()
    records, read_problems = read_bytes(
        data, stored_name, default_kind=options["kind"] or None, limits=intake.WEB_LIMITS
    )
    # One door: scope (per row, the dry run names rows outside it), validation, history and audit.
    report = Services(directory).import_records(
        account,
        records,
        source_name=original,
        dry_run=dry_run,
        progress=progress,
        status="published" if options["publish"] else "draft",
        good_rows_only=options["good_rows_only"],
        source=options["source"] or None,
    )
    report.warnings[:0] = read_problems
    return report, []


def _import_page(status: int = 200, **context: Any) -> Response:
    context.setdefault(
        "options", {"publish": False, "good_rows_only": False, "source": "", "kind": ""}
    )
    context.setdefault(
        "formats",
        [("listing", "掲載情報（resdb の見出し）")]
        + [(name, spec.title) for name, spec in opendata.FORMATS.items()],
    )
    context.setdefault("limits", intake.WEB_LIMITS.describe())
    context.setdefault("kinds", KINDS)
    return _render("editor/import.html", status, **context)


@bp.get("/import")
@login_required("admin", "editor")
def import_page() -> Response:
    _uploads()  # old unconfirmed uploads go
    return _import_page(report=None)


@bp.post("/import")
@login_required("admin", "editor")
def import_dry_run() -> Response:
    request.max_content_length = intake.WEB_LIMITS.max_bytes + 64 * 1024
    options = _import_options(request.form)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_page(400, report=None, error="ファイルを選んでください", options=options)
    original = Path(upload.filename).name[:200]
    suffix = Path(original).suffix.lower()
    if suffix not in {".csv", ".txt", ".tsv", ".json", ".geojson", ".xlsx", ".xlsm"}:
        return _import_page(
            400,
            report=None,
            options=options,
            error="対応していない形式です。CSV, JSON, GeoJSON, Excel (.xlsx) が使えます",
        )
    stored = f"{secrets.token_urlsafe(24)}{suffix}"
    (_uploads() / stored).write_bytes(upload.read())
    if (_uploads() / stored).stat().st_size > current_app.config.get(
        "IMPORT_JOB_BYTES", JOB_THRESHOLD_BYTES
    ):
        return _start_job(stored, original, options, dry_run=True)
    try:
        report, _scope = _run_import(stored, original, options, dry_run=True)
    except FileProblem as error:
        (_uploads() / stored).unlink(missing_ok=True)
        return _import_page(422, report=None, error=error.problem.message, options=options)
    status = 422 if report.problems else 200
    return _import_page(status, report=report, stored=stored, original=original, options=options)


@bp.post("/import/confirm")
@login_required("admin", "editor")
def import_confirm() -> Response:
    stored = request.form.get("upload", "")
    original = Path(request.form.get("original", "") or "upload").name[:200]
    options = _import_options(request.form)
    if not UPLOAD_NAME.match(stored) or not (_uploads() / stored).exists():
        return _import_page(
            400,
            report=None,
            options=options,
            error="取り込むファイルが見つかりません（確認から24時間たつと消えます）。もう一度ファイルを選んで確認してください",
        )
    if (_uploads() / stored).stat().st_size > current_app.config.get(
        "IMPORT_JOB_BYTES", JOB_THRESHOLD_BYTES
    ):
        return _start_job(stored, original, options, dry_run=False)
    try:
        report, _scope = _run_import(stored, original, options, dry_run=False)
    except FileProblem as error:
        return _import_page(422, report=None, error=error.problem.message, options=options)
    if report.written:
        (_uploads() / stored).unlink(missing_ok=True)
        return _import_page(report=report, done=True, original=original, options=options)
    return _import_page(422, report=report, stored=stored, original=original, options=options)


JOB_THRESHOLD_BYTES = 256 * 1024  # larger files are checked and imported outside the request


def _jobs() -> ImportJobs:
    return ImportJobs(_directory().instance_dir / "import-jobs")


def _start_job(stored: str, original: str, options: dict[str, Any], *, dry_run: bool) -> Response:
    """Check or import a large file in a thread; the browser follows its progress on the job page."""
    account, directory, folder = _account(), _directory(), _uploads()

    def work(progress: Any) -> Any:
        report, _scope = _run_import(
            stored,
            original,
            options,
            dry_run=dry_run,
            account=account,
            directory=directory,
            folder=folder,
            progress=progress,
        )
        if report.written:  # audited with the rows it wrote, in the same transaction
            (folder / stored).unlink(missing_ok=True)
        return report

    job_id = _jobs().start(
        work,
        actor=account.email,
        stored=stored,
        original=original,
        options=options,
        dry_run=dry_run,
    )
    return redirect(url_for("editor.import_job", job_id=job_id), 303)


def _report_from(data: dict[str, Any]) -> Any:
    """A finished job's report, shaped for the import page."""
    from types import SimpleNamespace

    def problems(items: list[dict[str, Any]]) -> list[Problem]:
        return [Problem(p["field"], p["message"], p.get("row"), p.get("value")) for p in items]

    return SimpleNamespace(
        **{
            **data,
            "problems": problems(data["problems"]),
            "warnings": problems(data["warnings"]),
            "duplicates": data.get("likely_duplicates") or [],
        }
    )


@bp.get("/import/jobs/<job_id>")
@login_required("admin", "editor")
def import_job(job_id: str) -> Response:
    """A long check or import: progress while it runs (the page reloads itself), then its result."""
    job = _jobs().get(job_id)
    if job is None or job.get("actor") != _account().email:
        raise ApiError(404, "取り込みの記録が見つかりません")
    options = job["options"]
    if job["state"] == "running":
        return _import_page(202, report=None, job=job, options=options)
    if job["state"] == "failed":
        return _import_page(422, report=None, error=job["error"], options=options)
    report = _report_from(job["report"])
    if report.written:
        return _import_page(report=report, done=True, original=job["original"], options=options)
    return _import_page(
        422 if report.problems else 200,
        report=report,
        stored=job["stored"],
        original=job["original"],
        options=options,
    )


@bp.post("/import/problems.csv")
@login_required("admin", "editor")
def import_problems_csv() -> Response:
    """The dry run's problems as a CSV (行, 項目, 内容, 値) to fix the file with."""
    stored = request.form.get("upload", "")
    if not UPLOAD_NAME.match(stored) or not (_uploads() / stored).exists():
        raise ApiError(
            404, "確認したファイルが見つかりません。もう一度ファイルを選んで確認してください"
        )
    try:
        report, _scope = _run_import(
            stored, "problems", _import_options(request.form), dry_run=True
        )  # re-checked
        problems = report.problems
    except FileProblem as error:
        problems = [error.problem]
    body = intake.problems_csv(problems, FIELD_LABELS)
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="import-problems.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/import/template/<fmt>.csv")
@login_required("admin", "editor")
def import_template(fmt: str) -> Response:
    """An empty file with the right header row for each format (UTF-8 with BOM, opens in Excel)."""
    if fmt == "listing":
        text = to_csv([], japanese_headers=True)
        name = "listing-template.csv"
    elif fmt in opendata.FORMATS:
        text = opendata.template_text(fmt)
        name = f"{fmt}-template.csv"
    else:
        raise ApiError(404, "その形式のひな形はありません")
    return Response(
        ("\ufeff" + text).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- corrections queue ------------------------------------------------------------------------------
@bp.get("/corrections")
@login_required("admin", "editor")
def corrections() -> Response:
    account = _account()
    items = _workspace().corrections("open", account)
    listings = {
        x["id"]: x
        for x in _directory().get_many([i["listing_id"] for i in items], include_unpublished=True)
    }
    for item in items:
        current = listings.get(item["listing_id"]) or {}
        item["rows"] = [(k, current.get(k), v) for k, v in (item.get("proposed") or {}).items()]
    done = [x for x in _workspace().corrections(None, account) if x["status"] != "open"][:30]
    return _render(
        "editor/corrections.html",
        items=items,
        done=done,
        notice=request.args.get("done"),
        notice_fields=request.args.get("fields"),
    )


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
        proposed = next(
            (
                c.get("proposed") or {}
                for c in _workspace().corrections("open", _account())
                if c["id"] == request_id
            ),
            {},
        )
        taken = [k for k in request.form.getlist("take") if k in proposed]
        fields = {k: proposed[k] for k in taken}
    try:
        _services().review_correction(
            _account(),
            request_id,
            accept=decision == "accept",
            fields=fields,
            note=(request.form.get("note") or "").strip()[:500] or None,
        )
    except NotFound:
        raise ApiError(404, "訂正依頼が見つからないか、処理済みです") from None
    except ValidationFailed as error:
        raise ApiError(
            422, "提案された値を反映できません: " + "; ".join(str(p) for p in error.problems)
        ) from None
    return redirect(
        url_for("editor.corrections", done=decision, fields=",".join(taken) or None), 303
    )


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
        return "、".join(
            f"{FIELD_LABELS.get(k, k)}: {editor_value(v)}"
            for k, v in value.items()
            if v not in (None, [], "")
        )
    return str(value)
