"""A directory's background threads (follower, rebuild, snapshot builds) stop and are joined on close():
none outlives the directory and keeps reading a database that is gone."""

from __future__ import annotations

import threading
import time

from resdb.background import Background
from resdb.directory import Directory
from resdb.hostsnapshot import BuilderThread


def _alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_close_stops_the_follower_and_waits_for_running_builds(make_directory) -> None:  # type: ignore[no-untyped-def]
    directory: Directory = make_directory("sqlite", "closing")
    directory.create(
        {"id": "a", "name": "サロン", "kind": "ibasho", "lat": 36.72, "lon": 137.1}, actor="t"
    )
    before = set(_alive("resdb-"))
    assert directory.start_follower(0.05) is not None  # the returned event is not set by the test
    finished = threading.Event()

    def slow_build() -> None:
        time.sleep(0.5)
        finished.set()

    builder = BuilderThread("resdb-test-build", directory.background)
    assert builder.start(slow_build)
    assert set(_alive("resdb-")) - before == {"resdb-follow", "resdb-test-build"}
    directory.close(timeout=10)
    assert finished.is_set()  # close waited for the build instead of leaving it running
    assert set(_alive("resdb-")) - before == set()
    # Nothing new starts on a closed directory.
    assert not builder.start(slow_build)
    assert directory.rebuild_in_background() is False


def test_close_reports_what_did_not_stop_in_time() -> None:
    background = Background()
    release = threading.Event()
    background.start("stuck", lambda: release.wait(10))
    assert background.close(timeout=0.1) == ["stuck"]
    release.set()
    assert background.close(timeout=5) == []
