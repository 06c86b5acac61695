"""Error responses: JSON `{"error": {...}}` under /api, Japanese HTML pages elsewhere."""

from __future__ import annotations

import traceback
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

# Plain-Japanese titles and explanations per status code.
STATUS_TEXT: dict[int, tuple[str, str]] = {
    400: ("リクエストが正しくありません", "指定された条件を確かめて、もう一度お試しください。"),
    401: ("ログインが必要です", "この操作には認証（API トークン）が必要です。"),
    403: ("権限がありません", "この操作を行う権限がありません。"),
    404: (
        "ページが見つかりません",
        "お探しのページや情報は見つかりませんでした。削除されたか、アドレスが変わった可能性があります。",
    ),
    405: ("この方法では利用できません", "このアドレスはこの方法（メソッド）では利用できません。"),
    409: ("競合があります", "同じ内容がすでに登録されています。"),
    412: (
        "他の人が先に更新しました",
        "読み込んだ後に内容が変わっています。最新の内容を読み込み直してください。",
    ),
    413: ("データが大きすぎます", "送信されたデータが大きすぎます。"),
    415: ("形式が正しくありません", "JSON（application/json）で送信してください。"),
    422: ("入力内容に問題があります", "入力内容を確かめてください。"),
    429: (
        "アクセスが集中しています",
        "短い時間に多くの検索が行われました。少し時間をおいてからお試しください。",
    ),
    500: ("システムエラーが発生しました", "申し訳ありません。時間をおいてもう一度お試しください。"),
    503: ("準備中です", "ただいま準備中です。しばらくしてからもう一度お試しください。"),
}
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "server_error",
    503: "not_ready",
}


class ApiError(Exception):
    """An error the API reports as `{"error": {"code", "message", "problems"}}` (plus `extra` keys)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        problems: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.problems = problems or []
        self.extra = extra or {}
        self.headers = headers or {}


def error_body(
    code: str, message: str, problems: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "problems": problems or []}}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def json_error(error: ApiError) -> Response:
    payload = error_body(error.code, error.message, error.problems)
    payload.update(error.extra)
    response = jsonify(payload)
    response.status_code = error.status
    for key, value in error.headers.items():
        response.headers[key] = value
    return response


def html_error(
    status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    title, explanation = STATUS_TEXT.get(status, STATUS_TEXT[500])
    body = render_template(
        "error.html", status=status, title=title, explanation=message or explanation
    )
    response = Response(body, status=status, mimetype="text/html")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if wants_json():
            return json_error(error)
        return html_error(error.status, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        title, explanation = STATUS_TEXT.get(status, (error.name, error.description or ""))
        headers: dict[str, str] = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        if wants_json():
            return json_error(
                ApiError(status, title if status != 404 else "見つかりません", headers=headers)
            )
        return html_error(status, explanation, headers)

    from resdb import services

    for kind in services.REFUSALS:
        app.register_error_handler(kind, _refusal)

    from resdb.matchpool import PoolNotReady

    @app.errorhandler(PoolNotReady)
    def _not_ready(error: PoolNotReady) -> Response:
        """The matching pool is still being built: 「準備中」 with a hint when to ask again."""
        headers = {"Retry-After": "5", "Cache-Control": "no-store"}
        if wants_json():
            return json_error(
                ApiError(503, PoolNotReady.message, code="not_ready", headers=headers)
            )
        return html_error(503, PoolNotReady.message, headers)

    from resdb.web.features import MapNotReady

    @app.errorhandler(MapNotReady)
    def _map_not_ready(error: MapNotReady) -> Response:
        """The map's columns are still being loaded or built: 「準備中」 with a hint when to ask again."""
        headers = {"Retry-After": "5", "Cache-Control": "no-store"}
        if wants_json():
            return json_error(ApiError(503, MapNotReady.message, code="not_ready", headers=headers))
        return html_error(503, MapNotReady.message, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if app.testing:
            raise error  # tests see the real traceback
        # Never the exception's message or arguments: they can hold what someone typed (要配慮個人情報).
        frames = "".join(traceback.format_tb(error.__traceback__))
        app.logger.error(
            "unhandled %s on %s %s\n%s", type(error).__name__, request.method, request.path, frames
        )
        if wants_json():
            return json_error(ApiError(500, STATUS_TEXT[500][0]))
        return html_error(500)


def refusal_error(error: BaseException) -> ApiError:
    """A service's refusal (invalid, not found, forbidden, stale, conflict) as the API's error."""
    from resdb import services
    from resdb.directory import StaleEdit
    from resdb.validation import ValidationFailed

    result = services.outcome(error)
    assert result is not None
    problems = (
        [p.as_dict() for p in error.problems] if isinstance(error, ValidationFailed) else None
    )
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(error, StaleEdit):
        extra = {"current_version": error.current["version"], "current": error.current}
        headers = {"ETag": f'"v{error.current["version"]}"'}
    return ApiError(
        result.status,
        services.message(error),
        code=result.code,
        problems=problems,
        extra=extra,
        headers=headers,
    )


def _refusal(error: Exception) -> Response:
    api_error = refusal_error(error)
    if wants_json():
        return json_error(api_error)
    return html_error(api_error.status, api_error.message, api_error.headers)
