"""The Flask application factory: one Directory per app, blueprints by audience, headers and errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, request, session
from flask.json.provider import DefaultJSONProvider

from resdb import config, geo
from resdb.db import begin_request_facts, end_request_facts
from resdb.directory import Directory
from resdb.domain.shipped import STATIC_DIR, TEMPLATES_DIR
from resdb.matching import Matching

GZIP_MIN_BYTES = 2048
_GZIP_TYPES = {
    "application/json",
    "application/geo+json",
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
}


class _JsonProvider(DefaultJSONProvider):
    """JSON as built: Japanese stays readable (no \\u escapes) and keys keep their order."""

    ensure_ascii = False
    sort_keys = False


def get_directory() -> Directory:
    """The app's Directory (routes stay thin over it)."""
    directory: Directory = current_app.extensions["resdb"]
    return directory


def get_matching() -> Matching:
    """The app's Matching, built once in create_app."""
    matching: Matching = current_app.extensions["resdb.matching"]
    return matching


def _open_directory(settings: dict[str, Any]) -> Directory:
    given: Directory | None = settings.get("DIRECTORY")
    if given is not None:
        return given
    instance = settings.get("INSTANCE")
    if instance is None:
        return Directory.open(settings.get("DATABASE_URL"), None)
    instance_path = Path(instance)
    instance_path.mkdir(parents=True, exist_ok=True)
    url = settings.get("DATABASE_URL") or config.database_url(
        {**os.environ, "RESDB_INSTANCE": str(instance_path)}
    )
    return Directory.open(url, instance_path)


def signing_key(settings: dict[str, Any], directory: Directory) -> str:
    """The signing key: configured, else (on a shared database such as PostgreSQL, where several hosts
    must sign alike) one kept in the database, else one kept in the instance folder."""
    if settings.get("SECRET_KEY"):
        return str(settings["SECRET_KEY"])
    if not config.setting("RESDB_SECRET_KEY") and not directory.is_embedded:
        return directory.shared_secret()
    return config.secret_key({**os.environ, "RESDB_INSTANCE": str(directory.instance_dir)})


def _gzip(response: Response) -> Response:
    """Compress larger JSON/HTML bodies when the client accepts gzip (the map's GeoJSON shrinks ~10×)."""
    if (
        response.direct_passthrough
        or response.status_code != 200
        or "Content-Encoding" in response.headers
        or response.mimetype not in _GZIP_TYPES
        or "gzip" not in request.headers.get("Accept-Encoding", "")
    ):
        return response
    body = response.get_data()
    if len(body) < GZIP_MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, compresslevel=1 if len(body) > 1_000_000 else 5))
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    return response


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The web app. `test_config` may give DIRECTORY (an open Directory), or DATABASE_URL / INSTANCE, and
    override any setting (TILE_URL, RATE_LIMIT=(burst, per_second) or None, TODAY=callable, …)."""
    from resdb.web import (
        api,
        basemap,
        coordinator,
        corrections,
        editor,
        host,
        match,
        public,
        sheets,
        staff,
    )
    from resdb.web.bodies import init_body_limits
    from resdb.web.errors import register_error_handlers
    from resdb.web.features import POINTS_UP_TO, FeatureCache, map_store, map_wait_setting
    from resdb.web.labels import register_filters
    from resdb.web.params import today_tokyo
    from resdb.web.security import init_csrf, init_rate_limit, init_security_headers

    settings = dict(test_config or {})
    app = Flask(
        __name__,
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
        static_url_path="/static",
    )
    app.config.update(
        TILE_URL=config.setting("RESDB_TILE_URL"),
        TILE_ATTRIBUTION=config.setting("RESDB_TILE_ATTRIBUTION"),
        DEFAULT_MUNICIPALITY=geo.code6(config.setting("RESDB_DEFAULT_MUNICIPALITY") or "16211"),
        STALE_DAYS=int(config.setting("RESDB_STALE_DAYS") or 365),
        RATE_LIMIT=config.rate_limit(),  # per client IP: default a burst of 120 searches, then 2 per second
        STAFF_RATE_LIMIT=config.rate_limit(name="RESDB_STAFF_RATE_LIMIT"),  # per signed-in account
        TRUSTED_PROXIES=config.setting("RESDB_TRUSTED_PROXIES") or "",
        TODAY=today_tokyo,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.setting("RESDB_SECURE_COOKIES") not in {"0", "false", "off"},
        SESSION_COOKIE_NAME="resdb_session",
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        GZIP=True,
        HOST_EDITS_REVIEWED=config.setting("RESDB_HOST_EDITS_REVIEWED")
        in {"1", "true", "on", "yes"},
    )
    app.config.update({k: v for k, v in settings.items() if k not in {"DIRECTORY"}})
    app.json = _JsonProvider(app)

    directory = _open_directory(settings)
    directory.serving = True
    app.extensions["resdb"] = directory
    # The map's columns: mapped from the host's shared snapshot (one process builds it), made ready now
    # in a background thread; a request waits for them up to RESDB_MAP_WAIT seconds, then gets 503.
    features = FeatureCache(
        directory,
        lambda: app.config["TODAY"](),
        points_up_to=int(app.config.get("MAP_POINTS_UP_TO", POINTS_UP_TO)),
        store=map_store(directory),
        background=True,
        wait=float(app.config.get("MAP_WAIT", map_wait_setting())),
    )
    app.extensions["resdb.features"] = features
    features.start()
    # Built once per app; its candidate pool is built now in a background thread (not in a request).
    matching = Matching(directory, stale_days=app.config["STALE_DAYS"], background=True)
    app.extensions["resdb.matching"] = matching
    matching.start()
    app.config["SECRET_KEY"] = signing_key(settings, directory)

    # The change-log head and the other freshness facts are read once per request (db.request_fact).
    app.before_request(begin_request_facts)
    app.teardown_request(lambda _error: end_request_facts())
    register_filters(app)
    register_error_handlers(app)
    init_security_headers(app)
    init_rate_limit(app)
    init_csrf(app)
    init_body_limits(app)
    from resdb.web.auth import session_account

    app.jinja_env.globals["current_staff"] = lambda: session_account() if "sid" in session else None
    if app.config["GZIP"]:
        app.after_request(_gzip)

    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(coordinator.bp)
    app.register_blueprint(match.bp)
    app.register_blueprint(host.bp)
    app.register_blueprint(sheets.supporter_bp)
    app.register_blueprint(sheets.window_bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(corrections.bp)
    app.register_blueprint(basemap.bp)
    app.extensions["resdb.basemap"] = basemap.BasemapCache()
    return app


__all__ = ["create_app", "get_directory", "get_matching", "signing_key"]
