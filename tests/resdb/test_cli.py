"""The `resdb` command as a user runs it: one JSON document with --json, named problems, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import CliRun

# `resdb init` as a real process from an installed wheel: tests/test_wheel.py.


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory, cli: CliRun) -> Path:
    path = tmp_path_factory.mktemp("cli-instance")
    result = cli("init", instance=path)
    assert result.exit_code == 0, result.output
    return path


def run(instance: Path, *args: str, input: str | None = None) -> Result:
    return CliRun()(*args, instance=instance, input=input)


def test_search_json_is_one_document(instance: Path) -> None:
    result = run(instance, "search", "さろん", "--json")
    payload = json.loads(result.output)
    assert result.exit_code == 0 and payload["total"] >= 5
    assert "サロン" in payload["items"][0]["name"]


def test_search_with_filters_and_point(instance: Path) -> None:
    payload = json.loads(
        run(
            instance,
            "search",
            "",
            "--kind",
            "kayoi",
            "--near",
            "36.7217,137.1107",
            "--radius-km",
            "3",
            "--json",
        ).output
    )
    distances = [item["distance_km"] for item in payload["items"]]
    assert payload["items"] and distances == sorted(distances) and max(distances) <= 3
    assert {item["kind"] for item in payload["items"]} == {"kayoi"}


def test_areas_names_the_center(instance: Path) -> None:
    payload = json.loads(run(instance, "areas", "36.721682", "137.110661", "--json").output)
    assert payload["town"] == "戸破"
    assert "小杉・下地域包括支援センター" in [item["name"] for item in payload["items"]]


def test_bad_csv_rows_are_named_and_nothing_written(instance: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "名称,種別,緯度,経度\nよい場,居場所,36.72,137.09\nわるい場,カラオケ,36.72,137.09\n",
        encoding="cp932",
    )
    before = json.loads(run(instance, "search", "よい場", "--json").output)["total"]
    result = run(instance, "import", str(bad), "--json")
    payload = json.loads(result.output)
    assert result.exit_code == 1 and not payload["written"]
    assert [(p["row"], p["field"]) for p in payload["problems"]] == [(3, "kind")]
    assert json.loads(run(instance, "search", "よい場", "--json").output)["total"] == before


def test_dry_run_then_import(instance: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "\ufeff名称,種別,住所,日程\nCLIテスト体操,通いの場,富山県射水市戸破1番地,毎週金曜 10:00〜11:00\n",
        encoding="utf-8",
    )
    dry = json.loads(run(instance, "import", str(good), "--dry-run", "--json").output)
    assert dry["created"] == 1 and not dry["written"]
    assert json.loads(run(instance, "search", "CLIテスト", "--json").output)["total"] == 0
    assert (
        run(instance, "import", str(good)).exit_code == 0
    )  # lands as a draft for review: not public yet
    assert json.loads(run(instance, "search", "CLIテスト", "--json").output)["total"] == 0
    assert run(instance, "import", str(good), "--publish").exit_code == 0
    found = json.loads(run(instance, "search", "CLIテスト", "--json").output)["items"]
    assert found[0]["district"] == "戸破" and found[0]["schedule"][0]["weekday"] == "fri"


def test_export_formats(instance: Path, tmp_path: Path) -> None:
    for fmt in ("csv", "json", "geojson", "hsds"):
        out = tmp_path / f"x.{fmt}"
        assert run(instance, "export", "--format", fmt, "-o", str(out)).exit_code == 0
        assert out.stat().st_size > 1000
    assert json.loads((tmp_path / "x.geojson").read_text())["type"] == "FeatureCollection"


def test_unreadable_file_exits_non_zero_with_message(instance: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    result = run(instance, "import", str(broken))
    assert result.exit_code == 1


def test_user_and_token(instance: Path) -> None:
    assert (
        run(
            instance,
            "user",
            "add",
            "ed@example.jp",
            "--role",
            "editor",
            input="correct horse battery\n",
        ).exit_code
        == 0
    )
    result = run(instance, "token", "create", "ed@example.jp")
    assert result.exit_code == 0 and result.output.strip().startswith("rdb_")
    assert run(instance, "token", "create", "nobody@example.jp").exit_code == 2
