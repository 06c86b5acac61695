"""The matching API: POST /api/match, /api/match/batch and /api/gaps over resdb.matching.
The person travels in the request body only: never logged, stored, cached or put in a URL."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from resdb.domain.vocab import GOALS, MOBILITY, TARGETS
from resdb.matching import PersonError
from resdb.web import get_matching
from resdb.web.apidoc import Param, api_doc
from resdb.web.common import app_today, no_store
from resdb.web.errors import ApiError
from resdb.web.security import rate_limited

bp = Blueprint("match_api", __name__, url_prefix="/api")
MAX_BATCH = 500


class Home(BaseModel):
    """自宅: lat+lon, or an address, or a district (with municipality_code)."""

    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    district: str | None = None
    municipality_code: str | None = None


class Person(BaseModel):
    """The person to find places for (要配慮個人情報: used for this answer only)."""

    model_config = ConfigDict(extra="allow")

    home: Home
    age: int | None = Field(None, ge=0, le=120)
    mobility: str | None = Field(None, json_schema_extra={"enum": list(MOBILITY)})
    max_minutes: float | None = Field(None, gt=0)
    available: list[dict[str, str]] | None = Field(
        None, description='[{"weekday": "tue", "start": "09:00", "end": "12:00"}]'
    )
    goals: list[str] | None = Field(None, json_schema_extra={"items": {"enum": list(GOALS)}})
    interests: list[str] | None = None
    targets: list[str] | None = Field(None, json_schema_extra={"items": {"enum": list(TARGETS)}})
    prefers: dict[str, Any] | None = None
    needs: dict[str, bool] | None = None
    budget_yen: int | None = Field(None, ge=0)
    exclude: list[str] | None = None


class Reason(BaseModel):
    factor: str
    score: float
    text: str


class Proposal(BaseModel):
    resource_id: str
    name: str
    score: float
    travel_minutes: float | None
    next_sessions: list[str]
    reasons: list[Reason] = Field(
        description="合う理由（確かな事実のみ。不明・古い情報は cautions だけに入る）"
    )
    cautions: list[str]
    kind: str | None = None
    fit: str = Field(
        "known",
        description="known = 合うことが確認できた場（日時が本人の都合に合う・費用が分かり予算内・"
        "RESDB_STALE_DAYS 以内に確認・紹介を受け入れ）; to_confirm = 要確認の候補",
        json_schema_extra={"enum": ["known", "to_confirm"]},
    )
    fit_label: str = Field("", description="fit の日本語（合うことが確認できた場 / 要確認の候補）")
    to_confirm: list[str] = Field(
        default_factory=list,
        description="紹介する前に確認すること（開催日時・費用・情報の新しさ・紹介での受け入れ…）",
    )


class NearMiss(Proposal):
    near_miss: bool = True
    text: str = Field(description="「少し遠い（自転車で約34分）が農作業ができる」")


class Excluded(BaseModel):
    resource_id: str
    reason: str


class MatchAnswer(BaseModel):
    proposals: list[Proposal] = Field(
        description="fit=known が先、続いて fit=to_confirm（要確認の候補）"
    )
    excluded: list[Excluded]
    near_misses: list[NearMiss] = Field(
        default_factory=list, description="移動時間だけが上限を2割以内で超える場所"
    )
    fit_counts: dict[str, int] = Field(
        default_factory=dict, description='{"known": n, "to_confirm": n}'
    )


class BatchRequest(BaseModel):
    persons: list[Person]


class Assignment(BaseModel):
    person: int
    resource_id: str
    score: float


class Unassigned(BaseModel):
    person: int
    reason: str


class BatchAnswer(BaseModel):
    assignments: list[Assignment]
    unassigned: list[Unassigned]


class GapsRequest(BaseModel):
    needs: list[dict[str, Any]] = Field(
        ..., description="匿名のニーズ: goal, targets, district, mobility, count …"
    )


def _body() -> Any:
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "JSON の本文（Content-Type: application/json）を送ってください")
    return payload


def _private(payload: dict[str, Any]) -> Any:
    return no_store(jsonify(payload))


def _run(call: Any) -> Any:
    try:
        return call()
    except PersonError as exc:
        raise ApiError(400, str(exc), code="invalid") from None


@bp.post("/match")
@rate_limited
@api_doc(
    "一人の人に合う場所の提案（理由つき、規則に反する場所は excluded に）",
    tags=["matching"],
    body=Person,
    params=[
        Param(
            "limit",
            "提案の件数（既定 10、最大 50）",
            {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
        ),
        Param(
            "excluded",
            "all = 規則に反するすべての場所を excluded に（既定は上位の惜しい場所のみ）",
            {"type": "string", "enum": ["all"]},
        ),
    ],
    responses={200: ("提案", MatchAnswer), 400: "人の情報が不正"},
)
def match() -> Any:
    person = _body()
    if not isinstance(person, dict):
        raise ApiError(400, "人の情報はオブジェクトで送ってください")
    try:
        limit = int(request.args.get("limit", 10))
    except ValueError:
        raise ApiError(400, "limit は整数で指定してください", code="bad_parameter") from None
    if not 1 <= limit <= 50:
        raise ApiError(400, "limit は 1〜50 で指定してください", code="bad_parameter")
    mode = request.args.get("excluded", "")
    if mode not in ("", "all"):
        raise ApiError(400, "excluded は all のみ指定できます", code="bad_parameter")
    return _private(
        _run(
            lambda: get_matching().match(
                person, limit=limit, today=app_today(), all_excluded=mode == "all"
            )
        )
    )


@bp.post("/match/batch")
@rate_limited
@api_doc(
    "複数の人の配置（定員を超えない最適な割り当て）",
    tags=["matching"],
    body=BatchRequest,
    responses={200: ("配置", BatchAnswer), 400: "人の情報が不正"},
)
def match_batch() -> Any:
    payload = _body()
    persons = payload.get("persons") if isinstance(payload, dict) else None
    if not isinstance(persons, list) or not all(isinstance(p, dict) for p in persons):
        raise ApiError(400, '{"persons": [...]} の形で送ってください')
    if len(persons) > MAX_BATCH:
        raise ApiError(400, f"一度に {MAX_BATCH} 人までです")
    return _private(_run(lambda: get_matching().match_batch(persons, today=app_today())))


@bp.post("/gaps")
@rate_limited
@api_doc(
    "不足している社会資源の報告（匿名のニーズから、地区ごとに）",
    tags=["matching"],
    body=GapsRequest,
    responses={200: "地区ごとの不足", 400: "ニーズが不正"},
)
def gaps() -> Any:
    payload = _body()
    needs = payload.get("needs") if isinstance(payload, dict) else payload
    if not isinstance(needs, list) or not all(isinstance(n, dict) for n in needs):
        raise ApiError(400, '{"needs": [...]} の形で送ってください')
    return _private(_run(lambda: get_matching().gaps(needs, today=app_today())))
