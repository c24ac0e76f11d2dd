"""Turn a table into network inputs; the fitted state is plain data.

Fit on the training rows only, then transform every split the same way::

    pre = Preprocessor(schema, cfg.data, seed=cfg.seed).fit(train_df)
    x_num, x_cat = pre.transform(test_df)
    y = pre.transform_target(train_df)          # standardised, (n, n_targets)
    json.dumps(pre.to_dict())                   # saved with the model

What each column becomes (``x_num`` is float32, ``x_cat`` int64)::

    numeric      inf -> NaN -> median -> quantile-normal | standard | none   x_num
                 + one "<col>__missing" 0/1 column if it had gaps in training  x_num
    date         "<col>__days", "__year", "__month", "__day", "__weekday"    x_num
                 numbers, then as numeric ("<col>__days__missing" if gaps)
    categorical  str -> sorted training categories, code 0 = missing/unseen
                 <= onehot_max_cardinality categories: one-hot "<col>=<cat>"  x_num
                 more: one code column, cardinality n_categories + 1         x_cat

``x_num`` holds, in order: scaled numerics and date parts, missing
indicators, one-hot blocks.

At prediction time :meth:`Preprocessor.check` counts, per column, the cells
that cannot be used as trained (text in a numeric column, a non-date in a
date column, an unseen category) and reports them in one warning, or raises
``DataError`` with ``strict=True``; :meth:`Preprocessor.transform` treats them
as missing.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import QuantileTransformer

from ..defaults import DataConfig, choices
from ..errors import ConfigError, DataError, ModelFileError, TabResNetWarning, user_stacklevel
from .schema import (
    DATE_PARTS,
    Schema,
    as_float,
    check_columns,
    date_format,
    date_parts,
    examples_of,
    parse_numbers,
)

__all__ = ["Preprocessor"]

# The newest state format this version reads. A state without date columns is
# still written as format 1 (readable by every release); date columns need 2.
FORMAT_VERSION = 2
# Inputs are clipped to the float32 range: the output is float32, and bounded
# inputs keep means and variances finite in float64.
_F32_MAX = float(np.finfo(np.float32).max)
# Magnitudes below float32's smallest normal number become 0: float32 cannot hold
# them as normal numbers, and subnormal quantiles make sklearn's quantile
# interpolation return NaN (a value of 5e-324 did, found by a property test).
_F32_TINY = float(np.finfo(np.float32).tiny)
# sklearn's own subsample size (rows used to estimate quantiles), read rather
# than retyped; raised to n_quantiles when more quantiles are asked for.
_QT_SUBSAMPLE = QuantileTransformer().subsample


def _weighted_quantiles(x: np.ndarray, q: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Quantiles of ``x`` with each value counted ``weight`` times (see ``weighted_quantile``)."""
    import torch

    from ..models.embeddings import weighted_quantile

    return weighted_quantile(torch.from_numpy(x), torch.from_numpy(q),
                             torch.from_numpy(weight)).numpy()


def _category_strings(series: pd.Series) -> pd.Series:
    """Values as strings, NaN kept; integral floats print as integers.

    An integer column with gaps arrives as float ("3.0"); printing it as "3"
    makes it match the same column read without gaps.
    """
    strs = series.astype(str)
    if pd.api.types.is_float_dtype(series.dtype):
        values = as_float(series)
        with np.errstate(invalid="ignore"):
            integral = (
                np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**53)
            )
        if integral.any():
            strs = strs.astype(object)
            strs[integral] = values[integral].astype(np.int64).astype(str)
    return strs


class Preprocessor:
    """Fit-once, JSON-serialisable feature and target preprocessing.

    Parameters
    ----------
    schema : Schema
        Column roles (from :func:`~tabresnet.data.infer_schema`).
    cfg : DataConfig, optional
        Reads ``numeric_transform``, ``n_quantiles``, ``onehot_max_cardinality``
        and ``target_transform``; defaults to ``DataConfig()``.
    seed : int
        Seeds the row subsample of the quantile transform on large tables.

    Attributes
    ----------
    n_num : int
        Width of ``x_num``.
    cardinalities : list of int
        Codes of each ``x_cat`` column, the reserved code 0 included.
    feature_names : list of str
        Names of the ``x_num`` columns, then of the ``x_cat`` columns.

    Shape
    -----
    - ``transform``: DataFrame with ``n`` rows ->
      ``x_num`` ``(n, n_num)`` float32, ``x_cat`` ``(n, len(cardinalities))`` int64
    - ``transform_target``: ``(n, n_targets)`` -> ``(n, n_targets)`` float32
    - ``inverse_target``: ``(n, n_targets)`` -> ``(n, n_targets)`` float64

    Examples
    --------
    >>> import json
    >>> df = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "c": ["x", "y", "x", None],
    ...                    "y": [1.0, 2.0, 3.0, 4.0]})
    >>> schema = Schema(numeric=["a"], categorical=["c"], targets=["y"])
    >>> pre = Preprocessor(schema, DataConfig(numeric_transform="standard")).fit(df)
    >>> pre.feature_names
    ['a', 'a__missing', 'c=x', 'c=y']
    >>> x_num, x_cat = pre.transform(df)
    >>> x_num.shape, x_num.dtype, x_cat.shape
    ((4, 4), dtype('float32'), (4, 0))
    >>> x_num[3].tolist()  # a = 4.0, no gap, c missing: no one-hot bit
    [1.147, 0.0, 0.0, 0.0]
    >>> pre.inverse_target(pre.transform_target(df)).ravel()
    array([1., 2., 3., 4.])
    >>> pre2 = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    >>> bool((pre2.transform(df)[0] == x_num).all())
    True
    """

    def __init__(self, schema: Schema, cfg: DataConfig | None = None, seed: int = 0):
        cfg = cfg or DataConfig()
        for name in ("numeric_transform", "target_transform"):
            allowed = choices("data", name)
            value = getattr(cfg, name)
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, however: {value!r}")
        if int(cfg.n_quantiles) < 2:
            raise ConfigError(f"n_quantiles must be at least 2, however: {cfg.n_quantiles}")
        self.schema = schema
        self.numeric_transform = cfg.numeric_transform
        self.target_transform = cfg.target_transform
        self.n_quantiles = int(cfg.n_quantiles)
        self.onehot_max_cardinality = int(cfg.onehot_max_cardinality)
        self.seed = int(seed)
        # The columns of the numeric matrix: numeric columns, then date parts.
        self._num_names = [*schema.numeric] + [
            f"{d}__{part}" for d in schema.dates for part in DATE_PARTS
        ]
        # A date's parts share their gaps: one indicator (on "days") is enough.
        self._indicator_candidates = set(schema.numeric) | {
            f"{d}__{DATE_PARTS[0]}" for d in schema.dates
        }
        self.date_formats_: dict[str, str | None] = {}
        self._fitted = False
        self._target_fitted = False

    # -- fitting -----------------------------------------------------------------
    def fit(self, df: pd.DataFrame, sample_weight: Any = None) -> Preprocessor:
        """Learn imputation, scaling and categories from the training rows.

        Also fits the target (:meth:`fit_target`) when every target column is
        in ``df``.

        Parameters
        ----------
        df : pandas.DataFrame
            Training rows, with at least the schema's feature columns.
        sample_weight : array-like of shape (n,), optional
            Row weights (>= 0): medians, means, standard deviations and
            quantiles are those of the rows repeated by their (integer)
            weights, computed without repeating them.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        check_columns(df, self.schema)
        if len(df) == 0:
            raise DataError("cannot fit preprocessing on 0 rows; the training split is empty")
        self.date_formats_ = {d: date_format(df[d]) for d in self.schema.dates}
        weight = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        self._fit_numeric(self._numeric_matrix(df), weight)
        self.categories_: dict[str, list[str]] = {}
        for name in self.schema.categorical:
            present = _category_strings(df[name])[~df[name].isna().to_numpy()]
            self.categories_[name] = sorted(set(present.tolist()))
        self._finish()
        if self.schema.targets and all(t in df.columns for t in self.schema.targets):
            self.fit_target(df, sample_weight=weight)
        return self

    def _numeric_matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Numeric columns and date parts as float64 ``(n, k)``: inf -> NaN, clipped to the
        float32 range, magnitudes below its smallest normal number -> 0."""
        cols = self.schema.numeric
        x = np.empty((len(df), len(self._num_names)), dtype=np.float64)
        for j, name in enumerate(cols):
            x[:, j] = as_float(df[name])
        width = len(DATE_PARTS)
        for i, name in enumerate(self.schema.dates):
            start = len(cols) + i * width
            x[:, start : start + width] = date_parts(df[name], self.date_formats_.get(name))[0]
        x[np.isinf(x)] = np.nan
        x[np.abs(x) < _F32_TINY] = 0.0  # no subnormal numbers (quantile interpolation: NaN)
        return np.clip(x, -_F32_MAX, _F32_MAX)

    def _fit_numeric(self, x: np.ndarray, weight: np.ndarray | None = None) -> None:
        gaps = np.isnan(x)
        has_values = ~gaps.all(axis=0)
        median = np.zeros(x.shape[1])
        if weight is not None:
            for j in np.flatnonzero(has_values & ((~gaps) & (weight[:, None] > 0)).any(axis=0)):
                seen = ~gaps[:, j]
                median[j] = _weighted_quantiles(x[seen, j], np.array([0.5]), weight[seen])[0]
        elif has_values.any():
            median[has_values] = np.nanmedian(x[:, has_values], axis=0)
        self.median_ = median
        self.indicators_ = [
            c
            for c, g in zip(self._num_names, gaps.any(axis=0))
            if g and c in self._indicator_candidates
        ]
        x = np.where(gaps, median, x)
        k = x.shape[1]
        self.mean_, self.std_ = np.zeros(k), np.ones(k)
        self.quantiles_: np.ndarray | None = None
        self._qt: QuantileTransformer | None = None
        if k == 0:
            self.constant_ = np.zeros(0, dtype=bool)
            return
        self.constant_ = x.max(axis=0) == x.min(axis=0)
        if self.numeric_transform == "standard":
            self.mean_ = x.mean(axis=0) if weight is None else np.average(x, 0, weight)
            std = (x.std(axis=0) if weight is None
                   else np.sqrt(np.average((x - self.mean_) ** 2, 0, weight)))
            self.std_ = np.where((std > 0) & np.isfinite(std), std, 1.0)
        elif self.numeric_transform == "quantile" and not self.constant_.all() \
                and weight is not None:
            # The quantiles QuantileTransformer.fit takes from the rows repeated by
            # their weights (as many as those rows, up to n_quantiles; no subsample).
            n_q = int(min(self.n_quantiles, max(x.shape[0], np.floor(weight.sum()))))
            # As percentages and back, as nanpercentile takes them: the same floats.
            refs = np.linspace(0, 1, n_q, endpoint=True) * 100 / 100
            cols = np.flatnonzero(~self.constant_)
            self.quantiles_ = np.column_stack(
                [_weighted_quantiles(x[:, j], refs, weight) for j in cols]
            )
            self._qt = self._rebuild_quantile_transformer(self.quantiles_)
        elif self.numeric_transform == "quantile" and not self.constant_.all():
            n_q = min(self.n_quantiles, x.shape[0])
            qt = QuantileTransformer(
                n_quantiles=n_q,
                output_distribution="normal",
                subsample=max(_QT_SUBSAMPLE, n_q),
                random_state=self.seed,
            )
            qt.fit(x[:, ~self.constant_])
            self.quantiles_ = np.asarray(qt.quantiles_, dtype=np.float64)
            self._qt = qt

    def _finish(self) -> None:
        """Derive the layout (one-hot vs embedded, names, widths) from the fitted state."""
        self.onehot_ = [
            c
            for c in self.schema.categorical
            if len(self.categories_[c]) <= self.onehot_max_cardinality
        ]
        self.embedded_ = [c for c in self.schema.categorical if c not in set(self.onehot_)]
        self._index = {c: pd.Index(cats, dtype=object) for c, cats in self.categories_.items()}
        names = list(self._num_names)
        names += [f"{c}__missing" for c in self.indicators_]
        for c in self.onehot_:
            names += [f"{c}={v}" for v in self.categories_[c]]
        self.n_num = len(names)
        self.cardinalities = [len(self.categories_[c]) + 1 for c in self.embedded_]
        self.feature_names = names + list(self.embedded_)
        self._fitted = True

    @property
    def n_cont(self) -> int:
        """The leading columns of ``x_num`` that are scaled numeric features."""
        return len(self.schema.numeric)

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("this Preprocessor is not fitted; call fit(train_df) first")

    # -- transforming ---------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Map a table to network inputs; never NaN or inf.

        Parameters
        ----------
        df : pandas.DataFrame
            Any rows with (at least) the schema's feature columns, in any order.

        Returns
        -------
        x_num : numpy.ndarray
            ``(n, n_num)`` float32.
        x_cat : numpy.ndarray
            ``(n, len(cardinalities))`` int64; 0 means missing or unseen.
        """
        self._check_fitted()
        check_columns(df, self.schema)
        n = len(df)
        parts = [self._transform_numeric(self._numeric_matrix(df))]
        x_cat = np.zeros((n, len(self.embedded_)), dtype=np.int64)
        codes = {c: self._codes(df[c]) for c in self.schema.categorical}
        for c in self.onehot_:
            onehot = np.zeros((n, len(self.categories_[c])), dtype=np.float32)
            hit = codes[c] > 0
            onehot[np.flatnonzero(hit), codes[c][hit] - 1] = 1.0
            parts.append(onehot)
        for j, c in enumerate(self.embedded_):
            x_cat[:, j] = codes[c]
        x_num = np.concatenate(parts, axis=1)
        return np.ascontiguousarray(x_num, dtype=np.float32), x_cat

    def check(
        self, df: pd.DataFrame, strict: bool = False, where: str = ""
    ) -> dict[str, dict[str, Any]]:
        """Count the cells of ``df`` the model cannot use as trained; warn once or raise.

        Per column: text in a numeric column, a value that is no date in a
        date column, a category not seen in training. :meth:`transform` reads
        each of them as missing; this says so, in one
        :class:`~tabresnet.errors.TabResNetWarning` for the whole table.

        Parameters
        ----------
        df : pandas.DataFrame
            A table with the schema's feature columns (e.g. to predict on).
        strict : bool
            Raise :class:`~tabresnet.errors.DataError` instead of warning.
        where : str
            Names the table in the message (``"of the validation data"``).

        Returns
        -------
        dict
            ``{column: {"problem": "not numbers" | "not dates" | "unseen
            categories", "count": int, "examples": str}}``, only the columns
            with such cells.

        Examples
        --------
        >>> df = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"], "t": [0.0, 1.0]})
        >>> pre = Preprocessor(Schema(numeric=["a"], categorical=["c"], targets=["t"])).fit(df)
        >>> new = pd.DataFrame({"a": ["3", "oops"], "c": ["x", "z"]})
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     found = pre.check(new)
        >>> print(w[0].message)
        2 cells cannot be used as trained and count as missing: a: 1 not numbers ('oops'); c: 1 unseen categories ('z')
        >>> pre.check(new, strict=True)
        Traceback (most recent call last):
        ...
        tabresnet.errors.DataError: 2 cells cannot be used as trained: a: 1 not numbers ('oops'); ...
        """
        self._check_fitted()
        check_columns(df, self.schema)
        found: dict[str, dict[str, Any]] = {}

        def note(name: str, problem: str, mask: np.ndarray) -> None:
            if mask.any():
                found[name] = {
                    "problem": problem,
                    "count": int(mask.sum()),
                    "examples": examples_of(df[name], mask),
                }

        for name in self.schema.numeric:
            note(name, "not numbers", parse_numbers(df[name])[1])
        for name in self.schema.dates:
            note(name, "not dates", date_parts(df[name], self.date_formats_.get(name))[1])
        for name in self.schema.categorical:
            unseen = (self._codes(df[name]) == 0) & df[name].notna().to_numpy()
            note(name, "unseen categories", unseen)
        if found:
            total = sum(f["count"] for f in found.values())
            detail = "; ".join(
                f"{name}: {f['count']} {f['problem']} ({f['examples']})" for name, f in found.items()
            )
            noun = f"cell {where} cannot" if total == 1 else f"cells {where} cannot"
            noun = noun.replace("  ", " ")
            if strict:
                raise DataError(
                    f"{total} {noun} be used as trained: {detail}; fix them, or predict "
                    "without strict to read them as missing"
                )
            warnings.warn(
                f"{total} {noun} be used as trained and count as missing: {detail}",
                TabResNetWarning,
                stacklevel=user_stacklevel(),
            )
        return found

    def _transform_numeric(self, x: np.ndarray) -> np.ndarray:
        gaps = np.isnan(x)
        x = np.where(gaps, self.median_, x)
        if self.numeric_transform == "standard":
            x = (x - self.mean_) / self.std_
        elif self.numeric_transform == "quantile":
            out = np.zeros_like(x)
            if self._qt is not None and len(x):
                out[:, ~self.constant_] = self._qt.transform(x[:, ~self.constant_])
            # A column constant in training carries no information: 0 everywhere.
            x = out
        indicator_cols = [self._num_names.index(c) for c in self.indicators_]
        indicators = gaps[:, indicator_cols].astype(np.float64)
        # Saturate rather than overflow: a far-out value under a tiny training std.
        return np.clip(np.concatenate([x, indicators], axis=1), -_F32_MAX, _F32_MAX)

    def _codes(self, series: pd.Series) -> np.ndarray:
        strs = _category_strings(series)
        codes = self._index[series.name].get_indexer(strs.astype(object)) + 1
        codes[series.isna().to_numpy()] = 0
        return codes.astype(np.int64)

    # -- target ------------------------------------------------------------------
    def _target_array(self, y: Any) -> np.ndarray:
        if isinstance(y, pd.DataFrame):
            missing = [t for t in self.schema.targets if t not in y.columns]
            if missing:
                raise DataError(
                    f"target column(s) {', '.join(map(repr, missing))} not in the table"
                )
            y = np.column_stack([as_float(y[t]) for t in self.schema.targets])
        elif isinstance(y, pd.Series):
            y = as_float(y)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        n_targets = len(self.schema.targets) or y.shape[1]
        if y.ndim != 2 or y.shape[1] != n_targets:
            raise DataError(
                f"target array must have shape (n, {n_targets}), however: shape {y.shape}"
            )
        return y

    def fit_target(self, y: Any, sample_weight: Any = None) -> Preprocessor:
        """Learn the per-column mean and std of the target (std 0 -> 1).

        Parameters
        ----------
        y : array-like or DataFrame
            ``(n, n_targets)`` (or ``(n,)`` for one target), or a table holding
            the target columns.
        sample_weight : array-like of shape (n,), optional
            Row weights: the weighted mean and std, as of the rows repeated by
            their (integer) weights, so that the loss keeps its scale.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        y = self._target_array(y)
        if len(y) == 0 or not np.isfinite(y).all():
            raise DataError(
                "the target has no rows or has NaN/inf values; pass the table through "
                "clean_target first"
            )
        if self.target_transform == "standard":
            with np.errstate(over="ignore", invalid="ignore"):
                if sample_weight is None:
                    mean, std = y.mean(axis=0), y.std(axis=0)
                else:
                    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
                    mean = np.average(y, axis=0, weights=w)
                    std = np.sqrt(np.average((y - mean) ** 2, axis=0, weights=w))
            if not (np.isfinite(mean).all() and np.isfinite(std).all()):
                raise DataError(
                    f"target values are too large to standardise (max |y| = "
                    f"{np.abs(y).max():.3g}); rescale the target"
                )
            # A spread that is zero, subnormal or below float precision of the
            # mean is no spread: dividing by it would overflow float32.
            tiny = np.maximum(1e-30, 1e-12 * np.abs(mean))
            self.target_mean_, self.target_std_ = mean, np.where(std > tiny, std, 1.0)
        else:
            self.target_mean_, self.target_std_ = np.zeros(y.shape[1]), np.ones(y.shape[1])
        self._target_fitted = True
        return self

    def _check_target_fitted(self) -> None:
        if not self._target_fitted:
            raise RuntimeError("the target is not fitted; call fit_target(y) first")

    def transform_target(self, y: Any) -> np.ndarray:
        """Standardise the target: ``(n, n_targets)`` -> ``(n, n_targets)`` float32."""
        self._check_target_fitted()
        y = self._target_array(y)
        return ((y - self.target_mean_) / self.target_std_).astype(np.float32)

    def inverse_target(self, z: Any) -> np.ndarray:
        """Map network outputs back to target units: ``(n, n_targets)`` float64."""
        self._check_target_fitted()
        z = self._target_array(z)
        return z * self.target_std_ + self.target_mean_

    # -- state -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-safe lists, numbers and strings.

        The quantile transform is stored as its quantiles (one list per
        non-constant numeric column) and rebuilt by :meth:`from_dict`; floats
        survive JSON exactly, so a loaded preprocessor gives identical output.
        """
        self._check_fitted()
        state: dict[str, Any] = {
            "format": 2 if self.schema.dates else 1,
            "schema": self.schema.to_dict(),
            "seed": self.seed,
            "numeric_transform": self.numeric_transform,
            "target_transform": self.target_transform,
            "n_quantiles": self.n_quantiles,
            "onehot_max_cardinality": self.onehot_max_cardinality,
            "median": self.median_.tolist(),
            "indicators": list(self.indicators_),
            "constant": self.constant_.tolist(),
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "quantiles": None if self.quantiles_ is None else self.quantiles_.T.tolist(),
            "categories": {c: list(v) for c, v in self.categories_.items()},
            "target": None,
        }
        if self.schema.dates:
            state["date_formats"] = dict(self.date_formats_)
        if self._target_fitted:
            state["target"] = {
                "mean": self.target_mean_.tolist(),
                "std": self.target_std_.tolist(),
            }
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output.

        Raises
        ------
        ModelFileError
            If ``state`` is not a preprocessing state this version can read.
        """
        if not isinstance(state, dict) or state.get("format") not in range(1, FORMAT_VERSION + 1):
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ModelFileError(
                f"preprocessing state has format {got!r}, expected 1 to {FORMAT_VERSION}; "
                "the model file is corrupted or from another tabresnet version"
            )
        try:
            cfg = DataConfig(
                numeric_transform=state["numeric_transform"],
                target_transform=state["target_transform"],
                n_quantiles=int(state["n_quantiles"]),
                onehot_max_cardinality=int(state["onehot_max_cardinality"]),
            )
            self = cls(Schema.from_dict(state["schema"]), cfg, seed=int(state["seed"]))
            k = len(self._num_names)
            self.median_ = _vector(state["median"], k)
            self.mean_ = _vector(state["mean"], k)
            self.std_ = _vector(state["std"], k)
            self.constant_ = np.array(state["constant"], dtype=bool).reshape(k)
            self.indicators_ = [str(c) for c in state["indicators"]]
            self.categories_ = {
                str(c): [str(v) for v in cats] for c, cats in state["categories"].items()
            }
            if set(self.categories_) != set(self.schema.categorical) or not set(
                self.indicators_
            ) <= self._indicator_candidates:
                raise ValueError("columns do not match the schema")
            formats = state.get("date_formats", {})
            if set(formats) != set(self.schema.dates) or not all(
                f is None or isinstance(f, str) for f in formats.values()
            ):
                raise ValueError("date formats do not match the schema's date columns")
            self.date_formats_ = dict(formats)
            self.quantiles_, self._qt = None, None
            if state["quantiles"] is not None:
                self.quantiles_ = np.array(state["quantiles"], dtype=np.float64).T
                self._qt = self._rebuild_quantile_transformer(self.quantiles_)
            self._finish()
            if state["target"] is not None:
                n_targets = len(self.schema.targets) or len(state["target"]["mean"])
                self.target_mean_ = _vector(state["target"]["mean"], n_targets)
                self.target_std_ = _vector(state["target"]["std"], n_targets)
                self._target_fitted = True
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(
                f"preprocessing state is corrupted ({type(exc).__name__}: {exc}); "
                "re-train or re-save the model"
            ) from None
        return self

    def _rebuild_quantile_transformer(self, quantiles: np.ndarray) -> QuantileTransformer:
        """A fitted ``QuantileTransformer`` from stored quantiles ``(n_quantiles, k)``."""
        n_q, k = quantiles.shape
        if n_q < 2 or k != int((~self.constant_).sum()):
            raise ValueError(f"quantiles of shape {quantiles.shape} do not match the columns")
        qt = QuantileTransformer(
            n_quantiles=n_q,
            output_distribution="normal",
            subsample=max(_QT_SUBSAMPLE, n_q),
            random_state=self.seed,
        )
        # Exactly the attributes QuantileTransformer.fit sets for dense input.
        qt.n_quantiles_ = n_q
        qt.references_ = np.linspace(0, 1, n_q, endpoint=True)
        qt.quantiles_ = quantiles
        qt.n_features_in_ = k
        return qt

    def __repr__(self) -> str:
        state = (
            f"n_num={self.n_num}, cardinalities={self.cardinalities}"
            if self._fitted
            else "not fitted"
        )
        return f"Preprocessor({self.numeric_transform}, {state})"


def _vector(values: Any, k: int) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    if out.shape != (k,):
        raise ValueError(f"expected {k} numbers, got shape {out.shape}")
    return out
