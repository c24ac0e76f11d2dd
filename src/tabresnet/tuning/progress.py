"""The progress of ``tabresnet tune``: trials done of planned, best so far, time.

It polls the study's storage once a second, so it counts the trials of every
worker (other processes and machines included). On a terminal
(``progress="auto"``) or when asked (``"rich"``) it is a live Rich line whose
own columns give the elapsed and the remaining time. When stderr is not a
terminal (nohup, CI, ``| tee``), ``"auto"`` writes one plain log line per
finished trial instead (:class:`TrialLog`); ``"none"`` shows nothing.

>>> import optuna
>>> with TuneProgress(optuna.create_study(), planned=5, enabled=False):
...     pass
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from optuna.trial import TrialState

from ..training.loop import format_seconds

__all__ = ["TrialLog", "TuneProgress", "log_enabled", "progress_enabled", "snapshot"]


def progress_enabled(mode: str) -> bool:
    """``"auto"``: only when stderr is a terminal; ``"rich"``: always; ``"none"``: never."""
    return mode == "rich" or (mode == "auto" and sys.stderr.isatty())


def log_enabled(mode: str) -> bool:
    """``"auto"`` with stderr not a terminal: one log line per finished trial instead."""
    return mode == "auto" and not sys.stderr.isatty()


_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class TrialLog:
    """One line per finished trial, for a log rather than a terminal.

    Each line gives the elapsed time, the trial's number, state and value,
    the best value so far, the finished (complete or pruned) trials of the
    planned number, and an estimate of the time left: from the pace of the
    trials finished since the start, and no later than the deadline when
    there is one. Trials finished
    before the start (a resumed study) are counted but not listed.

    Parameters
    ----------
    study : optuna.Study
    planned : int
        Finished trials the study aims at.
    deadline : float, optional
        When the search stops, on ``clock``'s scale.
    clock : callable
        Seconds now; ``time.time`` (the deadline's scale in :func:`tune`).
    out : file, optional
        Default: ``sys.stderr`` at the time of writing.

    Examples
    --------
    >>> import io, optuna
    >>> study = optuna.create_study()
    >>> now = [100.0]
    >>> log = TrialLog(study, planned=4, clock=lambda: now[0], out=io.StringIO())
    >>> log.start()
    >>> study.add_trial(optuna.trial.create_trial(value=0.75))
    >>> now[0] = 130.0
    >>> print(log.poll()[0])
    tune 30s: trial 0 complete, value 0.75; best 0.75 (trial 0); 1/4 done, about 1m30s left
    """

    def __init__(self, study: Any, planned: int, deadline: float | None = None,
                 clock: Callable[[], float] = time.time, out: TextIO | None = None):
        self.study, self.planned, self.deadline = study, int(planned), deadline
        self.clock, self.out = clock, out
        self._seen: set[int] = set()
        self._best: tuple[float, int] | None = None
        self._start = 0.0
        self._done = 0  # finished (complete or pruned) trials, earlier runs' included
        self._done_here = 0  # trials finished (complete or pruned) since start()

    def _trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False, states=_FINISHED)

    def start(self) -> None:
        """Note the time and the trials already finished (a resumed study)."""
        self._start = self.clock()
        for t in self._trials():
            self._seen.add(t.number)
            self._done += t.state != TrialState.FAIL
            self._note_best(t)

    def _note_best(self, t: Any) -> None:
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            if self._best is None or t.value < self._best[0]:
                self._best = (float(t.value), t.number)

    def poll(self) -> list[str]:
        """Write (and return) one line per trial finished since the last poll."""
        new = [t for t in self._trials() if t.number not in self._seen]
        new.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
        lines = []
        for t in new:  # each line as things stood when its trial finished
            self._seen.add(t.number)
            self._done_here += t.state != TrialState.FAIL  # the pace: trials that ran through
            self._done += t.state != TrialState.FAIL
            self._note_best(t)
            lines.append(self._line(t, self._done))
        out = self.out or sys.stderr
        for line in lines:
            print(line, file=out, flush=True)
        return lines

    def _line(self, t: Any, done: int) -> str:
        elapsed = self.clock() - self._start
        if t.state == TrialState.COMPLETE:
            what = f"complete, value {t.value:.5g}"
        elif t.state == TrialState.PRUNED:
            what = "stopped at the time limit" if t.user_attrs.get("stopped") else "pruned"
            steps = t.intermediate_values
            if steps:
                last = max(steps)
                what += f" at epoch {last + 1} (value {steps[last]:.5g})"
        else:
            reason = t.user_attrs.get("fail_reason")
            what = f"failed: {reason}" if reason else "failed"
        best = (f"best {self._best[0]:.5g} (trial {self._best[1]})" if self._best
                else "no complete trial yet")
        line = f"tune {format_seconds(elapsed)}: trial {t.number} {what}; {best}; " \
               f"{min(done, self.planned)}/{self.planned} done"
        left = self._time_left(elapsed, done)
        if left is not None:
            line += f", about {format_seconds(left)} left"
        return line

    def _time_left(self, elapsed: float, done: int) -> float | None:
        estimates = []
        remaining = max(self.planned - done, 0)
        if remaining == 0:
            return None
        if self._done_here and elapsed > 0:
            estimates.append(elapsed / self._done_here * remaining)
        if self.deadline is not None:
            estimates.append(max(self.deadline - self.clock(), 0.0))
        return min(estimates) if estimates else None


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
        Draw the live Rich line.
    interval : float
        Seconds between two reads of the storage.
    log : bool
        When not ``enabled``: write one :class:`TrialLog` line per finished trial.
    deadline : float, optional
        The search's end (``time.time()`` scale), for the log's time left.
    """

    def __init__(self, study: Any, planned: int, enabled: bool = True, interval: float = 1.0,
                 log: bool = False, deadline: float | None = None):
        self.study, self.planned, self.enabled, self.interval = study, int(planned), enabled, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None
        self._log = TrialLog(study, planned, deadline) if log and not enabled else None

    def __enter__(self) -> TuneProgress:
        if self._log is not None:
            self._log.start()
            self._thread = threading.Thread(target=self._loop, name="tune-log", daemon=True)
            self._thread.start()
            return self
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
        if self._log is not None:
            try:
                self._log.poll()
            except Exception:  # a busy database: try again next time
                pass
            return
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
        if self._log is not None:
            self.refresh()  # the trials finished since the last poll
        if self._progress is not None:
            self.refresh()
            self._progress.stop()
            self._progress = None
