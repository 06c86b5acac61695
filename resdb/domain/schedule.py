"""Listing schedules: validation, plain-Japanese description, upcoming sessions and index terms (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from holidays import HolidayBase
from holidays.countries.japan import Japan

from resdb.domain.vocab import WEEKDAY_IDS, WEEKDAYS

TOKYO = ZoneInfo("Asia/Tokyo")
ALL_WEEKS: tuple[int, ...] = (1, 2, 3, 4, 5)

_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
# Japanese weekday spellings accepted on input: 水, 水曜, 水曜日.
_WEEKDAY_ALIASES: dict[str, str] = {}
for _wid, _label in WEEKDAYS.items():
    _WEEKDAY_ALIASES[_label] = _wid
    _WEEKDAY_ALIASES[_label + "曜"] = _wid
    _WEEKDAY_ALIASES[_label + "曜日"] = _wid


class ScheduleError(ValueError):
    """A schedule entry that cannot be used; `field` names the offending field (e.g. schedule[1].start)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Entry:
    """One validated schedule entry: weekday 0=mon … 6=sun, weeks of the month (None = every week)."""

    weekday: int
    weeks: tuple[int, ...] | None
    start: time
    end: time

    @property
    def weekday_id(self) -> str:
        return WEEKDAY_IDS[self.weekday]

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        return self.end.hour * 60 + self.end.minute

    def runs_on(self, day: date) -> bool:
        """Whether this entry has a session on `day` (weekday and nth week of the month)."""
        if day.weekday() != self.weekday:
            return False
        return self.weeks is None or week_of_month(day) in self.weeks

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weekday": self.weekday_id}
        if self.weeks is not None:
            out["weeks"] = list(self.weeks)
        out["start"] = self.start.strftime("%H:%M")
        out["end"] = self.end.strftime("%H:%M")
        return out


def week_of_month(day: date) -> int:
    """1 for the first seven days of the month, … 5 for days 29–31 (第n◯曜日)."""
    return (day.day - 1) // 7 + 1


def _parse_weekday(value: Any, field: str) -> int:
    if isinstance(value, str):
        text = value.strip()
        key = text.lower()
        if key in WEEKDAY_IDS:
            return WEEKDAY_IDS.index(key)
        if text in _WEEKDAY_ALIASES:
            return WEEKDAY_IDS.index(_WEEKDAY_ALIASES[text])
    raise ScheduleError(
        field, f"曜日が正しくありません（{value!r}）。mon〜sun（または月〜日）で指定してください"
    )


def _parse_time(value: Any, field: str) -> time:
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ScheduleError(
        field, f"時刻が正しくありません（{value!r}）。HH:MM（00:00〜23:59）で指定してください"
    )


def _parse_weeks(value: Any, field: str) -> tuple[int, ...] | None:
    if value is None or value == [] or value == ():
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ScheduleError(
            field, f"第何週かの指定が正しくありません（{value!r}）。1〜5 の一覧で指定してください"
        )
    weeks: set[int] = set()
    for item in value:
        number: int | None = None
        if isinstance(item, int) and not isinstance(item, bool):
            number = item
        elif isinstance(item, str) and item.strip().isdigit():
            number = int(item.strip())
        if number is None or not 1 <= number <= 5:
            raise ScheduleError(field, f"第何週かは 1〜5 で指定してください（{item!r}）")
        weeks.add(number)
    ordered = tuple(sorted(weeks))
    return None if ordered == ALL_WEEKS else ordered


def parse_entry(entry: Any, field: str = "schedule[0]") -> Entry:
    """One raw entry → Entry, or ScheduleError naming the field."""
    if not isinstance(entry, dict) and not isinstance(entry, Mapping):  # dict: no ABC check
        raise ScheduleError(field, "日程は {weekday, start, end} の形で指定してください")
    weekday = _parse_weekday(entry.get("weekday"), f"{field}.weekday")
    weeks = _parse_weeks(entry.get("weeks"), f"{field}.weeks")
    start = _parse_time(entry.get("start"), f"{field}.start")
    end = _parse_time(entry.get("end"), f"{field}.end")
    if not start < end:
        raise ScheduleError(
            f"{field}.end",
            f"終了時刻（{end:%H:%M}）は開始時刻（{start:%H:%M}）より後にしてください",
        )
    return Entry(weekday, weeks, start, end)


def parse(schedule: Iterable[Any] | None, field: str = "schedule") -> list[Entry]:
    """Validated entries of a schedule; ScheduleError (a ValueError) names the first bad field."""
    if schedule is None:
        return []
    if not isinstance(schedule, list) and isinstance(schedule, Mapping | str | bytes):
        raise ScheduleError(field, "日程は一覧（配列）で指定してください")
    return [parse_entry(item, f"{field}[{i}]") for i, item in enumerate(schedule)]


def parse_lenient(schedule: Iterable[Any] | None) -> list[Entry]:
    """Entries of a stored schedule, silently skipping unusable ones (for matching over stored data)."""
    if not schedule or isinstance(schedule, Mapping | str | bytes):
        return []
    entries = []
    for item in schedule:
        try:
            entries.append(parse_entry(item))
        except ScheduleError:
            continue
    return entries


def validate(schedule: Iterable[Any] | None, field: str = "schedule") -> list[dict[str, Any]]:
    """The normalized schedule (weekday ids, HH:MM, weeks sorted or absent) or a ScheduleError."""
    return [entry.to_dict() for entry in parse(schedule, field)]


def _entries(schedule: Iterable[Any] | None, field: str = "schedule") -> list[Entry]:
    """Entries from raw dicts (validated strictly) or already parsed Entry objects."""
    if schedule is None:
        return []
    if isinstance(schedule, Mapping | str | bytes):
        raise ScheduleError(field, "日程は一覧（配列）で指定してください")
    return [
        item if isinstance(item, Entry) else parse_entry(item, f"{field}[{i}]")
        for i, item in enumerate(schedule)
    ]


def describe(schedule: Iterable[Any] | None) -> str:
    """Plain Japanese: 「毎週火曜 10:00〜12:00、毎月第2・第4土曜 13:30〜15:00」 ("" when no schedule)."""
    parts = []
    for entry in _entries(schedule):
        label = WEEKDAYS[entry.weekday_id]
        when = (
            f"毎週{label}曜"
            if entry.weeks is None
            else "毎月" + "・".join(f"第{n}" for n in entry.weeks) + f"{label}曜"
        )
        parts.append(f"{when} {entry.start:%H:%M}〜{entry.end:%H:%M}")
    return "、".join(parts)


@lru_cache(maxsize=1)
def _japan_holidays() -> HolidayBase:
    return Japan()


def is_holiday(day: date) -> bool:
    """Whether `day` is a Japanese public holiday (国民の祝日・振替休日)."""
    return day in _japan_holidays()


def next_sessions(
    schedule: Iterable[Any] | None, start: date, days: int = 28, skip_holidays: bool = True
) -> list[datetime]:
    """Session start times from `start` (inclusive) for `days` days, Asia/Tokyo aware, sorted."""
    return [begin for begin, _end in session_spans(schedule, start, days, skip_holidays)]


def session_spans(
    schedule: Iterable[Any] | None, start: date, days: int = 28, skip_holidays: bool = True
) -> list[tuple[datetime, datetime]]:
    """(start, end) of each session in the window, Asia/Tokyo aware, sorted, duplicates removed."""
    entries = _entries(schedule)
    spans: set[tuple[datetime, datetime]] = set()
    for offset in range(max(0, days)):
        day = start + timedelta(days=offset)
        if skip_holidays and is_holiday(day):
            continue
        for entry in entries:
            if entry.runs_on(day):
                spans.add(
                    (
                        datetime.combine(day, entry.start, tzinfo=TOKYO),
                        datetime.combine(day, entry.end, tzinfo=TOKYO),
                    )
                )
    return sorted(spans)


def is_open_on(schedule: Iterable[Any] | None, day: date, *, skip_holidays: bool = False) -> bool:
    """Whether any entry has a session on `day` (holidays count as open unless skip_holidays)."""
    if skip_holidays and is_holiday(day):
        return False
    return any(entry.runs_on(day) for entry in _entries(schedule))


def overlaps(schedule: Iterable[Any] | None, available: Iterable[Any] | None) -> bool:
    """Whether some session overlaps some available slot ({weekday,start,end}; weeks honoured on both)."""
    sessions = _entries(schedule)
    slots = _entries(available, "available")
    for entry in sessions:
        for slot in slots:
            if entry.weekday != slot.weekday:
                continue
            if entry.weeks is not None and slot.weeks is not None:
                if not set(entry.weeks) & set(slot.weeks):
                    continue
            if entry.start < slot.end and slot.start < entry.end:
                return True
    return False


def weekday_terms(schedule: Iterable[Any] | None) -> list[str]:
    """Index keywords: "wed" for every week, "wed#1", "wed#3" for nth weeks (sorted, unique)."""
    terms: set[str] = set()
    for entry in _entries(schedule):
        if entry.weeks is None:
            terms.add(entry.weekday_id)
        else:
            terms.update(f"{entry.weekday_id}#{n}" for n in entry.weeks)
    return sorted(terms, key=_term_order)


def terms_for_day(day: date) -> list[str]:
    """The index keywords meaning "open on `day`": e.g. ["wed", "wed#4"]."""
    wid = WEEKDAY_IDS[day.weekday()]
    return [wid, f"{wid}#{week_of_month(day)}"]


def terms_for_days(days: Sequence[date]) -> list[str]:
    """Keywords meaning "open on at least one of `days`" (for 今週開催)."""
    terms: set[str] = set()
    for day in days:
        terms.update(terms_for_day(day))
    return sorted(terms, key=_term_order)


def _term_order(term: str) -> tuple[int, int]:
    wid, _, nth = term.partition("#")
    return WEEKDAY_IDS.index(wid), int(nth or 0)
