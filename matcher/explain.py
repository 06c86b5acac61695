"""Plain-Japanese reasons and cautions for a proposal, short enough for a coordinator to read aloud."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from resdb.domain import schedule as sched
from resdb.domain.textnorm import expand_terms, normalize
from resdb.domain.vocab import GROUP_SIZES, WEEKDAYS

from .pool import GROUP_IDS, KIND_IDS, View
from .query import SCHEDULE_WINDOW_DAYS, Query
from .scoring import (
    FACTORS,
    KEYWORD_BONUS,
    OUTCOME_POSITIVE,
    goal_keyword_hits,
    goal_kind_fits,
    goal_terms,
    matched_interests,
)

GOAL_PHRASES: dict[str, str] = {
    "first_step": "はじめの一歩に向く",
    "friends": "仲間づくりに向く",
    "role": "役割を持てる",
    "work": "働く練習ができる",
    "health": "健康づくりに向く",
    "learn": "学べる",
    "childcare_peers": "子育て仲間と出会える",
    "consult": "相談できる",
    "routine": "生活リズムづくりに向く",
}
# Short nouns for each kind, so reasons read naturally (「働く練習ができる就労体験の場」).
KIND_NOUNS: dict[str, str] = {
    "ibasho": "居場所",
    "kayoi": "通いの場",
    "shokudo": "食堂",
    "kosodate": "子育て支援の場",
    "chikatsu": "活動の場",
    "work_trial": "就労体験の場",
    "volunteer": "ボランティアの場",
    "learning": "講座・教室",
    "center": "相談窓口",
    "other": "場",
    "venue": "会場",
    "program": "事業",
}
# Interests that are things one does: 「農作業ができる」. Others read 「日本語に関わる活動がある」.
DOING_WORDS: tuple[str, ...] = (
    "農作業",
    "体操",
    "料理",
    "手芸",
    "音楽",
    "ゲーム",
    "散歩",
    "囲碁",
    "書道",
    "勉強",
    "ボランティア",
    "読書",
    "絵",
    "スポーツ",
    "パソコン",
    "園芸",
)
NEXT_SESSIONS_SHOWN = 3


def jp_date(day: date) -> str:
    """「12月2日」."""
    return f"{day.month}月{day.day}日"


def jp_full_date(day: date) -> str:
    """「2024年3月1日」."""
    return f"{day.year}年{day.month}月{day.day}日"


def period_of_day(minute: int) -> str:
    """午前 before noon, 午後 until 17:00, then 夕方以降."""
    if minute < 12 * 60:
        return "午前"
    if minute < 17 * 60:
        return "午後"
    return "夕方以降"


def iso_minutes(moment: datetime) -> str:
    """ "2026-12-01T10:00+09:00"."""
    return moment.isoformat(timespec="minutes")


def upcoming_sessions(
    q: Query, listing: Mapping[str, Any], holidays_open: bool, days: int = SCHEDULE_WINDOW_DAYS
) -> list[tuple[datetime, sched.Entry]]:
    """Sessions from today within the person's available times (all when none given), sorted."""
    entries = sched.parse_lenient(listing.get("schedule"))
    found: list[tuple[datetime, sched.Entry]] = []
    if not entries:
        return found
    for day, nth_bit, holiday in _window(q.today, days):
        if holiday and not holidays_open:
            continue
        for entry in entries:
            if not entry.runs_on(day):
                continue
            if q.slots and not any(
                slot.weekday == entry.weekday
                and slot.weeks & nth_bit
                and entry.start_minute < slot.end
                and slot.start < entry.end_minute
                for slot in q.slots
            ):
                continue
            found.append((datetime.combine(day, entry.start, tzinfo=sched.TOKYO), entry))
    found.sort(key=lambda pair: pair[0])
    return found


@lru_cache(maxsize=64)
def _window(today: date, days: int) -> tuple[tuple[date, int, bool], ...]:
    """(day, nth-week bit, is a public holiday) for each day of the window."""
    out = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        out.append((day, 1 << (sched.week_of_month(day) - 1), sched.is_holiday(day)))
    return tuple(out)


@lru_cache(maxsize=1)
def _doing_terms() -> frozenset[str]:
    return frozenset(expand_terms(DOING_WORDS) | {normalize(w) for w in DOING_WORDS})


def _is_doing(interest: str) -> bool:
    """Whether an interest names an activity (「〜ができる」) rather than a topic."""
    return normalize(interest) in _doing_terms()


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def joinable_window(q: Query, entry: sched.Entry) -> tuple[int, int]:
    """The part of a session inside the person's own times (the whole session when they gave none)."""
    best = (entry.start_minute, entry.end_minute)
    if not q.slots:
        return best
    windows = [
        (max(entry.start_minute, slot.start), min(entry.end_minute, slot.end))
        for slot in q.slots
        if slot.weekday == entry.weekday
        and entry.start_minute < slot.end
        and slot.start < entry.end_minute
    ]
    return max(windows, key=lambda w: w[1] - w[0]) if windows else best


def window_text(q: Query, entry: sched.Entry) -> str:
    """「木曜 14:00〜16:00」 (「第1・第3木曜 …」 for monthly patterns): when this person can take part."""
    label = WEEKDAYS[entry.weekday_id] + "曜"
    if entry.weeks is not None:
        label = "・".join(f"第{n}" for n in entry.weeks) + label
    start, end = joinable_window(q, entry)
    return f"{label} {hhmm(start)}〜{hhmm(end)}"


class Explainer:
    """Builds the contract's proposal object for one listing of a View."""

    def __init__(self, q: Query, v: View, local: int, values: np.ndarray) -> None:
        self.q, self.v, self.local, self.values = q, v, local, values
        self.j = int(v.idx[local])
        self.pool = v.pool
        self.listing = v.listing(local)
        self.sessions = upcoming_sessions(q, self.listing, bool(self.pool.holidays_open[self.j]))

    # --- per-factor texts -------------------------------------------------------------------
    def goal(self) -> str | None:
        q, v = self.q, self.v
        if not q.goals:
            return None
        sel = np.array([self.local])
        hit_mask = goal_keyword_hits(q, v, sel)[:, 0]
        fits = goal_kind_fits(q, v, sel)[:, 0] + KEYWORD_BONUS * hit_mask
        hits = [g for g, hit in zip(q.goals, hit_mask, strict=True) if hit]
        best = q.goals[int(np.argmax(fits))]
        text = GOAL_PHRASES[best] + KIND_NOUNS[KIND_IDS[int(self.pool.kind[self.j])]]
        if best in hits:
            terms = goal_terms()[best]
            for activity in self.listing.get("activities") or ():
                if any(t in normalize(str(activity)) for t in terms):
                    return f"{text}（{activity}）"
        return text

    def interest(self) -> str | None:
        hits = matched_interests(self.q, self.v, self.local)
        doing = [h for h in hits if _is_doing(h)]
        other = [h for h in hits if not _is_doing(h)]
        parts = []
        if doing:
            parts.append(f"{'・'.join(doing)}ができる")
        if other:
            parts.append(f"{'・'.join(other)}に関わる活動がある")
        return "、".join(parts) or None

    def travel_minutes(self) -> int | None:
        minutes = float(self.v.minutes[self.local])
        if not self.q.has_home or math.isnan(minutes):
            return None
        return max(1, int(minutes + 0.5))

    def travel(self) -> str | None:
        minutes = self.travel_minutes()
        if minutes is None:
            return None
        if self.q.need_pickup and self.q.mobility == "pickup_needed":
            return f"送迎あり（車で約{minutes}分）"
        text = f"{self.q.mode_label}で約{minutes}分"
        if self.q.need_pickup:
            text += "・送迎あり"
        return text

    def schedule(self) -> str | None:
        """The person's own joinable window (「木曜 14:00〜16:00 に参加できます」); nothing when unknown."""
        if not self.v.has_schedule[self.local] or not self.sessions:
            return None  # unknown or no session soon: a caution, never a reason
        whens: list[str] = []
        for _moment, entry in self.sessions:
            when = window_text(self.q, entry)
            if when not in whens:
                whens.append(when)
        verb = "に参加できます" if self.q.slots else "に開催"
        return f"{'・'.join(whens[:2])} {verb}（次回 {jp_date(self.sessions[0][0].date())}）"

    def group(self) -> str | None:
        code = int(self.pool.group[self.j])
        group_id = GROUP_IDS[code]
        if not group_id or (self.q.group_size is not None and group_id != self.q.group_size):
            return None  # only a size the person asked for (or any known size when they did not say) is a reason
        return GROUP_SIZES[group_id]

    def cost(self) -> str | None:
        cost = float(self.pool.cost[self.j])
        if math.isnan(cost):
            return None
        return "無料" if cost <= 0 else f"参加費 {int(cost):,}円"

    def capacity(self) -> str | None:
        cap = float(self.pool.capacity[self.j])
        if math.isnan(cap):
            return None
        return f"空きあり（あと{int(cap)}人）" if cap > 0 else "満員"

    def verified_date(self) -> date | None:
        ordinal = int(self.pool.verified[self.j])
        return date.fromordinal(ordinal) if ordinal > 0 else None

    def is_stale(self, verified: date) -> bool:
        return (self.q.today - verified).days > self.q.stale_days

    def freshness(self) -> str | None:
        verified = self.verified_date()
        if verified is None or self.is_stale(verified):
            return None  # unknown or stale: a caution only
        return f"{jp_full_date(verified)}に確認済み"

    def referral(self) -> str | None:
        accepts = float(self.pool.referrals[self.j])
        return "紹介での受け入れ可" if accepts > 0 else None

    def outcome_text(self) -> str | None:
        outcome = self.listing.get("outcome")
        return (
            str(outcome.get("text"))
            if isinstance(outcome, Mapping) and outcome.get("text")
            else None
        )

    def outcome(self) -> str | None:
        """「紹介8人中6人が続いています」 when most referrals continue (aggregate of ≥ 5 cases only)."""
        rate = float(self.pool.outcome_rate[self.j])
        return self.outcome_text() if not math.isnan(rate) and rate >= OUTCOME_POSITIVE else None

    # --- assembled ----------------------------------------------------------------------------
    def reasons(self) -> list[dict[str, Any]]:
        texts: dict[str, Callable[[], str | None]] = {
            "goal": self.goal,
            "interest": self.interest,
            "travel": self.travel,
            "schedule": self.schedule,
            "group": self.group,
            "cost": self.cost,
            "capacity": self.capacity,
            "freshness": self.freshness,
            "referral": self.referral,
            "outcome": self.outcome,
        }
        out = []
        for f, factor in enumerate(FACTORS):
            text = texts[factor.id]()
            if text:
                out.append(
                    {"factor": factor.id, "score": round(float(self.values[f]), 2), "text": text}
                )
        return out

    def cautions(self) -> list[str]:
        out: list[str] = []
        if self.pool.reservation[self.j]:
            out.append("要予約")
        verified = self.verified_date()
        if verified is None:
            out.append("最終確認日が不明です")
        elif self.is_stale(verified):
            age = "1年" if self.q.stale_days == 365 else f"{self.q.stale_days}日"
            out.append(f"情報の確認が{age}以上前です（{jp_full_date(verified)}）")
        if self.pool.sample[self.j]:
            out.append("サンプル（架空）の情報です")
        accepts = float(self.pool.referrals[self.j])
        if accepts == 0.0:
            out.append("紹介での受け入れを行っていない可能性があります（事前に確認を）")
        elif math.isnan(accepts):
            out.append("紹介で受け入れているか分かりません（事前に確認を）")
        if not self.v.has_schedule[self.local]:
            out.append("開催日時が登録されていません（要確認）")
        elif not self.sessions:
            out.append("4週間以内に参加できる開催がありません")
        if math.isnan(float(self.pool.cost[self.j])):
            out.append("費用が登録されていません（要確認）")
        if not self.q.has_home:
            out.append("自宅の位置が分からないため移動時間を計算していません")
        rate = float(self.pool.outcome_rate[self.j])
        if not math.isnan(rate) and rate < OUTCOME_POSITIVE and self.outcome_text():
            out.append(
                f"これまでの紹介: {self.outcome_text()}（続かない人も多い場所です。受け入れ先と事前に相談を）"
            )
        return out

    def to_confirm(self) -> list[str]:
        """What must be checked before this place is known to fit (empty = known to fit)."""
        out: list[str] = []
        if not self.v.has_schedule[self.local]:
            out.append("開催日時")
        elif not self.sessions:
            out.append("直近の開催")
        if math.isnan(float(self.pool.cost[self.j])):
            out.append("費用")
        verified = self.verified_date()
        if verified is None or self.is_stale(verified):
            out.append("情報の新しさ")
        if float(self.pool.referrals[self.j]) != 1.0:
            out.append("紹介での受け入れ")
        if not self.q.has_home:
            out.append("移動時間")
        return out

    def offer(self) -> str:
        """What the place offers this person, to follow 「少し遠いが」: 「農作業ができる」, else 「、…に向く居場所です」."""
        interest = self.interest()
        if interest:
            return interest
        goal = self.goal()
        return f"、{goal}です" if goal else f"、{self.listing.get('name') or ''}があります"

    def proposal(self, score: float) -> dict[str, Any]:
        to_confirm = self.to_confirm()
        return {
            "fit": "to_confirm" if to_confirm else "known",
            "fit_label": "要確認の候補" if to_confirm else "合うことが確認できた場",
            "to_confirm": to_confirm,
            "resource_id": self.pool.ids[self.j],
            "name": str(self.listing.get("name") or ""),
            "score": round(float(score), 3),
            "travel_minutes": self.travel_minutes(),
            "next_sessions": [iso_minutes(m) for m, _e in self.sessions[:NEXT_SESSIONS_SHOWN]],
            "reasons": self.reasons(),
            "cautions": self.cautions(),
            "kind": KIND_IDS[int(self.pool.kind[self.j])],
        }
