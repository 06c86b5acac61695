"""The daemon threads one Directory starts (change-log follower, index rebuild, snapshot builders, web
imports), started in one place so that `close()` can stop and join them: none outlives its directory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Background:
    """Starts a directory's daemon threads and, on `close()`, tells them to stop and waits for them."""

    def __init__(self) -> None:
        self.stopping = threading.Event()  # set by close(); long-running loops check it
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, name: str, target: Callable[[], None]) -> threading.Thread | None:
        """Run `target` in a daemon thread; None (nothing started) once the directory is closing."""
        with self._lock:
            if self.stopping.is_set():
                return None
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
            return thread

    def close(self, timeout: float = 60.0) -> list[str]:
        """Stop starting threads, tell the running ones to stop and wait up to `timeout` seconds in all;
        returns the names of those still running after that."""
        with self._lock:
            self.stopping.set()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in threads if thread.is_alive()]
