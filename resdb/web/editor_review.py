"""Editor workspace, review: residents' corrections queue (accept whole or per field, or reject) and the
audit log (admins, read-only). Routes on the editor blueprint."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse  # what redirect() builds

from resdb.audit import audit_entries
from resdb.directory import NotFound
from resdb.validation import ValidationFailed
from resdb.web import get_directory
from resdb.web.auth import login_required
from resdb.web.editor import _account, _render, _services, _workspace, bp
from resdb.web.errors import ApiError


# -- corrections queue ------------------------------------------------------------------------------
@bp.get("/corrections")
@login_required("admin", "editor")
def corrections() -> Response:
    account = _account()
    items = _workspace().corrections("open", account)
    listings = {
        x["id"]: x
        for x in get_directory().get_many(
            [i["listing_id"] for i in items], include_unpublished=True
        )
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
def review_correction(request_id: int) -> BaseResponse:
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
    entries = audit_entries(get_directory().engine, limit=500, target_id=target)
    return _render("editor/audit.html", entries=entries, target=target or "")
