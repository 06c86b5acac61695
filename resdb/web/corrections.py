"""Public corrections: residents report an error on a listing (no sign-in; CSRF and a spam limit)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request

from resdb.directory import NotFound
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web.errors import ApiError
from resdb.web.security import request_ip
from resdb.workspace import RateLimited, client_key


class _OnceBlueprint(Blueprint):
    """Registering it again on the same app does nothing (create_app may register it explicitly)."""

    def register(self, app: Flask, options: dict[str, Any]) -> None:
        if app.blueprints.get(self.name) is self:
            return
        super().register(app, options)


bp = _OnceBlueprint("corrections", __name__)
PROPOSABLE = ("schedule", "phone", "address", "cost_yen")


def _directory() -> Any:
    from resdb.web import get_directory

    return get_directory()


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response(render_template(template, nav="", **context))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def report(listing_id: str) -> Response:
    """GET: the form; POST: store the report (validated), then thank the resident."""
    try:
        listing = _directory().get(listing_id)
    except NotFound:
        raise ApiError(404, "掲載情報が見つかりません") from None
    values = {k: (request.form.get(k) or "").strip() for k in ("message", "contact", *PROPOSABLE)}
    if request.method != "POST":
        return _page("report.html", listing=listing, values=values, problems={})
    proposed = {k: values[k] for k in PROPOSABLE if values[k]}
    try:
        Services(_directory()).submit_correction(
            listing_id, values["message"], proposed=proposed or None, contact=values["contact"] or None,
            client=client_key(request_ip(), current_app.config["SECRET_KEY"]))
    except ValidationFailed as error:
        problems: dict[str, list[str]] = {}
        for problem in error.problems:
            problems.setdefault(problem.field if problem.field in values else "message", []).append(problem.message)
        return _page("report.html", 422, listing=listing, values=values, problems=problems)
    except RateLimited as error:
        return _page("report.html", 429, listing=listing, values=values, problems={}, limited=str(error))
    return _page("report.html", listing=listing, values={}, problems={}, thanks=True)


bp.add_url_rule("/resources/<listing_id>/report", "report", report, methods=["GET", "POST"])
