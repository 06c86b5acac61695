"""`resdb districts import` on malformed files: each bad feature named by number in Japanese, nothing stored
unless --skip-bad, the good features imported then, and a Point never stored as an empty polygon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from resdb.cli import main
from resdb.districtfile import read_district_file


def _square(lon: float, lat: float, d: float = 0.003) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - d, lat - d],
                [lon + d, lat - d],
                [lon + d, lat + d],
                [lon - d, lat + d],
                [lon - d, lat - d],
            ]
        ],
    }


FEATURES = [
    {"type": "Feature", "properties": {"NAME": "戸破"}, "geometry": _square(137.110661, 36.721682)},
    {"type": "Feature", "properties": {"NAME": "三ケ"}, "geometry": None},
    {
        "type": "Feature",
        "properties": {"NAME": "大江"},
        "geometry": {"type": "Point", "coordinates": [137.1, 36.7]},
    },
    {"type": "Feature", "properties": {"NAME": "どこか"}, "geometry": _square(2.35, 48.85)},
    {"type": "Feature", "properties": {}, "geometry": _square(137.10, 36.72)},
    {
        "type": "Feature",
        "properties": {"NAME": "壊れ"},
        "geometry": {"type": "Polygon", "coordinates": [[1, 2]]},
    },
]


def _env(directory: Any) -> dict[str, str]:
    return {
        "RESDB_DATABASE_URL": directory.engine.url.render_as_string(hide_password=False),
        "RESDB_INSTANCE": str(directory.instance_dir),
    }


def _stored(directory: Any) -> dict[str, Any]:
    return {d["name"]: d for d in directory.districts("162116", "town") if not d["approximate"]}


def test_bad_features_named_and_nothing_stored_unless_asked(directory: Any, tmp_path: Path) -> None:
    path = tmp_path / "towns.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": FEATURES}, ensure_ascii=False),
        encoding="utf-8",
    )
    args = ["districts", "import", str(path), "--municipality", "16211", "--name-field", "NAME"]
    refused = CliRunner().invoke(main, args, env=_env(directory))
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    for expected in (
        "2番目の地物: 「三ケ」に形（geometry）がありません",
        "3番目の地物: 「大江」のPoint",
        "4番目の地物: 「どこか」の座標が日本の範囲",
        "5番目の地物: 名前（NAME）がありません",
        "6番目の地物: 「壊れ」の座標を読めません",
        "何も取り込んでいません",
        "--skip-bad",
    ):
        assert expected in refused.output.replace("\n", ""), expected
    assert _stored(directory) == {}
    done = CliRunner().invoke(main, [*args, "--skip-bad", "--json"], env=_env(directory))
    payload = json.loads(done.output)
    assert (
        done.exit_code == 0
        and payload["imported"] == 1
        and [p["row"] for p in payload["problems"]] == [2, 3, 4, 5, 6]
    )
    stored = _stored(directory)
    assert list(stored) == ["戸破"] and stored["戸破"]["geometry"]["type"] == "Polygon"


def test_a_point_is_never_an_empty_polygon(directory: Any, tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": [FEATURES[2]]}), encoding="utf-8"
    )
    read = read_district_file(path, "16211", "NAME")
    assert read.records == [] and len(read.problems) == 1


def test_malformed_files_get_a_japanese_message(directory: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["districts", "import", str(broken), "--municipality", "16211", "--name-field", "NAME"],
        env=_env(directory),
    )
    assert result.exit_code == 1 and "GeoJSON として読めません（1行目" in result.output.replace(
        "\n", ""
    )
    assert "Traceback" not in result.output
    wrong = tmp_path / "wrong.geojson"
    wrong.write_text(
        json.dumps({"type": "FeatureCollection", "features": FEATURES[:1]}), encoding="utf-8"
    )
    result = CliRunner().invoke(
        main,
        ["districts", "import", str(wrong), "--municipality", "16211", "--name-field", "名前"],
        env=_env(directory),
    )
    assert (
        result.exit_code == 1
        and "名前の項目「名前」がどの地物にもありません（ある項目: NAME）"
        in result.output.replace("\n", "")
    )
