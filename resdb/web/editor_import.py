"""Editor workspace, import: upload a file, check it (dry run), confirm, follow large files as jobs,
download the problems and the templates. Routes on the editor blueprint."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Response, current_app, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb import intake, opendata
from resdb.accounts import Account
from resdb.directory import Directory
from resdb.domain.vocab import KINDS
from resdb.exchange import read_bytes, to_csv
from resdb.importjobs import ImportJobs
from resdb.intake import FileProblem
from resdb.services import Services
from resdb.validation import Problem
from resdb.web import get_directory
from resdb.web.auth import login_required
from resdb.web.common import no_store
from resdb.web.editor import UPLOAD_NAME, _account, _render, bp
from resdb.web.editor_form import FIELD_LABELS
from resdb.web.errors import ApiError

# -- import -----------------------------------------------------------------------------------------
IMPORT_OPTIONS = ("publish", "good_rows_only", "source", "kind")


def _uploads() -> Path:
    path = get_directory().instance_dir / "uploads"
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
    directory = directory or get_directory()
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
def import_dry_run() -> BaseResponse:
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
    if _is_large(stored):
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
def import_confirm() -> BaseResponse:
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
    if _is_large(stored):
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


def _is_large(stored: str) -> bool:
    """Whether the stored upload is checked and imported as a job, outside the request."""
    limit: int = current_app.config.get("IMPORT_JOB_BYTES", JOB_THRESHOLD_BYTES)
    return (_uploads() / stored).stat().st_size > limit


def _jobs() -> ImportJobs:
    directory = get_directory()
    return ImportJobs(directory.instance_dir / "import-jobs", directory.background)


def _start_job(
    stored: str, original: str, options: dict[str, Any], *, dry_run: bool
) -> BaseResponse:
    """Check or import a large file in a thread; the browser follows its progress on the job page."""
    account, directory, folder = _account(), get_directory(), _uploads()

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
    disposition = {"Content-Disposition": 'attachment; filename="import-problems.csv"'}
    return no_store(Response(body.encode("utf-8"), mimetype="text/csv", headers=disposition))


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
