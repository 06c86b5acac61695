"""File formats in and out (over 500 lines: the readers and writers share one header table and one
cell folding, and a format reads best next to its writer): CSV (English or 自治体標準オープンデータセット headers;
UTF-8/BOM/Shift_JIS), JSON, GeoJSON, Excel in; CSV, JSON, GeoJSON and Open Referral HSDS out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from resdb.domain.vocab import KINDS, WEEKDAYS
from resdb.fields import ELIGIBILITY_HEADERS, csv_headers, spec
from resdb.intake import CLI_LIMITS, FileProblem, Limits, check_size, check_xlsx, csv_rows
from resdb.validation import Problem

# Japanese headers → listing keys: every alias the field declaration names (the first one is exported).
JAPANESE_HEADERS: dict[str, str] = csv_headers()
ELIGIBILITY_KEYS = tuple(ELIGIBILITY_HEADERS)
JSON_CELL_KEYS = ("schedule", "eligibility", "service_area")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_FIELDS = (
    "id",
    "name",
    "name_kana",
    "kind",
    "description",
    "municipality_code",
    "address",
    "lat",
    "lon",
    "district",
    "venue",
    "operator",
    "phone",
    "email",
    "url",
    "targets",
    "activities",
    "schedule",
    "cost_yen",
    "capacity",
    "accepts_referrals",
    "group_size",
    "barrier_free",
    "pickup",
    "reservation_required",
    "holidays_closed",
    "eligibility",
    "service_area",
    "verified_at",
    "source",
    "source_detail",
    "is_sample",
    "notes",
    "source_url",
    "source_read_at",
    "location_private",
)
assert all(spec(name).writable for name in CSV_FIELDS)  # every column is a declared, writable field


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Shift_JIS (cp932)."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileProblem(
        Problem("file", "文字コードを判別できません（UTF-8 または Shift_JIS で保存してください）")
    )


def _header_key(header: str) -> str | None:
    name = (header or "").strip().lstrip("\ufeff")
    if name in JAPANESE_HEADERS:
        return JAPANESE_HEADERS[name]
    lowered = name.lower()
    if lowered in CSV_FIELDS or lowered in ELIGIBILITY_KEYS or lowered == "status":
        return lowered
    return None


def _fold_row(row: dict[str, Any]) -> dict[str, Any]:
    """Flat spreadsheet cells → the listing shape (eligibility columns nested, JSON cells parsed)."""
    record: dict[str, Any] = {}
    eligibility: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        if value is None:
            continue
        if key in ELIGIBILITY_KEYS:
            eligibility[key] = value
        elif key in JSON_CELL_KEYS and isinstance(value, str) and value[:1] in "[{":
            try:
                record[key] = json.loads(value)
            except json.JSONDecodeError:
                record[key] = value  # validation names it
        else:
            record[key] = value
    if eligibility:
        given = record.get("eligibility")
        base: dict[str, Any] = given if isinstance(given, dict) else {}
        record["eligibility"] = {**base, **eligibility}
    return record


Records = Iterable[tuple[int, dict[str, Any]]]


def _table_records(
    headers: list[str], rows: Iterable[tuple[int, list[Any]]], *, default_kind: str | None = None
) -> tuple[Records, list[Problem]]:
    """Lazy (row number, raw record) pairs for a table, and warnings about its header row."""
    from resdb import opendata

    municipal = opendata.detect(headers)
    if (
        municipal is not None
    ):  # 自治体標準オープンデータセット: イベント一覧, 介護サービス事業所一覧, 子育て施設一覧
        return opendata.read_table(municipal, headers, rows, default_kind=default_kind), []
    keys = [_header_key(h) for h in headers]
    warnings = [
        Problem(str(h), "この列は使われません（不明な見出し）", 1)
        for h, k in zip(headers, keys, strict=True)
        if k is None and str(h or "").strip()
    ]
    if "name" not in keys:
        raise FileProblem(
            Problem(
                "name",
                "見出し行に 名称（name）の列がありません。1行目に「名称」と書いてください",
                1,
            )
        )
    if "kind" not in keys and default_kind is None:
        raise FileProblem(
            Problem(
                "kind",
                "見出し行に 種別（kind）の列がありません。1行目に「種別」の列を加え、"
                "通いの場・居場所 などを書いてください",
                1,
            )
        )

    def records() -> Records:
        for row_no, cells in rows:
            if not any(str(c).strip() for c in cells if c is not None):
                continue
            if len(cells) > len(headers) and any(
                str(c).strip() for c in cells[len(headers) :] if c is not None
            ):
                yield (
                    row_no,
                    {
                        "__row_error__": f"列の数が見出し（{len(headers)}列）より多くなっています（{len(cells)}列）。"
                        'セルの中の , は引用符 " で囲んでください'
                    },
                )
                continue
            row = {k: v for k, v in zip(keys, cells, strict=False) if k is not None}
            if default_kind and not row.get("kind"):
                row["kind"] = default_kind
            yield row_no, _fold_row(row)

    return records(), warnings


def read_csv_text(
    text: str, *, default_kind: str | None = None
) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    records, warnings = read_csv_stream(io.BytesIO(text.encode("utf-8")), default_kind=default_kind)
    return list(records), warnings


def read_csv_stream(
    stream: IO[bytes], *, default_kind: str | None = None, limits: Limits = CLI_LIMITS
) -> tuple[Records, list[Problem]]:
    """A CSV (or TSV) read lazily: encoding detected for the whole file, rows and cells within `limits`."""
    headers, rows = csv_rows(stream, limits)
    return _table_records(headers, rows, default_kind=default_kind)


def read_xlsx(
    data: bytes | IO[bytes], *, default_kind: str | None = None, limits: Limits = CLI_LIMITS
) -> tuple[Records, list[Problem]]:
    """The first sheet, after its cells are counted (a zip bomb is refused before any row is expanded)."""
    from openpyxl import load_workbook

    check_xlsx(data, limits)
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    if not isinstance(data, bytes):
        source.seek(0)
    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds
        raise FileProblem(
            Problem(
                "file",
                "Excel ファイル（.xlsx）として読めません。Excel で開いて .xlsx 形式で保存し直してください",
            )
        ) from None
    sheet = workbook.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    try:
        headers = [str(h) if h is not None else "" for h in next(rows)]
    except StopIteration:
        raise FileProblem(
            Problem("file", "シートが空です。1行目に見出し（名称、種別 など）を書いてください")
        ) from None
    return _table_records(
        headers, ((i, list(r)) for i, r in enumerate(rows, start=2)), default_kind=default_kind
    )


def read_json_data(payload: Any) -> list[tuple[int, dict[str, Any]]]:
    if isinstance(payload, dict) and payload.get("type") == "FeatureCollection":
        records = []
        for i, feature in enumerate(payload.get("features") or [], start=1):
            properties = dict(feature.get("properties") or {}) if isinstance(feature, dict) else {}
            geometry = (feature.get("geometry") if isinstance(feature, dict) else None) or {}
            if (
                geometry.get("type") == "Point"
                and isinstance(geometry.get("coordinates"), list)
                and len(geometry["coordinates"]) >= 2
            ):
                lon, lat = geometry["coordinates"][:2]
                properties.setdefault("lat", lat)
                properties.setdefault("lon", lon)
            records.append((i, properties))
        return records
    if isinstance(payload, dict) and isinstance(payload.get("items"), list):
        payload = payload["items"]
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise FileProblem(Problem("file", "JSON は掲載情報の配列（[{...}, {...}]）にしてください"))
    records = []
    for i, item in enumerate(payload, start=1):
        records.append(
            (
                i,
                item
                if isinstance(item, dict)
                else {"__row_error__": f"{i}件目がオブジェクト（{{...}}）ではありません"},
            )
        )
    return records


def iter_file(
    path: Path, *, default_kind: str | None = None, limits: Limits = CLI_LIMITS
) -> tuple[Records, list[Problem]]:
    """(row number, raw record) pairs, lazily for CSV (memory stays flat), and file-level warnings."""
    path = Path(path)
    check_size(path.stat().st_size, limits)
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        stream = path.open("rb")
        return read_csv_stream(stream, default_kind=default_kind, limits=limits)
    if suffix in {".xlsx", ".xlsm"}:
        return read_xlsx(path.open("rb"), default_kind=default_kind, limits=limits)
    return read_bytes(path.read_bytes(), path.name, default_kind=default_kind, limits=limits)


def read_file(
    path: Path, *, default_kind: str | None = None, limits: Limits = CLI_LIMITS
) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """(row number, raw record) pairs and file-level warnings; FileProblem when unreadable."""
    records, warnings = iter_file(path, default_kind=default_kind, limits=limits)
    return list(records), warnings


def read_bytes(
    data: bytes, filename: str, *, default_kind: str | None = None, limits: Limits = CLI_LIMITS
) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    check_size(len(data), limits)
    suffix = Path(filename).suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        records, warnings = read_xlsx(data, default_kind=default_kind, limits=limits)
        return list(records), warnings
    if suffix in {".json", ".geojson"}:
        if not data.strip():
            return [], []  # an empty file holds no listings (not an error)
        try:
            payload = json.loads(decode(data))
        except json.JSONDecodeError as exc:
            raise FileProblem(
                Problem(
                    "file",
                    f"JSON として読めません（{exc.lineno}行目 {exc.colno}文字目）。"
                    '括弧 {} [] と , " の対応を確かめてください',
                    exc.lineno,
                )
            ) from None
        return read_json_data(payload), []
    if suffix in {".csv", ".txt", ".tsv"}:
        records, warnings = read_csv_stream(
            io.BytesIO(data), default_kind=default_kind, limits=limits
        )
        return list(records), warnings
    raise FileProblem(
        Problem(
            "file",
            f"対応していない形式です（{suffix}）。CSV, JSON, GeoJSON, Excel (.xlsx) が使えます",
        )
    )


# --- export ---------------------------------------------------------------------------------
def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (=, +, -, @ neutralised with ')."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ";".join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def to_csv(listings: Iterable[dict[str, Any]], *, japanese_headers: bool = False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    reverse: dict[str, str] = {}
    for header, key in JAPANESE_HEADERS.items():
        reverse.setdefault(key, header)
    writer.writerow([reverse.get(f, f) if japanese_headers else f for f in CSV_FIELDS])
    for listing in listings:
        writer.writerow([safe_cell(_csv_value(listing.get(f))) for f in CSV_FIELDS])
    return out.getvalue()


def to_json(listings: Iterable[dict[str, Any]]) -> str:
    return json.dumps(list(listings), ensure_ascii=False, indent=1)


def feature(
    listing: dict[str, Any],
    properties: Iterable[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one GeoJSON feature builder (file exports and the map): a Point from lat/lon (None without one),
    the listing's `properties` (all but lat/lon when None), `kind_label`, then `extra` over them."""
    props = {
        k: v
        for k, v in listing.items()
        if k not in {"lat", "lon"} and (properties is None or k in properties)
    }
    props["kind_label"] = KINDS.get(listing.get("kind") or "", "")
    if extra:
        props.update(extra)
    geometry = None
    if listing.get("lat") is not None and listing.get("lon") is not None:
        geometry = {"type": "Point", "coordinates": [listing["lon"], listing["lat"]]}
    return {"type": "Feature", "id": listing["id"], "geometry": geometry, "properties": props}


def to_geojson(listings: Iterable[dict[str, Any]]) -> str:
    return json.dumps(
        {"type": "FeatureCollection", "features": [feature(x) for x in listings]},
        ensure_ascii=False,
    )


_HSDS_DAYS = {
    "mon": "MO",
    "tue": "TU",
    "wed": "WE",
    "thu": "TH",
    "fri": "FR",
    "sat": "SA",
    "sun": "SU",
}


HSDS_UNIT = {
    "id": "unit:persons",
    "name": "人",
    "scheme": "resdb",
    "identifier": "persons",
    "uri": None,
}


def _hsds_datetime(value: Any) -> str | None:
    """An ISO 8601 date-time (HSDS `updated`): dates become midnight Asia/Tokyo."""
    if not value:
        return None
    text = str(value)
    if "T" in text or " " in text:
        text = text.replace(" ", "T")
        return text if text.endswith("Z") or "+" in text[10:] else text + "Z"
    return f"{text}T00:00:00+09:00"


def to_hsds(
    listings: Iterable[dict[str, Any]], capacity_reports: dict[str, dict[str, Any]] | None = None
) -> str:
    """Open Referral HSDS 3.1 style: organizations, services (with `service_capacity`: open places and when they
    were reported), locations, service_at_locations, schedules and phones as related arrays (stable ids). A venue
    record (kind `venue`) is a location only; a service naming that venue is linked to its location."""
    from resdb.capacity import hsds_service_capacity
    from resdb.venues import VENUE_KIND, venue_index, venue_of

    organizations: dict[str, dict[str, Any]] = {}
    services, locations, links, schedules, phones, capacities = [], [], [], [], [], []
    listings = list(listings)
    venues = venue_index(listings)

    def location_of(listing: dict[str, Any], location_id: str) -> dict[str, Any]:
        return {
            "id": location_id,
            "location_type": "physical",
            "name": listing.get("venue") or listing["name"],
            "latitude": listing.get("lat"),
            "longitude": listing.get("lon"),
            "addresses": [
                {
                    "address_1": listing.get("address"),
                    "city": None,
                    "country": "JP",
                    "address_type": "physical",
                }
            ]
            if listing.get("address")
            else [],
        }

    for listing in listings:
        if listing.get("kind") == VENUE_KIND:
            locations.append(location_of(listing, f"loc:{listing['id']}"))
    for listing in listings:
        if listing.get("kind") == VENUE_KIND:
            continue
        org_id = None
        if listing.get("operator"):
            org_id = "org:" + listing["operator"]
            organizations.setdefault(
                org_id, {"id": org_id, "name": listing["operator"], "description": None}
            )
        service_id = listing["id"]
        services.append(
            {
                "id": service_id,
                "organization_id": org_id,
                "name": listing["name"],
                "alternate_name": listing.get("name_kana"),
                "description": listing.get("description"),
                "url": listing.get("url"),
                "email": listing.get("email"),
                "status": "active",
                "fees_description": None
                if listing.get("cost_yen") is None
                else f"{listing['cost_yen']}円",
                "eligibility_description": ", ".join(listing.get("targets") or []) or None,
                "minimum_age": (listing.get("eligibility") or {}).get("min_age"),
                "maximum_age": (listing.get("eligibility") or {}).get("max_age"),
                "last_modified": listing.get("updated_at"),
                "assured_date": listing.get("verified_at"),
                "attributes": [{"taxonomy": "resdb-kind", "value": listing.get("kind")}]
                + [{"taxonomy": "resdb-target", "value": t} for t in listing.get("targets") or []],
                "capacities": hsds_service_capacity(
                    listing, (capacity_reports or {}).get(service_id)
                ),
            }
        )
        venue = venue_of(listing, venues)
        if venue is not None:
            location_id = f"loc:{venue['id']}"
        else:
            location_id = f"loc:{service_id}"
            locations.append(location_of(listing, location_id))
        link_id = f"sal:{service_id}"
        links.append({"id": link_id, "service_id": service_id, "location_id": location_id})
        for i, entry in enumerate(listing.get("schedule") or []):
            schedules.append(
                {
                    "id": f"sch:{service_id}:{i}",
                    "service_id": service_id,
                    "freq": "MONTHLY" if entry.get("weeks") else "WEEKLY",
                    "byday": ",".join(f"{w}{_HSDS_DAYS[entry['weekday']]}" for w in entry["weeks"])
                    if entry.get("weeks")
                    else _HSDS_DAYS[entry["weekday"]],
                    "opens_at": entry["start"],
                    "closes_at": entry["end"],
                    "timezone": 9,
                    "description": f"{WEEKDAYS[entry['weekday']]}曜 {entry['start']}〜{entry['end']}",
                }
            )
        if listing.get("capacity") is not None:
            # When the host reported the number (a dated capacity report), that is when it was updated.
            reported = (
                services[-1]["capacities"][0]["updated"] if services[-1]["capacities"] else None
            )
            capacities.append(
                {
                    "id": f"cap:{service_id}",
                    "service_id": service_id,
                    "unit_id": HSDS_UNIT["id"],
                    "available": listing["capacity"],
                    "maximum": None,
                    "description": "参加支援の紹介で受け入れられる人数",
                    "updated": _hsds_datetime(
                        reported or listing.get("updated_at") or listing.get("verified_at")
                    ),
                }
            )
        if listing.get("phone"):
            phones.append(
                {
                    "id": f"ph:{service_id}",
                    "service_id": service_id,
                    "number": listing["phone"],
                    "type": "voice",
                }
            )
    return json.dumps(
        {
            "hsds_version": "3.1",
            "organizations": list(organizations.values()),
            "services": services,
            "locations": locations,
            "service_at_locations": links,
            "schedules": schedules,
            "phones": phones,
            "service_capacity": capacities,
            "units": [HSDS_UNIT] if capacities else [],
        },
        ensure_ascii=False,
        indent=1,
    )


EXPORTERS = {"csv": to_csv, "json": to_json, "geojson": to_geojson, "hsds": to_hsds}
