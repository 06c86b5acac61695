"""Residents' words for search, kept as data: weighted synonyms and one-way expansions, intent words and
vocabulary labels that map to kinds and targets, and the 町字/地区 names kept apart from listing names."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from resdb.domain.shipped import GEO_DIR, SEARCH_DATA_DIR
from resdb.domain.textnorm import _read_rows, normalize, synonym_groups
from resdb.domain.vocab import _TARGET_ALIASES, KINDS, NOT_PARTICIPATION_KINDS, TARGETS

# A hit through a synonym group scores this share of an exact hit's tier (see SearchIndex._word_scores);
# rows of expansions.csv and intents.csv scale it further by their own weight.
SYNONYM_WEIGHT = 0.8
TARGET_LABEL_WEIGHT = 0.8
KIND_LABEL_WEIGHT = 0.7
MIN_CONTAINED_PHRASE = 3  # an intent phrase this long also applies when the query word contains it
MIN_PLACE_NAME = 2  # shorter place names are left in listing names (too many false cuts)
_LABEL_SPLIT = re.compile(r"[・、/]")


@dataclass(frozen=True)
class Intent:
    """One thing a query word means besides its own text: a kind, a target, or another word."""

    field: str  # "kind", "target" or "term"
    value: str
    weight: float


# --- synonyms and expansions -------------------------------------------------------------------
@lru_cache(maxsize=1)
def _expansion_table() -> dict[str, dict[str, float]]:
    """query word → {other word: weight}: symmetric synonym groups at SYNONYM_WEIGHT, then one-way rows."""
    table: dict[str, dict[str, float]] = {}
    for group in synonym_groups():
        for word in group:
            row = table.setdefault(word, {})
            for other in group:
                if other != word:
                    row[other] = max(row.get(other, 0.0), SYNONYM_WEIGHT)
    for cells in _read_rows(SEARCH_DATA_DIR / "expansions.csv"):
        if len(cells) < 3 or not cells[0] or not cells[1]:
            continue
        query, term = normalize(cells[0]), normalize(cells[1])
        try:
            weight = float(cells[2])
        except ValueError:
            continue
        if query and term and query != term and 0 < weight <= 1:
            row = table.setdefault(query, {})
            row[term] = max(row.get(term, 0.0), SYNONYM_WEIGHT * weight)
    return table


def expansions_of(word: str) -> dict[str, float]:
    """{normalized term: weight} a query word also finds: 1.0 for the word itself, less for the rest.

    A term containing a stronger shorter term is dropped (its hits are already that term's hits)."""
    norm = normalize(word)
    if not norm:
        return {}
    weighted = {norm: 1.0}
    for term, weight in _expansion_table().get(norm, {}).items():
        weighted[term] = max(weighted.get(term, 0.0), weight)
    for intent in intents_of(norm):
        if intent.field == "term":
            term = normalize(intent.value)
            weighted[term] = max(weighted.get(term, 0.0), SYNONYM_WEIGHT * intent.weight)
    kept: dict[str, float] = {}
    for term in sorted(weighted, key=lambda t: (len(t), -weighted[t])):
        if any(shorter in term and kept[shorter] >= weighted[term] for shorter in kept):
            continue
        kept[term] = weighted[term]
    return kept


# --- intents and vocabulary labels ----------------------------------------------------------------
def _label_phrases(label: str) -> list[str]:
    return [part for part in _LABEL_SPLIT.split(label) if len(part) >= 2]


@lru_cache(maxsize=1)
def _intent_table() -> dict[str, tuple[Intent, ...]]:
    """phrase → intents: kind and target labels, target aliases (automatic) and resdb/data/search/intents.csv rows."""
    table: dict[str, dict[tuple[str, str], float]] = {}

    def add(phrase: str, field: str, value: str, weight: float) -> None:
        key = normalize(phrase)
        if not key:
            return
        row = table.setdefault(key, {})
        row[(field, value)] = max(row.get((field, value), 0.0), weight)

    for target, label in TARGETS.items():
        if target == "all":
            continue
        for phrase in _label_phrases(label):
            add(phrase, "target", target, TARGET_LABEL_WEIGHT)
    for alias, target in _TARGET_ALIASES.items():
        if target != "all":
            add(alias, "target", target, TARGET_LABEL_WEIGHT)
    for kind, label in KINDS.items():
        if kind in NOT_PARTICIPATION_KINDS or kind == "other":
            continue
        for phrase in _label_phrases(label):
            add(phrase, "kind", kind, KIND_LABEL_WEIGHT)
    # Import aliases of kinds are not used: some are narrower than the kind (サロン is one sort of 通いの場).
    for cells in _read_rows(SEARCH_DATA_DIR / "intents.csv"):
        if len(cells) < 4:
            continue
        phrase, field, value, raw_weight = cells[:4]
        try:
            weight = float(raw_weight)
        except ValueError:
            continue
        if (
            field == "kind"
            and value not in KINDS
            or field == "target"
            and (value not in TARGETS or value == "all")
        ):
            continue
        if field in ("kind", "target", "term") and 0 < weight <= 1:
            add(phrase, field, value, weight)
    return {
        phrase: tuple(Intent(field, value, weight) for (field, value), weight in row.items())
        for phrase, row in table.items()
    }


def intents_of(word: str) -> tuple[Intent, ...]:
    """What a normalized query word means as kinds, targets or other words (strongest per value)."""
    table = _intent_table()
    found = dict(((i.field, i.value), i) for i in table.get(word, ()))
    for phrase, intents in table.items():
        if len(phrase) >= MIN_CONTAINED_PHRASE and phrase != word and phrase in word:
            for intent in intents:
                key = (intent.field, intent.value)
                if key not in found or found[key].weight < intent.weight:
                    found[key] = intent
    return tuple(found.values())


# --- place names ------------------------------------------------------------------------------------
def _geo_folder(municipality_code: str | None) -> Path | None:
    code = (municipality_code or "").strip()
    if len(code) not in (5, 6) or not code.isdigit():
        return None
    folder = GEO_DIR / code[:5]
    return folder if folder.is_dir() else None


def _csv_column(path: Path, column: str) -> Iterable[str]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [row.get(column) or "" for row in csv.DictReader(fh)]


@lru_cache(maxsize=64)
def place_names(municipality_code: str | None) -> tuple[str, ...]:
    """Normalized 町字 and 地区 names of a municipality (from resdb/data/geo), longest first."""
    folder = _geo_folder(municipality_code)
    if folder is None:
        return ()
    names: set[str] = set()
    for raw in (
        *_csv_column(folder / "town_points_geolonia.csv", "town"),
        *_csv_column(folder / "chiku.csv", "chiku"),
    ):
        name = normalize(raw)
        base = re.sub(r"[一二三四五六七八九十\d]+丁目$", "", name)
        for candidate in (name, base):
            if len(candidate) >= MIN_PLACE_NAME:
                names.add(candidate)
    return tuple(sorted(names, key=len, reverse=True))


@lru_cache(maxsize=64)
def _place_pattern(municipality_code: str | None) -> re.Pattern[str] | None:
    names = place_names(municipality_code)
    return re.compile("|".join(re.escape(n) for n in names)) if names else None


def split_place_names(text: str | None, municipality_code: str | None) -> tuple[str, str]:
    """(text without the municipality's 町字/地区 names, the names found), both normalized.

    「江畑町集会所」 → ("集会所", "江畑町"): a search for 畑 then no longer matches the place's name by its
    one-character n-gram, while a search for the place name itself still does (through the place field)."""
    norm = normalize(text)
    pattern = _place_pattern(municipality_code)
    if not norm or pattern is None:
        return norm, ""
    found = pattern.findall(norm)
    if not found:
        return norm, ""
    return pattern.sub(" ", norm), " ".join(found)
