"""Long imports outside the web request: each job runs in a thread and writes its progress and result to a
small JSON file in the instance folder, which any worker can read for the status page."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resdb.background import Background
from resdb.intake import FileProblem

log = logging.getLogger(__name__)
JOB_ID_LENGTH = 22
PROGRESS_EVERY_SECONDS = 0.5


class ImportJobs:
    """Start, follow and read import jobs kept under `folder` (one JSON file per job)."""

    def __init__(self, folder: Path, background: Background) -> None:
        self.folder = Path(folder)
        self.background = background  # the directory's: its close() waits for a running job
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str) -> Path | None:
        if len(job_id) != JOB_ID_LENGTH or not job_id.replace("-", "").replace("_", "").isalnum():
            return None
        return self.folder / f"{job_id}.json"

    def _write(self, job_id: str, state: dict[str, Any]) -> None:
        path = self.folder / f"{job_id}.json"
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(state, ensure_ascii=False, default=str), encoding="utf-8")
        temporary.replace(path)  # readers never see half a file

    def get(self, job_id: str) -> dict[str, Any] | None:
        path = self._path(job_id)
        if path is None or not path.exists():
            return None
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state

    def start(self, work: Callable[[Callable[[int], None]], Any], **meta: Any) -> str:
        """Run `work(progress)` in a thread; `work` returns an ImportReport. Returns the job id."""
        job_id = secrets.token_urlsafe(16)[:JOB_ID_LENGTH]
        state: dict[str, Any] = {
            **meta,
            "id": job_id,
            "state": "running",
            "rows": 0,
            "started": time.time(),
            "report": None,
            "error": None,
        }
        self._write(job_id, state)
        last = [0.0]

        def progress(n: int = 1) -> None:
            state["rows"] += n
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_SECONDS:
                last[0] = now
                self._write(job_id, state)

        def run() -> None:
            try:
                report = work(progress)
                state.update(state="done", report=report.as_dict(), finished=time.time())
            except FileProblem as exc:
                state.update(state="failed", error=exc.problem.message, finished=time.time())
            except Exception:  # the page must say something true, never a traceback
                log.exception("import job %s failed", job_id)
                state.update(
                    state="failed",
                    error="取り込みの途中で止まりました。何も書き込んでいません。もう一度お試しください",
                    finished=time.time(),
                )
            self._write(job_id, state)

        self.background.start(f"import-{job_id}", run)
        return job_id

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any] | None:
        """The job once it has finished (for tests and the CLI), or as it is after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job["state"] != "running":
                return job
            time.sleep(0.05)
        return self.get(job_id)
