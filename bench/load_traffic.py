"""The traffic of the load test (bench/bench_load.py): simulated users at a browser, editors on a fixed
schedule, the freshness probe, and the recorder of what each request took."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_freshness import call  # noqa: E402  (the deployment-shape helpers)
from bench_web import QUERIES  # noqa: E402

from resdb.synth import regions_for  # noqa: E402

PROBE_SECONDS = 30.0

KINDS = ["kayoi", "ibasho", "shokudo", "kosodate", "work_trial", "volunteer", "learning"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TARGETS = ["elderly", "children", "parents", "youth", "disability", "hikikomori"]
# What a user does next (weights): map pans dominate, as on the public page.
ACTIONS = {"map": 35, "search": 30, "detail": 25, "match": 10}
# Request types as reported, in order; map pans are reported by the zoom they were made at.
TYPES = [
    "map z9-11 (region)",
    "map z12-14 (town)",
    "map z15-17 (street)",
    "search text",
    "search filters",
    "search distance",
    "detail page",
    "match",
    "edit read (GET)",
    "edit write (PATCH)",
]


# -- the simulated users ----------------------------------------------------------------------------
@dataclass
class Sample:
    kind: str
    at: float
    ms: float
    status: int
    size: int = 0


@dataclass
class Recorder:
    """Samples of the counted window; a request still unanswered when the run ends is counted as an
    error ("no answer by the end") with the time it had waited."""

    counted_from: float = 0.0
    stop_at: float = math.inf
    closed: bool = False
    samples: list[Sample] = field(default_factory=list)
    pending: dict[int, tuple[str, float]] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)
    probes: int = 0
    _ids: Any = field(default_factory=itertools.count)

    def counts(self, at: float) -> bool:
        return self.counted_from <= at < self.stop_at

    def timed(self, kind: str, at: float, request: Callable[[], tuple[int, Any, float]]) -> Any:
        """Run `request` (returning status, body or size, ms) and record it as one `kind` sample."""
        key = next(self._ids)
        self.pending[key] = (kind, at)
        try:
            status, body, ms = request()
        finally:
            self.pending.pop(key, None)
        if not self.closed and self.counts(at):
            size = body if isinstance(body, int) else 0
            self.samples.append(Sample(kind, at, ms, status, size))  # atomic under the GIL
        return status, body, ms

    def close(self) -> None:
        """End of the run: what is still waiting becomes an error sample; later answers are ignored."""
        self.closed = True
        now = time.monotonic()
        for kind, at in list(self.pending.values()):
            if self.counts(at):
                self.samples.append(Sample(kind, at, (now - at) * 1000, -1))


def send(
    base: str,
    path: str,
    *,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, int, float]:
    """(status, body bytes, milliseconds) of one request; 0 for a timeout or a refused connection."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            size = len(response.read())
            status = response.status
    except urllib.error.HTTPError as error:
        size, status = len(error.read() or b""), error.code
    except (urllib.error.URLError, OSError):
        size, status = 0, 0
    return status, size, (time.perf_counter() - started) * 1000


def viewport(lat: float, lon: float, zoom: int) -> str:
    """The bbox the public map asks for: a 1280×800 px view at `zoom`, padded by half on every side."""
    lon_span = 1280 * 360 / (256 * 2**zoom)
    lat_span = 800 * 360 / (256 * 2**zoom) * math.cos(math.radians(lat))
    return ",".join(
        f"{v:.5f}"
        for v in (lon - lon_span, lat - lat_span, lon + lon_span, lat + lat_span)  # pad(0.5) → 2×
    )


def map_type(zoom: int) -> str:
    return TYPES[0] if zoom <= 11 else TYPES[1] if zoom <= 14 else TYPES[2]


class User(threading.Thread):
    """One person at a browser: a map view they pan and zoom, searches, detail pages, matches."""

    def __init__(
        self, n: int, hosts: list[str], args: argparse.Namespace, ctx: dict[str, Any]
    ) -> None:
        super().__init__(
            daemon=True, name=f"user-{n}"
        )  # an unanswered request does not hold the end
        self.n = n
        self.hosts = hosts
        self.args = args
        self.ctx = ctx
        self.rng = random.Random(args.seed * 1000 + n)
        # Each user browses one region box of the corpus (resdb.synth.regions_for), as residents do.
        boxes = regions_for(args.listings, getattr(args, "per_region", 0) or None)
        self.box = boxes[n % len(boxes)]
        self.lat = self.rng.uniform(self.box[0], self.box[2])
        self.lon = self.rng.uniform(self.box[1], self.box[3])
        self.zoom = self.rng.choice([10, 11, 12, 13, 14])
        self.turn = n  # round-robin over the hosts, each user starting at its own
        self.headers = {"X-Forwarded-For": f"10.77.{n // 250}.{n % 250 + 1}"}

    def run(self) -> None:
        stop_at: float = self.ctx["stop_at"]
        time.sleep(self.rng.uniform(0, self.args.think_max))
        while time.monotonic() < stop_at:
            action = self.rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
            base = self.hosts[self.turn % len(self.hosts)]
            self.turn += 1
            getattr(self, action)(base)
            time.sleep(self.rng.uniform(self.args.think_min, self.args.think_max))

    def _get(self, kind: str, base: str, path: str, **extra: str) -> None:
        headers = {**self.headers, **extra}
        self.ctx["recorder"].timed(
            kind,
            time.monotonic(),
            lambda: send(base, path, headers=headers, timeout=self.args.timeout),
        )

    def map(self, base: str) -> None:
        move = self.rng.random()
        span = 1800 / 2**self.zoom
        if move < 0.6:  # pan by up to half a view
            self.lon += self.rng.uniform(-0.5, 0.5) * span
            self.lat += self.rng.uniform(-0.5, 0.5) * span * 0.5
        elif move < 0.8:
            self.zoom = min(17, self.zoom + 1)
        else:
            self.zoom = max(9, self.zoom - 1)
        self.lat = min(self.box[2], max(self.box[0], self.lat))
        self.lon = min(self.box[3], max(self.box[1], self.lon))
        self.view(base)

    def view(self, base: str) -> None:
        """Ask for the map's features of the current view, as the public map's script does."""
        query = urlencode({"bbox": viewport(self.lat, self.lon, self.zoom), "zoom": self.zoom})
        self._get(
            map_type(self.zoom),
            base,
            f"/api/resources.geojson?{query}",
            **{"Accept-Encoding": "gzip", "Accept": "application/geo+json"},
        )

    def search(self, base: str, pick: float | None = None) -> None:
        rng = self.rng
        pick = rng.random() if pick is None else pick
        if pick < 0.4:
            params: list[tuple[str, Any]] = [("q", rng.choice(QUERIES))]
            kind = "search text"
        elif pick < 0.7:
            params = [("kind", rng.choice(KINDS))]
            if rng.random() < 0.5:
                params.append(("weekday", rng.choice(WEEKDAYS)))
            if rng.random() < 0.3:
                params.append(("free", "1"))
            if rng.random() < 0.3:
                params.append(("open", "week"))
            if rng.random() < 0.3:
                params.append(("target", rng.choice(TARGETS)))
            if rng.random() < 0.3:
                params.append(("q", rng.choice(QUERIES)))
            kind = "search filters"
        else:
            params = [
                ("lat", f"{rng.uniform(self.box[0], self.box[2]):.5f}"),
                ("lon", f"{rng.uniform(self.box[1], self.box[3]):.5f}"),
                ("radius_km", rng.choice([1, 2, 5, 10])),
            ]
            if rng.random() < 0.5:
                params.append(("q", rng.choice(QUERIES)))
            kind = "search distance"
        self._get(kind, base, f"/api/resources?{urlencode(params)}", **{"Accept-Encoding": "gzip"})

    def detail(self, base: str) -> None:
        listing_id = f"syn-{self.args.seed}-{self.rng.randrange(self.args.listings):06d}"
        self._get("detail page", base, f"/resources/{listing_id}", **{"Accept-Encoding": "gzip"})

    def match(self, base: str) -> None:
        person = self.rng.choice(self.ctx["persons"])
        tokens = self.ctx["tokens"]["coordinator"]
        headers = {
            **self.headers,
            "Authorization": f"Bearer {tokens[self.n % len(tokens)]}",
            "Accept-Encoding": "gzip",
        }
        self.ctx["recorder"].timed(
            "match",
            time.monotonic(),
            lambda: send(
                base,
                "/api/match?limit=10",
                method="POST",
                body=person,
                headers=headers,
                timeout=self.args.timeout,
            ),
        )


def calibrate(bases: list[str], args: argparse.Namespace, ctx: dict[str, Any]) -> Recorder:
    """One request at a time, no think time: what each type costs when it does not queue."""
    recorder = Recorder()
    user = User(args.users, bases, args, {**ctx, "recorder": recorder})
    for n in range(args.calibrate):
        for zoom in (10, 13, 16):
            user.zoom = zoom
            user.view(bases[n % len(bases)])
        for pick in (0.2, 0.5, 0.9):  # text, filters, distance
            user.search(bases[n % len(bases)], pick)
        user.detail(bases[n % len(bases)])
        user.match(bases[n % len(bases)])
    return recorder


# -- the edits and the freshness probe ----------------------------------------------------------------
def edit_loop(hosts: list[str], args: argparse.Namespace, ctx: dict[str, Any]) -> None:
    """`--edits-per-second` renames on a fixed schedule (workers so a slow edit does not delay the
    next), alternating hosts; every `--probe-every`-th is handed to the freshness probe."""
    recorder: Recorder = ctx["recorder"]
    if args.edits_per_second <= 0:
        return
    token = ctx["tokens"]["editor"][0]
    rng = random.Random(args.seed + 17)
    total = int(args.edits_per_second * (args.duration + args.warmup)) + 10
    ids = [f"syn-{args.seed}-{i:06d}" for i in rng.sample(range(args.listings), total)]
    # A name no earlier run gave (a run seeded like the last would rename to the names it already
    # has: the server stores nothing for an unchanged listing, and the "edits" would cost nothing).
    run = f"{time.strftime('%H%M%S')}{random.SystemRandom().randrange(1000):03d}"
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()

    def editor() -> None:
        while (job := jobs.get()) is not None:
            n, at = job  # counted by when it was due, so the warm-up's late edits stay out
            base = hosts[n % len(hosts)]
            listing_id = ids[n]
            status, current, _ms = recorder.timed(
                "edit read (GET)",
                at,
                partial(
                    call,
                    base,
                    "GET",
                    f"/api/resources/{listing_id}",
                    token=token,
                    timeout=args.timeout,
                ),
            )
            if status != 200:
                continue
            name = f"負荷試験{run}の場{n}番"
            body = {"name": name, "version": current["version"]}
            status, _, _ms = recorder.timed(
                "edit write (PATCH)",
                at,
                partial(
                    call,
                    base,
                    "PATCH",
                    f"/api/resources/{listing_id}",
                    body,
                    token,
                    timeout=args.timeout,
                ),
            )
            if status == 200 and n % args.probe_every == 0 and recorder.counts(at):
                other = hosts[(n + 1) % len(hosts)]
                tokens = ctx["tokens"]["probe"]
                prober = threading.Thread(
                    target=probe,
                    args=(recorder, other, listing_id, name, tokens[n % len(tokens)]),
                    daemon=True,
                )
                ctx["probe_threads"].append(prober)
                prober.start()

    workers = [threading.Thread(target=editor, daemon=True) for _ in range(8)]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    n = 0
    while time.monotonic() < recorder.stop_at and n < total:
        jobs.put((n, time.monotonic()))
        n += 1
        time.sleep(max(0.0, started + n / args.edits_per_second - time.monotonic()))
    ctx["edits_backlog"] = jobs.qsize()
    ctx["edit_jobs"] = jobs  # what is still queued at the end counts as failed edits
    for _ in workers:
        jobs.put(None)
    for worker in workers:
        worker.join(timeout=max(0.0, recorder.stop_at + args.timeout - time.monotonic()))


def probe(recorder: Recorder, base: str, listing_id: str, name: str, token: str) -> None:
    """Poll the other host's search until the new name is found: every 0.1 s for the first second,
    then every 0.5 s, for at most PROBE_SECONDS."""
    written = time.monotonic()
    recorder.probes += 1
    polls = 0
    statuses: Counter[int] = Counter()
    while time.monotonic() < written + PROBE_SECONDS and not recorder.closed:
        status, body, _ = call(
            base, "GET", f"/api/resources?q={name}&limit=10", token=token, timeout=10.0
        )
        statuses[status] += 1
        if status == 200 and any(
            x["id"] == listing_id and x["name"] == name for x in body["items"]
        ):
            recorder.lags.append((time.monotonic() - written) * 1000)
            return
        polls += 1
        time.sleep(0.1 if polls < 10 else 0.5)
    # what the polls got (a 429 or a timeout is not a stale index)
    answers = ", ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))
    recorder.unseen.append(f"{listing_id} on {base} ({answers})")
