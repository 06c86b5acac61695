"""Settings are declared once; every one is documented in the README."""

from __future__ import annotations

from pathlib import Path

from resdb import config

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [s.name for s in config.SETTINGS if f"`{s.name}`" not in README]
    assert missing == []


def test_environment_overrides_default(tmp_path: Path) -> None:
    env = {"RESDB_INSTANCE": str(tmp_path / "inst")}
    assert config.database_url(env) == f"sqlite:///{tmp_path / 'inst' / 'resdb.sqlite3'}"
    assert (
        config.database_url({**env, "RESDB_DATABASE_URL": "postgresql+psycopg://x/y"})
        == "postgresql+psycopg://x/y"
    )


def test_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    env = {"RESDB_INSTANCE": str(tmp_path)}
    first = config.secret_key(env)
    assert first == config.secret_key(env) and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
