"""What the blueprints share: today's date (the app's clock), private pages (never cached), form numbers."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, current_app, render_template


def app_today() -> date:
    """Today as the app sees it (Asia/Tokyo; tests set TODAY)."""
    today: date = current_app.config["TODAY"]()
    return today


def no_store(response: Response) -> Response:
    """Mark a response that shows person or account data: never cached by the browser or a proxy."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def private_page(template: str, status: int = 200, *, nav: str, **context: Any) -> Response:
    """A rendered HTML page for signed-in staff (or a resident's own form), marked no-store."""
    body = render_template(template, nav=nav, **context)
    return no_store(Response(body, status=status, mimetype="text/html"))


def float_or_none(value: Any) -> float | None:
    """The number a form field holds, or None when it holds none."""
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None
