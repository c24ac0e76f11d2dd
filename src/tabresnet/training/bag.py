"""A bag: one network per cross-validation fold, averaged (``fit --bag K``, ``tune --cv K``).

Bagging (Breiman, "Bagging Predictors", 1996) lowers the variance of the
prediction; with K-fold bags every row trains K - 1 members and is scored by the
one that did not see it, so the bag's own score is out-of-fold (Gorishniy et
al. and Holzmüller et al. use such bags for their tabular benchmarks). The
members share one preprocessing fitted on all their rows.

>>> import numpy as np, pandas as pd
>>> from tabresnet.defaults import RunConfig
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=120)})
>>> df["y"] = 2 * df.a
>>> cfg = RunConfig().replace(max_epochs=2, num_blocks=[1], c_hidden=[8], progress="none")
>>> bag = train_bag(make_folds(df, "y", cfg, cv=3, shared=True), cfg)
>>> len(bag.network.members), sorted(bag.metrics)
(3, ['oof'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import TabularModel
from ..calibrate import Calibration
from ..data import clean_target, clean_weight, kfold_indices, read_table, split_indices
from ..defaults import RunConfig
from ..metrics import regression_metrics
from ..models import MeanEnsemble
from .loop import TrainResult, train_network
from .prepare import Prepared, as_targets, data_summary, prepare

__all__ = ["BagResult", "bag_prepared", "calibrate_bag", "make_folds", "pool_and_test",
           "train_bag"]


def pool_and_test(
    data: Any, target: Any, config: RunConfig, val_data: Any = None, test_data: Any = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows training may see (``pool``) and the test rows, as ``prepare`` splits them.

    Returns ``(pool, test)``: DataFrames with a fresh index; ``test`` is the
    split-off test rows (none when ``test_size`` is 0), or ``test_data`` when given.
    """
    targets = as_targets(target)
    weight = config.data.weight
    frame = clean_weight(clean_target(read_table(data), targets).reset_index(drop=True), weight)
    if test_data is None:
        tr, va, te = split_indices(
            len(frame), config.data.val_size, config.data.test_size, config.seed
        )
        test = frame.iloc[te]
        frame = frame.iloc[np.sort(np.concatenate([tr, va]))]
    else:
        test = clean_weight(clean_target(read_table(test_data), targets), weight, "test data")
    if val_data is not None:
        val = clean_weight(clean_target(read_table(val_data), targets), weight, "validation data")
        frame = pd.concat([frame, val])
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
    """The prepared data to train on: one split, or ``cv`` folds.

    With ``cv >= 2`` the folds cover the rows outside the test split (the
    validation rows included); the test rows are never trained or stopped on.
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


@dataclass
class BagResult:
    """What :func:`train_bag` returns.

    Attributes
    ----------
    network : MeanEnsemble
        The members, each with its best epoch's weights, on the CPU, in eval mode.
    results : list of TrainResult
        One per member, in fold order.
    metrics : dict
        ``{"oof": {...}}``: each row scored by the member that did not train on it.
    history : DataFrame
        The members' per-epoch histories with a ``member`` column.
    """

    network: MeanEnsemble
    results: list[TrainResult]
    metrics: dict
    history: pd.DataFrame

    @property
    def is_global_zero(self) -> bool:
        """False in the extra processes of a multi-process (DDP) run."""
        return all(r.is_global_zero for r in self.results)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.results))

    def training_summary(self) -> dict:
        """The ``training`` entry of a bag's metrics."""
        return {
            "members": len(self.results),
            "best_epoch": [r.best_epoch for r in self.results],
            "epochs": [int(len(r.history)) for r in self.results],
            "seconds": round(self.seconds, 3),
            "diverged": any(r.diverged for r in self.results),
            "batch_size": self.results[0].batch_size,
            "patience": self.results[0].patience,
        }


def train_bag(
    folds: Sequence[Prepared],
    config: RunConfig,
    callbacks: Sequence[Any] = (),
    stop: Any = None,
) -> BagResult:
    """Train ``config`` on each fold (from :func:`make_folds` with ``shared=True``).

    Parameters
    ----------
    folds : sequence of Prepared
        Sharing one preprocessing; fold ``i``'s validation rows are the rows
        member ``i`` is early-stopped on and scored out-of-fold on.
    config : RunConfig
    callbacks : sequence
        Lightning callbacks given to every member's training.
    stop : object, optional
        Anything with a boolean ``requested``: checked after each member, so an
        interrupted bag keeps the members finished so far.

    Returns
    -------
    BagResult
    """
    results: list[TrainResult] = []
    for prepared in folds:
        results.append(train_network(prepared, config, callbacks=callbacks))
        if stop is not None and getattr(stop, "requested", False):
            break
    first = folds[0]
    y_true, y_pred, weights = [], [], []
    for prepared, r in zip(folds, results):
        member = TabularModel(r.network, config, first.schema, first.preprocessor)
        y_true.append(prepared.val.y_raw)
        y_pred.append(member.predict_tensors(prepared.val.x_num, prepared.val.x_cat))
        weights.append(prepared.val.weight)
    weight = None if any(w is None for w in weights) else np.concatenate(weights)
    metrics = {
        "oof": regression_metrics(np.concatenate(y_true), np.concatenate(y_pred), first.targets,
                                  sample_weight=weight)
    }
    if first.weight is not None:
        metrics["oof"]["weighted_by"] = first.weight
    history = pd.concat(
        [r.history.assign(member=i) for i, r in enumerate(results)], ignore_index=True
    )
    return BagResult(MeanEnsemble([r.network for r in results]), results, metrics, history)


def calibrate_bag(model: TabularModel, folds: Sequence[Prepared]) -> Calibration:
    """CV+ calibration of a bag (Barber et al. 2021) from its out-of-fold rows.

    Member ``i`` scores fold ``i``'s held-out rows; with in-network ensembles
    its own members' spread normalises the scores (the adaptive mode). A bag
    of several networks per fold (``tune --pack P --cv K``: member ``j`` left
    fold ``j % K`` out) scores fold ``i``'s rows by its fold-``i`` networks,
    weighted as in the ensemble, their spread normalising the scores.
    """
    ys, mus, sigmas = [], [], []
    used = folds[: model.n_members]  # an interrupted bag: the folds with a member
    groups = len(used) if model.n_members > len(used) else None
    for i, prepared in enumerate(used):
        parts = model.interval_parts(prepared.val.x_num, prepared.val.x_cat, folds=groups)
        ys.append(prepared.val.y_raw)
        mus.append(parts["members"][:, i])
        spread = parts["member_spread"]
        sigmas.append(None if spread is None else spread[:, i])
    use = None if any(s is None for s in sigmas) else sigmas
    return Calibration.fit_folds(ys, mus, use, model.targets, kind="cv+")


def bag_prepared(folds: list[Prepared]) -> Prepared:
    """The first fold, its summary counting every row of the bag once."""
    first = folds[0]
    splits = [first.train, first.val] + ([first.test] if first.test is not None else [])
    rows = {
        f"train ({len(folds)}-fold bag)": len(first.train) + len(first.val),
        "test": len(first.test) if first.test is not None else 0,
    }
    summary = data_summary(pd.concat([s.frame for s in splits]), first.schema, rows,
                           weight=first.weight)
    summary["bag"] = {"members": len(folds), "folds": len(folds)}
    return replace(first, summary=summary)
