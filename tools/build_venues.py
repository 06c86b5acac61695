#!/usr/bin/env python3
"""Build venue listings (community places usable as 会場) from the GSI shelter files.

For each of the five municipalities this reads

    <geodata>/<code>/shelters_designated_evacuation_gsi.geojson

(国土地理院「指定緊急避難場所・指定避難所データ」, copied from the jp-shelter-api
repository; see the geodata folder's SOURCES.md) and writes

    resdb/data/listings/<code>_venues.json

a JSON array of venue records in the contract's listing format: one per community
place (コミュニティセンター, 公民館, 地区会館, 集会所, 児童館, 交流センター,
文化センター, …), with kind "venue" (a building where activities happen, an HSDS
location: never an activity, never proposed by the matcher, shown on the map as
its own layer and in search only when asked for), no targets or activities, the
file's name, address and coordinates, and a stable id
"<city>-venue-<NO>" (NO is the shelter file's record number).  Schools, parks,
gymnasiums, nurseries and care facilities are left out.

The product never reads the shared folder: developers run this script and
commit its output.  Standard library only.

    python tools/build_venues.py [GEODATA_DIR] [--out DIR]

GEODATA_DIR defaults to /work/shared/geodata; --out defaults to the
shipped listings folder, resdb/data/listings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DEFAULT_GEODATA = Path("/work/shared/geodata")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "resdb" / "data" / "listings"

# 5-digit folder -> (6-digit municipality code, id prefix, official address prefix)
CITIES: dict[str, tuple[str, str, str]] = {
    "16211": ("162116", "imizu", "富山県射水市"),
    "13225": ("132250", "inagi", "東京都稲城市"),
    "28206": ("282065", "ashiya", "兵庫県芦屋市"),
    "07204": ("072044", "iwaki", "福島県いわき市"),
    "46533": ("465330", "wadomari", "鹿児島県大島郡和泊町"),
}

SOURCE = "国土地理院 指定緊急避難場所・指定避難所データ (jp-shelter-api)"

# A name is a community venue when it contains one of these ...
INCLUDE = re.compile(
    r"コミュニティセン|コミュニティ防災センター|公民館|地区会館|集会所|集会施設|団地会館|"
    r"児童館|児童センター|交流センター|交流会館|交流プラザ|ふれあい会館|ふれあい館|"
    r"文化センター|文化会館|文化ホール|地区センター|市民センター|総合会館|"
    r"農村環境改善センター|構造改善センター|活性化センター|研修センター|憩いの家|"
    r"社会福祉センター|複合施設"
)
# ... and none of these (schools, sports grounds, parks, nurseries, other non-venues).
EXCLUDE = re.compile(
    r"学校|学園|大学|高専|保育園|保育所|こども園|幼稚園|公園|運動場|ゲートボール場|"
    r"アリーナ|武道館|スポーツ|文化財"
)
# A gymnasium is excluded unless the same record is also a 公民館 (e.g. 「勿来体育館・錦公民館」).
GYM = re.compile(r"体育館")
GYM_OK = re.compile(r"公民館|コミュニティセン")


def is_venue(name: str) -> bool:
    if not INCLUDE.search(name) or EXCLUDE.search(name):
        return False
    if GYM.search(name) and not GYM_OK.search(name):
        return False
    return True


# Obvious typos in the file's names, corrected so that searches find them (the original is kept in notes).
NAME_FIXES = {"コミュニティセントー": "コミュニティセンター"}


def fix_name(name: str) -> tuple[str, str | None]:
    fixed = name
    for wrong, right in NAME_FIXES.items():
        fixed = fixed.replace(wrong, right)
    return fixed, (f"元データの名称表記: {name}" if fixed != name else None)


def normalise_address(address: str, prefix: str) -> tuple[str, str | None]:
    """The address with the official prefix; a note when the file's spelling differed."""
    address = (address or "").strip()
    if address.startswith(prefix):
        return address, None
    # The file writes 和泊町 without its 郡 (鹿児島県和泊町…).
    short = re.sub(r"^(.+?[都道府県]).+?郡", r"\1", prefix)
    if short != prefix and address.startswith(short):
        return prefix + address[len(short) :], f"元データの住所表記: {address}"
    return address, f"元データの住所が{prefix}で始まらない: {address}"


def build(geodata: Path, folder: str) -> list[dict]:
    code, slug, prefix = CITIES[folder]
    path = geodata / folder / "shelters_designated_evacuation_gsi.geojson"
    with path.open(encoding="utf-8") as fh:
        features = json.load(fh)["features"]
    out: list[dict] = []
    seen: set[str] = set()
    for feat in features:
        props = feat["properties"]
        name = (props.get("施設・場所名") or "").strip()
        if not name or not is_venue(name):
            continue
        geom = feat.get("geometry") or {}
        coords = geom.get("coordinates") or []
        if len(coords) != 2:
            continue
        lon, lat = float(coords[0]), float(coords[1])
        listing_id = f"{slug}-venue-{props['NO']}"
        if listing_id in seen:
            raise SystemExit(f"duplicate NO {props['NO']} in {path}")
        seen.add(listing_id)
        address, note = normalise_address(props.get("住所") or "", prefix)
        name, name_note = fix_name(name)
        notes = "; ".join(n for n in (name_note, note) if n)
        listing = {
            "id": listing_id,
            "name": name,
            "kind": "venue",
            "description": "地域の集会施設（指定避難所として登録されている建物）。活動の会場となる場所として掲載（この建物自体は活動ではありません）。",
            "municipality_code": code,
            "address": address,
            "venue": name,
            "lat": lat,
            "lon": lon,
            "targets": [],
            "activities": [],
            "accepts_referrals": False,
            "verified_at": None,
            "is_sample": False,
            "source": SOURCE,
            "source_detail": f"{folder}/shelters_designated_evacuation_gsi.geojson NO={props['NO']} 共通ID={props.get('共通ID')}",
        }
        if notes:
            listing["notes"] = notes
        out.append(listing)
    out.sort(key=lambda d: int(d["id"].rsplit("-", 1)[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "geodata",
        nargs="?",
        type=Path,
        default=DEFAULT_GEODATA,
        help=f"folder holding <code>/shelters_designated_evacuation_gsi.geojson (default {DEFAULT_GEODATA})",
    )
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: resdb/data/listings)"
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for folder, (_code, _slug, _prefix) in CITIES.items():
        venues = build(args.geodata, folder)
        target = args.out / f"{folder}_venues.json"
        with target.open("w", encoding="utf-8") as fh:
            json.dump(venues, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        print(f"{target}: {len(venues)} venues", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
