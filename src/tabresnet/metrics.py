"""Regression metrics in the target's own units, from :mod:`sklearn.metrics`.

>>> import numpy as np
>>> m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
>>> round(m["rmse"], 4), round(m["mae"], 4), round(m["r2"], 4)
(0.5774, 0.3333, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

__all__ = ["SCORE_ROWS", "quantile_metrics", "regression_metrics"]

#: Where each score of a run comes from, as the command line and the report say it.
SCORE_ROWS = {
    "val": "validation rows (they chose the epoch: optimistic)",
    "oof": "each row predicted by the bag member that did not train on it (but was "
           "early-stopped on it: slightly optimistic)",
    "test": "test rows (held out: never trained or stopped on)",
    "data": "the rows given",
}


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    targets: Sequence[str] | None = None,
    sample_weight: np.ndarray | None = None,
) -> dict:
    """RMSE, MAE, R² and (where no true value is zero) MAPE.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n,) or (n, n_targets)
    targets : sequence of str, optional
        Target names; with several targets the result also has
        ``per_target`` and the top-level values are means over targets.
    sample_weight : ndarray of shape (n,), optional
        Row weights (scikit-learn's ``sample_weight``): a row of weight 2
        counts as that row twice. ``n`` stays the number of rows.

    Returns
    -------
    dict
        ``{"rmse", "mae", "r2", ["mape"], "n", ["per_target"]}``; R² is NaN
        for a constant target or a single row, every score NaN for a target
        with a NaN or infinite prediction.

    Examples
    --------
    >>> y, p = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])
    >>> w = regression_metrics(y, p, sample_weight=np.array([1.0, 1.0, 2.0]))
    >>> r = regression_metrics(np.r_[y, 3.0], np.r_[p, 4.0])      # row 3 twice
    >>> w["rmse"] == r["rmse"], w["mae"] == r["mae"], w["n"]
    (True, True, 3)
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred shapes differ: {y.shape} vs {p.shape}")
    raw: dict = {"multioutput": "raw_values"}
    if sample_weight is not None:
        raw["sample_weight"] = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    # A network that diverged predicts NaN or inf: its scores are NaN, not an exception.
    broken = ~np.isfinite(p).all(axis=0)
    p = np.where(broken, 0.0, p)
    if len(y) > 1:
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant target: R² is NaN
            r2 = np.where(y.std(0) > 0, skm.r2_score(y, p, force_finite=False, **raw), np.nan)
    else:  # one row has no variance to explain
        r2 = np.full(y.shape[1], np.nan)
    per = {
        "rmse": skm.root_mean_squared_error(y, p, **raw),
        "mae": skm.mean_absolute_error(y, p, **raw),
        "r2": r2,
    }
    # MAPE is undefined where a true value is 0: reported only for targets without one.
    no_zero = np.all(np.abs(y) > 0, axis=0)
    if no_zero.any():
        per["mape"] = np.where(no_zero, skm.mean_absolute_percentage_error(y, p, **raw), np.nan)
    per = {k: np.where(broken, np.nan, v) for k, v in per.items()}
    out: dict = {k: float(np.mean(v)) for k, v in per.items() if k != "mape" or no_zero.all()}
    if y.shape[1] > 1:
        names = list(targets) if targets else [f"y{j}" for j in range(y.shape[1])]
        out["per_target"] = {
            name: {k: float(v[j]) for k, v in per.items() if k != "mape" or no_zero[j]}
            for j, name in enumerate(names)
        }
    out["n"] = int(y.shape[0])
    return out


def quantile_metrics(
    y_true: np.ndarray,
    quantiles: np.ndarray,
    levels: Sequence[float],
    sample_weight: np.ndarray | None = None,
) -> dict:
    """How a quantile model's levels fit: the share of values below each, and its pinball loss.

    A level ``q`` should have a share ``q`` of the true values below it; the
    pinball loss (Koenker & Bassett 1978) scores the level as a whole (lower
    is better).

    Parameters
    ----------
    y_true : ndarray of shape (n,) or (n, n_targets)
    quantiles : ndarray of shape (n, n_targets, Q)
        The predicted levels, in ``levels`` order.
    levels : sequence of float
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    dict
        ``{"<level>": {"below": share, "pinball": loss}}``; with several
        targets both are means over the targets.

    Examples
    --------
    >>> y = np.arange(10.0)
    >>> q = np.stack([np.full(10, 1.5), np.full(10, 8.5)], axis=-1)[:, None, :]
    >>> m = quantile_metrics(y, q, [0.2, 0.9])
    >>> m["0.2"]["below"], m["0.9"]["below"]
    (0.2, 0.9)
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    q = np.asarray(quantiles, dtype=np.float64).reshape(len(y), y.shape[1], -1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    out: dict = {}
    for i, level in enumerate(levels):
        ok = [bool(np.isfinite(q[:, t, i]).all()) for t in range(y.shape[1])]  # a diverged net
        below = [np.average(y[:, t] < q[:, t, i], weights=w) if ok[t] else np.nan
                 for t in range(y.shape[1])]
        loss = [skm.mean_pinball_loss(y[:, t], q[:, t, i], alpha=level, sample_weight=w)
                if ok[t] else np.nan for t in range(y.shape[1])]
        out[f"{level:g}"] = {"below": float(np.mean(below)), "pinball": float(np.mean(loss))}
    return out
