"""One trial: sample a run config from the space, train it with pruning, return the val RMSE.

The objective is deliberately small (optuna-examples' shape): every
``trial.suggest_*`` happens in :meth:`SearchSpace.sample`, training is
:func:`tabresnet.training.train_network` with :class:`PruningCallback`, and the
value is the best validation RMSE in target units (the mean over folds with
``cv``).

A trial that cannot give a value is *failed*, never fatal: divergence (NaN or
inf loss), running out of memory, an exception, or a stop request (Ctrl-C)
raise :class:`TrialFailed`, whose reason is stored as the trial's
``fail_reason`` user attribute; the study goes on with the next trial.

>>> flag = StopFlag()
>>> flag.requested, flag.request("test"), flag.requested
(False, None, True)
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from lightning.pytorch.callbacks import Callback

from ..defaults import RunConfig
from ..training import Prepared, train_network
from .results import FAIL_REASON, WORKER
from .space import SearchSpace

__all__ = ["FAIL_REASON", "Best", "Objective", "PruningCallback", "StopFlag", "TrialFailed",
           "worker_id"]

log = logging.getLogger("tabresnet.tuning")

# A worker (sequential or packed) gives up after this many failed trials in a row:
# a space or data problem that fails every trial should not burn the whole budget.
MAX_CONSECUTIVE_FAILURES = 10

# Trial user attributes (with results.FAIL_REASON and results.WORKER).
CONFIG = "config"  # the flat options the space set (JSON)

_OOM_TYPES: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), MemoryError) if t is not None
)


def worker_id() -> str:
    """``host:pid`` of this process, stored on each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Best:
    """The best trial an :class:`Objective` completed, with its training."""

    number: int
    value: float
    result: Any  # tabresnet.training.TrainResult


class TrialFailed(Exception):
    """A trial gave no value; ``str(exc)`` is the reason stored on the trial."""


class StopFlag:
    """Stop cleanly on the first SIGINT or SIGTERM, abort on the second.

    The first signal sets :attr:`requested`: the running trial stops at its
    next batch and is recorded as failed ("interrupted"), no new trial starts,
    and ``tune`` finishes with the best trial so far. A second signal restores
    the default handlers and raises ``KeyboardInterrupt``.

    A second signal within :data:`DEBOUNCE` seconds of the first is the same
    request: ``timeout -s INT`` delivers its signal to the process and to its
    group, twice within milliseconds.

    Parameters
    ----------
    message : str, optional
        Printed (to stderr) on the first signal.
    abort : bool
        Abort on the first signal: the user pressed Ctrl-C once already (the
        search stopped) and was told that the next one aborts.
    """

    #: Seconds within which a repeated signal counts as the first one.
    DEBOUNCE = 0.5

    def __init__(self, message: str = "", abort: bool = False):
        self.requested = False
        self.reason = ""
        self.message = message
        self.abort = abort
        self.on_request: list[Callable[[], None]] = []
        self._old: dict[int, Any] = {}
        self._first = 0.0

    def request(self, reason: str = "stop requested") -> None:
        if not self.requested:
            self.requested = True
            self.reason = reason
            for callback in self.on_request:
                callback()

    def install(self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> StopFlag:
        """Handle ``signals`` (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and time.monotonic() - self._first < self.DEBOUNCE:
            return  # one Ctrl-C delivered twice (to the process and to its group)
        if self.requested or self.abort:
            self.restore()
            raise KeyboardInterrupt
        self._first = time.monotonic()
        # SIGUSR1 is what tune's parent process sends its workers on Ctrl-C.
        name = "stop sent by tune" if signum == signal.SIGUSR1 else signal.Signals(signum).name
        if self.message:
            print(self.message, file=sys.stderr, flush=True)
        self.request(f"interrupted ({name})")

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()


class PruningCallback(Callback):
    """Report ``val_rmse`` to the trial after every validation; stop when Optuna prunes.

    Our own small callback rather than optuna-integration's, which raises
    ``TrialPruned`` from inside ``Trainer.fit``: here the Trainer is asked to
    stop (``trainer.should_stop``) so that it winds down normally, and the
    objective raises ``TrialPruned`` afterwards. It also ends training at the
    next batch when the :class:`StopFlag` is set (Ctrl-C) or when ``time_up()``
    turns true (the study's ``--timeout`` has passed).

    Parameters
    ----------
    trial : optuna.Trial or None
        ``None`` only watches the stop flag (folds after the first with ``cv``).
    stop : StopFlag, optional
    monitor : str
        The logged metric to report.
    time_up : callable, optional
        Asked after every batch; ``True`` ends the training (:attr:`timed_out`).
    """

    def __init__(
        self,
        trial: Any,
        stop: StopFlag | None = None,
        monitor: str = "val_rmse",
        time_up: Callable[[], bool] | None = None,
    ):
        self.trial = trial
        self.stop = stop
        self.monitor = monitor
        self.time_up = time_up
        self.pruned_at: int | None = None
        self.timed_out = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stop is not None and self.stop.requested:
            trainer.should_stop = True
        elif self.time_up is not None and self.time_up():
            self.timed_out = True
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        if self.stop is not None and self.stop.requested:
            trainer.should_stop = True
            return
        value = trainer.callback_metrics.get(self.monitor)
        if self.trial is None or value is None:
            return
        value = float(value)
        if not math.isfinite(value):  # divergence: the objective fails the trial
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, _OOM_TYPES):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


class Objective:
    """``objective(trial) -> float``: the best validation RMSE of one sampled config.

    Parameters
    ----------
    folds : list of Prepared
        One prepared split, or ``k`` folds for cross-validation (the value is
        their mean; only the first fold reports to the pruner, so intermediate
        values stay comparable across trials).
    base : RunConfig
        Values of the options the space does not set.
    space : SearchSpace
    stop : StopFlag, optional
    deadline : float, optional
        ``time.time()`` of the study's time limit: a trial still running then
        is stopped and recorded as pruned (user attribute ``stopped``), once
        the study holds a complete trial (until then it runs on, since tune
        needs a best configuration).

    Attributes
    ----------
    best : Best or None
        With one fold: the best trial this objective completed and its
        trained network, so that ``tune`` can save that network instead of
        training the same configuration again.
    on_start : callable, optional
        Called once the trial exists, before training (the workers release
        their trial-creation lock there).
    """

    def __init__(
        self,
        folds: Sequence[Prepared],
        base: RunConfig,
        space: SearchSpace,
        stop: StopFlag | None = None,
        deadline: float | None = None,
    ):
        self.folds = list(folds)
        self.best: Best | None = None
        self.on_start: Callable[[], None] | None = None
        self.base = base
        self.space = space
        self.stop = stop or StopFlag()
        self.deadline = deadline
        self.last_failed = False
        self._have_complete = False
        self._checked = -math.inf

    def _time_up(self, study: Any) -> bool:
        if self.deadline is None or time.time() < self.deadline:
            return False
        if not self._have_complete and time.monotonic() - self._checked >= 2.0:
            # Past the deadline: ask the storage (every 2 s at most) whether
            # some worker has completed a trial, so this one may be cut.
            self._checked = time.monotonic()
            self._have_complete = bool(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            )
        return self._have_complete

    def _fail(self, trial: Any, reason: str) -> TrialFailed:
        self.last_failed = True
        trial.set_user_attr(FAIL_REASON, reason)
        log.warning("trial %d failed: %s", trial.number, reason)
        return TrialFailed(reason)

    def __call__(self, trial: optuna.Trial) -> float:
        if self.on_start is not None:
            self.on_start()
        self.last_failed = False
        trial.set_user_attr(WORKER, worker_id())
        try:
            config, overrides = self.space.sample(trial, self.base)
        except (ValueError, TypeError) as exc:
            raise self._fail(trial, f"invalid config: {_first_line(exc)}") from None
        trial.set_user_attr(CONFIG, overrides)

        scores: list[float] = []
        epochs: list[int] = []
        start = time.perf_counter()
        for i, prepared in enumerate(self.folds):
            callback = PruningCallback(
                trial if i == 0 else None, self.stop, time_up=lambda: self._time_up(trial.study)
            )
            try:
                result = train_network(prepared, config, callbacks=[callback])
            except optuna.TrialPruned:
                raise
            except SystemExit:
                # Lightning answers SIGTERM with SIGTERMException (a SystemExit)
                # at its next batch; with a stop requested that is our stop.
                if not self.stop.requested:
                    raise
                raise self._fail(trial, f"{self.stop.reason} before it finished") from None
            except Exception as exc:
                if _is_oom(exc):
                    del exc
                    gc.collect()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    raise self._fail(trial, "out of memory") from None
                raise self._fail(trial, f"{type(exc).__name__}: {_first_line(exc)}") from None
            if self.stop.requested:
                raise self._fail(trial, f"{self.stop.reason or 'interrupted'} before it finished")
            if callback.timed_out:
                trial.set_user_attr("stopped", "time limit")
                trial.set_user_attr("epochs", int(len(result.history)))
                raise optuna.TrialPruned(f"stopped at the time limit (fold {i + 1})")
            if callback.pruned_at is not None:
                trial.set_user_attr("epochs", callback.pruned_at + 1)
                raise optuna.TrialPruned(f"pruned at epoch {callback.pruned_at}")
            if result.diverged or not math.isfinite(result.best_val_rmse):
                at = len(result.history) - 1
                raise self._fail(trial, f"diverged: the training loss became NaN or inf (epoch {at})")
            scores.append(float(result.best_val_rmse))
            epochs.append(int(len(result.history)))
        trial.set_user_attr("epochs", max(epochs))
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        if len(scores) > 1:
            trial.set_user_attr("fold_rmse", scores)
        value = float(sum(scores) / len(scores))
        if len(self.folds) == 1 and (self.best is None or value < self.best.value):
            self.best = Best(trial.number, value, result)
        return value
