"""Imports a city can trust: Japanese messages that say what to write, drafts by default, only the good rows
when asked, 出典 from the importer (never the file name), problems as CSV, templates, limits, mixed encodings
refused, Excel cells counted before expansion, unconfirmed uploads expire, listings without contact flagged."""

from __future__ import annotations

import csv
import io
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from resdb import intake, opendata
from resdb.exchange import FileProblem, read_bytes
from tests.web.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
UPLOAD = re.compile(r'name="upload" value="([^"]+)"')

MIXED_GOOD_BAD = (
    "名称,種別,緯度,経度,電話番号\n"
    "よい通いの場,通いの場,36.7217,137.1107,0766-00-0001\n"
    "北のサロン,通いの場,北緯36度,137.1107,\n"
    "カラオケの会,カラオケ,36.7217,137.1107,\n"
    "連絡先のない居場所,居場所,36.7220,137.1100,\n"
)


def _csrf(client: Any, path: str = "/editor/import") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def _upload(client: Any, data: bytes, name: str, **fields: str) -> Any:
    return client.post(
        "/editor/import",
        data={"csrf_token": _csrf(client), "file": (io.BytesIO(data), name), **fields},
        content_type="multipart/form-data",
    )


def test_messages_are_japanese_with_what_to_write(staff: Any) -> None:
    client = staff.login("admin@example.jp", PASSWORD)
    response = _upload(client, MIXED_GOOD_BAD.encode("cp932"), "import_good.csv")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "could not convert" not in html and "float" not in html
    assert "緯度は 10進数の度で書いてください（例: 36.7217）" in html
    assert (
        "居場所・通いの場" in html and "ibasho, kayoi" not in html
    )  # kinds by their Japanese labels
    assert "問題のない行で 新規 2件" in html and "問題のない 2件だけ取り込む" in html


def test_good_rows_only_as_drafts_with_the_importers_source(staff: Any) -> None:
    client = staff.login("admin@example.jp", PASSWORD)
    page = _upload(
        client,
        MIXED_GOOD_BAD.encode("utf-8"),
        "import_good.csv",
        source="射水市 地域福祉課 通いの場一覧",
    )
    stored = UPLOAD.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    problems = client.post(
        "/editor/import/problems.csv", data={"csrf_token": _csrf(client), "upload": stored}
    )
    rows = list(csv.reader(io.StringIO(problems.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["行", "項目", "内容", "値"] and {r[0] for r in rows[1:]} == {"3", "4"}
    assert any(r[1] == "緯度" and r[3] == "北緯36度" for r in rows[1:])
    done = client.post(
        "/editor/import/confirm",
        data={
            "csrf_token": _csrf(client),
            "upload": stored,
            "original": "import_good.csv",
            "good_rows_only": "1",
            "source": "射水市 地域福祉課 通いの場一覧",
        },
    )
    html = done.get_data(as_text=True)
    assert (
        done.status_code == 200
        and "取り込みました" in html
        and "下書き" in html
        and "3、4行目" in html
    )
    stored_rows = {x["name"]: x for x in staff.directory.all_listings(include_unpublished=True)}
    assert stored_rows["よい通いの場"]["status"] == "draft" and "北のサロン" not in stored_rows
    assert stored_rows["よい通いの場"]["source"] == "射水市 地域福祉課 通いの場一覧"
    listing_id = stored_rows["よい通いの場"]["id"]
    assert (
        staff.client().get(f"/resources/{listing_id}").status_code == 404
    )  # drafts are not public
    # The editor queue flags the imported listing nobody can contact.
    home = client.get("/editor/").get_data(as_text=True)
    no_contact = home.split('data-queue="no_contact"')[1].split("</section>")[0]
    assert "連絡先のない居場所" in no_contact and "よい通いの場" not in no_contact
    # Publishing it: the public 出典 names the organisation, never the uploaded file.
    staff.directory.update(listing_id, {"status": "published"}, "t", expected_version=None)
    public = staff.client().get(f"/resources/{listing_id}").get_data(as_text=True)
    assert "射水市 地域福祉課 通いの場一覧" in public and "import_good.csv" not in public


def test_import_as_published_when_chosen(staff: Any) -> None:
    client = staff.login("admin@example.jp", PASSWORD)
    data = (
        "名称,種別,緯度,経度,電話番号\n公開する場,居場所,36.7217,137.1107,0766-00-0001\n".encode()
    )
    stored = UPLOAD.search(
        _upload(client, data, "a.csv", publish="1").get_data(as_text=True)
    ).group(1)  # type: ignore[union-attr]
    client.post(
        "/editor/import/confirm",
        data={"csrf_token": _csrf(client), "upload": stored, "original": "a.csv", "publish": "1"},
    )
    assert [
        x["status"]
        for x in staff.directory.all_listings(include_unpublished=True)
        if x["name"] == "公開する場"
    ] == ["published"]


def test_templates_for_each_format(staff: Any) -> None:
    client = staff.login("admin@example.jp", PASSWORD)
    for fmt, spec in opendata.FORMATS.items():
        body = (
            client.get(f"/editor/import/template/{fmt}.csv").get_data(as_text=True).lstrip("\ufeff")
        )
        assert next(csv.reader(io.StringIO(body))) == list(spec.headers)
    generic = (
        client.get("/editor/import/template/listing.csv").get_data(as_text=True).lstrip("\ufeff")
    )
    assert generic.startswith("ID,名称,名称_カナ,種別")
    assert client.get("/editor/import/template/nope.csv").status_code == 404


def test_a_file_mixing_utf8_and_shift_jis_is_refused_with_rows_named(staff: Any) -> None:
    data = (
        "名称,種別,緯度,経度\n".encode()
        + "ひまわりサロン,通いの場,36.72,137.11\n".encode("cp932")
        + "すずらん,居場所,36.72,137.11\n".encode()
    )
    with pytest.raises(FileProblem) as caught:
        read_bytes(data, "mixed.csv")
    message = caught.value.problem.message
    assert "UTF-8 の行（1行目、3行目）" in message and "Shift_JIS の行（2行目）" in message
    client = staff.login("admin@example.jp", PASSWORD)
    html = _upload(client, data, "mixed.csv").get_data(as_text=True)
    assert "混ざっています" in html and "縺" not in html
    assert not [
        x
        for x in staff.directory.all_listings(include_unpublished=True)
        if "サロン" in x["name"] and x["id"].startswith("162116-")
    ]


def test_row_and_size_limits_are_stated() -> None:
    small = intake.Limits(max_bytes=10_000, max_rows=3)
    data = ("名称,種別,緯度,経度\n" + "場,居場所,36.72,137.11\n" * 5).encode()
    with pytest.raises(FileProblem, match="3行を超えました.*3行・"):
        read_bytes(data, "long.csv", limits=small)
    with pytest.raises(FileProblem, match="大きすぎます.*9 KB"):
        read_bytes(b"x" * 20_000, "big.csv", limits=small)


def _xlsx_with_cells(rows: int, cols: int) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(
        ["名称", "種別", "緯度", "経度"][:cols] + [f"c{i}" for i in range(max(0, cols - 4))]
    )
    for n in range(rows):
        sheet.append([f"場{n}", "居場所", 36.72, 137.11][:cols] + [n] * max(0, cols - 4))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_cells_are_counted_before_rows_are_expanded() -> None:
    limits = intake.Limits(max_xlsx_cells=1_000)
    data = _xlsx_with_cells(400, 4)  # 1,604 cells
    with pytest.raises(FileProblem, match="1,000セル"):
        read_bytes(data, "bomb.xlsx", limits=limits)
    records, _ = read_bytes(_xlsx_with_cells(10, 4), "ok.xlsx", limits=limits)
    assert len(records) == 10


def test_a_declared_huge_sheet_is_refused_without_reading_it() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            'spreadsheetml/2006/main"><dimension ref="A1:D2000000"/><sheetData>'
            + "<row><c><v>1</v></c></row>" * 10
            + "</sheetData></worksheet>",
        )
    started = time.perf_counter()
    with pytest.raises(FileProblem, match="シートが大きすぎます"):
        intake.check_xlsx(buffer.getvalue(), intake.WEB_LIMITS)
    assert time.perf_counter() - started < 5


def test_unconfirmed_uploads_expire(staff: Any) -> None:
    folder = Path(staff.directory.instance_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    old, fresh = folder / "old.csv", folder / "fresh.csv"
    old.write_text("x")
    fresh.write_text("x")
    day_ago = time.time() - intake.UPLOAD_TTL_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    staff.login("admin@example.jp", PASSWORD).get("/editor/import")
    assert not old.exists() and fresh.exists()


def test_cli_good_rows_only_problems_csv_and_drafts(directory: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resdb.cli import main

    source = tmp_path / "in.csv"
    source.write_text(MIXED_GOOD_BAD, encoding="utf-8")
    env = {
        "RESDB_DATABASE_URL": directory.engine.url.render_as_string(hide_password=False),
        "RESDB_INSTANCE": str(directory.instance_dir),
    }
    problems = tmp_path / "problems.csv"
    refused = CliRunner().invoke(
        main, ["import", str(source), "--problems-csv", str(problems)], env=env
    )
    assert refused.exit_code == 1 and "--good-rows-only" in refused.output
    assert "緯度" in problems.read_text(encoding="utf-8-sig")
    done = CliRunner().invoke(
        main, ["import", str(source), "--good-rows-only", "--source", "射水市"], env=env
    )
    assert done.exit_code == 0 and "下書き" in done.output, done.output
    rows = directory.all_listings(include_unpublished=True)
    assert sorted(x["name"] for x in rows) == ["よい通いの場", "連絡先のない居場所"]
    assert {x["status"] for x in rows} == {"draft"} and {x["source"] for x in rows} == {"射水市"}


def test_large_files_are_checked_and_imported_outside_the_request(staff: Any) -> None:
    from resdb.importjobs import ImportJobs

    staff.app.config["IMPORT_JOB_BYTES"] = 0  # every file counts as large here
    jobs = ImportJobs(
        Path(staff.directory.instance_dir) / "import-jobs", staff.directory.background
    )
    client = staff.login("admin@example.jp", PASSWORD)
    started = _upload(client, MIXED_GOOD_BAD.encode(), "big.csv", source="射水市")
    assert started.status_code == 303 and "/editor/import/jobs/" in started.headers["Location"]
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    assert jobs.wait(job_id)["state"] == "done"  # type: ignore[index]
    page = client.get(f"/editor/import/jobs/{job_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "問題のない 2件だけ取り込む" in html
    stored = UPLOAD.search(html).group(1)  # type: ignore[union-attr]
    confirm = client.post(
        "/editor/import/confirm",
        data={
            "csrf_token": _csrf(client),
            "upload": stored,
            "original": "big.csv",
            "good_rows_only": "1",
            "source": "射水市",
        },
    )
    write_job = confirm.headers["Location"].rsplit("/", 1)[1]
    assert jobs.wait(write_job)["state"] == "done"  # type: ignore[index]
    assert "取り込みました" in client.get(f"/editor/import/jobs/{write_job}").get_data(as_text=True)
    assert sorted(
        x["name"]
        for x in staff.directory.all_listings(include_unpublished=True)
        if x["source"] == "射水市"
    ) == ["よい通いの場", "連絡先のない居場所"]
    # Another editor cannot follow someone else's job.
    assert (
        staff.login("imizu@example.jp", PASSWORD)
        .get(f"/editor/import/jobs/{write_job}")
        .status_code
        == 404
    )


def test_a_running_job_shows_progress_and_reloads(staff: Any, tmp_path: Path) -> None:
    import threading

    from resdb.importjobs import ImportJobs

    jobs = ImportJobs(
        Path(staff.directory.instance_dir) / "import-jobs", staff.directory.background
    )
    release = threading.Event()

    def work(progress: Any) -> Any:
        progress(41)
        release.wait(10)
        raise RuntimeError("boom")

    job_id = jobs.start(
        work,
        actor="admin@example.jp",
        stored="x.csv",
        original="x.csv",
        dry_run=True,
        options={"publish": False, "good_rows_only": False, "source": "", "kind": ""},
    )
    time.sleep(0.8)
    jobs._write(job_id, {**jobs.get(job_id), "rows": 41})  # type: ignore[dict-item]
    client = staff.login("admin@example.jp", PASSWORD)
    html = client.get(f"/editor/import/jobs/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' in html and "41件を処理しました" in html
    release.set()
    assert jobs.wait(job_id)["state"] == "failed"  # type: ignore[index]
    failed = client.get(f"/editor/import/jobs/{job_id}").get_data(as_text=True)
    assert "途中で止まりました" in failed and "boom" not in failed


def test_an_overlong_cell_is_named_and_csv_reading_elsewhere_is_untouched() -> None:
    import csv as csv_module

    limit_before = csv_module.field_size_limit()
    data = ("名称,種別,緯度,経度,説明\n" + "場,居場所,36.72,137.11," + "あ" * 50 + "\n").encode()
    with pytest.raises(FileProblem, match="2行目に長すぎるセル"):
        read_bytes(data, "long.csv", limits=intake.Limits(max_cell_chars=20))
    assert csv_module.field_size_limit() == limit_before
