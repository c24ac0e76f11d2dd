"""The live display of ``tabresnet tune``: trials done of planned, best so far, time.

It polls the study's storage once a second, so it counts the trials of every
worker (other processes and machines included). Shown only on a terminal
(``progress="auto"``) or when asked (``"rich"``); otherwise nothing is drawn.
Rich's own columns give the elapsed and the remaining time.

>>> import optuna
>>> with TuneProgress(optuna.create_study(), planned=5, enabled=False):
...     pass
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from optuna.trial import TrialState

__all__ = ["TuneProgress", "progress_enabled", "snapshot"]


def progress_enabled(mode: str) -> bool:
    """``"auto"``: only when stderr is a terminal; ``"rich"``: always; ``"none"``: never."""
    return mode == "rich" or (mode == "auto" and sys.stderr.isatty())


def snapshot(study: Any) -> tuple[int, str]:
    """``(finished trials, status text)``: the best value, failed and running trials."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    parts = [f"best {min(values):.5g}"] if values else []
    for state in (TrialState.FAIL, TrialState.RUNNING):
        if states.count(state):
            parts.append(f"{states.count(state)} {'failed' if state == TrialState.FAIL else 'running'}")
    done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    return done, " · ".join(parts)


class TuneProgress:
    """A Rich progress line over ``study``, refreshed from a background thread.

    Parameters
    ----------
    study : optuna.Study
    planned : int
        Finished trials the study aims at.
    enabled : bool
    interval : float
        Seconds between two reads of the storage.
    """

    def __init__(self, study: Any, planned: int, enabled: bool = True, interval: float = 1.0):
        self.study, self.planned, self.enabled, self.interval = study, int(planned), enabled, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None

    def __enter__(self) -> TuneProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]tuning"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("tuning", total=self.planned, status="")
        self._progress.start()
        self._thread = threading.Thread(target=self._loop, name="tune-progress", daemon=True)
        self._thread.start()
        return self

    def refresh(self) -> None:
        try:
            done, status = snapshot(self.study)
        except Exception:  # a busy database: try again next time
            return
        self._progress.update(self._task, completed=min(done, self.planned), status=status)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._progress is not None:
            self.refresh()
            self._progress.stop()
            self._progress = None
