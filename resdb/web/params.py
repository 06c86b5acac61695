"""Query-string parameters → SearchQuery, with a Japanese message naming each bad parameter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from resdb import geo
from resdb.domain.schedule import TOKYO
from resdb.domain.vocab import KINDS, TARGETS, WEEKDAY_IDS, kind_id, target_id
from resdb.search import SearchQuery, week_days
from resdb.web.errors import ApiError

MAX_LIMIT = 100
MAX_OFFSET = 100_000_000  # deep pages work: the result order is total, so any offset is exact
MAX_RADIUS_KM = 300.0
PAGE_SIZE = 20
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"", "0", "false", "no", "off", "n", "f"}
_WEEKDAY_JA = {
    "月": "mon",
    "火": "tue",
    "水": "wed",
    "木": "thu",
    "金": "fri",
    "土": "sat",
    "日": "sun",
}


def today_tokyo() -> date:
    return datetime.now(TOKYO).date()


@dataclass
class ParsedSearch:
    """A SearchQuery plus what the form showed (to refill it) and the problems found."""

    query: SearchQuery
    form: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    page: int = 1

    def raise_if_bad(self) -> None:
        if self.problems:
            message = " / ".join(p["message"] for p in self.problems)
            raise ApiError(400, message, code="bad_parameter", problems=self.problems)


def _values(args: MultiDict[str, str], name: str) -> list[str]:
    """Repeated (`kind=a&kind=b`) and comma-separated (`kind=a,b`) values, blanks dropped."""
    out: list[str] = []
    for raw in args.getlist(name):
        out += [part.strip() for part in raw.replace("、", ",").split(",") if part.strip()]
    return out


def _float(
    args: MultiDict[str, str], name: str, label: str, problems: list[dict[str, Any]]
) -> float | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(_problem(name, f"{name}（{label}）は数値で指定してください", raw))
        return None
    return value


def _int(
    args: MultiDict[str, str],
    name: str,
    problems: list[dict[str, Any]],
    low: int,
    high: int,
    message: str,
) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        problems.append(_problem(name, message, raw))
        return None
    if not low <= value <= high:
        problems.append(_problem(name, message, raw))
        return None
    return value


def _bool(args: MultiDict[str, str], name: str, label: str, problems: list[dict[str, Any]]) -> bool:
    raw = (args.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw not in _FALSE:
        problems.append(_problem(name, f"{name}（{label}）は 1 または 0 で指定してください", raw))
    return False


def _problem(name: str, message: str, value: str | None = None) -> dict[str, Any]:
    return {"field": name, "message": message, "value": value}


def parse_search(
    args: MultiDict[str, str],
    *,
    today: date | None = None,
    paging: str = "offset",
    default_limit: int = PAGE_SIZE,
    max_limit: int = MAX_LIMIT,
    unlimited: bool = False,
    default_municipality: str | None = None,
) -> ParsedSearch:
    """Read the shared search parameters; `paging="page"` reads `page` (HTML list) instead of limit/offset.

    `default_municipality` (the public pages pass the deployment's) applies when no `municipality` is given;
    `municipality=all` (or empty) then widens to every municipality."""
    problems: list[dict[str, Any]] = []
    form: dict[str, Any] = {}
    q = (args.get("q") or "").strip()
    if len(q) > 200:
        problems.append(_problem("q", "q（検索語）は200文字以内にしてください"))
        q = q[:200]
    form["q"] = q

    kinds = []
    for value in _values(args, "kind"):
        found = kind_id(value)
        if found is None:
            problems.append(
                _problem(
                    "kind",
                    f"kind（種別）「{value}」は使えません。{', '.join(KINDS)} のいずれかです",
                    value,
                )
            )
        else:
            kinds.append(found)
    targets = []
    for value in _values(args, "target"):
        found = target_id(value)
        if found is None:
            problems.append(
                _problem(
                    "target",
                    f"target（対象）「{value}」は使えません。{', '.join(TARGETS)} のいずれかです",
                    value,
                )
            )
        else:
            targets.append(found)
    weekdays = []
    for value in _values(args, "weekday"):
        key = _WEEKDAY_JA.get(value[:1], value.lower())
        if key not in WEEKDAY_IDS:
            problems.append(
                _problem(
                    "weekday",
                    f"weekday（曜日）「{value}」は使えません。mon〜sun で指定してください",
                    value,
                )
            )
        else:
            weekdays.append(key)
    form.update(kind=kinds, target=targets, weekday=weekdays)

    today = today or today_tokyo()
    open_on: list[date] = []
    when = (args.get("open") or "").strip().lower()
    if when == "today":
        open_on = [today]
    elif when == "week":
        open_on = week_days(today, 7)
    elif when:
        problems.append(
            _problem(
                "open", "open（開催日）は today（今日）または week（今週）で指定してください", when
            )
        )
        when = ""
    form["open"] = when

    free = _bool(args, "free", "無料", problems)
    barrier_free = _bool(args, "barrier_free", "バリアフリー", problems)
    pickup = _bool(args, "pickup", "送迎あり", problems)
    venues = _bool(args, "venues", "会場（建物）も表示", problems)
    form.update(free=free, barrier_free=barrier_free, pickup=pickup, venues=venues)

    municipality = (args.get("municipality") or "").strip() or None
    if "municipality" not in args and default_municipality:
        municipality = default_municipality
    if municipality in ("all", "*"):
        municipality = None
        form["municipality_all"] = True
    if municipality is not None:
        try:
            municipality = geo.code6(municipality)
        except ValueError:
            problems.append(
                _problem(
                    "municipality",
                    "municipality（市町村）は5桁または6桁の地方公共団体コードで指定してください",
                    municipality,
                )
            )
            municipality = None
    form["municipality"] = municipality or ""

    lat = _float(args, "lat", "緯度", problems)
    lon = _float(args, "lon", "経度", problems)
    radius = _float(args, "radius_km", "半径 km", problems)
    near = None
    if (lat is None) != (lon is None):
        problems.append(
            _problem(
                "lat" if lat is None else "lon", "lat（緯度）と lon（経度）は両方指定してください"
            )
        )
    elif lat is not None and lon is not None:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            problems.append(_problem("lat", "lat（緯度）・lon（経度）の値が範囲外です"))
        else:
            near = (lat, lon)
    if radius is not None:
        if not 0 < radius <= MAX_RADIUS_KM:
            problems.append(
                _problem(
                    "radius_km",
                    f"radius_km（半径）は 0 より大きく {MAX_RADIUS_KM:g} 以下で指定してください",
                )
            )
            radius = None
        elif near is None and lat is None and lon is None:
            problems.append(
                _problem("radius_km", "radius_km（半径）を使うときは lat と lon も指定してください")
            )
            radius = None
    form.update(
        lat="" if lat is None else lat,
        lon="" if lon is None else lon,
        radius_km="" if radius is None else radius,
    )

    bbox = None
    raw_bbox = (args.get("bbox") or "").strip()
    if raw_bbox:
        parts = raw_bbox.split(",")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
            problems.append(
                _problem(
                    "bbox",
                    "bbox（表示範囲）は 最小経度,最小緯度,最大経度,最大緯度 の4つの数値で指定してください",
                    raw_bbox,
                )
            )
        elif not (
            numbers[0] <= numbers[2]
            and numbers[1] <= numbers[3]
            and -180 <= numbers[0] <= 180
            and -180 <= numbers[2] <= 180
            and -90 <= numbers[1] <= 90
            and -90 <= numbers[3] <= 90
        ):
            problems.append(
                _problem(
                    "bbox",
                    "bbox（表示範囲）の値が正しくありません（最小経度,最小緯度,最大経度,最大緯度 の順）",
                    raw_bbox,
                )
            )
        else:
            bbox = (numbers[0], numbers[1], numbers[2], numbers[3])
    form["bbox"] = raw_bbox if bbox else ""

    page = 1
    limit: int | None = default_limit
    offset = 0
    if paging == "page":
        page = (
            _int(
                args,
                "page",
                problems,
                1,
                MAX_OFFSET // default_limit,
                "page（ページ）は1以上の整数で指定してください",
            )
            or 1
        )
        offset = (page - 1) * default_limit
    else:
        given = _int(
            args,
            "limit",
            problems,
            1,
            max_limit,
            f"limit（件数）は1〜{max_limit}の整数で指定してください",
        )
        if given is not None:
            limit = given
        elif unlimited:
            limit = None
        offset = (
            _int(
                args,
                "offset",
                problems,
                0,
                MAX_OFFSET,
                f"offset（開始位置）は0〜{MAX_OFFSET}の整数で指定してください",
            )
            or 0
        )

    query = SearchQuery(
        q=q,
        kinds=tuple(kinds),
        targets=tuple(targets),
        weekdays=tuple(weekdays),
        open_on=tuple(open_on),
        max_cost=0 if free else None,
        barrier_free=barrier_free,
        pickup=pickup,
        municipality_code=municipality,
        include_venues=venues,
        bbox=bbox,
        near=near,
        radius_km=radius if near else None,
        limit=limit,
        offset=offset,
    )
    return ParsedSearch(query=query, form=form, problems=problems, page=page)


def form_args(form: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """URL arguments that reproduce a search (for pagination and "地図で見る" links), blanks dropped."""
    merged = {**form, **overrides}
    out: dict[str, Any] = {}
    if merged.pop("municipality_all", False) and not merged.get("municipality"):
        out["municipality"] = (
            "all"  # keep "every municipality" across pages (absent = the deployment's own)
        )
    for key, value in merged.items():
        if value in ("", None, False, [], ()):
            continue
        if value is True:
            out[key] = "1"
        elif isinstance(value, list | tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out
