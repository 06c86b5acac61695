"""Editor workspace (placeholder): signed-in community workers will edit listings here."""

from __future__ import annotations

from flask import Blueprint, render_template

from resdb.web.auth import login_required

bp = Blueprint("editor", __name__, url_prefix="/editor")


@bp.get("/")
@login_required("admin", "editor")
def home() -> str:
    return render_template("workspace_stub.html", title="掲載情報の編集", nav="")
