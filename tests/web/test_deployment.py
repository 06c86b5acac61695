"""The deployment shape, run for real: `resdb serve` with several gunicorn workers, and two hosts (own
instance folders) on one PostgreSQL database. Edits go through the JSON API; every answer afterwards,
from any worker or host, shows each place once and as it now is."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_AVAILABLE

RESDB = shutil.which("resdb") or str(
    Path(__file__).resolve().parents[2] / ".venv" / "bin" / "resdb"
)
SALON = {
    "id": "h-salon",
    "name": "戸破ふれあいサロン",
    "kind": "kayoi",
    "lat": 36.7236,
    "lon": 137.0991,
    "targets": ["elderly"],
    "schedule": [{"weekday": "sat", "start": "10:00", "end": "12:00"}],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Host:
    """One `resdb serve` process (gunicorn master + workers) on its own instance folder."""

    def __init__(self, url: str, instance: Path, workers: int, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.instance = instance
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                RESDB,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env={
                **os.environ,
                **env,
                "RESDB_DATABASE_URL": url,
                "RESDB_INSTANCE": str(instance),
                "RESDB_RATE_LIMIT": "off",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.get("/api/resources?limit=1")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None:
                    raise RuntimeError("resdb serve exited") from None
                time.sleep(0.3)
        raise RuntimeError("resdb serve did not answer")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + urllib.parse.quote(path, safe="/?&=:,\"'"),
            data=data,
            method=method,
            headers={"Connection": "close", **(headers or {})},
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def ids(self, query: str) -> list[str]:
        body = self.get(f"/api/resources?limit=100&{query}")
        found = [item["id"] for item in body["items"]]
        assert body["total"] == len(found), body  # the count matches what is listed
        assert len(found) == len(set(found)), found  # each place once
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


@pytest.fixture
def hosts(make_directory, tmp_path: Path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    started: list[Host] = []

    def start(backend: str, count: int, workers: int) -> tuple[list[Host], str]:
        from resdb import accounts

        directory = make_directory(backend, name="seed")
        directory.create(dict(SALON), actor="fixture")
        accounts.add_user(directory.engine, "editor@example.jp", "editor", None)
        token = accounts.create_token(directory.engine, "editor@example.jp")
        url = directory.engine.url.render_as_string(hide_password=False)
        for n in range(count):
            instance = directory.instance_dir if n == 0 else tmp_path / f"host-{n}"
            started.append(Host(url, instance, workers, {}))
        return started[-count:], token

    yield start
    for host in started:
        host.stop()


def _patch(host: Host, token: str, listing_id: str, change: dict[str, Any]) -> dict[str, Any]:
    status, current = host.request("GET", f"/api/resources/{listing_id}")
    assert status == 200
    status, body = host.request(
        "PATCH", f"/api/resources/{listing_id}", {**change, "version": current["version"]}, token
    )
    assert status == 200, body
    return body


def _matched(host: Host, weekday: str) -> list[str]:
    """Places proposed to a person next door who is free on that weekday (any worker answers)."""
    person = {
        "home": {"lat": SALON["lat"], "lon": SALON["lon"]},
        "mobility": "walk",
        "max_minutes": 30,
        "available": [{"weekday": weekday, "start": "09:00", "end": "13:00"}],
        "goals": ["friends"],
        "targets": ["elderly"],
    }
    status, body = host.request("POST", "/api/match", person)
    assert status == 200, body
    return [p["resource_id"] for p in body["proposals"]]


def test_edits_show_once_and_current_on_every_worker(hosts) -> None:  # type: ignore[no-untyped-def]
    (host,), token = hosts("sqlite", 1, 3)
    assert host.ids("q=さろん") == ["h-salon"]
    for _ in range(6):  # every worker's matching pool is the host's one snapshot, mapped
        assert _matched(host, "sat") == ["h-salon"]
    for day in ("fri", "tue", "sun"):
        _patch(
            host,
            token,
            "h-salon",
            {"schedule": [{"weekday": day, "start": "10:00", "end": "12:00"}]},
        )
        for _ in range(12):  # new connections: spread over the three workers
            assert host.ids("q=さろん") == ["h-salon"]
            assert host.ids(f"q=さろん&weekday={day}") == ["h-salon"]
            assert host.ids("q=さろん&weekday=sat") == []
            features = host.get("/api/resources.geojson")["features"]
            assert [f["id"] for f in features].count("h-salon") == 1
            assert _matched(host, day) == ["h-salon"] and _matched(host, "sat") == []
    status, created = host.request(
        "POST", "/api/resources", {**SALON, "id": "h-new", "name": "新しいサロン"}, token
    )
    assert status == 201, created
    for _ in range(8):
        assert sorted(host.ids("q=さろん")) == ["h-new", "h-salon"]
    status, _ = host.request(
        "DELETE", "/api/resources/h-new", token=token, headers={"If-Match": '"v1"'}
    )
    assert status in {200, 204}
    for _ in range(8):
        assert host.ids("q=さろん") == ["h-salon"]
    snapshots = host.instance / "snapshots" / "matchpool"
    assert (
        len([p for p in snapshots.iterdir() if p.name.startswith("s")]) == 1
    )  # one build per host


@pytest.mark.postgres
@pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable")
def test_two_hosts_on_postgresql_agree_within_two_seconds(hosts) -> None:  # type: ignore[no-untyped-def]
    (host_a, host_b), token = hosts("postgres", 2, 2)

    def within_two_seconds(check) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 2.0
        while not check():
            assert time.monotonic() < deadline, "host B did not follow host A within 2 s"
            time.sleep(0.05)

    status, _ = host_a.request(
        "POST", "/api/resources", {**SALON, "id": "h-new", "name": "新しい集い"}, token
    )
    assert status == 201
    within_two_seconds(lambda: host_b.ids("q=集い") == ["h-new"])
    _patch(host_a, token, "h-new", {"name": "名前を変えた会"})
    within_two_seconds(
        lambda: host_b.ids("q=名前を変えた") == ["h-new"] and host_b.ids("q=集い") == []
    )
    status, _ = host_a.request(
        "DELETE", "/api/resources/h-new", token=token, headers={"If-Match": '"v2"'}
    )
    assert status in {200, 204}
    within_two_seconds(lambda: host_b.ids("q=名前を変えた") == [])
    status, body = host_b.request(
        "PATCH", "/api/resources/h-salon", {"capacity": 4}, token, headers={"If-Match": '"v1"'}
    )
    assert status == 200 and body["capacity"] == 4
    within_two_seconds(lambda: host_a.get("/api/resources/h-salon")["capacity"] == 4)


@pytest.mark.postgres
@pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable")
def test_hosts_of_one_database_sign_alike(
    make_directory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Without RESDB_SECRET_KEY, hosts of one PostgreSQL database share the key kept in it, so a staff
    session or a form from host A is valid on host B; on SQLite (one host) the instance folder keeps it."""
    from resdb.directory import Directory
    from resdb.web import create_app

    monkeypatch.delenv("RESDB_SECRET_KEY", raising=False)
    directory = make_directory("postgres", name="a")
    host_b = Directory(directory.engine, tmp_path / "host-b")
    host_b.ensure_ready()
    key_a = create_app({"DIRECTORY": directory}).config["SECRET_KEY"]
    key_b = create_app({"DIRECTORY": host_b}).config["SECRET_KEY"]
    assert key_a == key_b and len(key_a) >= 32
    embedded = make_directory("sqlite", name="embedded")
    assert create_app({"DIRECTORY": embedded}).config["SECRET_KEY"] != key_a


@pytest.mark.postgres
@pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable")
def test_a_host_with_another_signing_key_is_refused_at_start(
    make_directory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    directory = make_directory("postgres", name="a")
    assert directory.same_signing_key("the key of the first host")
    url = directory.engine.url.render_as_string(hide_password=False)
    result = subprocess.run(
        [RESDB, "serve", "--port", str(_free_port())],
        env={
            **os.environ,
            "RESDB_DATABASE_URL": url,
            "RESDB_INSTANCE": str(tmp_path / "host-b"),
            "RESDB_SECRET_KEY": "another key",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "RESDB_SECRET_KEY" in result.stderr and "another key" not in result.stderr
