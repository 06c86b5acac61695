"""Benchmark imports: a 10,000-row 自治体標準オープンデータセット イベント一覧 CSV (read, validate, place, write
as drafts; rows/s and peak memory) and a 1,000,000-row listing CSV dry run read as a stream (peak memory).
Each case runs in its own process so peak RSS is that case's alone.

    .venv/bin/python bench/bench_import.py                 # both cases
    .venv/bin/python bench/bench_import.py --dry-rows 200000 --event-rows 10000
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# 射水市 町字 points to scatter rows over (real places, so placement does real work).
TOWNS = [
    (36.721682, 137.110661),
    (36.777418, 137.083124),
    (36.750901, 137.072663),
    (36.709701, 137.095284),
    (36.759302, 137.078660),
    (36.713394, 137.097277),
    (36.718314, 137.102458),
]


def write_event_csv(path: Path, rows: int, seed: int = 1) -> int:
    """`rows` session rows: each event has four weekly sessions on the same weekday (one schedule each)."""
    from resdb.opendata import CODE, EVENT_HEADERS

    rng = random.Random(seed)
    first = date(2026, 12, 7)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(EVENT_HEADERS)
        events = rows // 4
        for n in range(events):
            lat, lon = rng.choice(TOWNS)
            lat += rng.uniform(-0.004, 0.004)
            lon += rng.uniform(-0.004, 0.004)
            start = first + timedelta(days=n % 7)
            hour = 9 + n % 8
            for week in range(4):
                day = (start + timedelta(days=7 * week)).isoformat()
                values = {
                    CODE: "162116",
                    "NO": f"{n}-{week}",
                    "イベント名": f"きららか100歳体操 第{n}グループ",
                    "開始日": day,
                    "終了日": day,
                    "開始時間": f"{hour}:00",
                    "終了時間": f"{hour + 1}:00",
                    "説明": "重りを使った体操",
                    "料金(基本)": "無料",
                    "連絡先電話番号": "0766-51-6625",
                    "主催者": "射水市 地域福祉課",
                    "場所名称": f"第{n}公民館",
                    "住所": "",
                    "緯度": f"{lat:.6f}",
                    "経度": f"{lon:.6f}",
                    "定員": "20",
                    "参加申込方法": "申込不要",
                }
                writer.writerow([values.get(h, "") for h in EVENT_HEADERS])
    return events * 4


def write_listing_csv(path: Path, rows: int, seed: int = 2) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            ["ID", "名称", "種別", "緯度", "経度", "電話番号", "対象", "日程", "費用", "説明"]
        )
        for n in range(rows):
            lat, lon = rng.choice(TOWNS)
            writer.writerow(
                [
                    f"bench-{n}",
                    f"ふれあいサロン{n}",
                    "通いの場",
                    f"{lat + rng.uniform(-0.01, 0.01):.6f}",
                    f"{lon + rng.uniform(-0.01, 0.01):.6f}",
                    "0766-00-0000",
                    "高齢者",
                    "毎月第1・第3水曜 13:30〜15:30",
                    "100",
                    "地域のサロン",
                ]
            )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, file: Path, instance: Path) -> dict[str, object]:
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.exchange import iter_file

    directory = Directory.open(f"sqlite:///{instance / 'bench.sqlite3'}", instance)
    load_districts(directory, ("16211",))
    base = peak_mb()
    started = time.perf_counter()
    records, _warnings = iter_file(file)
    seen = [0]

    def progress(
        n: int = 1,
    ) -> None:  # a line on stderr every 50,000 rows: how far, how fast, how big
        seen[0] += n
        if seen[0] % 50_000 == 0:
            print(
                f"{seen[0]} rows {time.perf_counter() - started:.0f}s peak {peak_mb():.0f} MB",
                file=sys.stderr,
                flush=True,
            )

    report = directory.import_records(
        records,
        actor="bench",
        source_name=file.name,
        dry_run=case == "dry",
        status="draft",
        source="bench",
        progress=progress,
    )
    elapsed = time.perf_counter() - started
    with file.open(encoding="utf-8-sig", newline="") as fh:
        rows = (
            sum(1 for _ in csv.reader(fh)) - 1
        )  # CSV rows (an イベント一覧 listing gathers several)
    return {
        "case": case,
        "csv_rows": rows,
        "listings": report.total,
        "listings_created": report.created,
        "problems": report.problem_count,
        "seconds": round(elapsed, 2),
        "csv_rows_per_s": round(rows / elapsed),
        "peak_rss_mb": round(peak_mb(), 1),
        "rss_before_import_mb": round(base, 1),
        "file_mb": round(file.stat().st_size / 1e6, 1),
        "written": report.written,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--event-rows", type=int, default=10_000)
    parser.add_argument("--dry-rows", type=int, default=1_000_000)
    parser.add_argument("--case", choices=["event", "dry"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run_case(args.case, args.file, Path(folder)), ensure_ascii=False))
        return
    with tempfile.TemporaryDirectory() as folder:
        event_file, dry_file = Path(folder) / "events.csv", Path(folder) / "listings.csv"
        results = []
        if args.event_rows:
            write_event_csv(event_file, args.event_rows)
            results.append(("event", event_file))
        if args.dry_rows:
            write_listing_csv(dry_file, args.dry_rows)
            results.append(("dry", dry_file))
        for case, file in results:
            done = subprocess.run(
                [sys.executable, __file__, "--case", case, "--file", str(file)],
                capture_output=True,
                text=True,
                check=True,
            )
            print(done.stdout.strip())


if __name__ == "__main__":
    main()
