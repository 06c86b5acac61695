"""Where the files shipped inside the package live (district geography, listings, search word lists, demo
personas), so an installed wheel finds them from any working directory."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = PACKAGE_DIR / "data"
GEO_DIR = DATA_DIR / "geo"
LISTINGS_DIR = DATA_DIR / "listings"
SEARCH_DATA_DIR = DATA_DIR / "search"
PERSONS_DIR = DATA_DIR / "demo" / "persons"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
