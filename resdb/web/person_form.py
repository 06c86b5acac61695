"""The coordinator's person form ⇄ a contract Person: reading the form, carrying it back in hidden
fields, filling it again from a saved person, and the person's summary. The matcher validates the
person (matcher/query.py and resdb.matching hold the bounds); this module only reads what was typed
and checks what only the form has (its time rows, a home of some kind).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import current_app

from resdb.domain.vocab import GOALS, GROUP_SIZES, MOBILITY, TARGETS, WEEKDAYS
from resdb.needs import int_or_none, split_list
from resdb.web.common import float_or_none
from resdb.web.labels import yen

AVAILABLE_ROWS = 4
# Form fields that describe the person (carried back as hidden fields; never stored until 保存).
PERSON_FIELDS = (
    "goals",
    "interests",
    "mobility",
    "max_minutes",
    "home_address",
    "home_district",
    "home_lat",
    "home_lon",
    "age",
    "targets",
    "need_barrier_free",
    "need_pickup",
    "budget_yen",
    "group_size",
    "memo",
    "avail_grid",
    *[f"avail_{k}_{i}" for i in range(AVAILABLE_ROWS) for k in ("weekday", "start", "end")],
)
_TIME = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
# The availability grid: a week × 午前 / 午後 / 夜 (one checkbox each; exact times in the rows below it).
PERIODS: dict[str, tuple[str, str, str]] = {
    "am": ("午前", "09:00", "12:00"),
    "pm": ("午後", "13:00", "17:00"),
    "eve": ("夜", "18:00", "21:00"),
}


def form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The person fields of a (Multi)dict as plain values: lists for the checkboxes, strings otherwise."""
    out: dict[str, Any] = {}
    for name in PERSON_FIELDS:
        if name in ("goals", "targets", "avail_grid"):
            values = form.getlist(name) if hasattr(form, "getlist") else form.get(name) or []
            out[name] = [v for v in values if v]
        else:
            out[name] = (form.get(name) or "").strip()
    return out


def hidden_fields(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs that carry the person back in the next POST (no server storage)."""
    pairs: list[tuple[str, str]] = []
    for name in PERSON_FIELDS:
        value = values.get(name)
        if isinstance(value, list):
            pairs.extend((name, v) for v in value)
        elif value:
            pairs.append((name, str(value)))
    return pairs


def _number(text: str) -> int | float | str:
    """A typed number as a number; anything else as typed (the matcher names the field and refuses it)."""
    whole = int_or_none(text)
    if whole is not None:
        return whole
    number = float_or_none(text)
    return text if number is None else number


def person_from_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A contract Person from the form values, and what the form itself lacks (Japanese, naming the
    field). Numbers and their bounds are the matcher's to check (one validator: matcher/query.py)."""
    problems: list[str] = []
    code = current_app.config["DEFAULT_MUNICIPALITY"]
    home: dict[str, Any] = {}
    for key in ("lat", "lon"):
        if values.get(f"home_{key}"):
            degrees = float_or_none(values[f"home_{key}"])
            home[key] = values[f"home_{key}"] if degrees is None else degrees
    if values.get("home_address"):
        home["address"] = values["home_address"]
    if values.get("home_district"):
        home["district"] = values["home_district"]
    if not home:
        problems.append("自宅: 住所・地区・緯度経度のどれかを入れてください")
    home["municipality_code"] = code
    person: dict[str, Any] = {"home": home}
    goals = [x for x in values.get("goals") or [] if x in GOALS]
    if goals:
        person["goals"] = goals
    targets = [x for x in values.get("targets") or [] if x in TARGETS]
    if targets:
        person["targets"] = targets
    interests = split_list(values.get("interests") or "")
    if interests:
        person["interests"] = interests
    for key in ("age", "max_minutes", "budget_yen"):
        if values.get(key):
            person[key] = _number(values[key])
    if values.get("mobility"):
        person["mobility"] = values["mobility"]
    available = []
    for cell in values.get("avail_grid") or []:
        weekday, _, period = str(cell).partition("_")
        if weekday in WEEKDAYS and period in PERIODS:
            _label, start, end = PERIODS[period]
            available.append({"weekday": weekday, "start": start, "end": end})
    for i in range(AVAILABLE_ROWS):
        weekday, start, end = (
            values.get(f"avail_{k}_{i}") or "" for k in ("weekday", "start", "end")
        )
        if not (weekday or start or end):
            continue
        if weekday not in WEEKDAYS:
            problems.append(f"都合のよい時間 {i + 1} 行目: 曜日を選んでください")
            continue
        start, end = start or "00:00", end or "23:59"
        if not (_TIME.match(start) and _TIME.match(end)) or start.zfill(5) >= end.zfill(5):
            problems.append(
                f"都合のよい時間 {i + 1} 行目: 「9:00」から「12:00」のように、始まりより遅い終わりを入れてください"
            )
            continue
        available.append({"weekday": weekday, "start": start.zfill(5), "end": end.zfill(5)})
    if available:
        person["available"] = available
    person["needs"] = {
        "barrier_free": bool(values.get("need_barrier_free")),
        "pickup": bool(values.get("need_pickup")),
    }
    if values.get("group_size") in GROUP_SIZES:
        person["prefers"] = {"group_size": values["group_size"]}
    return person, problems


def values_from_person(person: Mapping[str, Any]) -> dict[str, Any]:
    """The form values of a saved or demo person (to fill the form again)."""
    home = person.get("home") or {}
    values: dict[str, Any] = {
        "goals": list(person.get("goals") or []),
        "targets": list(person.get("targets") or []),
        "interests": "、".join(person.get("interests") or []),
        "mobility": person.get("mobility") or "",
        "max_minutes": str(person.get("max_minutes") or ""),
        "age": "" if person.get("age") is None else str(person["age"]),
        "budget_yen": "" if person.get("budget_yen") is None else str(person["budget_yen"]),
        "home_address": home.get("address") or "",
        "home_district": home.get("district") or "",
        "home_lat": "" if home.get("lat") is None else str(home["lat"]),
        "home_lon": "" if home.get("lon") is None else str(home["lon"]),
        "need_barrier_free": "1" if (person.get("needs") or {}).get("barrier_free") else "",
        "need_pickup": "1" if (person.get("needs") or {}).get("pickup") else "",
        "group_size": (person.get("prefers") or {}).get("group_size") or "",
        "memo": "",
    }
    grid_times = {(start, end): key for key, (_label, start, end) in PERIODS.items()}
    rows: list[dict[str, Any]] = []
    values["avail_grid"] = []
    for slot in person.get("available") or []:
        period = grid_times.get((slot.get("start"), slot.get("end")))
        if period and slot.get("weekday") in WEEKDAYS:
            values["avail_grid"].append(f"{slot['weekday']}_{period}")
        else:
            rows.append(slot)
    for i, slot in enumerate(rows[:AVAILABLE_ROWS]):
        values.update(
            {
                f"avail_weekday_{i}": slot.get("weekday", ""),
                f"avail_start_{i}": slot.get("start", ""),
                f"avail_end_{i}": slot.get("end", ""),
            }
        )
    return values


FIELD_NAMES = {
    "home.address": "自宅の住所",
    "home.lat": "自宅の緯度",
    "home.lon": "自宅の経度",
    "budget_yen": "1回に払える費用",
    "goals": "目的",
    "targets": "対象",
    "home.district": "自宅の地区",
    "home": "自宅",
    "age": "年齢",
    "mobility": "移動手段",
    "available": "都合のよい時間",
    "max_minutes": "移動にかけられる時間",
}


def field_message(message: str) -> str:
    field, sep, rest = message.partition(": ")
    return f"{FIELD_NAMES.get(field, field)}: {rest}" if sep else message


def form_context(
    values: dict[str, Any] | None = None, problems: list[str] | None = None
) -> dict[str, Any]:
    return {
        "values": values or {},
        "problems": problems or [],
        "GOALS": GOALS,
        "TARGET_CHOICES": TARGETS,
        "MOBILITY": MOBILITY,
        "GROUP_SIZES": GROUP_SIZES,
        "WEEKDAYS": WEEKDAYS,
        "rows": range(AVAILABLE_ROWS),
        "PERIODS": PERIODS,
    }


def person_summary(person: Mapping[str, Any]) -> list[tuple[str, str]]:
    home = person.get("home") or {}
    rows = [
        (
            "自宅",
            home.get("district")
            or home.get("address")
            or ("緯度経度で指定" if home.get("lat") is not None else "—"),
        )
    ]
    if person.get("age") is not None:
        rows.append(("年齢", f"{person['age']}歳"))
    if person.get("goals"):
        rows.append(("目的", "、".join(GOALS.get(x, x) for x in person["goals"])))
    if person.get("interests"):
        rows.append(("興味", "、".join(person["interests"])))
    if person.get("targets"):
        rows.append(("対象", "、".join(TARGETS.get(x, x) for x in person["targets"])))
    if person.get("mobility"):
        rows.append(
            (
                "移動",
                MOBILITY.get(person["mobility"], person["mobility"])
                + (f"（{person['max_minutes']}分まで）" if person.get("max_minutes") else ""),
            )
        )
    if person.get("available"):
        rows.append(
            (
                "都合のよい時間",
                "、".join(
                    f"{WEEKDAYS.get(a['weekday'], a['weekday'])}曜 {a['start']}〜{a['end']}"
                    for a in person["available"]
                ),
            )
        )
    needs = person.get("needs") or {}
    wanted = [
        label
        for key, label in (("barrier_free", "バリアフリー"), ("pickup", "送迎"))
        if needs.get(key)
    ]
    if wanted:
        rows.append(("必要な配慮", "、".join(wanted)))
    if person.get("budget_yen") is not None:
        rows.append(("費用の上限", yen(person["budget_yen"])))
    return rows
