"""Loading the shipped data: district areas for the five cities and the listings under resdb/data/listings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from resdb import geo
from resdb.directory import Directory, ImportReport
from resdb.domain.shipped import LISTINGS_DIR
from resdb.exchange import read_file

MUNICIPALITIES = ("16211", "13225", "28206", "07204", "46533")


def listing_files(codes: tuple[str, ...] = MUNICIPALITIES, *, samples: bool = True) -> list[Path]:
    """Shipped listing files: real facts from the plans, GSI venues, and (optionally) labelled samples."""
    files = []
    for code in codes:
        for path in sorted(LISTINGS_DIR.glob(f"{code}_*.json")):
            if path.stem.endswith("_samples") and not samples:
                continue
            files.append(path)
    return files


def load_districts(directory: Directory, codes: tuple[str, ...] = MUNICIPALITIES) -> int:
    count = 0
    for code in codes:
        count += directory.load_districts(geo.build_districts(code))
    return count


def load_demo(
    directory: Directory,
    codes: tuple[str, ...] = MUNICIPALITIES,
    *,
    samples: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[Path, ImportReport]]:
    """Districts first (addresses and 担当地区 resolve against them), then every shipped listing file."""
    load_districts(directory, codes)
    reports = []
    for path in listing_files(codes, samples=samples):
        records, _warnings = read_file(path)
        report = directory.import_records(records, actor="demo-loader", source_name=path.name)
        if progress:
            if report.total == 0:
                progress(f"{path.name}: 掲載なし（空のファイル。問題ではありません）")
            else:
                progress(
                    f"{path.name}: {report.created} 件追加, {report.updated} 件更新, 変更なし {report.unchanged} 件, "
                    f"問題 {len(report.problems)} 件"
                )
        reports.append((path, report))
    return reports
