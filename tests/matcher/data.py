"""A small fictional listing set around 射水市 and helpers shared by the matcher tests (pure data)."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

from resdb.domain.shipped import PERSONS_DIR

TODAY = date(
    2026, 11, 30
)  # a Monday; 2026-11-03 (文化の日) and 2026-11-23 (勤労感謝の日) are holidays

# Real 射水市 places (approximate town points).
TOIDE = (36.7236, 137.0991)  # 戸破
TAIKOYAMA = (36.70645, 137.092875)  # 太閤山三丁目
OSHIMA = (36.736278, 137.060647)  # 小島 (大島地区)


def make_listing(id: str, **fields: Any) -> dict[str, Any]:
    """A contract-shaped listing that breaks no rule for an ordinary adult next to 戸破."""
    base: dict[str, Any] = {
        "id": id,
        "name": f"テストの場 {id}",
        "kind": "ibasho",
        "description": "",
        "lat": TOIDE[0] + 0.002,
        "lon": TOIDE[1] + 0.002,
        "targets": ["all"],
        "activities": ["交流"],
        "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
        "cost_yen": 0,
        "capacity": 5,
        "accepts_referrals": True,
        "group_size": "small",
        "barrier_free": True,
        "pickup": False,
        "eligibility": {"min_age": None, "max_age": None, "residents_only": False},
        "service_area": None,
        "verified_at": "2026-10-01",
        "is_sample": True,
        "reservation_required": False,
        "holidays_closed": True,
    }
    base.update(fields)
    return base


def make_person(**fields: Any) -> dict[str, Any]:
    """A contract Person at 戸破 who fits make_listing()'s defaults."""
    base: dict[str, Any] = {
        "home": {"lat": TOIDE[0], "lon": TOIDE[1], "district": "戸破"},
        "age": 45,
        "mobility": "bicycle",
        "max_minutes": 30,
        "available": [{"weekday": "tue", "start": "09:00", "end": "12:00"}],
        "goals": ["friends"],
        "interests": [],
        "targets": [],
        "prefers": {},
        "needs": {"barrier_free": False, "pickup": False},
        "budget_yen": 500,
        "exclude": [],
    }
    base.update(fields)
    return base


LISTINGS: list[dict[str, Any]] = [
    # --- 戸破 / 小杉 -----------------------------------------------------------------------
    make_listing(
        "toide-salon",
        name="戸破ふれあいサロン",
        kind="kayoi",
        lat=36.7207,
        lon=137.1043,
        targets=["elderly", "all"],
        activities=["サロン", "おしゃべり", "手芸"],
        group_size="medium",
        schedule=[{"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}],
        cost_yen=100,
    ),
    make_listing(
        "sanga-100sai",
        name="三ケきららか100歳体操クラブ",
        kind="kayoi",
        lat=36.7250,
        lon=137.0929,
        targets=["elderly"],
        activities=["100歳体操"],
        capacity=None,
        group_size="small",
        schedule=[{"weekday": "tue", "start": "10:00", "end": "11:00"}],
    ),
    make_listing(
        "toide-houkatsu",
        name="小杉地域包括支援センター",
        kind="center",
        lat=36.7240,
        lon=137.1000,
        targets=["elderly"],
        activities=["相談"],
        schedule=[],
        capacity=None,
        group_size=None,
        service_area={"districts": ["大島"]},
    ),
    make_listing(
        "toide-young-only",
        name="若者サロン",
        kind="ibasho",
        lat=36.7230,
        lon=137.0980,
        targets=["all"],
        eligibility={"min_age": 15, "max_age": 39, "residents_only": False},
        schedule=[{"weekday": "tue", "start": "10:00", "end": "12:00"}],
    ),
    make_listing(
        "toide-kodomo-shokudo",
        name="戸破こども食堂",
        kind="shokudo",
        lat=36.7207,
        lon=137.1043,
        targets=["children", "parents", "all"],
        activities=["食事", "交流"],
        group_size="large",
        schedule=[{"weekday": "sat", "weeks": [2, 4], "start": "11:30", "end": "13:30"}],
    ),
    make_listing(
        "toide-ryouri-kouza",
        name="男の料理教室",
        kind="learning",
        lat=36.7220,
        lon=137.1010,
        targets=["all"],
        activities=["料理"],
        cost_yen=1500,
        schedule=[{"weekday": "tue", "start": "10:00", "end": "12:00"}],
    ),
    make_listing(
        "shosei-100sai",
        name="庄西100歳体操グループ",
        kind="kayoi",
        lat=36.7899,
        lon=137.0693,
        targets=["elderly", "all"],
        activities=["100歳体操"],
        schedule=[{"weekday": "tue", "start": "10:00", "end": "11:00"}],
    ),
    # --- 太閤山 -------------------------------------------------------------------------------
    make_listing(
        "hotto-cafe",
        name="居場所カフェ「ほっと」",
        kind="ibasho",
        lat=36.7121,
        lon=137.1037,
        targets=["hikikomori", "youth"],
        activities=["カフェ", "ボードゲーム"],
        capacity=3,
        schedule=[{"weekday": "sat", "weeks": [2, 4], "start": "13:00", "end": "16:00"}],
    ),
    make_listing(
        "yorimichi",
        name="若者の居場所「よりみち」",
        kind="ibasho",
        lat=36.7005,
        lon=137.0965,
        targets=["youth", "hikikomori"],
        activities=["ゲーム", "おしゃべり"],
        capacity=4,
        schedule=[{"weekday": "thu", "start": "15:00", "end": "18:00"}],
    ),
    make_listing(
        "yurutto-full",
        name="ゆるっと居場所（満員）",
        kind="ibasho",
        lat=36.7040,
        lon=137.0880,
        targets=["hikikomori"],
        activities=["ゲーム"],
        capacity=0,
        schedule=[{"weekday": "thu", "start": "15:00", "end": "17:00"}],
    ),
    make_listing(
        "hiroba",
        name="子育て支援センターつどいのひろば",
        kind="kosodate",
        lat=36.7040,
        lon=137.0950,
        targets=["parents", "children"],
        activities=["親子あそび", "子育て相談"],
        capacity=None,
        schedule=[
            {"weekday": d, "start": "09:30", "end": "12:00"}
            for d in ("mon", "tue", "wed", "thu", "fri")
        ],
    ),
    make_listing(
        "hiroba-stairs",
        name="2階のあそびの広場",
        kind="kosodate",
        lat=36.7050,
        lon=137.0970,
        targets=["parents"],
        activities=["親子あそび"],
        barrier_free=False,
        schedule=[{"weekday": "tue", "start": "10:00", "end": "12:00"}],
    ),
    make_listing(
        "kodomo-katei-center",
        name="こども家庭センター",
        kind="center",
        lat=36.7060,
        lon=137.0940,
        targets=["parents", "children"],
        activities=["子育て相談"],
        capacity=None,
        group_size=None,
        service_area={"districts": ["太閤山", "中太閤山", "南太閤山"]},
        schedule=[
            {"weekday": d, "start": "09:00", "end": "17:00"}
            for d in ("mon", "tue", "wed", "thu", "fri")
        ],
    ),
    make_listing(
        "nihongo",
        name="みんなの日本語教室",
        kind="learning",
        lat=36.7070,
        lon=137.0894,
        targets=["foreign"],
        activities=["日本語教室", "交流"],
        capacity=None,
        group_size="medium",
        schedule=[{"weekday": "sun", "start": "10:00", "end": "12:00"}],
    ),
    make_listing(
        "tabunka-cafe",
        name="多文化交流カフェ",
        kind="ibasho",
        lat=36.7100,
        lon=137.0950,
        targets=["all"],
        activities=["カフェ", "交流"],
        cost_yen=200,
        schedule=[{"weekday": "sun", "start": "13:00", "end": "15:00", "weeks": [1, 3]}],
    ),
    # --- 大島 / 大門 ---------------------------------------------------------------------------
    make_listing(
        "noufuku-hatake",
        name="農福連携の畑しごと体験",
        kind="work_trial",
        lat=36.7484,
        lon=137.0509,
        targets=["hikikomori", "disability", "poverty", "youth"],
        activities=["畑しごと", "野菜の収穫"],
        description="農家の畑で季節の野菜づくりを手伝います",
        pickup=True,
        capacity=2,
        schedule=[
            {"weekday": "tue", "start": "09:00", "end": "12:00"},
            {"weekday": "thu", "start": "09:00", "end": "12:00"},
        ],
    ),
    make_listing(
        "keisagyo",
        name="軽作業体験「ちょこっと作業所」",
        kind="work_trial",
        lat=36.7216,
        lon=137.0519,
        targets=["hikikomori", "disability", "poverty"],
        activities=["軽作業", "袋詰め"],
        capacity=4,
        schedule=[{"weekday": d, "start": "10:00", "end": "12:00"} for d in ("mon", "wed", "fri")],
    ),
    make_listing(
        "oshima-gakushu",
        name="大島学習支援教室",
        kind="learning",
        lat=36.7323,
        lon=137.0639,
        targets=["children", "poverty"],
        activities=["学習支援", "宿題"],
        capacity=6,
        schedule=[{"weekday": "wed", "start": "17:00", "end": "19:00"}],
    ),
    make_listing(
        "carer-tsudoi",
        name="ヤングケアラーのつどい",
        kind="ibasho",
        lat=36.7330,
        lon=137.0600,
        targets=["children", "youth"],
        activities=["おしゃべり", "交流"],
        capacity=5,
        description="家族のお世話をしている10代・20代が気軽に集まれる場",
        schedule=[{"weekday": "sat", "start": "14:00", "end": "16:00"}],
    ),
    # --- 下村 (加茂) ---------------------------------------------------------------------------
    make_listing(
        "kamo-pickup-salon",
        name="加茂送迎つき体操サロン",
        kind="kayoi",
        lat=36.7430,
        lon=137.1450,
        targets=["elderly"],
        activities=["体操", "茶話会"],
        pickup=True,
        capacity=6,
        schedule=[{"weekday": "tue", "start": "13:00", "end": "15:00"}],
    ),
    make_listing(
        "kamo-salon",
        name="加茂ふれあいサロン（送迎なし）",
        kind="kayoi",
        lat=36.7440,
        lon=137.1470,
        targets=["elderly"],
        activities=["体操"],
        pickup=False,
        schedule=[{"weekday": "tue", "start": "10:00", "end": "11:30"}],
    ),
]


def listings() -> list[dict[str, Any]]:
    """A fresh deep copy of the shared listing set."""
    return copy.deepcopy(LISTINGS)


def persona(name: str) -> dict[str, Any]:
    """A demo persona from resdb/data/demo/persons."""
    return json.loads((PERSONS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["resource_id"] for item in items]
