"""Coordinator workspace (placeholder): signed-in 参加支援 coordinators will match and keep cases here."""

from __future__ import annotations

from flask import Blueprint, render_template

from resdb.web.auth import login_required

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")


@bp.get("/")
@login_required("admin", "coordinator")
def home() -> str:
    return render_template("workspace_stub.html", title="参加支援コーディネーター", nav="")
