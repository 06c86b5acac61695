"""Request bodies before any view reads them: JSON size and nesting depth limits, unstorable text refused."""

from __future__ import annotations

from flask import Flask, request

from resdb.fields import MAX_JSON_DEPTH, first_bad_text, json_depth_exceeds
from resdb.web.errors import ApiError

JSON_MAX_BYTES = 1024 * 1024


def init_body_limits(app: Flask) -> None:
    @app.before_request
    def _check_json_body() -> None:
        if request.method not in {"POST", "PUT", "PATCH", "DELETE"} or not request.is_json:
            return
        length = request.content_length
        if length is not None and length > JSON_MAX_BYTES:
            raise ApiError(
                413, f"本文が大きすぎます（{JSON_MAX_BYTES // 1024} KB まで）", code="too_large"
            )
        data = request.get_data(cache=True)
        if len(data) > JSON_MAX_BYTES:
            raise ApiError(
                413, f"本文が大きすぎます（{JSON_MAX_BYTES // 1024} KB まで）", code="too_large"
            )
        if json_depth_exceeds(data):
            raise ApiError(
                400, f"本文の JSON の入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）", code="bad_json"
            )
        payload = request.get_json(silent=True)
        found = first_bad_text(payload) if payload is not None else None
        if found is not None:
            where, why = found
            raise ApiError(
                422, f"{where}: {why}", code="invalid", problems=[{"field": where, "message": why}]
            )
