"""Pages for residents: the map (/), the no-JavaScript list (/search), one listing, わたしの地域, stubs."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for

from resdb.directory import NotFound
from resdb.domain.vocab import TARGETS
from resdb.web import get_directory
from resdb.web.basemap import map_settings
from resdb.web.common import app_today
from resdb.web.errors import ApiError
from resdb.web.features import STREET_ZOOM, MapNotReady
from resdb.web.labels import freshness, source_label, upcoming
from resdb.web.params import PAGE_SIZE, form_args, parse_search
from resdb.web.security import rate_limited

bp = Blueprint("public", __name__)


def municipality_options() -> list[tuple[str, str]]:
    """(6-digit code, name) of every municipality the directory knows, in code order."""
    gazetteer = get_directory().gazetteer()
    found = {r.municipality_code: r.name for r in gazetteer.records if r.level == "municipality"}
    return sorted(found.items())


def _initial_bounds(form: dict[str, Any]) -> list[list[float]] | None:
    if form.get("bbox"):
        lon0, lat0, lon1, lat1 = (float(v) for v in form["bbox"].split(","))
        return [[lat0, lon0], [lat1, lon1]]
    cache = current_app.extensions["resdb.features"]
    try:
        box = cache.bounds(form.get("municipality") or current_app.config["DEFAULT_MUNICIPALITY"])
    except MapNotReady:  # the page still opens; its map asks again for the points
        return None
    if box is None:
        return None
    return [[box[1], box[0]], [box[3], box[2]]]


def _render(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


@bp.get("/")
def index() -> Response:
    parsed = parse_search(
        request.args,
        today=app_today(),
        paging="page",
        default_municipality=current_app.config["DEFAULT_MUNICIPALITY"],
    )
    config = {
        **map_settings(
            parsed.form.get("municipality") or current_app.config["DEFAULT_MUNICIPALITY"]
        ),
        "geojsonUrl": url_for("api.resources_geojson"),
        "lookupUrl": url_for("api.areas_lookup"),
        "areasUrl": url_for("public.areas"),
        "searchUrl": url_for("public.search"),
        "detailUrl": url_for("public.resource", listing_id="__ID__"),
        "bounds": _initial_bounds(parsed.form),
        "sampleLabel": current_app.jinja_env.globals["SAMPLE_LABEL"],
        "listLimit": 100,
        "streetZoom": STREET_ZOOM,
    }
    return _render(
        "index.html",
        form=parsed.form,
        problems=parsed.problems,
        municipalities=municipality_options(),
        map_config=config,
        nav="map",
    )


@bp.get("/search")
@rate_limited
def search() -> Response:
    parsed = parse_search(
        request.args,
        today=app_today(),
        paging="page",
        default_municipality=current_app.config["DEFAULT_MUNICIPALITY"],
    )
    context: dict[str, Any] = {
        "form": parsed.form,
        "problems": parsed.problems,
        "municipalities": municipality_options(),
        "items": [],
        "total": 0,
        "page": parsed.page,
        "pages": 0,
        "nav": "search",
        "searched": bool(request.args),
        "form_args": form_args,
    }
    if parsed.problems:
        return _render("search.html", status=400, **context)
    result = get_directory().search(parsed.query)
    context.update(
        items=result["items"],
        total=result["total"],
        pending_changes=result["pending_changes"],
        pages=max(1, math.ceil(result["total"] / PAGE_SIZE)),
    )
    return _render("search.html", **context)


def _listing_or_404(listing_id: str) -> dict[str, Any]:
    try:
        return get_directory().get_public(listing_id)
    except NotFound:
        raise ApiError(
            404,
            "お探しの掲載情報は見つかりませんでした。削除されたか、アドレスが変わった可能性があります。",
        ) from None


def _venue_links(listing: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the venue record this listing names, the activities held at this venue when it is one)."""
    from resdb.search import SearchQuery
    from resdb.venues import VENUE_KIND, venue_key

    directory = get_directory()
    code = listing.get("municipality_code")
    if listing.get("kind") == VENUE_KIND:
        key = venue_key(listing.get("name"), code)
        found = directory.search(SearchQuery(q=listing["name"], municipality_code=code, limit=50))[
            "items"
        ]
        return None, [
            x for x in found if x["id"] != listing["id"] and venue_key(x.get("venue"), code) == key
        ]
    if not listing.get("venue"):
        return None, []
    key = venue_key(listing["venue"], code)
    found = directory.search(
        SearchQuery(q=listing["venue"], kinds=[VENUE_KIND], municipality_code=code, limit=5)
    )["items"]
    return next((x for x in found if venue_key(x.get("name"), code) == key), None), []


@bp.get("/resources/<listing_id>")
def resource(listing_id: str) -> Response:
    listing = _listing_or_404(listing_id)
    venue, held_here = _venue_links(listing)
    today = app_today()
    area = listing.get("service_area") or {}
    map_config = {
        **map_settings(listing.get("municipality_code")),
        "lat": listing.get("lat"),
        "lon": listing.get("lon"),
        "name": listing["name"],
    }
    town = None
    if listing.get("lat") is not None and listing.get("lon") is not None:
        try:
            found = (
                get_directory()
                .gazetteer()
                .town_at(listing["lat"], listing["lon"], listing.get("municipality_code"))
            )
        except ValueError:  # an unreadable municipality code: name no 町字 rather than fail
            found = None
        town = found.name if found is not None else None
    return _render(
        "resource.html",
        listing=listing,
        town=town,
        sessions=upcoming(listing, today),
        freshness=freshness(listing.get("verified_at"), today, current_app.config["STALE_DAYS"]),
        source=source_label(listing.get("source")),
        target_labels=[TARGETS.get(t, t) for t in listing.get("targets") or []],
        districts=area.get("districts") or [],
        venue=venue,
        held_here=held_here,
        map_config=map_config,
        capacity_info=_capacity_info(listing, today),
        nav="",
    )


def _capacity_info(listing: dict[str, Any], today: Any) -> dict[str, Any] | None:
    """Open places with the date they were reported (and how old that is)."""
    from resdb import capacity

    return capacity.describe_many(get_directory().engine, [listing], today).get(listing["id"])


@bp.get("/areas")
@rate_limited
def areas() -> Response:
    """わたしの地域 without JavaScript: an address (or lat/lon) → the centers responsible for it."""
    from resdb.web.api import lookup_area
    from resdb.web.areas import arrange

    result: dict[str, Any] | None = None
    arranged: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    if request.args.get("address") or request.args.get("lat") or request.args.get("lon"):
        try:
            result = lookup_area(request.args)
        except ApiError as problem:
            error, status = problem.message, problem.status
    outside = error is not None and status == 422
    if result is not None:
        town = result.get("town") or {}
        outside = not town and not result["items"]
        arranged = arrange(result["items"], town.get("municipality"))
    covered = [name for _code, name in municipality_options()]
    return _render(
        "areas.html",
        status=status,
        address=(request.args.get("address") or "").strip(),
        result=result,
        arranged=arranged,
        error=error,
        outside=outside,
        covered=covered,
        nav="areas",
    )
