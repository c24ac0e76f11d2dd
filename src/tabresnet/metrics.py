"""Regression metrics in the target's own units.

>>> import numpy as np
>>> m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
>>> round(m["rmse"], 4), round(m["mae"], 4), round(m["r2"], 4)
(0.5774, 0.3333, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["regression_metrics"]


def _single(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    err = p - y
    out = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
    }
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    out["r2"] = float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan")
    # MAPE is undefined where a true value is 0; report it only when none is.
    if np.all(np.abs(y) > 0):
        out["mape"] = float(np.mean(np.abs(err) / np.abs(y)))
    return out


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, targets: Sequence[str] | None = None
) -> dict:
    """RMSE, MAE, R² and (where no true value is zero) MAPE.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n,) or (n, n_targets)
    targets : sequence of str, optional
        Target names; with several targets the result also has
        ``per_target`` and the top-level values are means over targets.

    Returns
    -------
    dict
        ``{"rmse", "mae", "r2", ["mape"], "n", ["per_target"]}``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred shapes differ: {y.shape} vs {p.shape}")
    per = [_single(y[:, j], p[:, j]) for j in range(y.shape[1])]
    if len(per) == 1:
        out: dict = dict(per[0])
    else:
        keys = set.intersection(*(set(d) for d in per))
        out = {
            k: float(np.mean([d[k] for d in per]))
            for k in ("rmse", "mae", "r2", "mape")
            if k in keys
        }
        names = list(targets) if targets else [f"y{j}" for j in range(len(per))]
        out["per_target"] = dict(zip(names, per))
    out["n"] = int(y.shape[0])
    return out
