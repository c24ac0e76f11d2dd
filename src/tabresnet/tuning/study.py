"""Studies, storage and the worker loop that many processes (and machines) share.

Storage is an SQLAlchemy URL: by default ``sqlite:///RUN/tuning/study.db``,
or PostgreSQL (``postgresql://`` is rewritten to the psycopg 3 driver) for
workers on several machines. Every worker opens the same study
(``load_if_exists``; a lost creation race is retried) and runs trials until
the study holds ``n_trials`` finished ones (complete or pruned, counting those
of earlier runs and of the other workers; failed trials do not count), the
deadline passes, or it is asked to stop.

A worker that dies mid-trial leaves that trial RUNNING. Optuna's heartbeat
(``RDBStorage(heartbeat_interval=..., grace_period=...)``) lets any other or
later worker fail it once its heartbeat is :data:`GRACE_PERIOD` seconds old;
on the worker's own machine, a trial whose process is gone is failed at once.
Either way the trial gets a ``fail_reason``.

>>> storage_url("postgresql://tune:pw@db.example/tabresnet")
'postgresql+psycopg://tune:pw@db.example/tabresnet'
>>> display_url("postgresql+psycopg://tune:pw@db.example/tabresnet")
'postgresql+psycopg://tune:***@db.example/tabresnet'
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import socket
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..data import clean_target, kfold_indices, read_table, split_indices
from ..defaults import RunConfig
from ..errors import ConfigError
from ..training import Prepared, prepare
from ..training.prepare import as_targets
from .cli import PRUNERS, SAMPLERS
from .objective import (
    FAIL_REASON,
    WORKER,
    Objective,
    StopFlag,
    TrialFailed,
    quiet_optuna,
    worker_id,
)
from .space import SearchSpace

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "PRUNERS",
    "SAMPLERS",
    "WorkerSpec",
    "count_trials",
    "display_url",
    "fail_stale_trials",
    "make_folds",
    "pool_and_test",
    "make_pruner",
    "make_sampler",
    "open_study",
    "run_parallel",
    "run_worker",
    "storage_url",
]

log = logging.getLogger("tabresnet.tuning")

# A live worker writes a heartbeat every HEARTBEAT_INTERVAL seconds; a RUNNING
# trial without one for GRACE_PERIOD seconds is taken as lost and failed.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
# A worker gives up after this many failed trials in a row: a space or data
# problem that fails every trial should not burn the whole budget.
MAX_CONSECUTIVE_FAILURES = 10
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
        study.set_user_attr(f"{FAIL_REASON}:{trial.number}", _stale_reason(trial, GRACE_PERIOD))
    except Exception:  # pragma: no cover - best effort
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
    return study


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


def _stale_reason(trial: optuna.trial.FrozenTrial, grace: int) -> str:
    worker = trial.user_attrs.get(WORKER, "?")
    return (
        f"lost: worker {worker} sent no heartbeat for {grace} s "
        "(killed, crashed or cut off) while the trial ran"
    )


def fail_stale_trials(study: optuna.Study, own_running: set[int] | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker is gone, each with a ``fail_reason``.

    A trial of a process on this machine that no longer exists fails at once;
    any other fails once its heartbeat is older than the grace period.
    Returns the numbers of the trials failed here.
    """
    own_running = own_running or set()
    storage = study._storage  # noqa: SLF001 - Optuna exposes no public handle for this
    host, me = socket.gethostname(), worker_id()
    reasons: dict[int, tuple[int, str]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get(WORKER, ""))
        w_host, _, w_pid = worker.rpartition(":")
        if not worker or w_host != host or not w_pid.isdigit() or t.number in own_running:
            continue
        if worker == me or not _pid_alive(int(w_pid)):
            reasons[t._trial_id] = (  # noqa: SLF001
                t.number,
                f"lost: worker process {worker} ended (killed or crashed) while the trial ran",
            )
    try:
        from optuna.storages._heartbeat import is_heartbeat_enabled

        if is_heartbeat_enabled(storage):
            grace = int(getattr(storage, "grace_period", None) or GRACE_PERIOD)
            for trial_id in storage._get_stale_trial_ids(study._study_id):  # noqa: SLF001
                if trial_id not in reasons:
                    t = storage.get_trial(trial_id)
                    if t.number not in own_running:
                        reasons[trial_id] = (t.number, _stale_reason(t, grace))
    except (AttributeError, ImportError):  # pragma: no cover - other Optuna versions
        pass
    failed = []
    for trial_id, (number, reason) in reasons.items():
        try:
            storage.set_trial_user_attr(trial_id, FAIL_REASON, reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(number)
                log.warning("trial %d failed: %s", number, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return failed


# -- data for the trials -------------------------------------------------------------------
def pool_and_test(
    data: Any, target: Any, config: RunConfig, val_data: Any = None, test_data: Any = None
):
    """The rows tuning may see (``pool``) and the test rows, as ``prepare`` splits them.

    Returns ``(pool, test)``: DataFrames with a fresh index; ``test`` is the
    split-off test rows, or ``test_data`` when given.
    """
    import pandas as pd

    targets = as_targets(target)
    frame = clean_target(read_table(data), targets).reset_index(drop=True)
    if test_data is None:
        tr, va, te = split_indices(
            len(frame), config.data.val_size, config.data.test_size, config.seed
        )
        test = frame.iloc[te]
        frame = frame.iloc[np.sort(np.concatenate([tr, va]))]
    else:
        test = clean_target(read_table(test_data), targets)
    if val_data is not None:
        frame = pd.concat([frame, clean_target(read_table(val_data), targets)])
    return frame.reset_index(drop=True), test.reset_index(drop=True)


def make_folds(
    data: Any,
    target: Any,
    config: RunConfig,
    val_data: Any = None,
    test_data: Any = None,
    cv: int = 0,
    shared: bool = False,
) -> list[Prepared]:
    """The prepared data every trial trains on: one split, or ``cv`` folds.

    With ``cv >= 2`` the folds cover the rows outside the test split (the
    validation rows included); the test rows are never seen while tuning.
    Each fold fits its own preprocessing on its training rows, unless
    ``shared``: then all folds share one fitted on every non-test row and
    carry the test split too (the members of a bag).
    """
    if cv < 2:
        return [prepare(data, target, config, val_data=val_data, test_data=test_data)]
    targets = as_targets(target)
    pool, test = pool_and_test(data, targets, config, val_data, test_data)
    every = np.arange(len(pool)) if shared else None
    return [
        prepare(pool, targets, config, train_index=train_idx, val_index=val_idx,
                test_data=test if shared and len(test) else None, fit_index=every)
        for train_idx, val_idx in kfold_indices(len(pool), cv, config.seed)
    ]


# -- the worker loop ----------------------------------------------------------------------
@dataclass
class WorkerSpec:
    """Everything a worker process needs (picklable, for ``spawn``)."""

    data: Any
    target: Any
    base: dict
    space_text: str
    space_source: str
    storage: str | None
    study_name: str
    sampler: Any
    pruner: Any
    n_trials: int
    deadline: float | None = None
    cv: int = 0
    val_data: Any = None
    test_data: Any = None


def _sampler_seed(seed: int, rank: int, existing: int) -> int:
    # Distinct per worker and per resumed session: workers with one seed would
    # propose the same random start-up points.
    return (int(seed) * 1_000_003 + rank * 7_919 + existing) % (2**31 - 1)


def run_worker(
    spec: WorkerSpec,
    rank: int = 0,
    stop: StopFlag | None = None,
    *,
    study: optuna.Study | None = None,
    folds: list[Prepared] | None = None,
    keep: dict | None = None,
) -> int:
    """Run trials of the shared study until it is done; returns how many this worker ran.

    Once the study holds ``spec.n_trials`` finished trials, the worker waits
    for the trials other workers were running at that moment (a dead worker's
    trial is failed as stale), so that every worker ends on the same study.
    ``keep`` (in-process, one fold) receives this worker's best trial and its
    trained network (see :class:`~tabresnet.tuning.objective.Objective`).
    """
    stop = stop or StopFlag()
    base = RunConfig.from_dict(spec.base)
    space = SearchSpace.from_yaml(spec.space_text, spec.space_source)
    if folds is None:
        folds = make_folds(spec.data, spec.target, base, spec.val_data, spec.test_data, spec.cv)
    if study is None:
        study = open_study(spec.storage, spec.study_name)
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec.sampler, _sampler_seed(base.seed, rank, existing))
    study.pruner = make_pruner(spec.pruner, base.train.max_epochs)
    objective = Objective(folds, base, space, stop, deadline=spec.deadline, keep=keep)
    ran = failures = 0
    # The other workers' trials still running when the study reached its count:
    # waited for (or failed once stale), so that every worker ends on the same
    # final study and retrains the same best. Only those: a worker with a larger
    # --trials may go on starting new ones.
    finishing: set[int] | None = None
    with quiet_optuna():
        while not stop.requested:
            fail_stale_trials(study)
            counts = count_trials(study)
            done = sum(counts[s] for s in FINISHED)
            if done >= spec.n_trials:
                running = {t.number for t in study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))}
                finishing = running if finishing is None else finishing & running
                if not finishing:
                    break
                time.sleep(0.5)
                continue
            # Past the deadline no trial starts, unless the study has no complete
            # one yet (worker start-up may eat a short budget): tune needs a best.
            if spec.deadline is not None and time.time() >= spec.deadline and counts[
                TrialState.COMPLETE
            ]:
                break
            if done + counts[TrialState.RUNNING] >= spec.n_trials:
                # The other workers' running trials fill the study; wait, since
                # one of them may yet fail and leave a place to fill.
                time.sleep(0.5)
                continue
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
            ran += 1
            failures = failures + 1 if objective.last_failed else 0
            if failures >= MAX_CONSECUTIVE_FAILURES and not stop.requested:
                log.error(
                    "worker %s stops: its last %d trials failed (see fail_reason in trials.csv)",
                    worker_id(), failures,
                )
                break
    return ran


def _worker_main(spec: WorkerSpec, rank: int, threads: int) -> None:
    """Entry point of a spawned worker: SIGUSR1 (or SIGTERM) stops it cleanly."""
    # Ctrl-C reaches the whole process group; the parent alone decides and
    # forwards SIGUSR1, so one key press is one stop request, not two. SIGUSR1
    # rather than SIGTERM: Lightning turns SIGTERM into SystemExit mid-fit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(max(1, threads))
    stop = StopFlag().install((signal.SIGUSR1, signal.SIGTERM))
    run_worker(spec, rank, stop)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def run_parallel(spec: WorkerSpec, jobs: int, stop: StopFlag, threads: int) -> None:
    """Run ``jobs`` spawned worker processes on the shared study and wait for them.

    The first stop request sends each worker SIGUSR1 (it fails its running
    trial as interrupted and exits); a second one (KeyboardInterrupt)
    terminates them.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(spec, rank, threads), name=f"tune-worker-{rank}")
        for rank in range(jobs)
    ]

    def forward() -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGUSR1)

    stop.on_request.append(forward)
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5)
        bad = [(p.name, p.exitcode) for p in procs if p.exitcode not in (0, None)]
        if bad and not stop.requested:
            log.warning("worker(s) exited abnormally: %s", ", ".join(f"{n} ({c})" for n, c in bad))
    finally:
        stop.on_request.remove(forward)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
