"""Retrain the best configuration: once on the training split, or as a bag of its fold networks.

Both write the run directory ``fit`` writes (``write_run``), with the
tuning's own entries added to the metrics.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import TabularModel
from ..defaults import RunConfig
from ..metrics import regression_metrics
from ..models import MeanEnsemble
from ..training import Prepared, evaluate_splits, train_network
from ..training.fit import write_run
from ..training.prepare import data_summary
from .objective import PruningCallback, StopFlag

__all__ = ["retrain", "retrain_bag"]


def retrain(
    prepared: Prepared,
    config: RunConfig,
    run_dir: Path | None,
    extra: dict,
    threads: int = 0,
    result: Any = None,
) -> tuple[TabularModel, dict]:
    """Train ``config`` once more (same seed and split as its trial) and evaluate it.

    It runs with the trials' thread count: with ``--jobs K`` that is
    ``cores // K``, which on small tables beats more threads fighting over
    the cores (and reproduces the trial's numbers). A given ``result`` (the
    best trial's own training) is saved as it is, without training.
    """
    # Ctrl-C now ends the retraining early with the best weights so far.
    stop = StopFlag(message="interrupted: ending the retraining with its best epoch so far "
                            "(press Ctrl-C again to abort)")
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
                          "epoch before that", stacklevel=3)
        model = TabularModel(result.network, config, prepared.schema, prepared.preprocessor)
        metrics = evaluate_splits(model, prepared)
        metrics["training"] = {
            "best_epoch": result.best_epoch,
            "epochs": int(len(result.history)),
            "seconds": round(result.seconds, 3),
            "diverged": result.diverged,
            "interrupted": stop.requested,
        }
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
) -> tuple[TabularModel, dict]:
    """Train ``config`` on each fold and average the networks (a k-fold bag).

    Every fold holds the same preprocessing (fitted on all its rows) and the
    test split. The metrics are ``oof`` (each member on the fold it did not
    train on: an honest validation score) and ``test`` (the average); Ctrl-C
    keeps the members finished so far (the running one ends at its best epoch).
    """
    stop = StopFlag(message="interrupted: ending the retraining with the members so far "
                            "(press Ctrl-C again to abort)")
    cfg = config.replace(num_threads=threads) if threads else config
    runs = []
    with stop:
        for prepared in folds:
            runs.append(train_network(prepared, cfg, callbacks=[PruningCallback(None, stop)]))
            if stop.requested:
                break
    if any(r.diverged for r in runs):
        warnings.warn("a member of the retrained bag diverged; it keeps its best epoch before "
                      "that", stacklevel=3)
    first = folds[0]
    model = TabularModel(
        MeanEnsemble([r.network for r in runs]), config, first.schema, first.preprocessor
    )
    y_true, y_pred = [], []
    for prepared, r in zip(folds, runs):
        member = TabularModel(r.network, config, first.schema, first.preprocessor)
        y_true.append(prepared.val.y_raw)
        y_pred.append(member.predict_tensors(prepared.val.x_num, prepared.val.x_cat))
    metrics: dict[str, Any] = {
        "oof": regression_metrics(np.concatenate(y_true), np.concatenate(y_pred), first.targets)
    }
    if first.test is not None and len(first.test):
        pred = model.predict_tensors(first.test.x_num, first.test.x_cat)
        metrics["test"] = regression_metrics(first.test.y_raw, pred, first.targets)
    metrics["training"] = {
        "members": len(runs),
        "folds": len(folds),
        "best_epoch": [r.best_epoch for r in runs],
        "epochs": [int(len(r.history)) for r in runs],
        "seconds": round(sum(r.seconds for r in runs), 3),
        "diverged": any(r.diverged for r in runs),
        "interrupted": stop.requested,
    }
    metrics.update(extra)
    model.metrics = metrics
    if run_dir is not None:
        history = pd.concat(
            [r.history.assign(member=i) for i, r in enumerate(runs)], ignore_index=True
        )
        splits = [first.train, first.val] + ([first.test] if first.test is not None else [])
        rows = {f"train ({len(folds)}-fold bag)": len(first.train) + len(first.val),
                "test": len(first.test) if first.test is not None else 0}
        summary = data_summary(pd.concat([s.frame for s in splits]), first.schema, rows)
        summary["bag"] = {"members": len(runs), "folds": len(folds)}
        bag_data = replace(first, summary=summary)
        write_run(run_dir, model, bag_data,
                  replace(runs[0], history=history), metrics)
    return model, metrics
