"""Offline relevance measures for search: graded judgement sets and nDCG@k (used by bench/ and tests)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from resdb.domain.shipped import SEARCH_DATA_DIR

GRADED_SET = SEARCH_DATA_DIR / "relevance_graded.json"


def load_graded_set(path: Path = GRADED_SET) -> list[tuple[str, dict[str, int]]]:
    """(query, {listing id: grade}) pairs of a judgement file."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [(item["q"], {k: int(v) for k, v in item["grades"].items()}) for item in doc["queries"]]


def dcg(gains: Sequence[float]) -> float:
    return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    """Normalized discounted cumulative gain of the first k ids against graded judgements (0..1)."""
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(i, 0) for i in ranked[:k]]) / ideal
