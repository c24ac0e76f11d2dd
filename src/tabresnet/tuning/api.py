"""``tune(data, target)``: search the space with Optuna, retrain the best config, write the run.

    tabresnet tune data.csv --target price --trials 50 --timeout 30m --jobs 2

Running the same command again resumes the study: ``--trials N`` is the number
of *finished* trials (complete or pruned) the study should hold in total,
those of earlier runs and of other workers included, so a resumed or joining
worker only adds what is missing. Failed trials are kept but do not count.

Examples
--------
>>> import numpy as np, pandas as pd, tempfile
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
>>> df["y"] = df.a - 2 * df.b
>>> space = "lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}"
>>> result = tune(df, "y", trials=2, space=space, out=tempfile.mkdtemp() + "/run",
...               max_epochs=2, num_blocks=[1], c_hidden=[8], progress="none")
>>> sorted(result.best_params), result.n_trials
(['lr'], 2)
>>> sorted(p.name for p in (result.dir / "tuning").iterdir())[:3]
['best_params.json', 'optimization_history.png', 'parallel_coordinate.png']
>>> parse_duration("30m"), parse_duration("1h"), parse_duration("90")
(1800.0, 3600.0, 90.0)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..artifact import TabularModel
from ..data import read_table
from ..defaults import RunConfig, refuse_unused
from ..errors import ConfigError, TabResNetError, TabResNetWarning
from ..models.config import as_number
from ..rundir_lock import RunDirLock
from ..training import prepare, resolve_config
from ..training.bag import make_folds
from ..training.fit import row_weights, weight_column
from ..training.loop import keep_global_state
from ..training.prepare import as_targets
from . import quiet_optuna, results
from .objective import CONFIG, Objective, StopFlag
from .progress import TuneProgress, log_enabled, progress_enabled
from .retrain import retrain, retrain_bag
from .space import SearchSpace
from .study import (
    FINISHED,
    checkpoint,
    count_trials,
    display_url,
    fail_lost_trials,
    make_pruner,
    make_sampler,
    open_study,
    storage_url,
)
from .workers import WorkerSpec, attach_search, available_cores, run_parallel, run_worker

__all__ = ["AUTO_CV_FOLDS", "AUTO_CV_MAX_ROWS", "TuneResult", "parse_duration", "tune"]

# cv="auto": small tables are scored by cross-validation and saved as a bag.
# With a 60 s budget, 4-fold CV and its bag against the validation split and
# one network (3 splits each, docs/benchmarks.md): concrete test RMSE 4.75 vs
# 5.39, diabetes 59.2 vs 60.2. A trial costs AUTO_CV_FOLDS trainings, so large
# tables (where one training takes minutes) keep the validation split.
AUTO_CV_FOLDS = 4
AUTO_CV_MAX_ROWS = 10_000

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"1h"`` or ``"1h30m"``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)([a-z]*)", text)
        if not text or "".join(n + u for n, u in parts) != text or any(
            u not in _UNITS for _, u in parts
        ):
            raise ConfigError(
                f"cannot read the duration {value!r}; write e.g. 90, 90s, 30m, 1h or 1h30m"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"timeout must be a positive duration, however: {value!r}")
    return seconds


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    best_params : dict
        The flat options the search chose (``lr``, ``num_blocks``, ...): pass them
        to ``fit(**best_params)`` to train the same configuration.
    best_value : float
        Best validation RMSE (target units; mean over folds with ``cv``).
    best_config : RunConfig
        The complete configuration of the best trial.
    model : TabularModel
        The best configuration retrained (train split, early stopping on val).
    metrics : dict
        ``{"val": {...}, "test": {...}, "training": {...}, "tuning": {...}}``.
    study : optuna.Study
    dir : Path or None
        The run directory, if one was written.
    n_trials : int
        Finished (complete or pruned) trials in the study.
    counts : dict
        Trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ...).
    interrupted : bool
        The search was stopped early (Ctrl-C or SIGTERM).
    """

    best_params: dict
    best_value: float
    best_config: RunConfig
    model: TabularModel
    metrics: dict
    study: optuna.Study
    dir: Path | None = None
    n_trials: int = 0
    counts: dict = field(default_factory=dict)
    best_trial: int = -1
    interrupted: bool = False
    seconds: float = 0.0
    _tmp: Any = field(default=None, repr=False)

    def predict(self, data: Any):
        return self.model.predict(data)


def _default_study_name(data: Any, targets: list[str]) -> str:
    stem = Path(str(data)).stem if isinstance(data, (str, Path)) else "data"
    name = f"{stem}-{'+'.join(targets)}"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _check_run_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "tuning").is_dir():
        raise ConfigError(
            f"output directory {out} is not empty and holds no tuning study; "
            "choose another --out (the same --out resumes a tuning run)"
        )


def _whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (3, 3.0, "3", numpy's 3), else None."""
    number = as_number(value)
    return int(number) if number is not None and math.isfinite(number) and \
        float(number).is_integer() else None


def _check_same_study(out: Path, own_url: str | None, name: str) -> None:
    """Refuse to let study ``name`` replace the model of another study saved in ``out``.

    The same ``out`` resumes its own study; another data or target (another
    study name) would overwrite that study's model, metrics and report.
    ``own_url``: the run directory's own study storage (None with ``storage``).
    """
    others: list[str] = []
    saved = out / "tuning" / "best_params.json"
    if saved.is_file():
        try:
            others = [str(json.loads(saved.read_text(encoding="utf-8"))["study_name"])]
        except (OSError, ValueError, KeyError, TypeError):
            others = []
    elif own_url is not None and (out / "tuning" / "study.db").is_file():
        others = optuna.get_all_study_names(storage=own_url)
    if others and name not in others:
        raise ConfigError(
            f"{out} holds the tuning run of study {others[0]!r}, not {name!r} (another data "
            "file, target or --study name); choose another --out, or resume that study"
        )


def _load_space(space: SearchSpace | str | Path | None) -> SearchSpace:
    if space is None or isinstance(space, SearchSpace):
        return space or SearchSpace.load()
    text = str(space)
    # YAML text has several lines (and may be longer than a file name may be).
    if isinstance(space, Path) or ("\n" not in text and (
            Path(text).exists() or text.endswith((".yaml", ".yml")))):
        return SearchSpace.load(space)
    return SearchSpace.from_yaml(text)  # YAML text


def _resolve_cv(
    cv: int | str | None, config: RunConfig, rows: int, url: str | None, name: str
) -> int:
    """The number of folds (0: the validation split) for ``tune``'s ``cv`` argument.

    ``rows``: the rows of the data and the validation data together.
    """
    if cv is None:
        k = int(config.data.cv_folds)
    elif isinstance(cv, str):
        if cv.strip().lower() != "auto":
            raise ConfigError(f"cv must be a number of folds or 'auto', however: {cv!r}")
        stored = _stored_cv(url, name)
        if stored is not None:
            k = stored
        elif config.data.cv_folds >= 2:
            k = int(config.data.cv_folds)
        else:
            k = AUTO_CV_FOLDS if rows <= AUTO_CV_MAX_ROWS else 0
    else:
        try:
            k = int(cv)
        except (TypeError, ValueError):
            raise ConfigError(f"cv must be a number of folds or 'auto', however: {cv!r}") from None
        if k < 0:
            raise ConfigError(f"cv must be 0 (the validation split) or at least 2, however: {k}")
    return 0 if k < 2 else k


def _stored_cv(url: str | None, name: str) -> int | None:
    """The folds an existing study was run with, or ``None`` (no study, or unreadable)."""
    if url is None:
        return None
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return None
    try:
        with quiet_optuna(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=name, storage=url)
        value = study.user_attrs.get("cv")
    except Exception:  # no such study, or a storage open_study will report on
        return None
    return int(value) if isinstance(value, (int, float)) else None


@keep_global_state()
def tune(
    data: Any,
    target: str | Sequence[str],
    config: RunConfig | str | Path | dict | None = None,
    *,
    trials: int = 20,
    timeout: str | float | None = None,
    space: SearchSpace | str | Path | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner | None = "median",
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    cv: int | str | None = "auto",
    out: str | Path | None = None,
    val_data: Any = None,
    test_data: Any = None,
    progress: str = "auto",
    defaults_first: bool = True,
    bag: bool | None = None,
    pack: int | str | None = None,
    pack_ensemble: bool = True,
    **overrides: Any,
) -> TuneResult:
    """Tune a residual network's hyperparameters with Optuna.

    Each trial samples a configuration from ``space`` (options it does not
    list come from ``config`` and ``overrides``, i.e. the defaults of
    :func:`tabresnet.fit`), trains it, reports the validation RMSE every
    epoch so that the pruner can stop bad trials early, and scores it by its
    best validation RMSE. The best configuration is then retrained, evaluated
    on the test split, and saved as a run directory like ``fit``'s: with
    cross-validation (``cv >= 2``) as a *bag*, one network per fold trained
    exactly as in the trial (early stopping on its fold) and averaged, whose
    validation score is out-of-fold (metrics ``oof``); otherwise once on the
    training split with early stopping on the validation split, unless the
    best trial ran in this process (``jobs=1``): then its own network, trained
    on that split, is saved (metrics ``tuning.retrained`` is false).

    Parameters
    ----------
    data, target, val_data, test_data
        As for :func:`tabresnet.fit`; the test rows are never used while tuning.
    config : RunConfig, YAML path or dict, optional
        The fixed options.
    trials : int
        Finished (complete or pruned) trials the study should hold in total,
        counting earlier runs and other workers: resuming adds only the rest.
    timeout : seconds or str, optional
        ``90``, ``"90s"``, ``"30m"``, ``"1h"``: the search's time limit. No
        trial starts after it, and a trial still running is stopped at its
        next batch and recorded as pruned (user attribute ``stopped``); both
        only once the study holds a complete trial, since tune needs a best
        configuration. The retraining of the best configuration follows.
    space : SearchSpace, YAML path or YAML text, optional
        Default: ``tabresnet/tuning/default_space.yaml``.
    sampler : {"tpe", "gp", "random", "cmaes", "qmc"} or an Optuna sampler
    pruner : {"median", "hyperband", "successive-halving", "none"} or an Optuna pruner
    storage : str, optional
        SQLAlchemy URL; ``postgresql://`` uses psycopg 3. Default: SQLite in
        ``out/tuning/study.db`` (in memory without ``out``).
    study_name : str, optional
        Default: from the data file's name and the target.
    jobs : int
        Worker processes on this machine, sharing the study; each gets
        ``cores // jobs`` torch threads.
    cv : int, "auto" or None
        Score each trial by ``cv``-fold cross-validation on the non-test rows
        (0 or 1: by the validation split; ``None``: the config's
        ``cv_folds``). ``"auto"``, the default: the config's ``cv_folds`` if
        set, else :data:`AUTO_CV_FOLDS` folds for tables of at most
        :data:`AUTO_CV_MAX_ROWS` rows and the validation split for larger
        ones; a resumed study keeps the folds it started with.
    out : path, optional
        Run directory; the same ``out`` resumes the study.
    progress : {"auto", "rich", "none"}
        The live display (``auto``: on a terminal; otherwise one log line
        per finished trial on stderr, see
        :class:`~tabresnet.tuning.progress.TrialLog`); also the config's
        ``progress`` option, used by the final retraining.
    pack : int or "auto", optional
        Train ``pack`` configurations at a time as one packed network
        (:mod:`tabresnet.tuning.population`): each member is a trial of the
        study, told when its own early stopping or the pruner ends it, and
        its slot is refilled while the budget lasts. The block kind, norm,
        activation, number of groups, embeddings, optimiser kind, batch size
        and loss are one value per pack (the config's); the space's entries
        for them are left out. Members run in this process (``jobs=1``;
        share a study between machines through ``storage``). ``cv`` is
        resolved as without ``pack``: with ``K >= 2`` folds (``"auto"`` on
        small tables) each trial trains one member per fold (``pack`` trials
        are ``pack * K`` networks), reports the mean of its members'
        validation RMSEs and is scored by the mean of their best ones;
        otherwise members are scored on the validation split. ``"auto"``: by
        the table's rows (:func:`~tabresnet.tuning.population.auto_pack`
        trials, so each fold's pack holds as many members as one pack
        without folds) and, with a ``timeout``, fewer at once as the measured
        speed requires for the trials started to finish in time, a trial
        costing ``K`` member-epochs an epoch
        (:func:`~tabresnet.tuning.population.budget_pack`).
    pack_ensemble : bool
        With ``pack``: save the greedy ensemble selection (Caruana et al.,
        2004) of the best finished trials, weighted (the default), or the
        single best trial (``False``). The selection scores the validation
        rows, or with ``cv`` the out-of-fold predictions of every non-test
        row; the saved model then holds each chosen trial's ``K`` fold
        networks (weight ``w / K`` each; one trial: a plain bag) with CV+
        intervals, and its metrics ``oof`` score it out-of-fold.
    bag : bool, optional
        With ``cv >= 2``, save the k fold networks of the best configuration
        averaged (the default) rather than one network retrained on the
        training split (``bag=False``; refused with ``pack``). Ignored
        without cross-validation.
        The bag's members share one preprocessing, fitted on all non-test rows.
    defaults_first : bool
        A new study's first trial is the configuration ``fit`` would train
        (``config`` and ``overrides``; values outside the space are sampled),
        so the search starts from the defaults and its best trial is never
        worse than them on the tuning score.
    **overrides
        Flat options, e.g. ``max_epochs=100``; ``weight`` is a column name or one
        weight per row of ``data``, as in :func:`tabresnet.fit`.

    Returns
    -------
    TuneResult

    Raises
    ------
    ConfigError
        Bad options, space or storage. ``TabResNetError`` when no trial completed.
    KeyboardInterrupt
        Interrupted before any trial completed.
    """
    start = time.perf_counter()
    # The estimator's names for tune's own arguments (scikit-learn's habits).
    for theirs, ours in (("n_trials", "trials"), ("search_space", "space"), ("n_jobs", "jobs"),
                         ("overwrite", None)):
        if theirs in overrides:
            raise ConfigError(
                f"tune takes {ours}=, not {theirs}= (TunedResNetRegressor's name)" if ours else
                "tune has no overwrite: the same out resumes its study; choose another out "
                "for a new one")
    # ``progress`` is both the live display and the run config option of that name.
    cfg_overrides, weight = row_weights(overrides)
    user_cfg = resolve_config(config, {**cfg_overrides, "progress": progress})
    refuse_unused(user_cfg, overrides)
    if weight is not None:  # as fit: the weights become a column of the table (workers' too)
        data, val_data, test_data, column = weight_column(read_table(data), weight, val_data,
                                                          test_data)
        user_cfg = user_cfg.replace(weight=column)
    if user_cfg.train.refit:
        raise ConfigError("refit is fit's option; tune retrains its best configuration with "
                          "early stopping (to refit it on every row: tabresnet fit DATA "
                          "--config RUN/config.yaml --refit true)")
    space_obj = _load_space(space)
    space_obj.check(user_cfg)
    seconds = parse_duration(timeout)
    counts: dict[str, int] = {}
    for name, value in (("trials", trials), ("jobs", jobs)):
        number = _whole_number(value)  # None for a bool, text, 2.5, inf
        if number is None:
            hint = " (the most trials to run; with a timeout, e.g. 1000)" if name == "trials" else ""
            raise ConfigError(f"{name} must be a whole number >= 1{hint}, however: {value!r}")
        counts[name] = number
    trials, jobs = counts["trials"], counts["jobs"]
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, however: {trials}")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, however: {jobs}")
    if user_cfg.data.bag > 1:
        raise ConfigError(f"bag={user_cfg.data.bag} is fit's option; tune saves a bag through "
                          f"cv={user_cfg.data.bag} (the best configuration's fold networks)")
    if bag is not None and not isinstance(bag, bool):
        raise ConfigError(f"tune's bag is True or False (save the cv fold networks or not), "
                          f"however: {bag!r}; for a bag of K networks use cv=K")
    targets = as_targets(target)
    make_sampler(sampler, 0)  # unknown names and missing packages fail now, not in a worker
    make_pruner(pruner, user_cfg.train.max_epochs)

    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        _check_run_dir(run_dir)
    # One writer per --out, as fit: a second command on it would write the same files and
    # draw the same trials (a run directory's study is seeded to be reproducible).
    lock = RunDirLock(run_dir).acquire() if run_dir is not None else None
    try:
        # Parallel workers without a run directory share a study in a temporary one.
        tmp = tempfile.TemporaryDirectory(prefix="tabresnet-tune-") if (
            storage is None and run_dir is None and jobs > 1) else None
        url = storage_url(storage, run_dir if run_dir is not None else (Path(tmp.name) if tmp else None))
        name = study_name or _default_study_name(data, targets)
        if run_dir is not None:
            _check_same_study(run_dir, url if storage is None else None, name)
        # Each table is read once here: the folds, the bag and the retraining start
        # from these frames (worker processes get the sources and read them themselves).
        table = read_table(data)
        val_table = read_table(val_data) if val_data is not None else None
        test_table = read_table(test_data) if test_data is not None else None
        rows = len(table) + (len(val_table) if val_table is not None else 0)
        if pack is not None:
            given = [o for o in ("ensemble", "ensemble_size") if o in overrides]
            if given:
                warnings.warn(f"--pack trains each member as one network: {' and '.join(given)} "
                              "left aside (the population's ensemble is chosen at the end)",
                              TabResNetWarning, stacklevel=2)
            return _tune_pack(
                pack, data, targets, user_cfg, space_obj, table, val_table, test_table, rows, url,
                name, run_dir, trials, seconds, sampler, pruner, jobs, cv, bag, progress,
                defaults_first, pack_ensemble, start, tmp, storage is not None,
            )
        k = _resolve_cv(cv, user_cfg, rows, url, name)
        if k >= 2 and val_table is not None:
            _say(progress, f"the --val-data rows join the {k} cross-validation folds (with "
                           "--cv 0 the trials are scored on them alone)")

        # Trials train quietly; parallel workers split the cores between them.
        trial_cfg = user_cfg.replace(progress="none", logger="none")
        threads = max(1, available_cores() // jobs)
        if jobs > 1 and user_cfg.train.num_threads == 0:
            trial_cfg = trial_cfg.replace(num_threads=threads)
        # Prepared here first: a data problem is reported before any worker starts.
        folds = make_folds(table, targets, trial_cfg, val_table, test_table, k)
        study = _open(url, name, targets, k, space_obj, trial_cfg, defaults_first,
                      _data_attrs(table, val_table, test_table, trial_cfg))
        spec = WorkerSpec(
            data=data, target=targets, base=trial_cfg.to_dict(), space_text=space_obj.text,
            space_source=space_obj.source, storage=url, study_name=name, sampler=sampler,
            pruner=pruner, n_trials=trials,
            deadline=(time.time() + seconds) if seconds is not None else None,
            cv=k, val_data=val_data, test_data=test_data, shared=storage is not None,
        )

        # -- the search ------------------------------------------------------------------------
        stop = StopFlag(message="interrupted: stopping the running trial(s); finishing with the "
                                "best trial so far (press Ctrl-C again to abort)")
        objective = Objective(folds, trial_cfg, space_obj, stop, deadline=spec.deadline)
        display = TuneProgress(study, trials, progress_enabled(progress), log=log_enabled(progress),
                               deadline=spec.deadline)
        with stop, display:
            if jobs == 1:
                run_worker(spec, objective, study)
            else:
                run_parallel(spec, jobs, stop, threads)
        with quiet_optuna():
            fail_lost_trials(study)
            counts = count_trials(study)
        best = _best_trial(study, counts, stop.requested)
        best_params = dict(best.user_attrs.get(CONFIG) or {})
        if not best_params:  # a trial from another tool: replay its parameters
            _, best_params = space_obj.sample(optuna.trial.FixedTrial(best.params), user_cfg)
        best_cfg = user_cfg.replace(**best_params)

        # -- the retraining --------------------------------------------------------------------
        tuning_info = {
            "study_name": name,
            "best_trial": best.number,
            "best_val_rmse": float(best.value),
            "cv_folds": k,
            "trials": {s.name: int(n) for s, n in counts.items()},
            "interrupted": stop.requested,
        }
        threads = trial_cfg.train.num_threads
        if k >= 2 and (bag is None or bool(bag)):
            _say(progress, f"retraining the best configuration (trial {best.number}) "
                           f"on each of the {k} folds")
            bag_folds = make_folds(table, targets, trial_cfg, val_table, test_table, k, shared=True)
            model, metrics = retrain_bag(bag_folds, best_cfg, run_dir, {"tuning": tuning_info},
                                         threads, abort_on_signal=stop.requested)
        else:
            prepared = folds[0] if k == 0 else prepare(
                table, targets, trial_cfg, val_data=val_table, test_data=test_table)
            # Without cv the best trial, if it ran in this process, trained on this very
            # split: its network is kept (the same seed would train the same one again).
            own = objective.best
            reuse = own.result if own is not None and own.number == best.number else None
            tuning_info["retrained"] = reuse is None
            _say(progress, f"saving the network of the best trial ({best.number})" if reuse
                 else f"retraining the best configuration (trial {best.number}) once")
            model, metrics = retrain(prepared, best_cfg, run_dir, {"tuning": tuning_info}, threads,
                                     result=reuse, abort_on_signal=stop.requested)
        return _finish(run_dir, study, best, best_params, best_cfg, url, k, model, metrics, counts,
                       stop, start, tmp)
    finally:
        if lock is not None:
            lock.release()


def _finish(
    run_dir: Path | None, study: optuna.Study, best: optuna.trial.FrozenTrial,
    best_params: dict, best_cfg: RunConfig, url: str | None, folds: int, model: Any,
    metrics: dict, counts: Any, stop: StopFlag, start: float, tmp: Any,
) -> TuneResult:
    """Write the tuning files beside the saved model and sum the search up."""
    if run_dir is not None:
        _write_tuning(run_dir, study, best, best_params, url, folds)
    checkpoint(url)  # study.db alone then holds every trial
    return TuneResult(
        best_params=best_params,
        best_value=float(best.value),
        best_config=best_cfg,
        model=model,
        metrics=metrics,
        study=study,
        dir=run_dir,
        n_trials=sum(counts[s] for s in FINISHED),
        counts={s.name: int(n) for s, n in counts.items()},
        best_trial=best.number,
        interrupted=stop.requested,
        seconds=time.perf_counter() - start,
        _tmp=tmp,
    )


def _data_attrs(table: Any, val_table: Any, test_table: Any, cfg: RunConfig) -> dict[str, str]:
    """What a resumed study must see again: the same rows, split the same way.

    A resume with another table (a file of the same name, or the same file
    edited), another seed or other split sizes would rank trials scored on
    other rows against the old ones, and retrain the old best on the new rows.
    """
    digest = hashlib.sha256()
    for t in (table, val_table, test_table):
        if t is None:
            digest.update(b"-")
            continue
        digest.update("\x1f".join(map(str, t.columns)).encode())
        try:
            digest.update(pd.util.hash_pandas_object(t, index=False).to_numpy().tobytes())
        except TypeError:  # cells pandas cannot hash (lists): the shape has to do
            digest.update(str(t.shape).encode())
    d = cfg.data
    return {
        "data": f"{len(table)} rows x {table.shape[1]} columns (sha256 {digest.hexdigest()[:12]})",
        "split": f"seed {cfg.seed}, val_size {d.val_size:g}, test_size {d.test_size:g}, "
                 f"weight {d.weight}",
    }


def _open(
    url: str | None, name: str, targets: list[str], folds: int, space: SearchSpace,
    cfg: RunConfig, defaults_first: bool, data: dict[str, str] | None = None,
    fingerprint: str | None = None,
) -> optuna.Study:
    """The study, its lost trials failed; a new one starts with ``cfg``'s own configuration.

    ``data``: :func:`_data_attrs`, refused on a resume when they differ;
    ``fingerprint``: the space's, where the study samples a reduced one (``--pack``).
    """
    study = open_study(url, name, attrs={"target": targets, "cv": folds,
                                         "space": fingerprint or space.fingerprint(),
                                         **(data or {})})
    fail_lost_trials(study)
    trials = study.get_trials(deepcopy=False)
    defaults = [t for t in trials if t.user_attrs.get("enqueued") == "defaults"]
    # A new study starts with fit's configuration; so does a resumed one whose
    # defaults trial was lost (a killed process) or interrupted before it finished
    # (not one that failed on its own: it would fail again on every resume).
    attrs = study.user_attrs
    again = bool(defaults) and all(
        t.state == TrialState.FAIL
        and results.fail_reason(t, attrs).startswith(("lost", "interrupted"))
        for t in defaults)
    if defaults_first and (not trials or again):
        params = space.params_for(cfg)
        if params:
            study.enqueue_trial(params, user_attrs={"enqueued": "defaults"},
                                skip_if_exists=not again)
    return study


def _say(progress: str, text: str) -> None:
    if progress_enabled(progress) or log_enabled(progress):
        print(text, file=sys.stderr)


def _best_trial(study: optuna.Study, counts: Any, interrupted: bool) -> optuna.trial.FrozenTrial:
    """The best complete trial; without one, why the search gave nothing."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        return min(complete, key=lambda t: t.value)
    if interrupted:
        raise KeyboardInterrupt
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    last = results.fail_reason(failed[-1], study.user_attrs) if failed else "none ran"
    raise TabResNetError(
        f"no trial of study {study.study_name!r} completed ({counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed; last failure: {last}); "
        "check the data and the search space"
    )


def _write_tuning(
    run_dir: Path,
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    best_params: dict,
    url: str | None,
    cv: int,
) -> None:
    tuning = run_dir / "tuning"
    tuning.mkdir(parents=True, exist_ok=True)
    with quiet_optuna():
        frame = results.write_trials(study, tuning / "trials.csv")
        skipped = results.write_plots(study, tuning)
    states = frame["state"].value_counts().to_dict() if len(frame) else {}
    results.write_best(
        tuning / "best_params.json",
        {
            "study_name": study.study_name,
            "storage": display_url(url),
            "metric": results.METRIC,
            "value": float(best.value),
            "trial": best.number,
            "params": best_params,
            "optuna_params": best.params,
            "cv_folds": cv,
            "trials": {str(k): int(v) for k, v in states.items()},
            "plots_skipped": skipped,
        },
    )


def _is_auto(pack: Any) -> bool:
    return isinstance(pack, str) and pack.strip().lower() == "auto"


def _resolve_pack(pack: int | str, rows: int) -> int:
    """Trials at once for ``pack``; ``"auto"``: :func:`~.population.auto_pack` of the rows.

    With ``K`` folds this is still the number of trials: each fold's pack
    then holds as many members as auto_pack gives one pack (the per-step
    size it chose), and a time limit shrinks the waves by the measured cost
    of a trial, ``K`` member-epochs an epoch (``run_population``).
    """
    from .population import auto_pack

    if isinstance(pack, str) and pack.strip().lower() == "auto":
        return auto_pack(rows)
    try:
        value = int(pack)
    except (TypeError, ValueError):
        raise ConfigError(f"pack must be a number of members or 'auto', however: {pack!r}") from None
    if value < 1 or isinstance(pack, bool):
        raise ConfigError(f"pack must be at least 1, however: {pack!r}")
    return value


def _tune_pack(
    pack: int | str, data: Any, targets: list[str], user_cfg: RunConfig, space_obj: SearchSpace,
    table: Any, val_table: Any, test_table: Any, rows: int, url: str | None, name: str,
    run_dir: Path | None, trials: int, seconds: float | None, sampler: Any, pruner: Any,
    jobs: int, cv: Any, bag: bool | None, progress: str, defaults_first: bool, pack_ensemble: bool,
    start: float, tmp: Any, shared: bool = False,
) -> TuneResult:
    """``tune(..., pack=P)``: the study's trials trained P at a time (see ``tune``)."""
    from .population import greedy_selection, member_space, oof_targets, oof_weights, run_population

    size = _resolve_pack(pack, rows)
    if jobs > 1:
        raise ConfigError("--pack trains its members in one process; drop --jobs "
                          "(processes on several machines share a study through --storage)")
    if user_cfg.train.ema_decay > 0:
        raise ConfigError("--pack keeps no moving average of the weights; drop --ema-decay "
                          "(or --pack: trials one at a time keep it)")
    if user_cfg.train.loss == "quantile":
        raise ConfigError("--pack trains point losses (mse, mae, huber); drop --loss quantile "
                          "(or --pack: trials one at a time train quantiles)")
    if user_cfg.train.accelerator not in ("auto", "cpu"):
        raise ConfigError(f"--pack trains on the CPU; drop --accelerator "
                          f"{user_cfg.train.accelerator} (or --pack: trials one at a time "
                          "train on it)")
    k = _resolve_cv(cv, user_cfg, rows, url, name)
    if k >= 2 and val_table is not None:
        _say(progress, f"the --val-data rows join the {k} cross-validation folds (with "
                       "--cv 0 the trials are scored on them alone)")
    if k >= 2 and bag is not None and not bag:
        raise ConfigError("--pack with --cv saves the chosen trials' fold networks; drop "
                          "--no-bag (or use --cv 0: members scored on the validation split)")
    mspace, fixed = member_space(space_obj)
    if fixed:
        _say(progress, f"--pack: {', '.join(fixed)} are one value per pack, fixed at the "
                       "config's (set them with flags or --config)")
    # Members are single networks: the population's ensemble is chosen at the end.
    base = user_cfg.replace(progress="none", logger="none", ensemble_size=1)
    if k >= 2:
        # As sequential tune --cv's bag: K folds of the non-test rows sharing one
        # preprocessing (fitted on all of them), each holding the test split.
        folds = make_folds(table, targets, base, val_table, test_table, k, shared=True)
        _say(progress, f"--pack with {k}-fold cross-validation: each trial trains one member "
                       f"per fold (up to {size} trials, {size * k} networks, at a time) and is "
                       "scored on the rows its fold networks did not train on")
    else:
        folds = [prepare(table, targets, base, val_data=val_table, test_data=test_table)]
    study = _open(url, name, targets, k, mspace, base, defaults_first,
                  _data_attrs(table, val_table, test_table, base), space_obj.fingerprint())
    attach_search(study, sampler, pruner, base, shared=shared)
    deadline = (time.time() + seconds) if seconds is not None else None
    stop = StopFlag(message="interrupted: stopping the running members; finishing with the "
                            "best trial so far (press Ctrl-C again to abort)")
    display = TuneProgress(study, trials, progress_enabled(progress), log=log_enabled(progress),
                           deadline=deadline)
    with stop, display, quiet_optuna():
        run = run_population(study, mspace, base, folds if k >= 2 else folds[0], size, trials,
                             deadline, stop, size_to_budget=_is_auto(pack))
    with quiet_optuna():
        fail_lost_trials(study)
        counts = count_trials(study)
    best = _best_trial(study, counts, stop.requested)
    best_params = dict(best.user_attrs.get(CONFIG) or {})
    if not best_params:
        _, best_params = mspace.sample(optuna.trial.FixedTrial(best.params), base)
    best_cfg = base.replace(**best_params)
    tuning_info: dict[str, Any] = {
        "study_name": name,
        "best_trial": best.number,
        "best_val_rmse": float(best.value),
        "cv_folds": k,
        "pack": size,
        "pack_peak": int(run.peak),
        "trials": {s.name: int(n) for s, n in counts.items()},
        "interrupted": stop.requested,
    }
    cands = run.candidates
    if cands:
        if pack_ensemble and len(cands) > 1:  # one split's validation rows, or every fold's
            weights, ens_rmse = greedy_selection([c.val_pred for c in cands],
                                                 oof_targets(folds), weights=oof_weights(folds))
        else:
            lead = cands[0]
            weights, ens_rmse = [1.0] + [0.0] * (len(cands) - 1), (
                lead.oof_rmse if k >= 2 else lead.value)
    # Every complete trial ran elsewhere (a resumed or shared study), or the study's
    # best did and scores better than what this worker would save: the study's best
    # is saved, as best_params.json and the summary say (not a worse ensemble of
    # this worker's members).
    elsewhere = bool(cands) and best.number not in {c.number for c in cands} and \
        best.value < ens_rmse
    if not cands or elsewhere:
        tuning_info["retrained"] = True
        if k >= 2:
            _say(progress, f"retraining the best configuration (trial {best.number}) "
                           f"on each of the {k} folds")
            model, metrics = retrain_bag(folds, best_cfg, run_dir, {"tuning": tuning_info},
                                         abort_on_signal=stop.requested)
        else:
            _say(progress, f"retraining the best configuration (trial {best.number}) once")
            model, metrics = retrain(folds[0], best_cfg, run_dir, {"tuning": tuning_info},
                                     abort_on_signal=stop.requested)
        return _finish(run_dir, study, best, best_params, best_cfg, url, k, model, metrics,
                       counts, stop, start, tmp)
    chosen = [(c, w) for c, w in zip(cands, weights) if w > 0]
    tuning_info["retrained"] = False
    rows_are = "out-of-fold" if k >= 2 else "validation"
    tuning_info["ensemble"] = [
        {"trial": c.number, "weight": round(w, 6), "val_rmse": c.value,
         **({"oof_rmse": c.oof_rmse} if k >= 2 else {})} for c, w in chosen]
    tuning_info[f"ensemble_{'oof' if k >= 2 else 'val'}_rmse"] = float(ens_rmse)
    what = (f"the ensemble of {len(chosen)} trials" if len(chosen) > 1
            else f"the best trial ({chosen[0][0].number})")
    if k >= 2:
        what += f" ({len(chosen) * k} networks: each trial's {k} fold networks)"
    scored_on = ("the non-test rows, each predicted by the fold networks that did not train "
                 "on it" if k >= 2 else "the validation rows")
    _say(progress, f"saving {what}; {rows_are} RMSE {ens_rmse:.5g} (on {scored_on})")
    if k >= 2:
        model, metrics = _save_folds(chosen, folds, run_dir, tuning_info)
    else:
        model, metrics = _save_members(chosen, folds[0], run_dir, tuning_info)
    return _finish(run_dir, study, best, best_params, best_cfg, url, k, model, metrics, counts,
                   stop, start, tmp)


def _save_members(chosen: list, prepared: Any, run_dir: Path | None,
                  tuning_info: dict) -> tuple[TabularModel, dict]:
    """The chosen members (validation split) as one model, evaluated and written."""
    from ..models import MeanEnsemble
    from ..training.fit import calibrate_split, evaluate_splits, interval_metrics, write_run

    lead = chosen[0][0]
    if len(chosen) == 1:
        network, config = lead.network, lead.config
    else:
        network = MeanEnsemble([c.network for c, _ in chosen], weights=[w for _, w in chosen],
                               configs=[c.config.model.to_dict() for c, _ in chosen])
        config = lead.config
    model = TabularModel(network, config, prepared.schema, prepared.preprocessor)
    # Split conformal on the validation rows, which also chose the members and
    # their weights: bench/intervals.py measures what that does to coverage.
    model.calibration = calibrate_split(model, prepared.val)
    metrics = evaluate_splits(model, prepared)
    metrics.update(interval_metrics(model, prepared.test))
    metrics["training"] = {"best_epoch": int(lead.history["val_rmse"].idxmin())
                           if len(lead.history) else -1,
                           "epochs": int(len(lead.history)), "diverged": False,
                           "members": len(chosen)}
    metrics["tuning"] = tuning_info
    model.metrics = metrics
    if run_dir is not None:
        write_run(run_dir, model, prepared, _History(lead.history), metrics)
    return model, metrics


def _save_folds(chosen: list, folds: list, run_dir: Path | None,
                tuning_info: dict) -> tuple[TabularModel, dict]:
    """The chosen trials' fold networks as one bag, scored out-of-fold, evaluated and written.

    Member ``t * K + i`` is chosen trial ``t``'s network of fold ``i``, weight
    ``w_t / K``: fold ``i``'s rows are predicted out-of-fold by its networks
    weighted ``w_t`` (what the selection scored), new rows by all of them. One
    trial alone is a plain bag (as ``tune --cv``'s retrained one).
    """
    from ..metrics import regression_metrics
    from ..models import MeanEnsemble
    from ..training.bag import bag_prepared, calibrate_bag, oof_table
    from ..training.fit import evaluate_splits, interval_metrics, write_run
    from .population import oof_targets, oof_weights

    k = len(folds)
    lead = chosen[0][0]
    networks = [net for c, _ in chosen for net in c.networks]
    if len(chosen) == 1:
        network = MeanEnsemble(networks)
    else:
        network = MeanEnsemble(networks, weights=[w / k for _, w in chosen for _ in range(k)],
                               configs=[c.config.model.to_dict() for c, _ in chosen
                                        for _ in range(k)])
    prepared = bag_prepared(folds)
    model = TabularModel(network, lead.config, prepared.schema, prepared.preprocessor)
    model.calibration = calibrate_bag(model, folds)  # CV+ on the out-of-fold rows
    oof = sum(w * c.val_pred for c, w in chosen)
    metrics: dict[str, Any] = {"oof": regression_metrics(
        oof_targets(folds), oof, prepared.targets, sample_weight=oof_weights(folds))}
    if prepared.weight is not None:
        metrics["oof"]["weighted_by"] = prepared.weight
    metrics.update(evaluate_splits(model, prepared, ("test",)))
    metrics.update(interval_metrics(model, prepared.test))
    history = lead.history  # the lead trial's fold members, a member column
    by_member = list(history.groupby("member")) if len(history) else []
    metrics["training"] = {
        "members": model.n_members, "folds": k, "trials": len(chosen),
        "best_epoch": [int(h["val_rmse"].to_numpy().argmin()) for _, h in by_member],
        "epochs": [int(len(h)) for _, h in by_member],
        "diverged": False,
    }
    metrics["tuning"] = tuning_info
    model.metrics = metrics
    prepared.summary["bag"] = {"members": model.n_members, "folds": k}
    if run_dir is not None:
        write_run(run_dir, model, prepared, _History(history, oof_table(folds, oof)), metrics)
    return model, metrics


@dataclass
class _History:
    """What ``write_run`` reads of a training: its history (and a bag's out-of-fold predictions)."""

    history: Any
    oof: Any = None
