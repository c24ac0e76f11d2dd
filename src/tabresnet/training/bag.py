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
from ..data.schema import _check_targets_exist
from ..defaults import RunConfig
from ..metrics import regression_metrics
from ..models import MeanEnsemble
from .loop import TrainResult, train_network
from .prepare import Prepared, _numbered, as_targets, data_summary, free_column, prepare

__all__ = ["BagResult", "bag_prepared", "calibrate_bag", "make_folds", "oof_table",
           "pool_and_test", "prediction_table", "train_bag"]


def pool_and_test(
    data: Any, target: Any, config: RunConfig, val_data: Any = None, test_data: Any = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows training may see (``pool``) and the test rows, as ``prepare`` splits them.

    Returns ``(pool, test)``: ``test`` is the split-off test rows (none when
    ``test_size`` is 0), or ``test_data`` when given, with a fresh index;
    ``pool``'s index is each row's 0-based number in ``data`` (``val_data``'s
    rows numbered on after them), the rows dropped for their target or a
    weight of 0 left out; ``test``'s is each row's number in ``data``, or in
    ``test_data`` when given.
    """
    targets = as_targets(target)
    weight = config.data.weight
    raw = read_table(data)
    number = free_column(raw.columns, "row")

    def cleaned(table: pd.DataFrame, first: int, what: str) -> pd.DataFrame:
        _check_targets_exist(table, targets)  # naming the table's columns, not ours
        numbered, _ = _numbered(table, first, number)
        return clean_weight(clean_target(numbered, targets), weight, what)

    frame = cleaned(raw, 0, "data")
    if test_data is None:
        tr, va, te = split_indices(
            len(frame), config.data.val_size, config.data.test_size, config.seed
        )
        test = frame.iloc[te]
        frame = frame.iloc[np.sort(np.concatenate([tr, va]))]
    else:  # numbered as the test table's own rows
        test = cleaned(read_table(test_data), 0, "test data")
    if val_data is not None:
        frame = pd.concat([frame, cleaned(read_table(val_data), len(raw), "validation data")])
    rows = frame[number].to_numpy()
    test_rows = test[number].to_numpy()
    return (frame.drop(columns=number).set_axis(rows),
            test.drop(columns=number).set_axis(test_rows))


def make_folds(
    data: Any,
    target: Any,
    config: RunConfig,
    val_data: Any = None,
    test_data: Any = None,
    cv: int = 0,
    shared: bool = False,
    option: str = "cv",
) -> list[Prepared]:
    """The prepared data to train on: one split, or ``cv`` folds.

    With ``cv >= 2`` the folds cover the rows outside the test split (the
    validation rows included); the test rows are never trained or stopped on.
    Each fold fits its own preprocessing on its training rows, unless
    ``shared``: then all folds share one fitted on every non-test row and
    carry the test split too (the members of a bag). A fold's validation
    rows keep their numbers in ``data`` as their index
    (:func:`pool_and_test`), which the out-of-fold predictions report.
    ``option`` names ``cv`` in the error about too few rows (``"bag"`` for a bag).
    """
    if cv < 2:
        return [prepare(data, target, config, val_data=val_data, test_data=test_data)]
    targets = as_targets(target)
    pool, test = pool_and_test(data, targets, config, val_data, test_data)
    every = np.arange(len(pool)) if shared else None
    folds = []
    for train_idx, val_idx in kfold_indices(len(pool), cv, config.seed, option):
        fold = prepare(pool, targets, config, train_index=train_idx, val_index=val_idx,
                       test_data=test if shared and len(test) else None, fit_index=every)
        held_out = replace(fold.val, frame=fold.val.frame.set_axis(pool.index[val_idx]))
        fold = replace(fold, val=held_out)
        if fold.test is not None:  # prepare numbered them as a table of their own
            fold = replace(fold, test=replace(fold.test, rows=test.index.to_numpy()))
        folds.append(fold)
    return folds


def prediction_table(
    targets: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    bounds: Sequence[np.ndarray] | None = None,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Predictions as the run directory's CSV files hold them.

    Columns ``row`` (with ``rows``), then per target ``y_true``, ``y_pred``
    and, with ``bounds`` (lower, upper), ``y_lower`` and ``y_upper``; with
    several targets each name ends in ``_<target>``. Arrays are ``(n, targets)``.

    >>> prediction_table(["y"], np.array([[1.0]]), np.array([[1.5]]), rows=np.array([7]))
       row  y_true  y_pred
    0    7     1.0     1.5
    """
    cols: dict[str, np.ndarray] = {} if rows is None else {"row": np.asarray(rows)}
    single = len(targets) == 1
    for j, t in enumerate(targets):
        suffix = "" if single else f"_{t}"
        cols[f"y_true{suffix}"] = y_true[:, j]
        cols[f"y_pred{suffix}"] = y_pred[:, j]
        if bounds is not None:
            cols[f"y_lower{suffix}"] = bounds[0][:, j]
            cols[f"y_upper{suffix}"] = bounds[1][:, j]
    return pd.DataFrame(cols)


def oof_table(folds: Sequence[Prepared], y_pred: np.ndarray) -> pd.DataFrame:
    """A bag's out-of-fold predictions, one row per row it trained on, sorted by ``row``.

    ``y_pred`` ``(n, targets)``: the predictions of ``folds``' validation rows,
    fold after fold; ``row`` is each row's number in the data
    (:func:`make_folds`), so ``data.iloc[table.row]`` are the rows predicted.
    """
    rows = np.concatenate([f.val.frame.index.to_numpy() for f in folds])
    y_true = np.concatenate([f.val.y_raw for f in folds])
    table = prediction_table(folds[0].targets, y_true, y_pred, rows=rows)
    return table.sort_values("row", kind="stable", ignore_index=True)


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
    oof : DataFrame
        Those out-of-fold predictions (:func:`oof_table`).
    """

    network: MeanEnsemble
    results: list[TrainResult]
    metrics: dict
    history: pd.DataFrame
    oof: pd.DataFrame | None = None

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
    oof = oof_table(folds[: len(results)], np.concatenate(y_pred))
    return BagResult(MeanEnsemble([r.network for r in results]), results, metrics, history, oof)


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
