"""The JSON API under /api: search, GeoJSON for the map, one listing with ETag, guarded edits, areas, OpenAPI."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from resdb.directory import NotFound
from resdb.domain.vocab import KINDS, TARGETS, WEEKDAY_IDS
from resdb.services import Services
from resdb.web import auth, get_directory
from resdb.web.apidoc import Param, api_doc, openapi_spec
from resdb.web.common import app_today
from resdb.web.errors import ApiError
from resdb.web.features import POINTS_UP_TO, STREET_ZOOM
from resdb.web.params import MAX_LIMIT, parse_search
from resdb.web.schemas import (
    AreaLookup,
    FeatureCollection,
    History,
    Listing,
    ListingCreate,
    ListingUpdate,
    SearchResult,
    StaleResponse,
)
from resdb.web.security import rate_limited

bp = Blueprint("api", __name__, url_prefix="/api")

SEARCH_PARAMS: tuple[Param, ...] = (
    Param("q", "検索語（名称・ふりがな・活動・説明・地区。表記ゆれ・誤字にも対応）"),
    Param(
        "kind",
        "種別（複数可: kind=a&kind=b または a,b）",
        {"type": "array", "items": {"type": "string", "enum": list(KINDS)}},
        explode=True,
    ),
    Param(
        "target",
        "対象（複数可）",
        {"type": "array", "items": {"type": "string", "enum": list(TARGETS)}},
        explode=True,
    ),
    Param(
        "weekday",
        "開催曜日（複数可）",
        {"type": "array", "items": {"type": "string", "enum": list(WEEKDAY_IDS)}},
        explode=True,
    ),
    Param(
        "open",
        "today = 今日開催、week = 今日から7日以内に開催（Asia/Tokyo、第n週を考慮）",
        {"type": "string", "enum": ["today", "week"]},
    ),
    Param("free", "1 = 無料のみ", {"type": "string", "enum": ["1", "0", "true", "false"]}),
    Param(
        "barrier_free",
        "1 = バリアフリーのみ",
        {"type": "string", "enum": ["1", "0", "true", "false"]},
    ),
    Param("pickup", "1 = 送迎ありのみ", {"type": "string", "enum": ["1", "0", "true", "false"]}),
    Param(
        "municipality",
        "地方公共団体コード（5桁または6桁）",
        {"type": "string", "pattern": r"^\d{5,6}$"},
    ),
    Param(
        "lat",
        "緯度（lon と組で。q がなければ近い順）",
        {"type": "number", "minimum": -90, "maximum": 90},
    ),
    Param("lon", "経度", {"type": "number", "minimum": -180, "maximum": 180}),
    Param(
        "radius_km",
        "lat/lon からの半径（km）",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
    ),
    Param(
        "bbox",
        "表示範囲: 最小経度,最小緯度,最大経度,最大緯度",
        {"type": "string", "pattern": r"^-?[\d.]+,-?[\d.]+,-?[\d.]+,-?[\d.]+$"},
    ),
)
PAGING_PARAMS: tuple[Param, ...] = (
    Param(
        "limit",
        f"件数（1〜{MAX_LIMIT}、既定 20）",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
    ),
    Param("offset", "開始位置（0〜）", {"type": "integer", "minimum": 0, "default": 0}),
)
IF_MATCH = Param(
    "If-Match", '読み込んだときの ETag（"v<version>"）。古ければ 412', location="header"
)
GEOJSON_LIMIT = 50_000
MAX_ZOOM = 22


def _etag(listing: dict[str, Any]) -> str:
    return f'"v{listing["version"]}"'


def _listing_response(listing: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(listing)
    response.status_code = status
    response.headers["ETag"] = _etag(listing)
    return response


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "本文は JSON（Content-Type: application/json）で送信してください")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            400, "本文は JSON のオブジェクト（{...}）で送信してください", code="bad_json"
        )
    return body


_IF_MATCH_TAG = re.compile(r'^(?:W/)?"?v?(\d+)"?$')


def _expected_version(body: dict[str, Any] | None) -> int | None:
    """The version the client read: If-Match wins over the body's / query's `version`; None = unconditional."""
    header = request.headers.get("If-Match", "").strip()
    if header:
        if header == "*":
            return None
        first = header.split(",")[0].strip()
        match = _IF_MATCH_TAG.match(first)
        if not match:
            raise ApiError(
                400,
                'If-Match は "v<版>" の形で指定してください',
                code="bad_parameter",
                problems=[
                    {"field": "If-Match", "message": "形式が正しくありません", "value": header}
                ],
            )
        return int(match.group(1))
    raw: Any = (body or {}).get("version", request.args.get("version"))  # any JSON value
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raw = None  # true/false is no version: int() below refuses it
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(
            400,
            "version（版）は整数で指定してください",
            code="bad_parameter",
            problems=[{"field": "version", "message": "整数で指定してください", "value": str(raw)}],
        ) from None


def _services() -> Services:
    return Services(get_directory())


def _get_or_404(listing_id: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return get_directory().get(listing_id, **kwargs)
    except NotFound:
        raise ApiError(404, f"掲載情報「{listing_id}」は見つかりません", code="not_found") from None


# -- reading --------------------------------------------------------------------------------------
@bp.get("/resources")
@rate_limited
@api_doc(
    "掲載情報を検索する",
    tags=["resources"],
    params=SEARCH_PARAMS + PAGING_PARAMS,
    description="検索語と条件で掲載情報を探します。q があれば関連の高い順、lat/lon だけなら近い順です。",
    responses={200: ("検索結果", SearchResult), 400: "パラメータが正しくない（problems に項目名）"},
)
def list_resources() -> Response:
    parsed = parse_search(request.args, today=app_today())
    parsed.raise_if_bad()
    return jsonify(get_directory().search(parsed.query))


@bp.get("/resources.geojson")
@rate_limited
@api_doc(
    "地図用の GeoJSON",
    tags=["resources"],
    params=SEARCH_PARAMS
    + (
        Param(
            "limit",
            f"最大件数（既定はすべて、上限 {GEOJSON_LIMIT}）",
            {"type": "integer", "minimum": 1, "maximum": GEOJSON_LIMIT},
        ),
        Param("offset", "開始位置", {"type": "integer", "minimum": 0}),
        Param(
            "zoom",
            f"地図のズーム（0〜{MAX_ZOOM}）。指定すると、{STREET_ZOOM} 未満で {POINTS_UP_TO} 件を超える範囲は"
            "格子ごとの件数（clustered）で返す（limit/offset は地点で返すときだけ効く）",
            {"type": "integer", "minimum": 0, "maximum": MAX_ZOOM},
        ),
    ),
    description="検索と同じ条件の FeatureCollection。地点の properties は id, name, kind, kind_label, is_sample, next（次回の日時）, cost（費用）のみ（詳細は /api/resources/{id}）。zoom を指定して広い範囲を求めると、格子ごとに cluster, count, samples, kinds（種別ごとの件数）, bbox（格子の範囲）を返す（1件だけの格子はその地点）。",
    responses={
        200: ("FeatureCollection", FeatureCollection, "application/geo+json"),
        304: "変更なし（If-None-Match）",
        400: "パラメータが正しくない",
    },
)
def resources_geojson() -> Response:
    parsed = parse_search(request.args, today=app_today(), max_limit=GEOJSON_LIMIT, unlimited=True)
    parsed.raise_if_bad()
    zoom = _zoom(request.args.get("zoom"))
    cache = current_app.extensions["resdb.features"]
    snap = cache.snapshot()
    revision = snap.revision
    today = current_app.config["TODAY"]()
    tag = hashlib.sha1(
        f"{revision}@{today}|{parsed.query.open_on}|{request.query_string.decode()}".encode()
    ).hexdigest()[:20]
    etag = f'W/"{tag}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return Response(status=304, headers=headers)
    body = cache.answer(parsed.query, zoom, snap).body
    if len(body) > 2048 and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = cache.gzipped(etag, body)
    return Response(body, mimetype="application/geo+json", headers=headers)


def _zoom(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        zoom = int(raw)
        if not 0 <= zoom <= MAX_ZOOM:
            raise ValueError
    except ValueError:
        message = f"zoom（ズーム）は0〜{MAX_ZOOM}の整数で指定してください"
        raise ApiError(
            400,
            message,
            code="bad_parameter",
            problems=[{"field": "zoom", "message": message, "value": raw}],
        ) from None
    return zoom


@bp.get("/resources/<listing_id>")
@api_doc(
    "掲載情報を1件取得する",
    tags=["resources"],
    params=(Param("listing_id", "掲載情報の id", location="path", required=True),),
    responses={
        200: ('掲載情報（ETag: "v<version>"）', Listing),
        304: "変更なし（If-None-Match）",
        404: "見つからない",
    },
)
def get_resource(listing_id: str) -> Response:
    listing = _get_or_404(listing_id)
    # The public view (a private host's home at its 町字, no uploaded file name as 出典); editors get the
    # stored listing, since their edits start from it.
    account = auth.bearer_account() if request.headers.get("Authorization") else None
    if account is None or not account.can_edit:
        listing = get_directory().public_view(listing)
    if _etag(listing) in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return Response(status=304, headers={"ETag": _etag(listing), "Vary": "Authorization"})
    response = _listing_response(listing)
    response.headers["Vary"] = "Authorization"
    return response


@bp.get("/resources/<listing_id>/history")
@api_doc(
    "掲載情報の変更履歴（編集者のみ）",
    tags=["resources"],
    auth=True,
    params=(Param("listing_id", "掲載情報の id", location="path", required=True),),
    responses={200: ("受け付けたすべての変更（古い順）", History), 404: "見つからない"},
)
def resource_history(listing_id: str) -> Response:
    account = auth.require_writer()
    return jsonify({"id": listing_id, "items": _services().history(account, listing_id)})


# -- writing --------------------------------------------------------------------------------------
@bp.post("/resources")
@api_doc(
    "掲載情報を登録する（編集者のみ）",
    tags=["resources"],
    auth=True,
    body=ListingCreate,
    responses={
        201: ("登録した掲載情報（Location ヘッダ付き）", Listing),
        409: "id が既に使われている",
        415: "JSON でない",
        422: "入力内容に問題がある（problems に項目名）",
    },
)
def create_resource() -> Response:
    account = auth.require_writer()
    created = _services().create(account, _json_body())
    response = _listing_response(created, 201)
    response.headers["Location"] = url_for("api.get_resource", listing_id=created["id"])
    return response


@bp.route("/resources/<listing_id>", methods=["PUT", "PATCH"])
@api_doc(
    "掲載情報を更新する（編集者のみ・部分更新）",
    tags=["resources"],
    auth=True,
    body=ListingUpdate,
    params=(Param("listing_id", "掲載情報の id", location="path", required=True), IF_MATCH),
    description="送った項目だけを変更します。If-Match（または本文の version）が現在の版と違えば 412 で、何も変更しません。",
    responses={
        200: ("更新後の掲載情報", Listing),
        404: "見つからない",
        412: ("他の人が先に更新した", StaleResponse),
        415: "JSON でない",
        422: "入力内容に問題がある",
    },
)
def update_resource(listing_id: str) -> Response:
    account = auth.require_writer()
    body = _json_body()
    expected = _expected_version(body)
    if body.get("id") not in (None, listing_id):
        raise ApiError(
            400,
            "本文の id が URL の id と一致しません",
            code="bad_parameter",
            problems=[{"field": "id", "message": "URL と同じ id にしてください"}],
        )
    return _listing_response(
        _services().update(account, listing_id, body, expected_version=expected)
    )


@bp.delete("/resources/<listing_id>")
@api_doc(
    "掲載情報を削除する（編集者のみ・履歴は残り復元可能）",
    tags=["resources"],
    auth=True,
    params=(
        Param("listing_id", "掲載情報の id", location="path", required=True),
        IF_MATCH,
        Param("version", "読み込んだときの版（If-Match の代わり）", {"type": "integer"}),
    ),
    responses={
        200: ("削除後の状態（status=deleted）", Listing),
        404: "見つからない",
        412: ("他の人が先に更新した", StaleResponse),
    },
)
def delete_resource(listing_id: str) -> Response:
    account = auth.require_writer()
    body = request.get_json(silent=True) if request.is_json else None
    expected = _expected_version(body if isinstance(body, dict) else None)
    return _listing_response(_services().delete(account, listing_id, expected_version=expected))


# -- areas ----------------------------------------------------------------------------------------
def lookup_area(args: Any) -> dict[str, Any]:
    """The centers whose 担当地区 hold a point (lat/lon) or a placed address, and the 町字 there."""
    directory = get_directory()
    address = (args.get("address") or "").strip()
    lat_raw, lon_raw = (args.get("lat") or "").strip(), (args.get("lon") or "").strip()
    if address and not (lat_raw or lon_raw):
        if len(address) > 200:
            raise ApiError(
                400,
                "address（住所）は200文字以内にしてください",
                code="bad_parameter",
                problems=[{"field": "address", "message": "長すぎます"}],
            )
        placement = directory.gazetteer().place_address(address)
        if placement is None:
            raise ApiError(
                422,
                f"住所「{address}」の場所を特定できませんでした。市町村名から入力してください（例: 射水市戸破）",
                code="address_not_found",
                problems=[
                    {"field": "address", "message": "場所を特定できません", "value": address}
                ],
            )
        lat, lon = placement.lat, placement.lon
    else:
        problems: list[dict[str, Any]] = []
        values: dict[str, float] = {}
        for name, raw, low, high, label in (
            ("lat", lat_raw, -90, 90, "緯度"),
            ("lon", lon_raw, -180, 180, "経度"),
        ):
            try:
                value = float(raw)
                if not low <= value <= high:
                    raise ValueError
                values[name] = value
            except ValueError:
                problems.append(
                    {
                        "field": name,
                        "message": f"{name}（{label}）を数値で指定してください",
                        "value": raw or None,
                    }
                )
        if problems:
            message = (
                "lat と lon（または address）を指定してください"
                if not (lat_raw or lon_raw)
                else problems[0]["message"]
            )
            raise ApiError(400, message, code="bad_parameter", problems=problems)
        lat, lon = values["lat"], values["lon"]
    gazetteer = directory.gazetteer()
    town = gazetteer.town_at(lat, lon)
    town_out = None
    if town is not None:
        municipality = gazetteer.municipality(town.municipality_code)
        town_out = {
            "municipality_code": town.municipality_code,
            "name": town.name,
            "kana": town.kana,
            "municipality": municipality.name if municipality else None,
        }
    return {
        "items": directory.areas_lookup(lat, lon),
        "town": town_out,
        "point": {"lat": lat, "lon": lon},
        "address": address or None,
    }


@bp.get("/areas/lookup")
@rate_limited
@api_doc(
    "わたしの地域: その場所を担当する相談窓口",
    tags=["areas"],
    params=(
        Param("lat", "緯度", {"type": "number"}),
        Param("lon", "経度", {"type": "number"}),
        Param("address", "住所（lat/lon の代わり。町字まで特定）"),
    ),
    responses={
        200: ("担当する相談支援機関と町字", AreaLookup),
        400: "lat/lon がない・正しくない",
        422: "住所の場所を特定できない",
    },
)
def areas_lookup() -> Response:
    return jsonify(lookup_area(request.args))


# -- description ----------------------------------------------------------------------------------
@bp.get("/openapi.json")
@api_doc(
    "この API の OpenAPI 記述（コードから生成）",
    tags=["meta"],
    responses={200: ("OpenAPI 3.1", {"type": "object"})},
)
def openapi() -> Response:
    spec = current_app.extensions.get("resdb.openapi")
    if spec is None:
        spec = openapi_spec(current_app)
        current_app.extensions["resdb.openapi"] = spec
    return jsonify(spec)
