"""Settings declared once (name, default, help): read from the environment, documented in README."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "RESDB_DATABASE_URL",
        None,
        "SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…); default: resdb.sqlite3 in the instance folder",
    ),
    Setting(
        "RESDB_INSTANCE",
        "./instance",
        "folder for the SQLite file, search index, secret key and uploads",
    ),
    Setting(
        "RESDB_SECRET_KEY",
        None,
        "session signing key; default: generated once, kept in the database on PostgreSQL (shared by every host) or in the instance folder on SQLite",
    ),
    Setting(
        "RESDB_TILE_URL",
        "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png",
        "map tile URL template for the public map",
    ),
    Setting(
        "RESDB_TILE_ATTRIBUTION",
        '<a href="https://maps.gsi.go.jp/development/ichiran.html">国土地理院</a>',
        "attribution shown under the map tiles",
    ),
    Setting("RESDB_WORKERS", "3", "worker processes for `resdb serve` (gunicorn)"),
    Setting(
        "RESDB_DEFAULT_MUNICIPALITY",
        "162116",
        "municipality the map and demo centre on (6-digit code)",
    ),
    Setting(
        "RESDB_STALE_DAYS", "365", "a listing not verified for this many days carries a caution"
    ),
    Setting(
        "RESDB_SECURE_COOKIES",
        "1",
        "mark the session cookie Secure (set 0 only for plain-http testing off localhost)",
    ),
    Setting(
        "RESDB_CHANGE_LOG_DAYS",
        "14",
        "days the listing change log is kept; a host whose search index is older rebuilds it from the database",
    ),
    Setting(
        "RESDB_MATCH_WAIT",
        "10",
        "seconds a match request waits for the candidate pool being built (at worker start or after a pruned log / bulk import) before it answers 準備中",
    ),
    Setting(
        "RESDB_FOLLOW_SECONDS",
        "0.1",
        "`resdb serve`: how often each worker checks the change log and brings its host's search index up to it in the background, so searches seldom wait for another host's edit to be applied (0: only when a request asks)",
    ),
    Setting(
        "RESDB_INDEX_COMMIT_SECONDS",
        "10",
        "`resdb serve` with a follower: a search sees an edit at once from memory, and the host writes edits into its search index in batches, at the latest this many seconds after the first waiting one (0: each edit is written when it is made)",
    ),
    Setting(
        "RESDB_MAP_WAIT",
        "10",
        "seconds a map request waits for the map's columns being loaded or built (at worker start, after a district upload or a pruned log) before it answers 準備中",
    ),
    Setting(
        "RESDB_HOST_EDITS_REVIEWED",
        "0",
        "1: a host's listing edits wait for an editor's review (corrections queue)",
    ),
    Setting(
        "RESDB_SHEET_RETENTION_DAYS",
        "365",
        "days a closed 相談依頼シート is kept before it is deleted",
    ),
    Setting(
        "RESDB_RATE_LIMIT",
        "120/2",
        "anonymous search requests per client IP: burst/refill-per-second (`off` disables)",
    ),
    Setting(
        "RESDB_STAFF_RATE_LIMIT",
        "600/10",
        "requests per signed-in staff account (session or API token), whatever their IP: burst/refill-per-second",
    ),
    Setting(
        "RESDB_TRUSTED_PROXIES",
        "",
        "comma-separated proxy addresses or networks whose X-Forwarded-For is believed (empty: none)",
    ),
)


def setting(name: str, environ: dict[str, str] | None = None) -> str | None:
    """The value of one declared setting: environment first, then its default."""
    env = os.environ if environ is None else environ
    for declared in SETTINGS:
        if declared.name == name:
            return env.get(name) or declared.default
    raise KeyError(f"undeclared setting {name}")


def instance_path(environ: dict[str, str] | None = None) -> Path:
    path = Path(setting("RESDB_INSTANCE", environ) or "./instance").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(environ: dict[str, str] | None = None) -> str:
    url = setting("RESDB_DATABASE_URL", environ)
    if url:
        return url
    return f"sqlite:///{instance_path(environ) / 'resdb.sqlite3'}"


def secret_key(environ: dict[str, str] | None = None) -> str:
    """The configured key, or one generated once and kept (0600) in the instance folder."""
    configured = setting("RESDB_SECRET_KEY", environ)
    if configured:
        return configured
    key_file = instance_path(environ) / "secret_key"
    if not key_file.exists():
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return key_file.read_text().strip()


def rate_limit(
    environ: dict[str, str] | None = None, name: str = "RESDB_RATE_LIMIT"
) -> tuple[int, float] | None:
    """(burst, refill per second) from RESDB_RATE_LIMIT (or another limit setting), or None when `off`."""
    value = (setting(name, environ) or "off").strip().lower()
    if value in {"off", "0", "none", ""}:
        return None
    burst, _, per_second = value.partition("/")
    return int(burst), float(per_second or 1)
