"""Japanese text folding shared by search, matching and place-name lookup (pure, no I/O beyond data files)."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import jaconv

from resdb.domain.shipped import SEARCH_DATA_DIR

# Characters that separate words for our purposes (after NFKC).
_SEPARATORS = re.compile(
    r"[\s\u3000、。・,.，．/／()（）「」『』【】\[\]{}<>＜＞\"'“”‘’!！?？:：;；~〜～\-‐―－_|*&^%$#@+=`]+"
)


def _read_rows(path: Path) -> list[list[str]]:
    """CSV rows of a data file, skipping blank lines and `#` comments."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [
            [cell.strip() for cell in row]
            for row in csv.reader(line for line in fh if line.strip() and not line.startswith("#"))
        ]


def fold(text: str | None) -> str:
    """Width, case and kana folding: NFKC, lower case, katakana to hiragana, no variant mapping."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = folded.replace("ヶ", "ケ").replace("ヵ", "カ")
    return jaconv.kata2hira(folded)


@lru_cache(maxsize=1)
def _variant_table() -> tuple[tuple[str, str], ...]:
    pairs = []
    for row in _read_rows(SEARCH_DATA_DIR / "variants.csv"):
        if len(row) >= 2 and row[0] and fold(row[0]) != fold(row[1]):
            pairs.append((fold(row[0]), fold(row[1])))
    # Longest first so that 引きこもり is replaced before shorter pieces.
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
    return tuple(pairs)


def normalize(text: str | None) -> str:
    """Canonical search form: folded, spelling variants unified (子供→子ども, 曾→曽, 百歳→100歳…)."""
    folded = fold(text)
    for source, target in _variant_table():
        if source in folded:
            folded = folded.replace(source, target)
    return folded


def words(text: str | None) -> list[str]:
    """Normalized words of a user query or a field: separators and query syntax become breaks."""
    return [w for w in _SEPARATORS.split(normalize(text)) if w]


def ngrams(text: str | None, sizes: tuple[int, ...] = (1, 2)) -> Iterator[tuple[str, int]]:
    """(gram, position) pairs of each normalized word: unigrams and bigrams by default."""
    position = 0
    for word in words(text):
        for size in sizes:
            if len(word) < size:
                continue
            for start in range(len(word) - size + 1):
                yield word[start : start + size], position + start
        position += len(word) + 1


def query_grams(word: str) -> list[str]:
    """Index terms a normalized query word must all match: its bigrams, or itself when one char."""
    if len(word) <= 1:
        return [word] if word else []
    return [word[i : i + 2] for i in range(len(word) - 1)]


@lru_cache(maxsize=1)
def synonym_groups() -> tuple[frozenset[str], ...]:
    """The domain synonym groups from data/search/synonyms.csv, normalized."""
    groups = []
    for row in _read_rows(SEARCH_DATA_DIR / "synonyms.csv"):
        group = frozenset(normalize(term) for term in row if term)
        if len(group) > 1:
            groups.append(group)
    return tuple(groups)


def synonyms_of(word: str) -> set[str]:
    """The normalized word and every term sharing a synonym group with it."""
    norm = normalize(word)
    related = {norm}
    for group in synonym_groups():
        if norm in group:
            related |= group
    return related


def expand_terms(terms: Iterable[str]) -> set[str]:
    """All synonyms of several terms (used by the matcher's interest fit)."""
    expanded: set[str] = set()
    for term in terms:
        expanded |= synonyms_of(term)
    return expanded


def place_key(name: str | None) -> str:
    """Key for matching place names across sources: normalized, without 大字/字 prefixes and 地区 suffix."""
    key = normalize(name)
    for prefix in ("大字", "字"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for suffix in ("地区", "地域", "校区"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key
