"""Reading uploaded files safely: limits stated in Japanese, the encoding detected per file (a file mixing
UTF-8 and Shift_JIS refused with its lines named), CSV read as a stream, `.xlsx` cells counted before any
row is expanded, and old unconfirmed uploads removed."""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from resdb.validation import Problem


class FileProblem(ValueError):
    """The file as a whole cannot be read (encoding, syntax, missing headers, limits)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class Limits:
    """How much one import may hold. The CLI takes large files; the web page smaller ones."""

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_000_000
    max_cell_chars: int = 10_000
    max_xlsx_cells: int = 5_000_000
    max_xlsx_xml_bytes: int = 400 * 1024 * 1024

    def describe(self) -> str:
        return f"{self.max_rows:,}行・{_size(self.max_bytes)}まで"


CLI_LIMITS = Limits()
WEB_LIMITS = Limits(
    max_bytes=20 * 1024 * 1024,
    max_rows=100_000,
    max_xlsx_cells=2_000_000,
    max_xlsx_xml_bytes=100 * 1024 * 1024,
)
UPLOAD_TTL_SECONDS = 24 * 3600


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def _fail(message: str, row: int | None = None, field: str = "file") -> FileProblem:
    return FileProblem(Problem(field, message, row))


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise _fail(
            f"ファイルが大きすぎます（{_size(size)}）。一度に取り込めるのは {limits.describe()} です。"
            "ファイルを分けてください"
        )


# --- encodings ------------------------------------------------------------------------------------
def detect_encoding(stream: IO[bytes]) -> str:
    """ "utf-8-sig" or "cp932" for the whole file, read line by line (memory stays flat). A file whose lines
    are partly UTF-8 and partly Shift_JIS is refused with the lines of each named."""
    utf8_lines: list[int] = []
    sjis_lines: list[int] = []
    utf8_count = sjis_count = 0
    for line_no, line in enumerate(stream, start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8-sig" if line_no == 1 else "utf-8")
            utf8_count += 1
            if len(utf8_lines) < 5:
                utf8_lines.append(line_no)
            continue
        except UnicodeDecodeError:
            pass
        try:
            line.decode("cp932")
        except UnicodeDecodeError:
            raise _fail(
                f"{line_no}行目の文字コードを判別できません。UTF-8 または Shift_JIS で保存し直してください",
                line_no,
            ) from None
        sjis_count += 1
        if len(sjis_lines) < 5:
            sjis_lines.append(line_no)
    if utf8_count and sjis_count:

        def lines(found: list[int], count: int) -> str:
            return "、".join(f"{n}行目" for n in found) + (
                f" ほか{count - len(found)}行" if count > len(found) else ""
            )

        raise _fail(
            f"UTF-8 の行（{lines(utf8_lines, utf8_count)}）と Shift_JIS の行（{lines(sjis_lines, sjis_count)}）が"
            "混ざっています。このまま取り込むと文字化けするため取り込みません。"
            "表計算ソフトで開き、どちらか一方（UTF-8 を推奨）で保存し直してください",
            (sjis_lines or utf8_lines)[0],
        )
    return "cp932" if sjis_count else "utf-8-sig"


# --- CSV as a stream ------------------------------------------------------------------------------
def csv_rows(
    stream: IO[bytes], limits: Limits
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header row and a lazy iterator of (line number, cells); `stream` must be seekable."""
    encoding = detect_encoding(stream)
    stream.seek(0)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    sample = text.read(4096)
    text.seek(0)
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    reader = csv.reader(text, delimiter=delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        raise _fail("ファイルが空です。1行目に見出し（名称、種別 など）を書いてください") from None
    except csv.Error as exc:
        raise _fail(_csv_message(exc, 1), 1) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        count = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _fail(_csv_message(exc, reader.line_num), reader.line_num) from None
            count += 1
            if cells and max(map(len, cells)) > limits.max_cell_chars:
                raise _fail(
                    f"{reader.line_num}行目に長すぎるセルがあります（1セル {limits.max_cell_chars:,}文字まで）。"
                    '引用符 " の閉じ忘れがないか確かめてください',
                    reader.line_num,
                )
            if count > limits.max_rows:
                raise _fail(
                    f"行が多すぎます（{limits.max_rows:,}行を超えました）。一度に取り込めるのは {limits.describe()} です。"
                    "ファイルを分けてください",
                    reader.line_num,
                )
            yield reader.line_num, cells

    return headers, rows()


def _csv_message(exc: csv.Error, line: int) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f'{line}行目に長すぎるセルがあります。引用符 " の閉じ忘れがないか確かめてください'
    if (
        "new-line character seen in unquoted field" in text
        or "unexpected end of data" in text
        or "EOF" in text
    ):
        return f'{line}行目の引用符（"）が閉じていません。セルの中の " は "" と2つ重ねてください'
    return f'{line}行目を CSV として読めません。区切りの , と引用符 " を確かめてください'


# --- Excel: count before expanding ----------------------------------------------------------------
_DIMENSION_TAG = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')
_PREFIXED_CELL_TAG = re.compile(rb"<\w+:c[\s>/]")


def _count_cells(data: bytes) -> int:
    """Cell tags in a piece of sheet XML: plain `<c …>` by bytes.count (fast), prefixed `<x:c …>` by regex."""
    plain = data.count(b"<c ") + data.count(b"<c>") + data.count(b"<c/")
    return plain + (len(_PREFIXED_CELL_TAG.findall(data)) if b":c" in data else 0)


def _column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def check_xlsx(data: IO[bytes] | bytes, limits: Limits) -> None:
    """Refuse a workbook whose first sheet holds more cells than allowed, judged from the zip's directory,
    the sheet's declared size and a streaming count of its cells (never expanding the rows)."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise _fail(
            "Excel ファイル（.xlsx）として読めません。Excel で開いて .xlsx 形式で保存し直してください"
        ) from None
    with archive:
        sheets = sorted(
            n for n in archive.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)
        )
        if not sheets:
            raise _fail("Excel ファイルにシートがありません")
        info = archive.getinfo(
            "xl/worksheets/sheet1.xml" if "xl/worksheets/sheet1.xml" in sheets else sheets[0]
        )
        too_many = (
            f"シートが大きすぎます。一度に取り込めるのは {limits.max_xlsx_cells:,}セル（{limits.describe()}）です。"
            "ファイルを分けるか CSV で保存してください"
        )
        if info.file_size > limits.max_xlsx_xml_bytes:
            raise _fail(too_many)
        cells = 0
        tail = b""
        with archive.open(
            info
        ) as sheet:  # raw bytes scanned, never parsed into rows (≈ 1 s per 500 MB)
            first = True
            while True:
                chunk = sheet.read(1 << 20)
                if not chunk:
                    break
                data_now = tail + chunk
                if first:
                    first = False
                    match = _DIMENSION_TAG.search(data_now)
                    if match and match.group(3):
                        width = (
                            _column_number(match.group(3).decode())
                            - _column_number(match.group(1).decode())
                            + 1
                        )
                        height = int(match.group(4)) - int(match.group(2)) + 1
                        if width * height > limits.max_xlsx_cells or height > limits.max_rows + 1:
                            raise _fail(too_many)
                tail = data_now[-16:]  # tags cut by the chunk edge are counted with the next chunk
                cells += _count_cells(data_now) - _count_cells(tail)
                if cells > limits.max_xlsx_cells:
                    raise _fail(too_many)
            cells += _count_cells(tail)
            if cells > limits.max_xlsx_cells:
                raise _fail(too_many)


# --- uploads --------------------------------------------------------------------------------------
def expire_uploads(
    folder: Path, ttl_seconds: int = UPLOAD_TTL_SECONDS, now: float | None = None
) -> int:
    """Remove uploads never confirmed within `ttl_seconds`; returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    for path in folder.glob("*"):
        try:
            if path.is_file() and now - path.stat().st_mtime > ttl_seconds:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


_UPLOAD_NAME = re.compile(
    r"^[^/\\\s]{1,200}\.(csv|tsv|txt|xlsx|xlsm|xls|json|geojson)$", re.IGNORECASE
)
_PLAN_FILE = re.compile(r"^\d{3}_[0-9a-f]{16}\.txt$")


def is_file_name(source: str | None) -> bool:
    """Whether a 出典 is only an uploaded file's name (「import_good.csv」), which the public never sees;
    the municipal plan files the shipped data cites are documents and pass."""
    text = (source or "").strip()
    return bool(_UPLOAD_NAME.match(text)) and not _PLAN_FILE.match(text)


def problems_csv(problems: list[Problem], labels: dict[str, str] | None = None) -> str:
    """The problems as a CSV a spreadsheet opens (UTF-8 with BOM): 行, 項目, 内容, 値."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["行", "項目", "内容", "値"])
    for problem in problems:
        field = (labels or {}).get(problem.field, problem.field)
        value: Any = problem.value or ""
        if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
            value = "'" + value
        writer.writerow(["" if problem.row is None else problem.row, field, problem.message, value])
    return "\ufeff" + out.getvalue()
