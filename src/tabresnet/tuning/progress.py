"""The live display of ``tabresnet tune``: trials done of planned, best so far, time.

It polls the study's storage once a second, so it counts the trials of every
worker (other processes and machines included). Shown only on a terminal
(``progress="auto"``) or when asked (``"rich"``); otherwise nothing is drawn.

>>> TuneProgress(lambda: (0, 0, 0, None), planned=5, enabled=False).start().stop()
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

__all__ = ["TuneProgress", "progress_enabled"]

# (finished, failed, running, best value or None)
Snapshot = tuple[int, int, int, "float | None"]


def progress_enabled(mode: str) -> bool:
    """``"auto"``: only when stderr is a terminal; ``"rich"``: always; ``"none"``: never."""
    if mode == "none":
        return False
    if mode == "rich":
        return True
    return sys.stderr.isatty()


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TuneProgress:
    """A Rich progress line fed by ``read() -> (finished, failed, running, best)``.

    Parameters
    ----------
    read : callable
        Polled from a background thread once a second.
    planned : int
        Finished trials the study aims at.
    deadline : float, optional
        ``time.time()`` at which no new trial starts.
    enabled : bool
    """

    def __init__(
        self,
        read: Callable[[], Snapshot],
        planned: int,
        deadline: float | None = None,
        enabled: bool = True,
        interval: float = 1.0,
    ):
        self.read = read
        self.planned = int(planned)
        self.deadline = deadline
        self.enabled = enabled
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = None
        self._task = None
        self._start = time.time()
        self._first_done: int | None = None

    def start(self) -> TuneProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._start = time.time()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("tuning", total=self.planned, status="")
        self._progress.start()
        self._thread = threading.Thread(target=self._loop, name="tune-progress", daemon=True)
        self._thread.start()
        return self

    def describe(self, text: str) -> None:
        """Change the label (e.g. "retraining best")."""
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def _status(self, snap: Snapshot) -> str:
        done, failed, running, best = snap
        now = time.time()
        if self._first_done is None:
            self._first_done = done
        parts = []
        if best is not None:
            parts.append(f"best {best:.5g}")
        if failed:
            parts.append(f"{failed} failed")
        if running:
            parts.append(f"{running} running")
        elapsed = now - self._start
        parts.append(f"{_clock(elapsed)} elapsed")
        new = done - self._first_done
        left = None
        if new > 0:
            left = elapsed / new * max(0, self.planned - done)
        if self.deadline is not None:
            left = min(left, self.deadline - now) if left is not None else self.deadline - now
        if left is not None:
            parts.append(f"~{_clock(left)} left")
        return " · ".join(parts)

    def refresh(self) -> None:
        try:
            snap = self.read()
        except Exception:  # a busy database: try again next second
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=min(snap[0], self.planned),
                                  status=self._status(snap))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._progress is not None:
            self.refresh()
            self._progress.stop()
            self._progress = None
