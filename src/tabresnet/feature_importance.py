"""Permutation feature importance of a trained model: ``tabresnet importance MODEL DATA``.

A column's importance is how much the model's score worsens when that
column's values are shuffled across the rows, which breaks its link with the
target while keeping its distribution (Breiman, "Random Forests", Machine
Learning 45, 2001; the model-agnostic form of Fisher, Rudin & Dominici,
"All Models are Wrong, but Many are Useful", JMLR 20, 2019). The shuffling
is scikit-learn's :func:`sklearn.inspection.permutation_importance`, run on
the *raw* table through a small adapter, so a source column is permuted as a
whole: its one-hot columns, its missing-value indicator, its embedding and,
for a date, all its parts move together and count as one feature.

Score it on rows the model did not train on (test rows, else validation
rows): on training rows a network that memorised noise would make noise look
important. ``fit`` writes ``importance.json`` into the run directory, for the
report, on the run's test rows or, without them, its validation rows.

>>> import numpy as np, pandas as pd
>>> from tabresnet.training import fit
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
>>> df["y"] = 3 * df.signal
>>> run = fit(df, "y", max_epochs=30, num_blocks=[1], c_hidden=[16], progress="none")
>>> table = importance(run.model, df.tail(100), repeats=3)
>>> list(table.feature)                      # most important first
['signal', 'noise']
>>> list(table.columns)
['feature', 'role', 'importance', 'std']
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from .artifact import TabularModel, as_model
from .data import check_weights, clean_target, read_table
from .errors import ConfigError, DataError, TabResNetWarning

__all__ = ["SCORINGS", "importance", "importance_out_of_fold", "importance_record"]

#: Our score names -> scikit-learn's scorers (greater is better, so the drop
#: ``baseline - permuted`` is positive for a column that matters).
SCORINGS = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}
#: What fit scores for the run directory: rows and repeats, kept small so that
#: a fit on a large table spends seconds, not minutes, on it.
FIT_ROWS = 2000
FIT_REPEATS = 5


class _RawTableModel(RegressorMixin, BaseEstimator):
    """A fitted :class:`TabularModel` as a scikit-learn regressor over the raw table.

    ``permutation_importance`` then permutes raw columns, and the model's own
    preprocessing turns each permuted column into its one-hot, indicator or
    embedding inputs, so those count as their source column.
    """

    def __init__(self, model: TabularModel | None = None):
        self.model = model

    def fit(self, X: Any, y: Any = None) -> _RawTableModel:  # already trained
        self.is_fitted_ = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():  # cells unusable as trained: counted once, before
            warnings.simplefilter("ignore", TabResNetWarning)
            return self.model.predict(X)


def _as_model(model: Any) -> TabularModel:
    return as_model(model, "importance")


def importance(
    model: Any,
    data: Any,
    y: Any = None,
    *,
    repeats: int = 5,
    scoring: str = "rmse",
    seed: int = 0,
    max_rows: int | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """Permutation importance of each source column of ``model`` on the rows of ``data``.

    Parameters
    ----------
    model : TabularModel, path, Run or fitted ResNetRegressor
        The model; a path is a run directory or its ``model.json``.
    data : DataFrame, path or ndarray
        Rows with every feature column and the target(s); use rows the model
        did not train on (test or validation rows). Rows without a finite
        target are dropped (with a warning). When the model was trained with
        a weight column and ``data`` has it, the scores are weighted by it.
    y : array-like of shape (n_rows,) or (n_rows, n_targets), optional
        The target values of the rows of ``data``, when ``data`` does not
        hold the target column(s) (an estimator's ``X, y``).
    repeats : int
        Shuffles per column; ``std`` is the spread of the score drop over them.
    scoring : {"rmse", "mae", "r2"}
        The score whose drop is measured: for ``"rmse"`` and ``"mae"`` the
        increase of the error in target units, for ``"r2"`` the decrease of R².
    seed : int
        Seeds the shuffles (and the row sample of ``max_rows``).
    max_rows : int, optional
        Score on a random sample of this many rows per repeat (faster on
        large tables).
    strict : bool
        As for :meth:`TabularModel.predict`: refuse cells the model cannot use
        as trained instead of reading them as missing.

    Returns
    -------
    DataFrame
        One row per feature column: ``feature``, ``role`` (numeric,
        categorical or date), ``importance`` (the mean score drop; near 0 or
        below: the model does not use the column) and ``std``, sorted from
        the most important. ``attrs`` holds ``scoring``, ``baseline`` (the
        unpermuted score, positive for rmse and mae), ``rows`` and ``repeats``.

    Raises
    ------
    DataError
        A feature or target column is missing, or no row has a target.
    ConfigError
        ``repeats`` below 1, an unknown ``scoring`` or ``max_rows`` below 2.

    Notes
    -----
    Breiman (2001) introduced permuted-column importance for random forests;
    Fisher, Rudin & Dominici (2019) define it for any model ("model
    reliance"). Two strongly correlated columns share their importance: with
    one shuffled the model can still read the other, so each looks less
    important than the pair is.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from tabresnet import ResNetRegressor
    >>> rng = np.random.default_rng(1)
    >>> X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    >>> est = ResNetRegressor(max_epochs=20, num_blocks=(1,), c_hidden=(16,)).fit(X, 2 * X.a)
    >>> table = importance(est, X, 2 * X.a, repeats=2)
    >>> table.feature.iloc[0], table.attrs["scoring"], table.attrs["rows"]
    ('a', 'rmse', 200)
    """
    from sklearn.inspection import permutation_importance

    if int(repeats) < 1:
        raise ConfigError(f"repeats must be at least 1, however: {repeats}")
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; valid names are: {', '.join(SCORINGS)}")
    if max_rows is not None and int(max_rows) < 2:
        raise ConfigError(f"max_rows must be at least 2, however: {max_rows}")
    model = _as_model(model)
    frame = read_table(data)
    targets = model.targets
    if y is not None:
        values = np.asarray(y, dtype=np.float64)
        values = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
        if values.shape != (len(frame), len(targets)):
            raise DataError(
                f"y has shape {np.shape(y)} but the data has {len(frame)} rows and the model "
                f"{len(targets)} target(s); give one target value per row"
            )
        frame = frame.assign(**{t: values[:, j] for j, t in enumerate(targets)})
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise DataError(
            f"target column(s) {', '.join(map(repr, missing))} not in the data; importance "
            "scores the model against them - give rows with the target"
        )
    frame = clean_target(frame, targets)
    features = list(model.schema.feature_columns)
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise DataError(
            f"missing column(s) the model needs: {', '.join(map(repr, absent))}; give a table "
            "with the model's feature columns"
        )
    model.preprocessor.check(frame, strict=strict)  # one warning (or error) for all repeats
    weight_col = getattr(model.config.data, "weight", None)
    weight = (
        check_weights(frame[weight_col], f"weight column {weight_col!r}")
        if weight_col is not None and weight_col in frame.columns
        else None
    )
    X = frame[features].reset_index(drop=True)
    y = frame[targets].to_numpy(dtype=np.float64)
    y = y[:, 0] if y.shape[1] == 1 else y
    n = len(X)
    sample = min(int(max_rows), n) if max_rows is not None else n
    result = permutation_importance(
        _RawTableModel(model).fit(X),
        X,
        y,
        scoring=SCORINGS[scoring],
        n_repeats=int(repeats),
        random_state=int(seed),
        sample_weight=weight,
        max_samples=sample if sample < n else 1.0,
    )
    roles = {c: "numeric" for c in model.schema.numeric}
    roles |= {c: "categorical" for c in model.schema.categorical}
    roles |= {c: "date" for c in model.schema.dates}
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in features],
            "role": [roles.get(c, "") for c in features],
            "importance": result.importances_mean,
            "std": result.importances_std,
        }
    )
    table = table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    scorer_value = _baseline(model, X, y, scoring, weight)
    table.attrs.update(scoring=scoring, baseline=scorer_value, rows=sample, repeats=int(repeats))
    return table


def importance_out_of_fold(
    model: TabularModel,
    held_out: list[pd.DataFrame],
    *,
    repeats: int = 5,
    seed: int = 0,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Permutation importance of a K-fold bag on its out-of-fold rows (RMSE).

    A bag trains on every row it is given, so it leaves none to score it on;
    but its member ``i`` never saw fold ``i``. Each member's importance is
    :func:`importance` on its own fold's rows, and the folds are pooled,
    weighted by their rows (or their weights): the mean RMSE increase and
    the pooled standard deviation of the folds' shuffles. This is the
    permutation importance of the out-of-fold predictions the bag is scored
    by (the cross-validated variant of Fisher, Rudin & Dominici 2019).

    Parameters
    ----------
    model : TabularModel
        A bag: ``model.network.members[i]`` left out the rows of ``held_out[i]``.
    held_out : list of DataFrame
        One table per member, with its features and target(s).
    repeats, seed : int
        As for :func:`importance`.
    max_rows : int, optional
        At most this many rows in all, shared by the folds.

    Returns
    -------
    DataFrame
        As :func:`importance`; ``attrs["baseline"]`` is the out-of-fold RMSE.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from tabresnet.training import fit
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
    >>> df["y"] = 3 * df.signal
    >>> from tabresnet.training.bag import make_folds
    >>> run = fit(df, "y", bag=3, max_epochs=30, num_blocks=[1], c_hidden=[16], progress="none")
    >>> folds = make_folds(df, "y", run.config, cv=3, shared=True)  # fit's own folds
    >>> table = importance_out_of_fold(run.model, [f.val.frame for f in folds], repeats=2)
    >>> list(table.feature), table.attrs["rows"]
    (['signal', 'noise'], 300)
    """
    if model.n_members < 2 or model.n_members != len(held_out):
        raise ConfigError(f"need a bag and one table per member: {model.n_members} member(s), "
                          f"{len(held_out)} table(s)")
    members = list(model.network.members)
    per_fold = None if max_rows is None else max(2, -(-int(max_rows) // len(held_out)))
    weight = model.config.data.weight
    tables, sizes = [], []
    for i, (member, rows) in enumerate(zip(members, held_out)):
        one = TabularModel(member, model.config, model.schema, model.preprocessor)
        tables.append(importance(one, rows, repeats=repeats, seed=seed + i, max_rows=per_fold)
                      .set_index("feature"))
        sizes.append(float(rows[weight].sum()) if weight is not None and weight in rows
                     else float(tables[-1].attrs["rows"]))
    w = np.asarray(sizes) / sum(sizes)
    mean = sum(wi * t["importance"] for wi, t in zip(w, tables))
    spread = sum(wi * (t["std"] ** 2 + (t["importance"] - mean) ** 2) for wi, t in zip(w, tables))
    first = tables[0]
    table = pd.DataFrame({"feature": first.index, "role": first["role"].to_numpy(),
                          "importance": mean.loc[first.index].to_numpy(),
                          "std": np.sqrt(spread.loc[first.index].to_numpy())})
    table = table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    baseline = math.sqrt(sum(wi * t.attrs["baseline"] ** 2 for wi, t in zip(w, tables)))
    table.attrs.update(scoring="rmse", baseline=baseline,
                       rows=int(sum(t.attrs["rows"] for t in tables)), repeats=int(repeats))
    return table


def _baseline(model: TabularModel, X: pd.DataFrame, y: np.ndarray, scoring: str,
              weight: np.ndarray | None) -> float:
    """The unpermuted score, in the scoring's own sign (rmse and mae positive)."""
    from .metrics import regression_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TabResNetWarning)
        pred = model.predict(X)
    return float(regression_metrics(y, pred, sample_weight=weight)[scoring])


def importance_record(table: pd.DataFrame, rows: str) -> dict:
    """The JSON record of an :func:`importance` table (``importance.json`` of a run).

    Parameters
    ----------
    table : DataFrame
        From :func:`importance`.
    rows : str
        Which rows were scored: ``"test"`` or ``"val"``.

    Examples
    --------
    >>> t = pd.DataFrame({"feature": ["a"], "role": ["numeric"], "importance": [0.5],
    ...                   "std": [0.1]})
    >>> t.attrs.update(scoring="rmse", baseline=1.0, rows=10, repeats=2)
    >>> importance_record(t, "test")["features"]
    [{'feature': 'a', 'role': 'numeric', 'importance': 0.5, 'std': 0.1}]
    """

    def num(v: Any) -> float | None:
        v = float(v)
        return v if math.isfinite(v) else None

    return {
        "method": "permutation (sklearn.inspection.permutation_importance)",
        "scored_on": rows,
        "scoring": table.attrs.get("scoring"),
        "baseline": num(table.attrs.get("baseline", float("nan"))),
        "n": int(table.attrs.get("rows", 0)),
        "repeats": int(table.attrs.get("repeats", 0)),
        "features": [
            {"feature": r.feature, "role": r.role, "importance": num(r.importance),
             "std": num(r.std)}
            for r in table.itertuples(index=False)
        ],
    }
