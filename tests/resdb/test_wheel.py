"""The package as a user installs it: the wheel holds templates, static files, shipped data and alembic's
template; installed into a fresh virtualenv it runs `resdb init` and serves `/` and a search from a
directory that is not the checkout (real processes, real HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
REQUIRED_IN_WHEEL = (
    "resdb/templates/base.html",
    "resdb/templates/index.html",
    "resdb/static/js/common.js",
    "resdb/static/vendor/leaflet/leaflet.js",
    "resdb/data/geo/16211/boundary_n03_2022.geojson",
    "resdb/data/geo/16211/chiku.csv",
    "resdb/data/listings/16211_imizu.json",
    "resdb/migrations/env.py",
    "resdb/migrations/script.py.mako",
    "matcher/__init__.py",
)
INSTALL_SECONDS = 1500  # dependencies come from this machine's pip index and cache


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{args[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode("utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (the build leaves nothing in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    for name in ("resdb", "matcher"):
        shutil.copytree(
            PROJECT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        timeout=600,
    )
    (built,) = dist.glob("resdb-*.whl")
    return built


def test_the_wheel_holds_the_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in REQUIRED_IN_WHEEL if name not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    assert sum(name.startswith("resdb/templates/") for name in names) >= 20
    assert sum(name.startswith("resdb/data/listings/") for name in names) >= 15
    assert not any(name.startswith(("tests/", "bench/", "tools/")) for name in names)


def test_installed_wheel_inits_and_serves_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)  # no site packages of ours
    python, resdb = venv / "bin" / "python", venv / "bin" / "resdb"
    _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        timeout=INSTALL_SECONDS,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RESDB_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        RESDB_INSTANCE=str(tmp_path / "instance"),
        RESDB_RATE_LIMIT="off",
        RESDB_TILE_URL="off",
        RESDB_SECURE_COOKIES="0",
    )
    where = _run(
        [str(python), "-c", "import resdb, matcher; print(resdb.__file__, matcher.__file__)"],
        cwd=elsewhere,
        env=env,
        timeout=120,
    ).stdout.split()
    site = str(venv / "lib")
    assert all(path.startswith(site) for path in where), where  # from the wheel, not the checkout

    _run([str(resdb), "init"], cwd=elsewhere, env=env, timeout=600)
    port = _free_port()
    server = subprocess.Popen(
        [str(resdb), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, page = _get(base + "/")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    _out, err = server.communicate(timeout=10)
                    pytest.fail(f"resdb serve did not answer: {err.decode()[-3000:]}")
                time.sleep(0.5)
        assert status == 200 and "<html" in page and "/static/" in page
        status, css = _get(base + "/static/css/site.css")
        assert status == 200 and css.strip()
        query = urllib.parse.quote("さろん")
        status, html = _get(f"{base}/search?q={query}")
        assert status == 200 and "サロン" in html
        status, body = _get(f"{base}/api/resources?q={query}&limit=5")
        found = json.loads(body)
        assert status == 200 and found["total"] >= 5
        assert "サロン" in found["items"][0]["name"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
