"""What the index holds of a listing: the whoosh schema, the n-gram tokenizer, the fields of one listing
and the checks a value must pass before whoosh sees it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from whoosh import columns
from whoosh.analysis import Token, Tokenizer
from whoosh.fields import COLUMN, ID, KEYWORD, TEXT, Schema

from resdb.domain import schedule as schedule_mod
from resdb.domain.textnorm import ngrams, normalize
from resdb.queryterms import split_place_names

# Field weights: a hit in the name (or its reading) ranks above activities, then the description. `place` holds
# the 町字/地区 names cut out of the name (bigrams only: 「畑」 does not match 江畑町, 「江畑」 does).
FIELD_WEIGHTS: dict[str, float] = {"name": 6.0, "place": 6.0, "act": 2.0, "body": 1.0}
# Score tiers of one query word: a listing containing the word itself scores FIELD_WEIGHTS (≥ 1); one found only
# through a synonym, expansion, intent or vocabulary label scores at most EXPANDED_TIER (× its weight), so that
# even after the name-length factor of the ordering (at most ×2) an exact hit always ranks first.
EXPANDED_TIER = 0.5
VOCAB_FIELDS: dict[str, str] = {"kind": "kind", "target": "targets"}
FUZZY_CUTOFF = 80.0
POSTINGS_CACHE = 4096
MICRO = 1_000_000
# Coordinates are stored shifted into unsigned range (micro-degrees + offset), so every point on Earth fits.
LAT_OFFSET = 90.0
LON_OFFSET = 180.0
COST_CEILING = 2**32 - 2  # the cost column's largest value (+1 is stored; 0 = unknown)
_NUMERIC_FIELDS = ("lat", "lon", "cost")


class GramTokenizer(Tokenizer):  # type: ignore[misc]  # whoosh ships no types: its base is Any
    """N-grams of the normalized text (finds words inside compounds; kana/width/variant-blind)."""

    def __init__(self, sizes: tuple[int, ...] = (1, 2)) -> None:
        self.sizes = sizes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GramTokenizer) and other.sizes == self.sizes

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Any]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for gram, pos in ngrams(value, self.sizes):
            token.text = gram
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos + pos
            if chars:
                token.startchar = start_char + pos
                token.endchar = start_char + pos + len(gram)
            yield token


class TextColumn(COLUMN):  # type: ignore[misc]  # whoosh ships no types: its base is Any
    """A per-document text value kept as a column only (never indexed as a term)."""

    def __init__(self) -> None:
        super().__init__(columns.VarBytesColumn())

    def to_column_value(self, value: str) -> bytes:
        return value.encode("utf-8")

    def from_column_value(self, value: bytes) -> str:
        return value.decode("utf-8")


def _unsigned_column() -> COLUMN:
    return COLUMN(columns.NumericColumn("I", default=0))


def _schema() -> Schema:
    return Schema(
        id=ID(unique=True, sortable=True),
        name=TEXT(analyzer=GramTokenizer((1, 2)), phrase=False),
        place=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        act=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        body=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        kind=ID,
        targets=KEYWORD,
        days=KEYWORD,
        flags=KEYWORD,
        municipality=ID,
        # Columns only (search reads them per document, never as terms): the normalized name, and
        # unsigned integers (whoosh float columns are unreliable): cost + 1 (0 = unknown) and
        # coordinates in micro-degrees shifted into unsigned range.
        name_norm=TextColumn(),
        cost=_unsigned_column(),
        lat=_unsigned_column(),
        lon=_unsigned_column(),
    )


def listing_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Index fields of one listing (contract-shaped dict)."""
    cost = doc.get("cost_yen")
    lat, lon = doc.get("lat"), doc.get("lon")
    flags = [name for name in ("barrier_free", "pickup") if doc.get(name)]
    if doc.get("is_sample"):
        flags.append("sample")
    if lat is not None and lon is not None:
        flags.append("point")
    name, places = split_place_names(doc.get("name"), doc.get("municipality_code"))
    return {
        "id": doc["id"],
        "name": " ".join(filter(None, [name, doc.get("name_kana")])),
        "place": places,
        "act": " ".join(doc.get("activities") or []),
        "body": " ".join(
            filter(
                None,
                [
                    doc.get("description"),
                    doc.get("operator"),
                    doc.get("venue"),
                    doc.get("district"),
                    doc.get("address"),
                ],
            )
        ),
        "kind": doc.get("kind") or "other",
        "targets": " ".join(doc.get("targets") or []),
        "days": " ".join(schedule_mod.weekday_terms(doc.get("schedule") or [])),
        "flags": " ".join(flags),
        "municipality": doc.get("municipality_code") or "",
        "name_norm": normalize(doc.get("name")) or " ",
        "cost": _cost_column(cost),
        "lat": round((float(lat) + LAT_OFFSET) * MICRO) if lat is not None else 0,
        "lon": round((float(lon) + LON_OFFSET) * MICRO) if lon is not None else 0,
    }


def _cost_column(cost: Any) -> int:
    """cost + 1 (0 = unknown); an out-of-range cost is left as is for `_check_fields` to report."""
    if cost is None:
        return 0
    try:
        return int(cost) + 1
    except (TypeError, ValueError):
        return -1


def _check_fields(fields: dict[str, Any]) -> str | None:
    """Why whoosh would refuse these fields (None when it will not): one bad value must never stop
    the index, so it is found before the writer sees it."""
    for name in _NUMERIC_FIELDS:
        value = fields[name]
        if not isinstance(value, int) or not 0 <= value < 2**32:
            return f"{name} の値 {value!r} は索引に入りません"
    for name, value in fields.items():
        if isinstance(value, str) and "\x00" in value:
            return f"{name} にNUL文字があります"
    return None


def _tiebreak(listing_id: str) -> int:
    """A stable 63-bit number per listing id: the last key of the result order, the same on every
    worker and host (document numbers are not)."""
    return int.from_bytes(hashlib.blake2b(listing_id.encode(), digest_size=8).digest(), "big") >> 1
