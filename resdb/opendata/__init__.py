"""自治体標準オープンデータセット formats in and out: イベント一覧, 介護サービス事業所一覧, 子育て施設一覧.

Reading maps a table (headers + rows) to listing records for `Directory.import_records`; a row that cannot
become a listing carries a Japanese `__row_error__` naming the field and what to write instead. Writing
gives the dataset's current header set, one row per listing (イベント一覧: one row per recurring schedule).

The format families live in `events` and `facilities` (cells shared in `cells`); here the registry
(`FORMATS`, `detect`), reading and writing a named format, and encoding the text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from resdb.opendata.cells import CODE, Table, _header, guess_kind, prefecture_name
from resdb.opendata.events import EVENT_HEADERS, infer_pattern, read_events, write_events
from resdb.opendata.facilities import (
    KAIGO_HEADERS,
    KOSODATE_HEADERS,
    read_facilities,
    write_kaigo,
    write_kosodate,
)


# --- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    name: str
    title: str
    headers: tuple[str, ...]

    def selects(self, listing: dict[str, Any]) -> bool:
        """Whether a listing belongs in this dataset when exporting."""
        if self.name == "event":
            return bool(listing.get("schedule"))
        targets = set(listing.get("targets") or [])
        if self.name == "kaigo":
            return "elderly" in targets
        return listing.get("kind") == "kosodate" or bool(targets & {"children", "parents"})


FORMATS: dict[str, Format] = {
    "event": Format("event", "イベント一覧", EVENT_HEADERS),
    "kaigo": Format("kaigo", "介護サービス事業所一覧", KAIGO_HEADERS),
    "kosodate": Format("kosodate", "子育て施設一覧", KOSODATE_HEADERS),
}


def detect(headers: list[str]) -> str | None:
    """Which municipal dataset a header row belongs to (None: the generic listing headers)."""
    names = {_header(h) for h in headers}
    if "イベント名" in names:
        return "event"
    if names & {"実施サービス", "事業所番号", "法人の名称"} and "名称" in names:
        return "kaigo"
    if names & {"受入年齢", "収容定員", "一時預かりの有無"} and "名称" in names:
        return "kosodate"
    return None


def read_table(
    fmt: str,
    headers: list[str],
    rows: Iterable[tuple[int, list[Any]]],
    *,
    default_kind: str | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    table = Table(list(headers), rows)
    if fmt == "event":
        return read_events(table, default_kind=default_kind)
    return read_facilities(table, fmt, default_kind=default_kind)


def rows_for(
    fmt: str, listings: Iterable[dict[str, Any]], *, today: date | None = None
) -> Iterator[list[str]]:
    chosen = [x for x in listings if FORMATS[fmt].selects(x)]
    if fmt == "event":
        return write_events(chosen, today=today)
    return write_kaigo(chosen) if fmt == "kaigo" else write_kosodate(chosen)


def export_text(
    fmt: str,
    listings: Iterable[dict[str, Any]],
    *,
    today: date | None = None,
    municipality_names: dict[str, str] | None = None,
) -> str:
    """The dataset as CSV text (CRLF; cells that look like formulas neutralised); `municipality_names`
    (6-digit code → 「射水市」) fills 市区町村名."""
    from resdb.exchange import safe_cell

    if municipality_names:
        listings = (
            {
                **x,
                "__municipality_name__": municipality_names.get(
                    x.get("municipality_code") or "", ""
                ),
            }
            for x in listings
        )

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FORMATS[fmt].headers)
    for row in rows_for(fmt, listings, today=today):
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


class EncodeProblem(ValueError):
    """A character the chosen encoding (Shift_JIS) cannot hold; the message names it."""


def encode(text: str, encoding: str) -> bytes:
    """UTF-8 with BOM ("utf-8-sig") or Shift_JIS ("cp932"); a character Shift_JIS lacks is named, not dropped."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise EncodeProblem(
            f"{line}行目の文字「{exc.object[exc.start : exc.end]}」は Shift_JIS で書けません。"
            "UTF-8（BOM付き）で書き出してください"
        ) from None


def template_text(fmt: str) -> str:
    """An empty file with the header row (a downloadable template)."""
    return export_text(fmt, [])


__all__ = [
    "CODE",
    "EVENT_HEADERS",
    "FORMATS",
    "KAIGO_HEADERS",
    "KOSODATE_HEADERS",
    "EncodeProblem",
    "Format",
    "detect",
    "encode",
    "export_text",
    "guess_kind",
    "infer_pattern",
    "prefecture_name",
    "read_table",
    "rows_for",
    "template_text",
]
