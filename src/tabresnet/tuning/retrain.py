"""Retrain the best configuration: once on the training split, or as a bag of its fold networks.

Both write the run directory ``fit`` writes (``write_run``), with the
tuning's own entries added to the metrics.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..artifact import TabularModel
from ..defaults import RunConfig
from ..errors import TabResNetWarning
from ..training import Prepared, evaluate_splits, train_network
from ..training.bag import bag_prepared, calibrate_bag, train_bag
from ..training.fit import calibrate_split, interval_metrics, write_run
from .objective import PruningCallback, StopFlag

__all__ = ["retrain", "retrain_bag"]


def retrain(
    prepared: Prepared,
    config: RunConfig,
    run_dir: Path | None,
    extra: dict,
    threads: int = 0,
    result: Any = None,
    abort_on_signal: bool = False,
) -> tuple[TabularModel, dict]:
    """Train ``config`` once more (same seed and split as its trial) and evaluate it.

    It runs with the trials' thread count: with ``--jobs K`` that is
    ``cores // K``, which on small tables beats more threads fighting over
    the cores (and reproduces the trial's numbers). A given ``result`` (the
    best trial's own training) is saved as it is, without training.
    """
    # Ctrl-C now ends the retraining early with the best weights so far.
    # (After a Ctrl-C that stopped the search, the next one aborts, as it promised.)
    stop = StopFlag(message="interrupted: ending the retraining with its best epoch so far "
                            "(press Ctrl-C again to abort)", abort=abort_on_signal)
    staging = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".retrain.", dir=run_dir))
    try:
        if result is None:
            with stop:
                result = train_network(
                    prepared,
                    config.replace(num_threads=threads) if threads else config,
                    callbacks=[PruningCallback(None, stop)],
                    out_dir=staging,
                )
        if result.diverged:
            warnings.warn("the retrained best configuration diverged; its model is the best "
                          "epoch before that", TabResNetWarning, stacklevel=3)
        model = TabularModel(result.network, config, prepared.schema, prepared.preprocessor)
        # Conformal intervals as fit gives them: split conformal on the validation rows.
        model.calibration = calibrate_split(model, prepared.val)
        metrics = evaluate_splits(model, prepared)
        metrics.update(interval_metrics(model, prepared.test))
        metrics["training"] = {**result.training_summary(), "interrupted": stop.requested}
        metrics.update(extra)
        model.metrics = metrics
        if run_dir is not None:
            write_run(run_dir, model, prepared, result, metrics)
            for sub in ("logs", "checkpoints"):
                if (staging / sub).exists():
                    shutil.rmtree(run_dir / sub, ignore_errors=True)
                    (staging / sub).rename(run_dir / sub)
        return model, metrics
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def retrain_bag(
    folds: list[Prepared],
    config: RunConfig,
    run_dir: Path | None,
    extra: dict,
    threads: int = 0,
    abort_on_signal: bool = False,
) -> tuple[TabularModel, dict]:
    """Train ``config`` on each fold and average the networks (a k-fold bag).

    Every fold holds the same preprocessing (fitted on all its rows) and the
    test split. The metrics are ``oof`` (each member on the fold it did not
    train on, though it was early-stopped there: slightly optimistic) and
    ``test`` (the average); Ctrl-C keeps the members finished so far (the
    running one ends at its best epoch). The trials scored each fold through
    a preprocessing fitted on that fold's training rows alone, so ``oof``
    differs somewhat from the best trial's fold mean (a model file holds one
    preprocessing; its quantiles and PLE bins come from every row).
    """
    stop = StopFlag(message="interrupted: ending the retraining with the members so far "
                            "(press Ctrl-C again to abort)", abort=abort_on_signal)
    cfg = config.replace(num_threads=threads) if threads else config
    with stop:
        bag = train_bag(folds, cfg, callbacks=[PruningCallback(None, stop)], stop=stop)
    training = bag.training_summary()
    if training["diverged"]:
        warnings.warn("a member of the retrained bag diverged; it keeps its best epoch before "
                      "that", TabResNetWarning, stacklevel=3)
    prepared = bag_prepared(folds)
    model = TabularModel(bag.network, config, prepared.schema, prepared.preprocessor)
    model.calibration = calibrate_bag(model, folds)  # CV+ on the out-of-fold rows, as fit
    metrics: dict[str, Any] = {**bag.metrics, **evaluate_splits(model, prepared, ("test",))}
    metrics.update(interval_metrics(model, prepared.test))
    metrics["training"] = {**training, "folds": len(folds), "interrupted": stop.requested}
    metrics.update(extra)
    model.metrics = metrics
    if run_dir is not None:
        write_run(run_dir, model, prepared, bag, metrics, folds)
    return model, metrics
