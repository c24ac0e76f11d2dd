"""Column roles: which columns are numeric, categorical, target or ignored.

>>> import pandas as pd
>>> from tabresnet.defaults import DataConfig
>>> df = pd.DataFrame({"size": [50.0, 80.0], "city": ["Oslo", "Rome"], "price": [1.0, 2.0]})
>>> infer_schema(df, "price", DataConfig())
Schema(numeric=['size'], categorical=['city'], targets=['price'], ignored=[])

The schema is fitted once on the training table and saved with the model;
:func:`check_columns` checks a prediction table against it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..defaults import DataConfig
from ..errors import DataError, ModelFileError

__all__ = ["Schema", "as_float", "check_columns", "clean_target", "infer_schema"]

# Error messages list at most this many column names, then "... (N more)".
_MAX_LISTED = 20


@dataclass
class Schema:
    """The role of every column the model knows about.

    Attributes
    ----------
    numeric : list of str
        Numeric feature columns, in table order.
    categorical : list of str
        Categorical feature columns, in table order.
    targets : list of str
        Target columns (one or more).
    ignored : list of str
        Columns left out (by request, all missing, dates, unsupported types).

    Examples
    --------
    >>> s = Schema(numeric=["a"], categorical=["c"], targets=["y"])
    >>> s.feature_columns
    ['a', 'c']
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        """Numeric then categorical columns: what a prediction table must have."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, list[str]]:
        """Plain lists of strings, JSON-safe."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`; ``ModelFileError`` if ``data`` is malformed."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict) or not set(names) <= set(data):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ModelFileError(
                f"schema is corrupted: expected keys {', '.join(names)}, got {got}"
            )
        out = {}
        for name in names:
            values = data[name]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ModelFileError(f"schema is corrupted: {name!r} must be a list of strings")
            out[name] = list(values)
        return cls(**out)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(map(str, names[:_MAX_LISTED]))
    more = len(names) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _as_targets(targets: str | Sequence[str]) -> list[str]:
    if isinstance(targets, str):
        return [targets]
    out = [str(t) for t in targets]
    if not out:
        raise DataError("no target column given; name the column(s) to predict")
    dups = sorted({t for t in out if out.count(t) > 1})
    if dups:
        raise DataError(f"target column(s) given twice: {', '.join(dups)}")
    return out


def _check_targets_exist(df: pd.DataFrame, targets: list[str]) -> None:
    missing = [t for t in targets if t not in df.columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise DataError(
            f"target {noun} {', '.join(map(repr, missing))} not found; "
            f"columns are: {_listing(list(df.columns))}"
        )


def _is_datetime_like(dtype: Any) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def _is_text_like(dtype: Any) -> bool:
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def _is_real_numeric(dtype: Any) -> bool:
    return (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def as_float(series: pd.Series) -> np.ndarray:
    """A column as a float64 array; missing and unparseable values become NaN.

    Handles numpy and nullable (``Int64``, ``Float64``, ``boolean``) dtypes and
    numeric-looking strings.

    Examples
    --------
    >>> as_float(pd.Series([1, None], dtype="Int64"))
    array([ 1., nan])
    >>> as_float(pd.Series(["2.5", "x", None]))
    array([2.5, nan, nan])
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_complex_dtype(
        series.dtype
    ):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    numbers = pd.to_numeric(series.astype(object), errors="coerce")
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _non_numeric_examples(series: pd.Series, k: int = 3) -> list[str]:
    """Up to ``k`` distinct non-missing values of ``series`` that do not parse as numbers."""
    present = series[series.notna()]
    bad = present[np.isnan(as_float(present))]
    return [repr(v) for v in pd.unique(bad.astype(str))[:k]]


def _has_no_values(series: pd.Series) -> bool:
    if series.isna().all():
        return True
    return _is_real_numeric(series.dtype) and not np.isfinite(as_float(series)).any()


def _is_integral(series: pd.Series) -> bool:
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype):
        return True
    if pd.api.types.is_float_dtype(dtype):
        # Integer columns with gaps arrive as float (CSV, numpy); treat them alike.
        values = as_float(series)
        values = values[np.isfinite(values)]
        return bool(values.size) and bool(np.all(values == np.round(values)))
    return False


def infer_schema(
    df: pd.DataFrame, targets: str | Sequence[str], cfg: DataConfig | None = None
) -> Schema:
    """Decide the role of every column of ``df``.

    Rules, in order, for each non-target column:

    1. in ``cfg.ignore``: ignored;
    2. no values (all missing, or all infinite): ignored, with a warning;
    3. in ``cfg.categorical`` / ``cfg.numeric``: that role (a numeric override
       must hold numbers or numeric-looking strings);
    4. dates, times and periods: ignored, with a warning (derive numeric
       features such as year or day-of-week to use them);
    5. text, category and bool dtypes: categorical;
    6. integer columns (including integral floats with gaps) with at most
       ``cfg.int_as_categorical`` distinct values, when that option is > 0:
       categorical;
    7. other real numeric dtypes: numeric;
    8. anything else (complex, intervals, ...): ignored, with a warning.

    Parameters
    ----------
    df : pandas.DataFrame
        The training table (all rows, before splitting).
    targets : str or sequence of str
        The column(s) to predict.
    cfg : DataConfig, optional
        Role overrides and ``int_as_categorical``; defaults to ``DataConfig()``.

    Returns
    -------
    Schema

    Raises
    ------
    DataError
        Unknown target or override column, a column in two override lists, a
        target in an override list, an all-missing target, a non-numeric
        numeric override, or no feature column left.

    Examples
    --------
    >>> df = pd.DataFrame({"rooms": [1, 2, 2, 3], "y": [1.0, 2.0, 3.0, 4.0]})
    >>> infer_schema(df, "y", DataConfig(int_as_categorical=5)).categorical
    ['rooms']
    >>> infer_schema(df, "price")
    Traceback (most recent call last):
    ...
    tabresnet.errors.DataError: target column 'price' not found; columns are: rooms, y
    """
    cfg = cfg or DataConfig()
    targets = _as_targets(targets)
    _check_targets_exist(df, targets)
    overrides = {
        "categorical": list(cfg.categorical),
        "numeric": list(cfg.numeric),
        "ignore": list(cfg.ignore),
    }
    role_of: dict[str, str] = {}
    for option, names in overrides.items():
        unknown = [n for n in names if n not in df.columns]
        if unknown:
            raise DataError(
                f"unknown column(s) in {option}: {', '.join(map(repr, unknown))}; "
                f"columns are: {_listing(list(df.columns))}"
            )
        for name in names:
            if name in targets:
                raise DataError(f"{name!r} is a target column; remove it from {option}")
            if role_of.get(name, option) != option:
                raise DataError(
                    f"column {name!r} is in both {role_of[name]} and {option}; keep it in one"
                )
            role_of[name] = option

    for t in targets:
        if df[t].isna().all():
            raise DataError(f"target column {t!r} is entirely missing; choose another target")

    schema = Schema(targets=list(targets))
    for name in df.columns:
        if name in targets:
            continue
        series = df[name]
        role = role_of.get(name)
        dtype = series.dtype
        if role == "ignore":
            schema.ignored.append(name)
        elif _has_no_values(series):
            warnings.warn(
                f"column {name!r} has no values (all missing or infinite); ignoring it",
                stacklevel=2,
            )
            schema.ignored.append(name)
        elif role == "categorical":
            schema.categorical.append(name)
        elif role == "numeric":
            if _is_datetime_like(dtype) or pd.api.types.is_complex_dtype(dtype):
                raise DataError(
                    f"column {name!r} ({dtype}) is in numeric but cannot be read as numbers; "
                    "derive numeric features from it or remove it from numeric"
                )
            examples = _non_numeric_examples(series)
            if examples:
                raise DataError(
                    f"column {name!r} is in numeric but has non-numeric values, e.g. "
                    f"{', '.join(examples)}; clean them or make the column categorical"
                )
            schema.numeric.append(name)
        elif _is_datetime_like(dtype):
            warnings.warn(
                f"column {name!r} holds dates or times ({dtype}); ignoring it - derive "
                "numeric features (year, day of week, ...) to use it",
                stacklevel=2,
            )
            schema.ignored.append(name)
        elif _is_text_like(dtype):
            schema.categorical.append(name)
        elif _is_real_numeric(dtype):
            if (
                cfg.int_as_categorical > 0
                and _is_integral(series)
                and series.nunique(dropna=True) <= cfg.int_as_categorical
            ):
                schema.categorical.append(name)
            else:
                schema.numeric.append(name)
        else:
            warnings.warn(
                f"column {name!r} has unsupported dtype {dtype}; ignoring it - convert it to "
                "numbers or strings to use it",
                stacklevel=2,
            )
            schema.ignored.append(name)

    if not schema.feature_columns:
        raise DataError(
            "no feature columns left: every column is a target or ignored "
            f"(ignored: {_listing(schema.ignored) or 'none'}); add feature columns"
        )
    return schema


def check_columns(df: pd.DataFrame, schema: Schema) -> None:
    """Check that ``df`` has every feature column of ``schema``.

    Extra columns (targets included) are allowed and column order does not
    matter.

    Raises
    ------
    DataError
        Naming the missing columns.

    Examples
    --------
    >>> schema = Schema(numeric=["a", "b"], targets=["y"])
    >>> check_columns(pd.DataFrame({"b": [1], "a": [2], "extra": [3]}), schema)
    >>> check_columns(pd.DataFrame({"a": [1]}), schema)
    Traceback (most recent call last):
    ...
    tabresnet.errors.DataError: missing column(s) the model needs: 'b'; the table has: a
    """
    present = set(df.columns)  # exact names: transform looks columns up by them
    missing = [c for c in schema.feature_columns if c not in present]
    if missing:
        raise DataError(
            f"missing column(s) the model needs: {', '.join(map(repr, missing))}; "
            f"the table has: {_listing([str(c) for c in df.columns])}"
        )


def clean_target(df: pd.DataFrame, targets: str | Sequence[str]) -> pd.DataFrame:
    """Drop rows whose target is missing or infinite; make targets float64.

    Parameters
    ----------
    df : pandas.DataFrame
        The table (not modified).
    targets : str or sequence of str
        The target column(s).

    Returns
    -------
    pandas.DataFrame
        A copy without the dropped rows, with a fresh ``RangeIndex`` (so
        positions and labels agree for the splits) and float64 targets.

    Warns
    -----
    UserWarning
        With the number of dropped rows.

    Raises
    ------
    DataError
        A target column is missing, not numeric (the message shows offending
        values), or has no usable row.

    Examples
    --------
    >>> import warnings
    >>> df = pd.DataFrame({"x": [1, 2, 3], "y": [1.0, None, 3.0]})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     clean_target(df, "y").shape, str(w[0].message)
    ((2, 2), 'dropped 1 of 3 rows whose target is missing or infinite (y: 1)')
    """
    targets = _as_targets(targets)
    _check_targets_exist(df, targets)
    out = df.copy()
    bad = np.zeros(len(df), dtype=bool)
    counts: list[str] = []
    for t in targets:
        series = df[t]
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            raise DataError(
                f"target column {t!r} is boolean; tabresnet does regression - cast it to "
                "0/1 numbers if that is what you mean"
            )
        if not _is_real_numeric(dtype):
            examples = _non_numeric_examples(series)
            if examples:
                raise DataError(
                    f"target column {t!r} is not numeric ({dtype}): values such as "
                    f"{', '.join(examples)}; regression needs numbers - clean those values "
                    "or choose another target"
                )
            if _is_datetime_like(dtype) or pd.api.types.is_complex_dtype(dtype):
                raise DataError(
                    f"target column {t!r} is not numeric ({dtype}); choose a numeric target"
                )
            raise DataError(
                f"target column {t!r} holds numbers stored as text ({dtype}); convert it "
                f"with pandas.to_numeric(df[{t!r}]) or fix the file so they parse as numbers"
            )
        values = as_float(series)
        gaps = ~np.isfinite(values)
        if gaps.any():
            counts.append(f"{t}: {int(gaps.sum())}")
        bad |= gaps
        out[t] = values
    n_bad = int(bad.sum())
    if n_bad == len(df):
        raise DataError(f"no row has a finite target in {', '.join(targets)}; nothing to train on")
    if n_bad:
        warnings.warn(
            f"dropped {n_bad} of {len(df)} rows whose target is missing or infinite "
            f"({'; '.join(counts)})",
            stacklevel=2,
        )
    return out.loc[~bad].reset_index(drop=True)
