"""Public corrections: residents report an error on a listing (no sign-in; CSRF and a spam limit)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.sansio.app import App

from resdb.directory import NotFound
from resdb.services import Services
from resdb.validation import ValidationFailed
from resdb.web import get_directory
from resdb.web.common import private_page
from resdb.web.errors import ApiError
from resdb.web.security import request_ip
from resdb.workspace import RateLimited, client_key


class _OnceBlueprint(Blueprint):
    """Registering it again on the same app does nothing (create_app may register it explicitly)."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        if app.blueprints.get(self.name) is self:
            return
        super().register(app, options)


bp = _OnceBlueprint("corrections", __name__)
PROPOSABLE = ("schedule", "phone", "address", "cost_yen")


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return private_page(template, status, nav="", **context)


def current_values(listing: dict[str, Any]) -> dict[str, str]:
    """The listing's present values as the form shows them (the resident edits what is wrong)."""
    from resdb.web.labels import describe_schedule

    cost = listing.get("cost_yen")
    return {
        "schedule": describe_schedule(listing.get("schedule")) if listing.get("schedule") else "",
        "phone": listing.get("phone") or "",
        "address": listing.get("address") or "",
        "cost_yen": "" if cost is None else str(cost),
    }


def reference(request_id: int) -> str:
    """The number a resident can quote when asking about a report: 「R-000123」."""
    return f"R-{request_id:06d}"


def report(listing_id: str) -> Response:
    """GET: the form pre-filled with the current values; POST: store what changed, then thank the resident
    with a reference number."""
    try:
        listing = get_directory().get(listing_id)
    except NotFound:
        raise ApiError(404, "掲載情報が見つかりません") from None
    current = current_values(listing)
    if request.method != "POST":
        return _page(
            "report.html",
            listing=listing,
            values={"message": "", "contact": "", **current},
            problems={},
        )
    values = {k: (request.form.get(k) or "").strip() for k in ("message", "contact", *PROPOSABLE)}
    # Only what the resident changed is proposed (the pre-filled current values are not a correction).
    proposed = {k: values[k] for k in PROPOSABLE if values[k] and values[k] != current.get(k, "")}
    try:
        request_id = Services(get_directory()).submit_correction(
            listing_id,
            values["message"],
            proposed=proposed or None,
            contact=values["contact"] or None,
            client=client_key(request_ip(), current_app.config["SECRET_KEY"]),
        )
    except ValidationFailed as error:
        problems: dict[str, list[str]] = {}
        for problem in error.problems:
            field = problem.field.split("[", 1)[0].split(".", 1)[0]
            problems.setdefault(field if field in values else "message", []).append(problem.message)
        return _page("report.html", 422, listing=listing, values=values, problems=problems)
    except RateLimited as error:
        return _page(
            "report.html", 429, listing=listing, values=values, problems={}, limited=str(error)
        )
    return _page(
        "report.html",
        listing=listing,
        values={},
        problems={},
        thanks=True,
        reference=reference(request_id),
    )


bp.add_url_rule("/resources/<listing_id>/report", "report", report, methods=["GET", "POST"])
