"""Search relevance on the graded set (resdb/data/search/relevance_graded.json): nDCG@10 per query and mean, plus the
match counts of broad words, on the shipped demo (all five cities). Run it on two checkouts to compare:

    .venv/bin/python bench/bench_relevance.py                 # this checkout
    PYTHONPATH=/tmp/old .venv/bin/python bench/bench_relevance.py --code /tmp/old   # an older tree, same judgements
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="tree whose resdb (and data/) to measure"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code))
    sys.path.insert(1, str(ROOT))
    from resdb.demo import load_demo
    from resdb.directory import Directory
    from resdb.search import SearchQuery

    sys.path.insert(0, str(ROOT))
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluation", ROOT / "resdb" / "evaluation.py")
    assert spec and spec.loader
    evaluation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluation)

    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp)
        directory = Directory.open(f"sqlite:///{instance / 'resdb.sqlite3'}", instance)
        started = time.perf_counter()
        load_demo(directory)
        loaded = time.perf_counter() - started
        total = directory.search(SearchQuery(q="", limit=1))["total"]
        rows = []
        for query, grades in evaluation.load_graded_set():
            result = directory.search(
                SearchQuery(q=query, limit=10, municipality_code="162116")
            )  # as / and /search ask
            ranked = [item["id"] for item in result["items"]]
            rows.append(
                {
                    "q": query,
                    "ndcg10": round(evaluation.ndcg_at(ranked, grades, 10), 3),
                    "matches": result["total"],
                    "top3": [item["name"] for item in result["items"][:3]],
                }
            )
        broad = {
            q: directory.search(SearchQuery(q=q, limit=1))["total"]
            for q in ("ボランティア", "体操", "地域活動", "介護予防")
        }
        directory.index.close()
        directory.engine.dispose()
    mean = sum(r["ndcg10"] for r in rows) / len(rows)
    report = {
        "code": str(args.code),
        "listings_shown_by_empty_search": total,
        "load_seconds": round(loaded, 1),
        "mean_ndcg10": round(mean, 3),
        "queries": rows,
        "broad_word_matches": broad,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    print(f"code: {args.code}   (empty search shows {total} listings)")
    for r in rows:
        print(
            f"  {r['q']:<10} nDCG@10 {r['ndcg10']:.3f}  matches {r['matches']:>4}  top: {' / '.join(r['top3'])}"
        )
    print(
        f"mean nDCG@10 over {len(rows)} queries: {mean:.3f}"
        if not math.isnan(mean)
        else "no queries"
    )
    print("matches of broad words:", ", ".join(f"{k} {v}" for k, v in broad.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
