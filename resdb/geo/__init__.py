"""Geography: municipal boundaries, 町字 and 地区 areas, name/address lookup and point-in-area indexes
(pure, shapely); this package's face: every name callers use as `geo.X`, from the modules below.

- `codes`: municipality codes (check digit), kanji numerals, 丁目 readings, area-name splitting
- `records`: DistrictRecord and where a polygon came from (METHOD_*, SOURCE_*)
- `municipality`: one municipality as shipped under resdb/data/geo/<code>/ (load_municipality)
- `districts`: building district records (Voronoi 町字 cells, 地区 unions, imported polygons)
- `gazetteer`: 担当地区 names and addresses to records and points
- `areaindex`: which service areas hold a point

chiku.csv (地区 membership) is derived by tools/build_chiku.py.
"""

from resdb.domain.shipped import GEO_DIR
from resdb.geo.areaindex import AreaIndex
from resdb.geo.codes import (
    WHOLE_MUNICIPALITY,
    arabic_chome_to_kanji,
    check_digit,
    chome_kana,
    code5,
    code6,
    kanji_number,
    parse_kanji_number,
    split_area_names,
    split_chome,
    town_key,
)
from resdb.geo.districts import (
    build_districts,
    import_district_polygons,
    replace_districts,
    voronoi_town_cells,
)
from resdb.geo.gazetteer import Gazetteer, Placement
from resdb.geo.municipality import (
    BOUNDARY_FILE,
    CHIKU_CENTERS_FILE,
    CHIKU_FILE,
    POSTAL_FILE,
    SHELTERS_FILE,
    TOWN_POINTS_FILE,
    Anchor,
    ChikuMember,
    Municipality,
    TownPoint,
    available_municipalities,
    load_municipality,
)
from resdb.geo.records import (
    LEVELS,
    METHOD_BOUNDARY,
    METHOD_CHIKU_UNION,
    METHOD_IMPORTED,
    METHOD_NO_POINT,
    METHOD_VORONOI,
    SOURCE_N03,
    SOURCE_POSTAL,
    SOURCE_SHELTERS,
    SOURCE_TOWNS,
    DistrictRecord,
    polygonal,
    representative,
)

__all__ = [
    "BOUNDARY_FILE",
    "CHIKU_CENTERS_FILE",
    "CHIKU_FILE",
    "GEO_DIR",
    "LEVELS",
    "METHOD_BOUNDARY",
    "METHOD_CHIKU_UNION",
    "METHOD_IMPORTED",
    "METHOD_NO_POINT",
    "METHOD_VORONOI",
    "POSTAL_FILE",
    "SHELTERS_FILE",
    "SOURCE_N03",
    "SOURCE_POSTAL",
    "SOURCE_SHELTERS",
    "SOURCE_TOWNS",
    "TOWN_POINTS_FILE",
    "WHOLE_MUNICIPALITY",
    "Anchor",
    "AreaIndex",
    "ChikuMember",
    "DistrictRecord",
    "Gazetteer",
    "Municipality",
    "Placement",
    "TownPoint",
    "arabic_chome_to_kanji",
    "available_municipalities",
    "build_districts",
    "check_digit",
    "chome_kana",
    "code5",
    "code6",
    "import_district_polygons",
    "kanji_number",
    "load_municipality",
    "parse_kanji_number",
    "polygonal",
    "replace_districts",
    "representative",
    "split_area_names",
    "split_chome",
    "town_key",
    "voronoi_town_cells",
]
