"""The one field declaration holds: the table, the migrated database (both backends), validation, the API
schema, the CSV headers and the editor labels all say what `resdb.fields` says."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Integer, Text, inspect

from resdb import fields
from resdb.exchange import CSV_FIELDS, JAPANESE_HEADERS
from resdb.models import Listing
from resdb.validation import validate_listing

STORED = [s for s in fields.LISTING_FIELDS if s.name in Listing.__table__.c]  # type: ignore[attr-defined]


def test_every_declared_field_is_a_column_and_back() -> None:
    columns = set(Listing.__table__.c.keys())  # type: ignore[attr-defined]
    declared = {s.name for s in fields.LISTING_FIELDS}
    assert declared <= columns
    assert columns - declared == {"organization_id", "created_at"}  # the system's own bookkeeping


@pytest.mark.parametrize("field_spec", STORED, ids=lambda s: s.name)
def test_table_follows_the_declaration(field_spec: fields.FieldSpec) -> None:
    column = Listing.__table__.c[field_spec.name]  # type: ignore[attr-defined]
    if field_spec.type == "str":
        assert column.type.length == field_spec.max_length
    if field_spec.type == "text":
        assert isinstance(column.type, Text)
    if field_spec.type == "int":
        assert isinstance(column.type, Integer)
        assert (
            field_spec.maximum is not None and field_spec.maximum <= 2**31 - 1
        )  # fits every backend's INTEGER
    assert column.nullable == (field_spec.nullable and field_spec.name != "id")


def test_migrated_database_follows_the_declaration(directory: Any) -> None:
    """The schema the migrations build (SQLite and PostgreSQL) has the declared lengths and nullability."""
    found = {c["name"]: c for c in inspect(directory.engine).get_columns("listing")}
    for field_spec in STORED:
        column = found[field_spec.name]
        if field_spec.type == "str":
            assert column["type"].length == field_spec.max_length, field_spec.name
        assert column["nullable"] == (field_spec.nullable and field_spec.name != "id"), (
            field_spec.name
        )


@pytest.mark.parametrize(
    "field_spec",
    [s for s in fields.LISTING_FIELDS if s.max_length and s.writable],
    ids=lambda s: s.name,
)
def test_validation_refuses_one_past_every_length(field_spec: fields.FieldSpec) -> None:
    if field_spec.name in {"id", "kind", "group_size", "status", "municipality_code"}:
        pytest.skip("checked by its own pattern or vocabulary")
    value = ("https://e.jp/" if field_spec.name in {"url", "source_url"} else "") + "あ" * (
        field_spec.max_length + 1
    )
    _clean, problems = validate_listing(
        {field_spec.name: value[: field_spec.max_length + 1]}, partial=True
    )
    assert [p.field for p in problems] == [field_spec.name]
    assert "文字以内" in problems[0].message
    _clean, problems = validate_listing(
        {field_spec.name: value[: field_spec.max_length]}, partial=True
    )
    assert problems == []


@pytest.mark.parametrize(
    "field_spec",
    [s for s in fields.LISTING_FIELDS if s.type == "int" and s.writable],
    ids=lambda s: s.name,
)
def test_validation_refuses_numbers_past_the_bounds(field_spec: fields.FieldSpec) -> None:
    assert field_spec.maximum is not None
    for value in (int(field_spec.maximum) + 1, 2**31, 2**63, -1):
        _clean, problems = validate_listing({field_spec.name: value}, partial=True)
        assert [p.field for p in problems] == [field_spec.name], value
    clean, problems = validate_listing({field_spec.name: int(field_spec.maximum)}, partial=True)
    assert problems == [] and clean[field_spec.name] == field_spec.maximum


def test_unstorable_text_and_required_booleans() -> None:
    for raw in (
        {"name": "サロン\x00"},
        {"venue": "会場\ud800"},
        {"activities": ["体操", "x\x00"]},
        {"schedule": [{"weekday": "mon\x00", "start": "10:00", "end": "11:00"}]},
    ):
        _clean, problems = validate_listing(raw, partial=True)
        assert [p.field for p in problems] == list(raw), raw
        assert "使えない文字" in problems[0].message
    _clean, problems = validate_listing({"accepts_referrals": None}, partial=True)
    assert [p.field for p in problems] == ["accepts_referrals"]
    clean, problems = validate_listing(
        {"accepts_referrals": ""}, partial=True
    )  # a blank cell keeps the default
    assert problems == [] and "accepts_referrals" not in clean


def test_api_schema_csv_headers_and_labels_derive_from_the_declaration() -> None:
    from resdb.web.editor import FIELD_LABELS
    from resdb.web.schemas import ListingCreate

    properties = ListingCreate.model_json_schema()["properties"]
    for field_spec in fields.LISTING_FIELDS:
        assert FIELD_LABELS[field_spec.name] == field_spec.label
        for header in field_spec.headers:
            assert JAPANESE_HEADERS[header] == field_spec.name
        if not field_spec.writable or field_spec.name in {"id", "status"}:
            continue
        schema = properties[field_spec.name]
        options = schema.get("anyOf", [schema])[0]
        if field_spec.type in {"str", "text"} and field_spec.name not in {
            "name",
            "kind",
        }:  # kind: an enum
            assert options.get("maxLength") == field_spec.max_length, field_spec.name
        if field_spec.type == "int":
            assert (options["minimum"], options["maximum"]) == (
                field_spec.minimum,
                field_spec.maximum,
            )
    assert properties["name"]["maxLength"] == fields.max_length("name")
    assert set(CSV_FIELDS) <= {s.name for s in fields.LISTING_FIELDS}


def test_json_depth_scan() -> None:
    assert not fields.json_depth_exceeds("[" * 32 + "]" * 32)
    assert fields.json_depth_exceeds("[" * 33 + "]" * 33)
    assert fields.json_depth_exceeds(b'{"a":' * 980 + b"1" + b"}" * 980)
    assert not fields.json_depth_exceeds(
        '{"a": "' + "[" * 500 + '\\"{{{"}'
    )  # brackets inside strings do not count
