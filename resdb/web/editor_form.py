"""The editor's listing form ⇄ a listing record: values for the form, values from a POST, the record
the directory validates (`resdb.fields` declares the fields; this is only their form shape)."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app

from resdb import fields
from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAYS
from resdb.validation import Problem, ValidationFailed

TEXT_FIELDS = (
    "name",
    "name_kana",
    "description",
    "address",
    "district",
    "venue",
    "operator",
    "phone",
    "email",
    "url",
    "notes",
    "source",
    "source_url",
    "source_read_at",
)
NUMBER_FIELDS = ("lat", "lon", "cost_yen", "capacity")
OPTIONAL_BOOLS = ("barrier_free", "pickup", "reservation_required")
REQUIRED_BOOLS = ("accepts_referrals", "holidays_closed", "location_private")
FIELD_LABELS: dict[str, str] = {
    **fields.labels(),
    "message": "内容",
    "row": "行",
    "file": "ファイル",
}
BLANK_SCHEDULE_ROWS = 3


def problem_map(problems: list[Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in problems:
        key = problem.field.split(".")[0].split("[")[0]
        out.setdefault(key, []).append(problem.message)
    return out


def _bool_text(value: Any) -> str:
    return "" if value is None else ("true" if value else "false")


def form_values(listing: dict[str, Any]) -> dict[str, Any]:
    """The edit form's values (strings, as typed) for a stored listing."""
    values: dict[str, Any] = {
        k: ("" if listing.get(k) is None else str(listing.get(k))) for k in TEXT_FIELDS
    }
    for key in NUMBER_FIELDS:
        values[key] = "" if listing.get(key) is None else str(listing[key])
    for key in (*OPTIONAL_BOOLS, *REQUIRED_BOOLS):
        values[key] = _bool_text(listing.get(key))
    eligibility = listing.get("eligibility") or {}
    area = listing.get("service_area") or {}
    values.update(
        id=listing.get("id") or "",
        kind=listing.get("kind") or "",
        municipality_code=listing.get("municipality_code") or "",
        targets=list(listing.get("targets") or []),
        activities="、".join(listing.get("activities") or []),
        group_size=listing.get("group_size") or "",
        status=listing.get("status") or "published",
        verified_at=listing.get("verified_at") or "",
        min_age="" if eligibility.get("min_age") is None else str(eligibility["min_age"]),
        max_age="" if eligibility.get("max_age") is None else str(eligibility["max_age"]),
        residents_only=bool(eligibility.get("residents_only")),
        districts="、".join(area.get("districts") or []),
        area_geometry=bool(area.get("geometry")),
        schedule=[
            {
                "weekday": s.get("weekday", ""),
                "weeks": [str(w) for w in s.get("weeks") or []],
                "start": s.get("start") or "",
                "end": s.get("end") or "",
            }
            for s in listing.get("schedule") or []
        ],
        version=str(listing.get("version") or ""),
    )
    return values


def form_from_request(form: Any) -> dict[str, Any]:
    """The edit form's values as the user sent them (kept on every error)."""
    values: dict[str, Any] = {
        k: form.get(k, "").strip()
        for k in (*TEXT_FIELDS, *NUMBER_FIELDS, *OPTIONAL_BOOLS, *REQUIRED_BOOLS)
    }
    values.update(
        id=form.get("id", "").strip(),
        kind=form.get("kind", "").strip(),
        municipality_code=form.get("municipality_code", "").strip(),
        targets=form.getlist("targets"),
        activities=form.get("activities", "").strip(),
        group_size=form.get("group_size", "").strip(),
        status=form.get("status", "published"),
        verified_at=form.get("verified_at", "").strip(),
        min_age=form.get("min_age", "").strip(),
        max_age=form.get("max_age", "").strip(),
        residents_only=bool(form.get("residents_only")),
        districts=form.get("districts", "").strip(),
        area_geometry=form.get("area_geometry") == "1",
        version=form.get("version", "").strip(),
    )
    indices = sorted(
        {int(m.group(1)) for key in form for m in [re.match(r"^schedule-(\d+)-weekday$", key)] if m}
    )
    rows = []
    for i in indices:
        row = {
            "weekday": form.get(f"schedule-{i}-weekday", "").strip(),
            "weeks": form.getlist(f"schedule-{i}-weeks"),
            "start": form.get(f"schedule-{i}-start", "").strip(),
            "end": form.get(f"schedule-{i}-end", "").strip(),
        }
        if row["weekday"] or row["start"] or row["end"] or row["weeks"]:
            rows.append(row)
    values["schedule"] = rows
    return values


def raw_from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The listing record (for Directory validation) the form's values describe."""
    raw: dict[str, Any] = {k: values[k] for k in (*TEXT_FIELDS, *NUMBER_FIELDS, *OPTIONAL_BOOLS)}
    for key in REQUIRED_BOOLS:
        if values.get(key):
            raw[key] = values[key]
    raw.update(
        kind=values["kind"],
        municipality_code=values["municipality_code"] or None,
        targets=values["targets"],
        activities=values["activities"],
        group_size=values["group_size"] or None,
        status=values["status"] if values["status"] in {"draft", "published"} else "published",
        verified_at=values["verified_at"] or None,
    )
    raw["schedule"] = [
        {
            "weekday": r["weekday"],
            "start": r["start"],
            "end": r["end"],
            **({"weeks": [int(w) for w in r["weeks"] if str(w).isdigit()]} if r["weeks"] else {}),
        }
        for r in values["schedule"]
    ]
    problems: list[Problem] = []
    eligibility: dict[str, Any] = {"residents_only": values["residents_only"]}
    for key in ("min_age", "max_age"):
        text = values[key]
        if not text:
            eligibility[key] = None
        elif text.isdigit():
            eligibility[key] = int(text)
        else:
            problems.append(
                Problem(
                    "eligibility",
                    f"{'下限' if key == 'min_age' else '上限'}の年齢は整数で入れてください",
                    None,
                    text,
                )
            )
    raw["eligibility"] = eligibility
    if not values.get("area_geometry"):
        districts = [
            d.strip() for d in re.split(r"[、,，;；\n]+", values["districts"]) if d.strip()
        ]
        raw["service_area"] = {"districts": districts} if districts else None
    if values.get("id"):
        raw["id"] = values["id"]
    if problems:
        raise ValidationFailed(problems)
    return raw


def form_context(values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    blank = {"weekday": "", "weeks": [], "start": "", "end": ""}
    rows = list(values["schedule"]) + [dict(blank) for _ in range(BLANK_SCHEDULE_ROWS)]
    lat, lon = values.get("lat"), values.get("lon")
    from resdb.web.basemap import map_settings

    map_config = map_settings(
        values.get("municipality_code") or current_app.config["DEFAULT_MUNICIPALITY"]
    )
    return {
        "values": values,
        "schedule_rows": rows,
        "kinds": KINDS,
        "targets": TARGETS,
        "weekdays": WEEKDAYS,
        "group_sizes": GROUP_SIZES,
        "map_config": map_config,
        "point": bool(lat and lon),
        "problems": {},
        **extra,
    }
