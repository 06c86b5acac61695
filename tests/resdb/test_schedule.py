"""resdb.domain.schedule: validation, description, upcoming sessions, overlap and index terms."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resdb.domain import schedule
from resdb.domain.schedule import ScheduleError

TUE_MORNING = {"weekday": "tue", "start": "10:00", "end": "12:00"}
SAT_2_4 = {"weekday": "sat", "weeks": [2, 4], "start": "13:30", "end": "15:00"}


# --- validation ------------------------------------------------------------------------------
def test_validate_normalizes() -> None:
    raw = [
        {"weekday": "Tue", "start": "9:00", "end": "12:00"},
        {"weekday": "土曜", "weeks": [4, 2, 2], "start": "13:30", "end": "15:00"},
        {"weekday": "wed", "weeks": [1, 2, 3, 4, 5], "start": "10:00", "end": "11:00"},
    ]
    assert schedule.validate(raw) == [
        {"weekday": "tue", "start": "09:00", "end": "12:00"},
        {"weekday": "sat", "weeks": [2, 4], "start": "13:30", "end": "15:00"},
        {"weekday": "wed", "start": "10:00", "end": "11:00"},
    ]
    assert schedule.validate(None) == []


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({"weekday": "xyz", "start": "10:00", "end": "11:00"}, "schedule[0].weekday", "曜日"),
        ({"start": "10:00", "end": "11:00"}, "schedule[0].weekday", "曜日"),
        ({"weekday": "mon", "start": "25:00", "end": "26:00"}, "schedule[0].start", "時刻"),
        ({"weekday": "mon", "start": "10:00", "end": "10:60"}, "schedule[0].end", "時刻"),
        ({"weekday": "mon", "start": "10am", "end": "11:00"}, "schedule[0].start", "時刻"),
        ({"weekday": "mon", "start": "12:00", "end": "10:00"}, "schedule[0].end", "開始時刻"),
        ({"weekday": "mon", "start": "10:00", "end": "10:00"}, "schedule[0].end", "開始時刻"),
        (
            {"weekday": "mon", "weeks": [0], "start": "10:00", "end": "11:00"},
            "schedule[0].weeks",
            "1〜5",
        ),
        (
            {"weekday": "mon", "weeks": [6], "start": "10:00", "end": "11:00"},
            "schedule[0].weeks",
            "1〜5",
        ),
        (
            {"weekday": "mon", "weeks": [True], "start": "10:00", "end": "11:00"},
            "schedule[0].weeks",
            "1〜5",
        ),
        (
            {"weekday": "mon", "weeks": {"a": 1}, "start": "10:00", "end": "11:00"},
            "schedule[0].weeks",
            "1〜5",
        ),
        ("tue 10:00", "schedule[0]", "weekday"),
    ],
)
def test_validate_rejects_with_field_name(entry: object, field: str, words: str) -> None:
    with pytest.raises(ValueError) as err:
        schedule.validate([entry])
    assert isinstance(err.value, ScheduleError)
    assert err.value.field == field
    assert str(err.value).startswith(field)
    assert words in str(err.value)


def test_validate_names_the_entry_index() -> None:
    with pytest.raises(ScheduleError) as err:
        schedule.validate([TUE_MORNING, {"weekday": "mon", "start": "12:00", "end": "11:00"}])
    assert err.value.field == "schedule[1].end"


def test_validate_rejects_non_list() -> None:
    with pytest.raises(ScheduleError):
        schedule.validate(TUE_MORNING)  # type: ignore[arg-type]


# --- describe --------------------------------------------------------------------------------
def test_describe() -> None:
    assert schedule.describe([TUE_MORNING]) == "毎週火曜 10:00〜12:00"
    assert schedule.describe([SAT_2_4]) == "毎月第2・第4土曜 13:30〜15:00"
    assert (
        schedule.describe([TUE_MORNING, SAT_2_4])
        == "毎週火曜 10:00〜12:00、毎月第2・第4土曜 13:30〜15:00"
    )
    assert schedule.describe([]) == ""


# --- next_sessions ---------------------------------------------------------------------------
def test_next_sessions_are_tokyo_aware_and_sorted() -> None:
    got = schedule.next_sessions([SAT_2_4, TUE_MORNING], date(2026, 11, 30), days=14)
    assert [d.isoformat(timespec="minutes") for d in got] == [
        "2026-12-01T10:00+09:00",
        "2026-12-08T10:00+09:00",
        "2026-12-12T13:30+09:00",
    ]
    assert all(d.utcoffset() == timedelta(hours=9) for d in got)


def test_next_sessions_skip_public_holidays() -> None:
    # 2026-11-03 (火) is 文化の日, 2026-11-23 (月) 勤労感謝の日.
    tue = [{"weekday": "tue", "start": "10:00", "end": "11:00"}]
    start = date(2026, 11, 1)
    skipped = [d.date() for d in schedule.next_sessions(tue, start, days=14)]
    assert date(2026, 11, 3) not in skipped and date(2026, 11, 10) in skipped
    kept = [d.date() for d in schedule.next_sessions(tue, start, days=14, skip_holidays=False)]
    assert date(2026, 11, 3) in kept
    mon = [{"weekday": "mon", "start": "10:00", "end": "11:00"}]
    assert date(2026, 11, 23) not in [d.date() for d in schedule.next_sessions(mon, start)]
    assert schedule.is_holiday(date(2027, 1, 1))


def test_next_sessions_window_and_fifth_week() -> None:
    fifth_wed = [{"weekday": "wed", "weeks": [5], "start": "13:00", "end": "14:00"}]
    got = schedule.next_sessions(fifth_wed, date(2026, 12, 1), days=62)
    assert [d.date() for d in got] == [date(2026, 12, 30)]
    assert schedule.next_sessions([TUE_MORNING], date(2026, 12, 1), days=0) == []
    assert got[0] == datetime(2026, 12, 30, 13, 0, tzinfo=schedule.TOKYO)


# --- is_open_on, overlaps ----------------------------------------------------------------------
def test_is_open_on_honours_weeks() -> None:
    assert schedule.is_open_on([SAT_2_4], date(2026, 12, 12))  # 第2土曜
    assert not schedule.is_open_on([SAT_2_4], date(2026, 12, 5))  # 第1土曜
    assert schedule.is_open_on([TUE_MORNING], date(2026, 11, 3))
    assert not schedule.is_open_on([TUE_MORNING], date(2026, 11, 3), skip_holidays=True)
    assert not schedule.is_open_on([], date(2026, 11, 3))


def test_overlaps() -> None:
    second_wed = [{"weekday": "wed", "weeks": [2], "start": "13:30", "end": "15:30"}]
    assert schedule.overlaps(second_wed, [{"weekday": "wed", "start": "13:00", "end": "14:00"}])
    assert not schedule.overlaps(
        second_wed, [{"weekday": "wed", "start": "15:30", "end": "17:00"}]
    )  # touching
    assert not schedule.overlaps(second_wed, [{"weekday": "thu", "start": "13:00", "end": "16:00"}])
    assert schedule.overlaps([TUE_MORNING], [{"weekday": "tue", "start": "11:59", "end": "13:00"}])
    # weeks on both sides must share a week
    assert not schedule.overlaps(
        second_wed, [{"weekday": "wed", "weeks": [1, 3], "start": "13:00", "end": "16:00"}]
    )
    assert not schedule.overlaps([], [{"weekday": "wed", "start": "13:00", "end": "16:00"}])
    assert not schedule.overlaps(second_wed, [])


# --- index terms -----------------------------------------------------------------------------
def test_weekday_terms_and_terms_for_day() -> None:
    first_third_wed = {"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}
    assert schedule.weekday_terms([first_third_wed, TUE_MORNING]) == ["tue", "wed#1", "wed#3"]
    assert schedule.terms_for_day(date(2026, 11, 25)) == ["wed", "wed#4"]
    assert schedule.terms_for_day(date(2026, 12, 2)) == ["wed", "wed#1"]
    week = [date(2026, 11, 30) + timedelta(days=i) for i in range(7)]
    terms = schedule.terms_for_days(week)
    assert "mon" in terms and "mon#5" in terms and "sun#1" in terms and len(terms) == 14


entries = st.builds(
    lambda wd, weeks, start, length: {
        "weekday": wd,
        **({"weeks": weeks} if weeks else {}),
        "start": f"{start // 60:02d}:{start % 60:02d}",
        "end": f"{(start + length) // 60:02d}:{(start + length) % 60:02d}",
    },
    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    st.lists(st.integers(1, 5), max_size=3, unique=True),
    st.integers(0, 20 * 60),
    st.integers(1, 180),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entries, max_size=4),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
)
def test_terms_agree_with_is_open_on(sched: list[dict], day: date) -> None:
    indexed = set(schedule.weekday_terms(sched))
    assert bool(indexed & set(schedule.terms_for_day(day))) == schedule.is_open_on(sched, day)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(entries, max_size=4),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
)
def test_next_sessions_agree_with_is_open_on(sched: list[dict], start: date) -> None:
    days = {d.date() for d in schedule.next_sessions(sched, start, days=21, skip_holidays=False)}
    for offset in range(21):
        day = start + timedelta(days=offset)
        assert (day in days) == schedule.is_open_on(sched, day)
