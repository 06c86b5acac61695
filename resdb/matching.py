"""Glue between the directory and the pure matcher: resolve homes, hand over the candidate pool,
answer service-area questions. Persons pass through memory only (要配慮個人情報: never stored or logged)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import matcher
from resdb.directory import Directory
from resdb.matchpool import DEFAULT_WAIT_SECONDS, PoolKeeper, PoolNotReady


def _wait_setting() -> float:
    from resdb.config import setting

    try:
        return max(0.0, float(setting("RESDB_MATCH_WAIT") or DEFAULT_WAIT_SECONDS))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def _stale_days_setting() -> int:
    from resdb.config import setting

    try:
        return max(1, int(setting("RESDB_STALE_DAYS") or matcher.DEFAULT_STALE_DAYS))
    except ValueError:
        return matcher.DEFAULT_STALE_DAYS


class PersonError(ValueError):
    """A person (or need) that cannot be matched; the message names the field in Japanese."""


class Matching:
    """Matching over one Directory. The candidate pool is kept by a PoolKeeper: current with every committed
    change (applied row by row), built once; with `background` (web workers) built in a thread by `start()`
    while early requests wait up to `wait` seconds and then get PoolNotReady (「準備中」)."""

    def __init__(
        self,
        directory: Directory,
        stale_days: int | None = None,
        *,
        background: bool = False,
        wait: float | None = None,
    ) -> None:
        self.directory = directory
        self.stale_days = stale_days if stale_days is not None else _stale_days_setting()
        self.keeper = PoolKeeper(
            directory, background=background, wait=_wait_setting() if wait is None else wait
        )

    def start(self) -> bool:
        """Build the candidate pool in a background thread now (a web worker calls this at start)."""
        return self.keeper.start()

    def pool(self) -> matcher.CandidatePool:
        """The candidate pool as of the last committed change (the places' referral outcomes, aggregates
        of ≥ 5 cases only, ride along as `outcome`)."""
        with self.keeper.reading() as pool:
            return pool

    def resolve_home(self, person: Mapping[str, Any], field: str = "home") -> dict[str, Any]:
        """A copy of the person whose home has lat/lon: from coordinates, an address or a district."""
        resolved = dict(person)
        home = person.get("home")
        if not isinstance(home, Mapping):
            raise PersonError(
                f"{field}: 自宅の位置（lat/lon、address、district のいずれか）を指定してください"
            )
        home = dict(home)
        for key, (low, high) in (("lat", (-90.0, 90.0)), ("lon", (-180.0, 180.0))):
            if home.get(key) is None:
                continue
            value = home[key]
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise PersonError(f"{field}.{key}: 数値で指定してください")
            try:
                number = float(value)
            except (ValueError, OverflowError):
                raise PersonError(f"{field}.{key}: 数値で指定してください") from None
            if not low <= number <= high:  # NaN fails too
                raise PersonError(f"{field}.{key}: {low}〜{high} の数値で指定してください")
            home[key] = number
        for key in ("address", "district", "municipality_code"):
            if home.get(key) is not None and (
                not isinstance(home[key], str) or len(home[key]) > 300
            ):
                raise PersonError(f"{field}.{key}: 300文字以内の文字列で指定してください")
        if home.get("lat") is None or home.get("lon") is None:
            gazetteer = self.directory.gazetteer()
            code = home.get("municipality_code")
            if home.get("address"):
                placement = gazetteer.place_address(str(home["address"]), code)
                if placement is None:
                    raise PersonError(f"{field}.address: 住所から場所を特定できません")
                home.update(
                    lat=placement.lat,
                    lon=placement.lon,
                    district=home.get("district") or placement.town,
                )
            elif home.get("district"):
                geometry, unresolved = gazetteer.resolve([str(home["district"])], code)
                if geometry is None or unresolved:
                    raise PersonError(f"{field}.district: 地区が見つかりません")
                point = geometry.representative_point()
                home.update(lat=point.y, lon=point.x)
        resolved["home"] = home
        return resolved

    def _covers(
        self, person: Mapping[str, Any]
    ) -> Callable[[Mapping[str, Any]], bool | None] | None:
        home = person["home"]
        if home.get("lat") is None:
            return None
        covering = set(self.directory.area_index().lookup(float(home["lat"]), float(home["lon"])))

        def covers_home(listing: Mapping[str, Any]) -> bool | None:
            if not listing.get("service_area"):
                return None
            return listing["id"] in covering

        return covers_home

    def match(
        self,
        person: Mapping[str, Any],
        *,
        limit: int = 10,
        today: date | None = None,
        all_excluded: bool = False,
    ) -> dict[str, Any]:
        resolved = self.resolve_home(person)
        try:
            with self.keeper.reading() as pool:
                return matcher.match(
                    resolved,
                    pool,
                    today=today or date.today(),
                    covers_home=self._covers(resolved),
                    limit=limit,
                    stale_days=self.stale_days,
                    all_excluded=all_excluded,
                )
        except (ValueError, TypeError) as exc:
            raise PersonError(_safe(exc)) from None

    def match_batch(
        self, persons: Sequence[Mapping[str, Any]], *, today: date | None = None
    ) -> dict[str, Any]:
        resolved = [self.resolve_home(p, f"persons[{i}].home") for i, p in enumerate(persons)]
        return self._over_pool(matcher.match_batch, resolved, today)

    def gaps(
        self, needs: Sequence[Mapping[str, Any]], *, today: date | None = None
    ) -> dict[str, Any]:
        resolved = []
        for i, need in enumerate(needs):
            need = dict(need)
            if need.get("home") is None and any(
                need.get(k) is not None for k in ("lat", "address", "district")
            ):
                need["home"] = {
                    k: need[k]
                    for k in ("lat", "lon", "address", "district", "municipality_code")
                    if need.get(k) is not None
                }
            resolved.append(self.resolve_home(need, f"needs[{i}].home"))
        return self._over_pool(matcher.gap_report, resolved, today)

    def _over_pool(
        self, call: Any, resolved: list[dict[str, Any]], today: date | None
    ) -> dict[str, Any]:
        """One batch call of the matcher (`match_batch`, `gap_report`) over the shared pool, each
        person's 担当地区 test passed along; the matcher's refusals become a PersonError."""
        try:
            covers = [self._covers(p) for p in resolved]
            with self.keeper.reading() as pool:
                answer: dict[str, Any] = call(
                    resolved,
                    pool,
                    today=today or date.today(),
                    covers_home_for=lambda i, listing: (
                        cover(listing) if (cover := covers[i]) else None
                    ),
                )
                return answer
        except (ValueError, TypeError) as exc:
            raise PersonError(_safe(exc)) from None


def _safe(error: Exception) -> str:
    """The matcher's own Japanese message (it names the field), or a generic one: never Python's
    built-in messages, which quote the value that was typed."""
    text = _QUOTED_VALUE.sub("", str(error))
    if isinstance(error, TypeError) or not any("\u3040" <= ch <= "\u9fff" for ch in text):
        return "人の情報に正しくない値があります（数値・文字列・一覧の形を確かめてください）"
    return text


# 「（'typed value'）」 or 「（36.7, 137.1）」 in a matcher message: the value itself, dropped.
_QUOTED_VALUE = re.compile(r"（[^（）]*['\"\d][^（）]*）")

__all__ = ["Matching", "PersonError", "PoolNotReady"]
