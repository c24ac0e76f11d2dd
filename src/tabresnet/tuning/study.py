"""Studies and their storage, samplers and pruners, lost trials, the data the trials see.

Storage is an SQLAlchemy URL: by default ``sqlite:///RUN/tuning/study.db``,
or PostgreSQL (``postgresql://`` is rewritten to the psycopg 3 driver) for
workers on several machines. Every worker opens the same study
(``load_if_exists``; a lost creation race is retried).

A worker that dies mid-trial leaves that trial RUNNING. Optuna's heartbeat
(``RDBStorage(heartbeat_interval=..., grace_period=...)``) lets any other or
later worker fail it once its heartbeat is :data:`GRACE_PERIOD` seconds old
(``optuna.storages.fail_stale_trials``); on the worker's own machine, a trial
whose process is gone is failed at once. Either way the study records a
``fail_reason`` for it.

>>> storage_url("postgresql://tune:pw@db.example/tabresnet")
'postgresql+psycopg://tune:pw@db.example/tabresnet'
>>> display_url("postgresql+psycopg://tune:pw@db.example/tabresnet")
'postgresql+psycopg://tune:***@db.example/tabresnet'
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import warnings
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError
from . import PRUNERS, SAMPLERS, quiet_optuna
from .objective import worker_id
from .results import FAIL_REASON, WORKER

__all__ = [
    "FINISHED",
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "Heartbeat",
    "count_trials",
    "display_url",
    "fail_lost_trials",
    "make_pruner",
    "make_sampler",
    "open_study",
    "storage_url",
]

log = logging.getLogger("tabresnet.tuning")

# A live worker writes a heartbeat every HEARTBEAT_INTERVAL seconds; a RUNNING
# trial without one for GRACE_PERIOD seconds is taken as lost and failed.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# The storage each study of open_study was opened on (Optuna keeps it private).
_STORAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# -- storage ---------------------------------------------------------------------------
def storage_url(storage: str | os.PathLike | None, run_dir: Path | None = None) -> str | None:
    """The SQLAlchemy URL for ``storage``; ``None`` stays ``None`` (in-memory).

    ``postgresql://`` and ``postgres://`` select the psycopg 3 driver; a plain
    file path becomes an SQLite URL; with ``storage=None`` and a run directory,
    the study lives in ``RUN/tuning/study.db``.
    """
    if storage is None:
        if run_dir is None:
            return None
        return f"sqlite:///{(Path(run_dir) / 'tuning' / 'study.db').resolve()}"
    text = str(storage)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix):]
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    return text


def display_url(url: str | None) -> str:
    """``url`` with its password hidden, for messages and files."""
    if url is None:
        return "in-memory"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: show only the scheme
        return url.split("://", 1)[0] + "://..."


def _record_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    # Optuna failed a stale trial itself (between our own checks); a finished
    # trial takes no user attributes, so the reason goes on the study.
    try:
        study.set_user_attr(f"{FAIL_REASON}:{trial.number}", _stale_reason(trial))
    except Exception:  # pragma: no cover - best effort
        pass


def checkpoint(url: str | None) -> None:
    """Fold an SQLite study's write-ahead log into the file itself.

    In WAL mode the trials sit in ``study.db-wal`` until a checkpoint, and a
    command that ends quickly leaves them there: ``tuning/study.db`` copied
    alone (to archive it, or to pass it as ``--storage`` elsewhere) would be an
    empty study. After a checkpoint the file holds every trial. Other workers
    still writing (a shared storage) only make it partial; nothing fails.
    """
    if not url or not url.startswith("sqlite:///"):
        return
    try:
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:  # pragma: no cover - busy or read-only: the -wal file stays
        pass


def _make_storage(url: str) -> optuna.storages.BaseStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        Path(url.split("sqlite:///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        # Several local workers write to one file: wait for the lock instead of
        # failing at once.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat_interval is "experimental"
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=_record_stale,
        )
    if url.startswith("sqlite"):
        # Write-ahead logging lets readers (the progress display, other
        # workers) go on while one worker writes; the mode sticks to the file.
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return storage


def open_study(
    url: str | None,
    name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    attrs: dict[str, Any] | None = None,
) -> optuna.Study:
    """Create the study or load it if it exists, tolerant of a concurrent creator.

    Parameters
    ----------
    url : str or None
        SQLAlchemy URL (see :func:`storage_url`); ``None`` keeps it in memory.
    name : str
    sampler, pruner : optional
    attrs : dict, optional
        Study user attributes that must match an existing study (``target``,
        ``cv``): a mismatch raises :class:`ConfigError`; a changed ``space``
        only warns. New studies store them.
    """
    import sqlalchemy.exc

    attempts = 8
    for attempt in range(attempts):
        try:
            storage = _make_storage(url) if url is not None else optuna.storages.InMemoryStorage()
            with quiet_optuna():
                study = optuna.create_study(
                    storage=storage,
                    study_name=name,
                    sampler=sampler,
                    pruner=pruner,
                    direction="minimize",
                    load_if_exists=True,
                )
            break
        except ImportError as exc:
            raise ConfigError(
                f"no database driver for storage {display_url(url)} ({exc.name or exc}); "
                "for PostgreSQL: pip install 'psycopg[binary]'"
            ) from None
        except sqlalchemy.exc.ArgumentError as exc:
            raise ConfigError(
                f"invalid storage URL {display_url(url)}: {str(exc).splitlines()[0]}"
            ) from None
        except sqlalchemy.exc.OperationalError as exc:
            if attempt >= 2:
                first = str(exc.orig or exc).strip().splitlines()[0]
                raise ConfigError(
                    f"cannot open storage {display_url(url)}: {first}; check --storage"
                ) from None
            time.sleep(0.5 + random.random())
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.DuplicatedStudyError):
            # Two workers creating the tables or the study at the same moment:
            # one loses with an integrity error; it loads what the other made.
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt * (1 + random.random()))
    _check_attrs(study, attrs or {})
    _STORAGES[study] = storage
    return study


class Heartbeat:
    """Heartbeats for trials run outside ``Study.optimize`` (a packed population).

    ``Study.optimize`` beats for its own trial; trials taken by ``study.ask``
    get none, and ``optuna.storages.fail_stale_trials`` never fails a RUNNING
    trial without one, so a packed worker killed on another machine would
    leave its members RUNNING for good. While the context is open a daemon
    thread records a heartbeat for every trial in :attr:`trials` each
    :data:`HEARTBEAT_INTERVAL` seconds; on storages without heartbeats (in
    memory) it does nothing.

    Parameters
    ----------
    study : optuna.Study
        A study of :func:`open_study`.
    interval : float, optional
        Seconds between beats (default :data:`HEARTBEAT_INTERVAL`).
    """

    def __init__(self, study: optuna.Study, interval: float = HEARTBEAT_INTERVAL):
        storage = _STORAGES.get(study)
        self._rdb = storage if isinstance(storage, optuna.storages.RDBStorage) else None
        self._study_id = (self._rdb.get_study_id_from_name(study.study_name)
                          if self._rdb is not None else None)
        self._interval = interval
        self._ids: dict[int, int] = {}  # trial number -> trial id
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, number: int) -> None:
        """Beat for trial ``number`` from now on (one beat at once)."""
        if self._rdb is None:
            return
        trial_id = self._rdb.get_trial_id_from_study_id_trial_number(self._study_id, number)
        with self._lock:
            self._ids[number] = trial_id
        self._rdb.record_heartbeat(trial_id)

    def discard(self, number: int) -> None:
        """Stop beating for trial ``number`` (it finished)."""
        with self._lock:
            self._ids.pop(number, None)

    def beat(self) -> None:
        """Record one heartbeat for every trial added and not discarded."""
        with self._lock:
            ids = list(self._ids.values())
        for trial_id in ids:
            try:
                self._rdb.record_heartbeat(trial_id)
            except Exception as exc:  # a lost connection: the next beat retries
                log.debug("heartbeat of trial id %d failed: %s", trial_id, exc)

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        if self._rdb is not None:
            self._thread = threading.Thread(target=self._run, name="tabresnet-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _check_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    have = study.user_attrs
    for key, value in attrs.items():
        old = have.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            if key == "space":
                log.warning(
                    "the search space differs from the one study %r started with; "
                    "earlier trials keep their parameters",
                    study.study_name,
                )
                continue
            raise ConfigError(
                f"study {study.study_name!r} was run with {key}={old!r}, not {value!r}; "
                "pass another --study name or --out directory"
            )


# -- samplers and pruners ---------------------------------------------------------------
def make_sampler(name: str | optuna.samplers.BaseSampler, seed: int) -> optuna.samplers.BaseSampler:
    """A sampler by name (:data:`SAMPLERS`), or ``name`` itself if it is one."""
    if isinstance(name, optuna.samplers.BaseSampler):
        return name
    key = str(name).lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        if key == "tpe":
            # multivariate + group: models the conditional parameters (per-group
            # widths, SGD-only options) jointly where they occur together.
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True,
                warn_independent_sampling=False,
            )
        if key == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        if key == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if key == "qmc":
            return optuna.samplers.QMCSampler(
                seed=seed, warn_independent_sampling=False, warn_asynchronous_seeding=False
            )
        if key == "cmaes":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "the cmaes sampler needs the 'cmaes' package: pip install cmaes"
                ) from None
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}; valid names are: {', '.join(SAMPLERS)}")


def make_pruner(name: str | optuna.pruners.BasePruner | None, max_epochs: int) -> optuna.pruners.BasePruner:
    """A pruner by name (:data:`PRUNERS`), or ``name`` itself if it is one.

    Steps are epochs. The median pruner waits for 5 finished trials and
    ``min(10, max_epochs // 5)`` epochs, so slow starters (a small learning
    rate, SGD) are not cut before they move.
    """
    if isinstance(name, optuna.pruners.BasePruner):
        return name
    key = "none" if name is None else str(name).lower().replace("_", "-")
    warmup = max(1, min(10, int(max_epochs) // 5))
    if key == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if key == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=warmup, max_resource=int(max_epochs), reduction_factor=3
        )
    if key == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup, reduction_factor=3)
    if key == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; valid names are: {', '.join(PRUNERS)}")


# -- trial bookkeeping --------------------------------------------------------------------
def count_trials(study: optuna.Study) -> Counter:
    """Trials per :class:`~optuna.trial.TrialState`."""
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_reason(trial: optuna.trial.FrozenTrial) -> str:
    worker = trial.user_attrs.get(WORKER, "?")
    return (f"lost: worker {worker} sent no heartbeat for {GRACE_PERIOD} s "
            "(killed, crashed or cut off) while the trial ran")


def fail_lost_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker is gone; returns their numbers.

    A trial of a process on this machine that no longer exists (or of this
    very process, which calls this only between trials) fails at once, with
    its reason recorded on the study (``fail_reason:<number>``); any other
    fails once its heartbeat is older than the grace period
    (``optuna.storages.fail_stale_trials``, whose callback records the reason).
    """
    host, me = socket.gethostname(), worker_id()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        worker = str(t.user_attrs.get(WORKER, ""))
        w_host, _, w_pid = worker.rpartition(":")
        if w_host != host or not w_pid.isdigit() or (worker != me and _pid_alive(int(w_pid))):
            continue
        reason = f"lost: worker process {worker} ended (killed or crashed) while the trial ran"
        study.set_user_attr(f"{FAIL_REASON}:{t.number}", reason)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        log.warning("trial %d failed: %s", t.number, reason)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fail_stale_trials is "experimental"
        optuna.storages.fail_stale_trials(study)
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return [t.number for t in running if t.number not in still]
