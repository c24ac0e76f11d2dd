"""One call from a table to a run directory: ``fit(data, target=...)``.

>>> import numpy as np, pandas as pd, tempfile
>>> from tabresnet.training import fit
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=150), "b": rng.normal(size=150)})
>>> df["y"] = df.a - df.b
>>> run = fit(df, "y", out=tempfile.mkdtemp() + "/run", max_epochs=2,
...           num_blocks=[1], c_hidden=[8], progress="none")
>>> sorted(run.metrics)                  # no test rows unless asked for
['intervals', 'training', 'val']
>>> (run.dir / "model.safetensors").is_file()
True
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import TabularModel, atomic_write_text, dumps, dumps_standard
from ..calibrate import REPORT_LEVEL, Calibration, interval_scores
from ..data import kfold_indices, read_table
from ..defaults import RunConfig, output_quantiles, point_quantile, refuse_unused
from ..errors import ConfigError, TabResNetWarning
from ..metrics import quantile_metrics, regression_metrics
from ..rundir_lock import RunDirLock, open_run
from ..rundir_lock import probe as probe_run_lock
from .bag import bag_prepared, calibrate_bag, make_folds, prediction_table, train_bag
from .loop import TrainResult, check_trained, keep_global_state, train_network
from .prepare import Prepared, Split, as_targets, free_column, prepare, refit_prepared

__all__ = [
    "Run",
    "calibrate_split",
    "cross_validate",
    "evaluate_splits",
    "fit",
    "interval_metrics",
    "refit_all_rows",
    "resolve_config",
    "write_run",
]


@dataclass
class Run:
    """The result of :func:`fit`.

    Attributes
    ----------
    model : TabularModel
        Predicts from raw columns.
    metrics : dict
        Target units, keyed by the rows scored: ``"val"`` (the early-stopping
        rows), ``"oof"`` (a bag's out-of-fold rows, instead of ``"val"``),
        ``"test"`` (only with a test split), ``"cv"``, ``"training"``, and
        ``"intervals"`` (the conformal calibration; with a test split, the
        coverage and mean width of its 90% intervals).
    history : DataFrame
        Per-epoch ``train_loss, val_loss, val_rmse``.
    dir : Path or None
        The run directory, if one was written.
    config : RunConfig
    oof : DataFrame or None
        A bag's out-of-fold predictions (also ``predictions_oof.csv``): ``row``,
        the row's 0-based number in ``data`` (``val_data``'s rows numbered on
        after them; rows dropped for a missing target or a weight of 0 have
        none), then ``y_true`` and ``y_pred`` (``_<target>`` with several
        targets). Each row is predicted by the member that did not train on it
        (though that member was early-stopped on its fold, so their RMSE is
        slightly optimistic, as ``val``'s), the predictions to stack or to study
        errors with. None without a bag.
    """

    model: TabularModel
    metrics: dict
    history: pd.DataFrame
    config: RunConfig
    dir: Path | None = None
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)
    oof: pd.DataFrame | None = None

    def predict(self, data: Any, **options: Any) -> Any:
        """Predict with the run's model; ``strict``, ``interval``, ``mode`` as in
        :meth:`~tabresnet.artifact.TabularModel.predict`."""
        return self.model.predict(data, **options)


#: Fewer validation rows than this draw a warning from fit: a noisy epoch choice,
#: and no finite 90% interval below 9 (the rank ceil((n + 1) 0.9) must be <= n).
FEW_VAL_ROWS = 10


def resolve_config(config: RunConfig | str | Path | dict | None, overrides: dict) -> RunConfig:
    """A RunConfig from a RunConfig, a YAML path, a nested dict or ``None``, plus flat overrides."""
    try:
        if config is None:
            base = RunConfig()
        elif isinstance(config, RunConfig):
            base = config
        elif isinstance(config, dict):
            base = RunConfig.from_dict(config)
        else:
            base = RunConfig.load(config)
        cfg = base.replace(**overrides) if overrides else base
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    if cfg.data.val_size > 0.5:  # the share held out, not the share trained on
        warnings.warn(
            f"val_size {cfg.data.val_size:g} holds out more rows to choose the epoch than it "
            f"trains on ({1 - cfg.data.val_size - cfg.data.test_size:.0%} train); val_size is "
            "the held-out share (default 0.16)",
            TabResNetWarning,
            stacklevel=3,
        )
    levels = output_quantiles(cfg.train)
    if levels and 0.5 not in levels:
        point = levels[point_quantile(levels)]
        warnings.warn(
            f"quantiles {', '.join(map(str, levels))} hold no 0.5: the point prediction (predict, "
            f"the scores, early stopping) is the {point} quantile, the level nearest 0.5 (the "
            "lower on a tie); add 0.5 to quantiles for a median",
            TabResNetWarning,
            stacklevel=3,
        )
    return cfg


def _predict_split(model: TabularModel, split: Split) -> np.ndarray:
    return model.predict_tensors(split.x_num, split.x_cat)


def calibrate_split(model: TabularModel, split: Split) -> Calibration:
    """Split-conformal calibration (Lei et al. 2018) on ``split``'s rows.

    ``fit`` passes the validation rows. They chose the epoch, one number picked
    on them, which the guarantee does not cover strictly; ``bench/intervals.py``
    measures the coverage this gives on test rows (docs/benchmarks.md).
    """
    parts = model.interval_parts(split.x_num, split.x_cat)
    return Calibration.fit_split(split.y_raw, parts["pred"], parts["spread"], model.targets)


def interval_metrics(model: TabularModel, test: Split | None) -> dict:
    """The ``intervals`` entry of a run's metrics: the calibration and, with test rows,
    each mode's coverage and mean width at :data:`~tabresnet.calibrate.REPORT_LEVEL`."""
    cal = model.calibration
    if cal is None:
        return {}
    out: dict[str, Any] = {
        "level": REPORT_LEVEL,
        "calibration": {"split": "split conformal, validation rows",
                        "cv+": "CV+, out-of-fold rows"}[cal.kind],
        "calibration_rows": cal.n,
        "mode": cal.default,
    }
    if test is not None and len(test):
        for mode in cal.modes:
            _, lower, upper = model.interval_tensors(test.x_num, test.x_cat, REPORT_LEVEL, mode)
            out[f"test_{mode}"] = interval_scores(test.y_raw, lower, upper)
    return {"intervals": out}


def evaluate_splits(
    model: TabularModel, prepared: Prepared, names: Sequence[str] = ("val", "test")
) -> dict:
    """Metrics of ``model`` on the validation and (if any) test split."""
    out = {}
    for name in names:
        split = getattr(prepared, name)
        if split is not None and len(split):
            q = model.predict_quantile_tensors(split.x_num, split.x_cat)  # one pass: all outputs
            out[name] = regression_metrics(
                split.y_raw, model.point(q), prepared.targets, sample_weight=split.weight,
            )
            if model.quantiles:  # each level against its share of values below it
                out[name]["quantiles"] = quantile_metrics(split.y_raw, q, model.quantiles,
                                                          sample_weight=split.weight)
            if prepared.weight is not None:
                out[name]["weighted_by"] = prepared.weight
    return out


def row_weights(overrides: dict) -> tuple[dict, Any]:
    """``overrides`` for the config, and the weights if ``weight`` gives one per row.

    ``weight`` names a column or holds one number per row of the data; the
    config takes only a name, so values are kept aside (``None`` otherwise)
    for :func:`weight_column` to add as a column.
    """
    weight = overrides.get("weight")
    if weight is None or isinstance(weight, str):
        return overrides, None
    return {**overrides, "weight": None}, weight


def weight_column(
    frame: pd.DataFrame, weight: Any, val_data: Any, test_data: Any
) -> tuple[pd.DataFrame, Any, Any, str]:
    """``frame`` with the weights as a new column; separate tables get weight 1."""
    from ..data import check_weights
    from ..errors import DataError

    values = check_weights(weight, "weight")
    if len(values) != len(frame):
        raise DataError(
            f"weight has {len(values)} values but the data has {len(frame)} rows; "
            "give one weight per row (or the name of a weight column)"
        )
    name = free_column(frame.columns, "sample_weight")
    frame = frame.assign(**{name: values})
    val_data, test_data = (
        read_table(t).assign(**{name: 1.0}) if t is not None else None
        for t in (val_data, test_data)
    )
    return frame, val_data, test_data, name


def cross_validate(
    data: Any, target: str | Sequence[str], config: RunConfig, folds: int | None = None
) -> dict:
    """k-fold cross-validation on the rows outside the test split.

    Returns ``{"folds": k, "rmse_mean", "rmse_std", "rmse": [per fold]}``.
    """
    k = int(folds or config.data.cv_folds)
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, however: cv_folds={k}")
    from ..data import clean_target, clean_weight, split_indices

    targets = as_targets(target)
    frame = clean_target(read_table(data), targets).reset_index(drop=True)
    frame = clean_weight(frame, config.data.weight)
    tr, va, _te = split_indices(
        len(frame), config.data.val_size, config.data.test_size, config.seed
    )
    pool = frame.iloc[np.sort(np.concatenate([tr, va]))].reset_index(drop=True)
    scores = []
    for train_idx, val_idx in kfold_indices(len(pool), k, config.seed):
        prepared = prepare(pool, targets, config, train_index=train_idx, val_index=val_idx)
        result = train_network(prepared, config)
        scores.append(result.best_val_rmse)
    return {
        "folds": k,
        "rmse_mean": float(np.mean(scores)),
        "rmse_std": float(np.std(scores)),
        "rmse": [float(s) for s in scores],
    }


def refit_all_rows(
    model: TabularModel, prepared: Prepared, result: TrainResult
) -> tuple[TabularModel, Prepared, dict]:
    """Train ``model``'s network again on the training and validation rows together.

    The refit of ``refit=True``: a fresh network of the same configuration,
    seed and batch size, trained for ``result``'s early-stopped epoch count
    (its best epoch) with no validation, on the rows of ``prepared.train`` and
    ``prepared.val``, through a preprocessing fitted afresh on all of them
    (:func:`~tabresnet.training.prepare.refit_prepared`). Early stopping spends
    the validation rows on choosing one number, the epoch count; the refit
    gives them back to the training, as is usual for gradient boosting and for
    the final fit of a cross-validated model (Hastie, Tibshirani and Friedman,
    "The Elements of Statistical Learning", 2009, section 7.10).

    Returns the refit model, carrying ``model``'s calibration (its residuals on
    the validation rows, in target units, are the out-of-sample ones; the
    refit's would not be), the data as the refit model reads it (the test
    split included), and the ``refit`` entry of the training metrics. Should
    the refit diverge, ``model`` and ``prepared`` come back unchanged, with a
    warning, and the entry says so (``"kept"``).
    """
    again = refit_prepared(prepared, model.config)
    cfg = model.config.replace(batch_size=result.batch_size)
    epochs = max(1, result.best_epoch + 1)
    trained = train_network(again, cfg, epochs=epochs)  # no user callbacks: no val scores here
    summary = {"epochs": epochs, "rows": len(again.train), "seconds": round(trained.seconds, 3),
               "diverged": trained.diverged}
    if trained.diverged:  # never trade a working network for a broken one
        warnings.warn("the refit's training loss became NaN or infinite; the early-stopped "
                      "network is kept (lower lr or set gradient_clip)", TabResNetWarning,
                      stacklevel=3)
        return model, prepared, {**summary, "kept": "early-stopped network"}
    refit = TabularModel(trained.network, model.config, again.schema, again.preprocessor)
    refit.calibration = model.calibration
    return refit, again, summary


def _check_out(out: Path, overwrite: bool, probe_lock: bool = True) -> None:
    if probe_lock:  # fail now, not after the training, when another run writes out
        probe_run_lock(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"output directory {out} exists and is not empty; pass --overwrite or choose another --out"
        )


def write_run(
    directory: Path,
    model: TabularModel,
    prepared: Prepared,
    result: TrainResult,
    metrics: dict,
    folds: Sequence[Prepared] | None = None,
) -> None:
    """Write the run files (see docs/architecture.md) into ``directory``.

    ``folds``: a bag's, whose held-out rows score its feature importance
    when there are no test rows.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory, overwrite=True)  # the caller checked ``out`` (and --overwrite)
    atomic_write_text(directory / "config.yaml", model.config.to_yaml())
    atomic_write_text(directory / "metrics.json", dumps_standard(metrics))
    atomic_write_text(directory / "data_summary.json", dumps(prepared.summary))
    atomic_write_text(directory / "history.csv", result.history.to_csv(index=False))
    if prepared.test is not None and len(prepared.test):
        test = prepared.test
        bounds = None
        if model.calibration is not None:
            pred, *bounds = model.interval_tensors(test.x_num, test.x_cat, REPORT_LEVEL)
        else:
            pred = _predict_split(model, test)
        table = prediction_table(prepared.targets, test.y_raw, pred, bounds or None,
                                 rows=test.rows)  # to join them back to the rows they score
        atomic_write_text(directory / "predictions_test.csv", table.to_csv(index=False))
    oof = getattr(result, "oof", None)  # a bag's
    if oof is not None:
        atomic_write_text(directory / "predictions_oof.csv", oof.to_csv(index=False))
    _write_importance(directory, model, prepared, folds)


def _write_importance(
    directory: Path, model: TabularModel, prepared: Prepared, folds: Sequence[Prepared] | None
) -> None:
    """``importance.json``: permutation importance on the test rows, else the held-out rows.

    Held out: the validation rows, or a bag's out-of-fold rows (each member on
    the fold it left out). A refit model without test rows gets none (each of
    its rows trained it), nor does a bag of several networks per fold.
    """
    from ..feature_importance import (
        FIT_REPEATS,
        FIT_ROWS,
        importance,
        importance_out_of_fold,
        importance_record,
    )

    test = prepared.test is not None and len(prepared.test) > 0
    bag = not test and model.n_members > 1
    one_per_fold = folds is not None and len(folds) == model.n_members
    if not test and (model.config.train.refit or bag and not one_per_fold):
        return
    scored_on = "test" if test else "oof" if bag else "val"
    try:
        with warnings.catch_warnings():
            # Unseen categories of held-out rows are normal; a separate table's were
            # reported when it was read (prepare), so the scoring says nothing again.
            warnings.filterwarnings("ignore", message=".* be used as trained and count as missing",
                                    category=TabResNetWarning)
            if bag:
                table = importance_out_of_fold(model, [f.val.frame for f in folds],
                                               repeats=FIT_REPEATS, max_rows=FIT_ROWS,
                                               seed=model.config.seed)
            else:
                table = importance(model, (prepared.test if test else prepared.val).frame,
                                   repeats=FIT_REPEATS, max_rows=FIT_ROWS,
                                   seed=model.config.seed)
    except Exception as exc:  # the trained model matters more than its importance
        warnings.warn(f"feature importance not computed: {exc}", TabResNetWarning, stacklevel=3)
        return
    atomic_write_text(directory / "importance.json", dumps(importance_record(table, scored_on)))


@keep_global_state()
def fit(
    data: Any,
    target: str | Sequence[str],
    config: RunConfig | str | Path | dict | None = None,
    out: str | Path | None = None,
    *,
    val_data: Any = None,
    test_data: Any = None,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> Run:
    """Train a residual network on a table and (optionally) write a run directory.

    Parameters
    ----------
    data : path, DataFrame or ndarray
        The training table (CSV, Parquet, ...). Validation rows (``val_size``)
        are split off it unless ``val_data`` is given; test rows only with
        ``test_size > 0`` or ``test_data``. With ``bag=K`` every row outside a
        test split trains K - 1 of K networks.
    target : str or list of str
        Target column(s); several make a multi-target model.
    config : RunConfig, YAML path or dict, optional
        Defaults: :class:`tabresnet.defaults.RunConfig`.
    out : path, optional
        Run directory to write (see docs/architecture.md). It is built under a
        temporary name and renamed into place, so an existing run is never
        half-overwritten; a non-empty directory needs ``overwrite=True``.
    val_data, test_data : optional
        Separate validation and test tables.
    weight : str or array-like of shape (n_rows,), optional
        Row weights (numbers >= 0, not all 0): the name of a column of
        ``data`` (and of ``val_data`` / ``test_data`` when given), or one
        weight per row of ``data`` (kept as a column ``sample_weight``; rows of
        separate validation and test tables then weigh 1). The training loss,
        the early-stopping RMSE and the metrics weigh each row; an integer
        weight w trains as the row repeated w times would, in expectation over
        the batches (exactly with full batches); rows of weight 0 are left out.
        The preprocessing is fitted weighted too (medians, means, quantiles,
        PLE bins and the target's standardisation: those of the repeated rows).
    overwrite : bool
        Replace a non-empty ``out``.
    callbacks : sequence
        Extra Lightning callbacks.
    **overrides
        Flat config options, e.g. ``lr=3e-3, c_hidden=[64, 64], max_epochs=50``.

    Returns
    -------
    Run

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"a": rng.normal(size=120), "w": rng.integers(0, 3, 120)})
    >>> df["y"] = 2 * df.a
    >>> run = fit(df, "y", weight="w", max_epochs=2, num_blocks=[1], c_hidden=[8],
    ...           progress="none")
    >>> run.model.schema.ignored, run.metrics["val"]["weighted_by"]
    (['w'], 'w')
    """
    cfg_overrides, weight = row_weights(overrides)  # weight: one per row, else None
    cfg = resolve_config(config, cfg_overrides)
    refuse_unused(cfg, overrides)
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        _check_out(out_path, overwrite)
    start = time.perf_counter()
    frame = read_table(data)  # once, for the split and the folds alike
    for t in as_targets(target):
        if t in frame.columns and frame[t].nunique(dropna=True) == 1:
            warnings.warn(f"target {t!r} holds one value ({frame[t].dropna().iloc[0]}) in "
                          "every row: the model can only learn to predict it", TabResNetWarning,
                          stacklevel=3)
    if weight is not None:
        frame, val_data, test_data, name = weight_column(frame, weight, val_data, test_data)
        cfg = cfg.replace(weight=name)
    bagged = cfg.data.bag > 1
    if bagged:
        folds = make_folds(frame, target, cfg, val_data, test_data, cv=cfg.data.bag,
                           shared=True, option="bag")
        prepared = folds[0]
    else:
        prepared = prepare(frame, target, cfg, val_data=val_data, test_data=test_data)
        if len(prepared.val) < FEW_VAL_ROWS:
            warnings.warn(
                f"only {len(prepared.val)} validation {'row' if len(prepared.val) == 1 else 'rows'}"
                ": too few to choose the epoch well and to calibrate the intervals (90% bounds "
                "need 9 to be finite); more rows, a larger val_size or a bag (bag=K) give more",
                TabResNetWarning,
                stacklevel=3,
            )
    cv = cross_validate(frame, target, cfg) if cfg.data.cv_folds > 1 else None

    staging: Path | None = None
    lock: RunDirLock | None = None
    if out_path is not None:
        # One writer per --out; the check again under the lock (another run may
        # have finished there meanwhile); stale staging folders of dead runs go.
        lock, staging = open_run(out_path, check=lambda: _check_out(out_path, overwrite, probe_lock=False))
    refit_summary: dict | None = None
    try:
        if bagged:
            result = train_bag(folds, cfg, callbacks=callbacks)
            check_trained(result.results, cfg)
            prepared = bag_prepared(folds)
            model = TabularModel(result.network, cfg, prepared.schema, prepared.preprocessor)
            model.calibration = calibrate_bag(model, folds)
            metrics = {**result.metrics, **evaluate_splits(model, prepared, ("test",))}
        else:
            result = train_network(prepared, cfg, callbacks=callbacks, out_dir=staging)
            check_trained([result], cfg)
            model = TabularModel(result.network, cfg, prepared.schema, prepared.preprocessor)
            model.calibration = calibrate_split(model, prepared.val)
            metrics = evaluate_splits(model, prepared, ("val",))
            if cfg.train.refit:
                model, prepared, refit_summary = refit_all_rows(model, prepared, result)
            metrics.update(evaluate_splits(model, prepared, ("test",)))
        metrics.update(interval_metrics(model, prepared.test))
        metrics["training"] = result.training_summary()
        if refit_summary is not None:
            metrics["training"]["refit"] = refit_summary
        if cv is not None:
            metrics["cv"] = cv
        model.metrics = metrics
        run = Run(
            model=model,
            metrics=metrics,
            history=result.history,
            config=cfg,
            seconds=time.perf_counter() - start,
            summary=prepared.summary,
            oof=result.oof if bagged else None,
        )
        if staging is not None and result.is_global_zero:
            write_run(staging, model, prepared, result, metrics, folds if bagged else None)
            _swap_into_place(staging, out_path)
            staging = None
            run.dir = out_path
        return run
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            lock.release()


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished run over ``out``, keeping the old one until it is in place."""
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{int(time.time() * 1000)}")
        out.rename(backup)
    try:
        staging.rename(out)
    except BaseException:
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)

