"""Column roles: which columns are numeric, categorical, dates, target or ignored.

>>> import pandas as pd
>>> from tabresnet.defaults import DataConfig
>>> df = pd.DataFrame({"size": [50.0, 80.0], "city": ["Oslo", "Rome"], "price": [1.0, 2.0]})
>>> infer_schema(df, "price", DataConfig())
Schema(numeric=['size'], categorical=['city'], targets=['price'], ignored=[], dates=[])
>>> for line in infer_schema(df, "price").describe():
...     print(line)
target (1): price
numeric (1): size
categorical (1): city

The schema is fitted once on the training table and saved with the model;
:func:`check_columns` checks a prediction table against it.

Text columns are read for what they hold: a column whose non-missing cells
are at least :data:`NUMERIC_TEXT_SHARE` numbers is numeric (the other cells
become missing, with one warning naming the column); one whose cells are
dates in one format is a date column, which the preprocessing turns into the
numeric features :data:`DATE_PARTS` (so are datetime columns).
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
from ..errors import DataError, ModelFileError, TabResNetWarning

__all__ = [
    "DATE_PARTS",
    "INDEX_NAMES",
    "MIN_ID_ROWS",
    "NUMERIC_TEXT_SHARE",
    "Schema",
    "as_float",
    "check_columns",
    "check_weights",
    "clean_target",
    "clean_weight",
    "date_format",
    "date_parts",
    "infer_schema",
    "parse_numbers",
]

# Error messages list at most this many column names, then "... (N more)".
_MAX_LISTED = 20

#: A text column is numeric when at least this share of its non-missing cells
#: parse as numbers; the rest become missing, with a warning. One typo in a
#: thousand rows must not turn a numeric column into a categorical with one
#: level per value (it cost a test R2 of 0.84 -> 0.64 in issue 13), while a
#: column of codes of which a few look like numbers stays text.
NUMERIC_TEXT_SHARE = 0.95
#: Columns that only number the rows, or hold a different text in every row,
#: are ignored as identifiers from this many rows on (fewer rows prove little).
MIN_ID_ROWS = 20
#: Names a row index gets when a table is saved with it (pandas: ``index``,
#: ``level_0``, ``Unnamed: 0``; R: ``rownames``, an empty name, readr's ``...1``).
INDEX_NAMES = frozenset({"", "index", "level_0", "rownames", "row.names", "...1", "row",
                         "rowid", "row_id", "id"})
#: The same share for date strings (all read with the format of the first one).
DATE_TEXT_SHARE = 0.95
#: The numeric features a date column becomes, in this order: days since
#: 1970-01-01 (fractional with a time of day; the trend), then the calendar
#: year, month, day of month and day of week (Monday = 0; the seasons).
DATE_PARTS = ("days", "year", "month", "day", "weekday")
# Text that pandas' CSV reader reads as missing; typed in a DataFrame it is missing too.
_NA_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>", "nat", "-nan", "#n/a"})
_EPOCH = pd.Timestamp("1970-01-01")


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
        Columns left out (by request, all missing, times and periods,
        unsupported types).
    dates : list of str
        Date and datetime columns; each becomes the numeric features
        :data:`DATE_PARTS`.

    Examples
    --------
    >>> s = Schema(numeric=["a"], categorical=["c"], targets=["y"], dates=["sold"])
    >>> s.feature_columns
    ['a', 'c', 'sold']
    >>> Schema.from_dict(s.to_dict()) == s
    True
    >>> s.describe()
    ['target (1): y', 'numeric (1): a', 'categorical (1): c', 'date (1): sold (as days, year, month, day, weekday)']
    """

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        """Numeric, categorical, then date columns: what a prediction table must have."""
        return [*self.numeric, *self.categorical, *self.dates]

    def roles(self) -> dict[str, list[str]]:
        """``{role: columns}`` for every role, the target first; roles as ``data_summary`` names them."""
        return {
            "target": list(self.targets),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "date": list(self.dates),
            "ignored": list(self.ignored),
        }

    def describe(self, max_names: int | None = 8) -> list[str]:
        """One compact line per role that has columns: ``"numeric (12): a, b, ... (4 more)"``.

        What ``tabresnet fit`` prints so the user sees every decision: the
        numeric columns (the plain case) up to ``max_names``, every column of
        the other roles (categorical, date, ignored: the decisions to check).

        Parameters
        ----------
        max_names : int or None
            Numeric names shown before ``... (N more)``; None shows them all.
        """
        lines = []
        for role, names in self.roles().items():
            if not names:
                continue
            limit = max_names if role == "numeric" and max_names is not None else len(names)
            shown = ", ".join(names[:limit])
            if len(names) > limit:
                shown += f", ... ({len(names) - limit} more)"
            if role == "date":
                shown += f" (as {', '.join(DATE_PARTS)})"
            lines.append(f"{role} ({len(names)}): {shown}")
        return lines

    def to_dict(self) -> dict[str, list[str]]:
        """Plain lists of strings, JSON-safe."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`; ``ModelFileError`` if ``data`` is malformed.

        ``dates`` may be absent (model files written before date columns).
        """
        names = [f.name for f in dataclasses.fields(cls)]
        if isinstance(data, dict) and "dates" not in data:
            data = {**data, "dates": []}
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
    names = list(targets) if hasattr(targets, "__iter__") and not isinstance(targets, dict) \
        else None
    # Names (a list, tuple, pandas Index or array of them) or values (a Series of numbers)?
    named = names is not None and (
        isinstance(targets, (list, tuple)) and all(
            isinstance(t, (str, int)) and not isinstance(t, bool) for t in names)
        or not isinstance(targets, (list, tuple)) and all(isinstance(t, str) for t in names))
    if not named:
        what = type(targets).__name__
        if hasattr(targets, "__len__"):
            what += f" of {len(targets)} values"
        name = getattr(targets, "name", None)
        hint = f"target={name!r}" if isinstance(name, str) else "target='COLUMN'"
        raise DataError(
            f"target must name the column(s) to predict, however it is a {what}; put the "
            f"values in a column of the data and pass its name ({hint})"
        )
    out = [str(t) for t in names]
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


def parse_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 and the mask of its cells that hold something else.

    Missing cells, and text that spells missing (``""``, ``"NA"``, ``"n/a"``,
    ``"null"``, ... as pandas' CSV reader reads them), are NaN and not bad.

    Returns
    -------
    values : numpy.ndarray
        float64; NaN where missing or not a number.
    bad : numpy.ndarray
        bool; True where a present cell is not a number.

    Examples
    --------
    >>> values, bad = parse_numbers(pd.Series(["1.5", "oops", None, "n/a", " 2 "]))
    >>> values.tolist()[0], values.tolist()[4], bad.tolist()
    (1.5, 2.0, [False, True, False, False, False])
    """
    values = as_float(series)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return values, np.zeros(len(values), dtype=bool)
    bad = np.isnan(values) & ~series.isna().to_numpy()
    if bad.any():
        idx = np.flatnonzero(bad)
        spelled_missing = [str(v).strip().lower() in _NA_TEXT for v in series.iloc[idx]]
        bad[idx[np.asarray(spelled_missing, dtype=bool)]] = False
    return values, bad


def date_format(series: pd.Series) -> str | None:
    """The ``strftime`` format of the column's first text value, if it has a year and a month.

    ``None`` for a column without text or whose first text is no date.

    Examples
    --------
    >>> date_format(pd.Series([None, "2021-03-04", "2021-12-31"]))
    '%Y-%m-%d'
    >>> date_format(pd.Series(["04/01/2020", "13/01/2020"]))  # day first: 13 is no month
    '%d/%m/%Y'
    >>> date_format(pd.Series(["May", "June"])) is None
    True
    """
    from pandas.tseries.api import guess_datetime_format

    sample = series[series.notna()].iloc[:1000]
    first = next((v for v in sample if isinstance(v, str) and v.strip()), None)
    if first is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' dayfirst chatter
        guesses = {guess_datetime_format(first.strip(), dayfirst=d) for d in (False, True)}
    formats = [
        f
        for f in sorted(guesses - {None})
        if any(y in f for y in ("%Y", "%y")) and any(m in f for m in ("%m", "%b", "%B"))
    ]
    if not formats:
        return None
    # "04/01/2020" reads month-first or day-first: keep the one more cells fit; on
    # a tie, year first means ISO's year-month-day (no one writes year-day-month),
    # and otherwise day first.
    def fit(f: str) -> tuple[int, bool]:
        iso = f.index("%m") < f.index("%d") if f.startswith(("%Y", "%y")) and "%d" in f and \
            "%m" in f else f.startswith(("%d", "%e"))
        return int(_to_datetime(sample, f).notna().sum()), iso

    return max(formats, key=fit)


def _to_datetime(series: pd.Series, fmt: str | None) -> pd.Series:
    """Naive UTC timestamps; NaT where missing or not a date in ``fmt``."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        ts = series
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' "could not infer format" chatter
            ts = pd.to_datetime(series.astype(object), format=fmt, errors="coerce", utc=True)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def date_parts(series: pd.Series, fmt: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`DATE_PARTS` of a date column and the mask of its cells that are no date.

    Parameters
    ----------
    series : pandas.Series
        Datetimes (any time zone: read in UTC) or date strings.
    fmt : str or None
        The strings' format (:func:`date_format`); ignored for datetimes.

    Returns
    -------
    parts : numpy.ndarray
        ``(n, len(DATE_PARTS))`` float64, NaN where missing.
    bad : numpy.ndarray
        ``(n,)`` bool; True where a present cell is not a date.

    Examples
    --------
    >>> parts, bad = date_parts(pd.Series(["2021-03-04", "soon", None]), "%Y-%m-%d")
    >>> parts[0].tolist(), bad.tolist()
    ([18690.0, 2021.0, 3.0, 4.0, 3.0], [False, True, False])
    """
    ts = _to_datetime(series, fmt)
    out = np.full((len(series), len(DATE_PARTS)), np.nan)
    gaps = ts.isna().to_numpy()
    if (~gaps).any():
        ok = ts[~gaps]
        out[~gaps, 0] = ((ok - _EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
        out[~gaps, 1] = ok.dt.year.to_numpy(dtype="float64")
        out[~gaps, 2] = ok.dt.month.to_numpy(dtype="float64")
        out[~gaps, 3] = ok.dt.day.to_numpy(dtype="float64")
        out[~gaps, 4] = ok.dt.day_of_week.to_numpy(dtype="float64")
    bad = gaps & ~series.isna().to_numpy()
    if bad.any() and not pd.api.types.is_datetime64_any_dtype(series.dtype):
        idx = np.flatnonzero(bad)
        spelled_missing = [str(v).strip().lower() in _NA_TEXT for v in series.iloc[idx]]
        bad[idx[np.asarray(spelled_missing, dtype=bool)]] = False
    return out, bad


def examples_of(series: pd.Series, mask: np.ndarray, k: int = 3) -> str:
    """Up to ``k`` distinct values of ``series`` where ``mask``, as ``'a', 'b'``."""
    values = pd.unique(series[mask].astype(str))[:k]
    return ", ".join(repr(v) for v in values)


def _non_numeric_examples(series: pd.Series, k: int = 3) -> list[str]:
    """Up to ``k`` distinct non-missing values of ``series`` that do not parse as numbers."""
    present = series[series.notna()]
    bad = present[np.isnan(as_float(present))]
    return [repr(v) for v in pd.unique(bad.astype(str))[:k]]


def _holds_containers(series: pd.Series) -> bool:
    """Whether an object column's cells are lists, tuples, sets, mappings or arrays."""
    kinds = (list, tuple, set, frozenset, dict, np.ndarray)
    return any(isinstance(v, kinds) for v in series.to_numpy())


def _has_no_values(series: pd.Series) -> bool:
    if series.isna().all():
        return True
    return _is_real_numeric(series.dtype) and not np.isfinite(as_float(series)).any()


def _row_number(name: Any, series: pd.Series) -> int | None:
    """The first value if ``series`` is a saved row index (0 or 1 on, in order), else None.

    The name must be one an index gets when saved with a table (:data:`INDEX_NAMES`,
    or pandas' ``Unnamed: 0``): an in-order count under another name may be a feature
    (a time step), and an example table of ``np.arange`` columns is not an accident.
    """
    n = len(series)
    text = str(name).strip()
    if not (text.startswith("Unnamed:") or text.lower() in INDEX_NAMES):
        return None
    if n < MIN_ID_ROWS or not _is_real_numeric(series.dtype) or series.isna().any():
        return None
    values = as_float(series)
    # The rows' numbers: their positions, or (a bag's or a CV pool: rows of the
    # table with the test rows taken out) the row numbers the index keeps.
    numbers = [np.arange(n, dtype=float)]
    if pd.api.types.is_integer_dtype(series.index.dtype):
        numbers.append(series.index.to_numpy(dtype=float))
    for start in (0, 1):
        if any(np.array_equal(values, rows + start) for rows in numbers):
            return start
    return None


def _is_identifier_text(series: pd.Series) -> bool:
    """Whether a text column read as categories holds a different value in every row."""
    n = len(series)
    return (
        n >= MIN_ID_ROWS
        and not isinstance(series.dtype, pd.CategoricalDtype)  # declared: the user's decision
        and not pd.api.types.is_bool_dtype(series.dtype)
        and not series.isna().any()
        and series.nunique() == n
    )


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

    1. in ``cfg.ignore``, or the weight column ``cfg.weight``: ignored;
    2. no values (all missing, or all infinite): ignored, with a warning;
       so is, unless an override names it, a row index saved with the table
       (named as :data:`INDEX_NAMES` or pandas' ``Unnamed: 0``, and holding
       ``0, 1, 2, ...`` or ``1, 2, 3, ...`` in table order, at least
       :data:`MIN_ID_ROWS` rows, none missing) and a text column with a
       different value in every row of at least :data:`MIN_ID_ROWS` (an
       identifier: as a category it would have one level per row, none seen
       again at prediction);
    3. in ``cfg.categorical`` / ``cfg.numeric``: that role (a numeric override
       must hold numbers or numeric-looking strings);
    4. datetimes (any time zone): a date column, with a note (a warning) -
       the preprocessing turns it into the numeric features :data:`DATE_PARTS`;
       time spans and periods: ignored, with a warning;
    5. text (object or string dtype) whose non-missing cells are at least
       :data:`NUMERIC_TEXT_SHARE` numbers: numeric; the other cells become
       missing, with one warning naming the column, their count and examples
       (numbers written with leading zeros, ``"02134"``, are codes: text);
    6. text that reads as dates in the format of its first value (at least
       :data:`DATE_TEXT_SHARE` of the cells; the format has a year and a
       month): a date column, with a note;
    7. other text, category and bool dtypes: categorical;
    8. integer columns (including integral floats with gaps) with at most
       ``cfg.int_as_categorical`` distinct values, when that option is > 0:
       categorical;
    9. other real numeric dtypes: numeric;
    10. anything else (complex, intervals, ...): ignored, with a warning.

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

    Warns
    -----
    TabResNetWarning
        One per column left out, per text column read as numbers despite a
        few cells that are not, and per date column.

    Examples
    --------
    >>> df = pd.DataFrame({"rooms": [1, 2, 2, 3], "y": [1.0, 2.0, 3.0, 4.0]})
    >>> infer_schema(df, "y", DataConfig(int_as_categorical=5)).categorical
    ['rooms']
    >>> import warnings
    >>> ages = pd.DataFrame({"age": [str(a) for a in range(30, 60)] + ["thirty"],
    ...                      "y": [1.0] * 31})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     infer_schema(ages, "y").numeric, str(w[0].message)
    (['age'], "column 'age': 1 of 31 values are not numbers ('thirty'); they count as missing - fix them, or list the column in categorical to keep it as text")
    >>> ids = pd.DataFrame({"Unnamed: 0": range(30), "y": [1.0] * 30, "x": [2.0] * 30})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     infer_schema(ids, "y").ignored, str(w[0].message)
    (['Unnamed: 0'], "column 'Unnamed: 0' only numbers the rows (0, 1, 2, ... in order: an index saved with the file?); ignoring it - list it in numeric to use it")
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

    weight = getattr(cfg, "weight", None)
    if weight is not None:  # a weight column is never a feature
        _check_weight_column(df, weight, "data")
        if weight in targets:
            raise DataError(f"{weight!r} is a target column; choose another weight column")
        if role_of.get(weight, "ignore") != "ignore":
            raise DataError(
                f"weight column {weight!r} is also in {role_of[weight]}; a weight is not a "
                "feature - remove it from that list"
            )
        role_of[weight] = "ignore"

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
                TabResNetWarning,
                stacklevel=2,
            )
            schema.ignored.append(name)
        elif role is None and (start := _row_number(name, series)) is not None:
            warnings.warn(
                f"column {name!r} only numbers the rows ({start}, {start + 1}, {start + 2}, "
                "... in order: an index saved with the file?); ignoring it - list it in "
                "numeric to use it",
                TabResNetWarning,
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
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            _note_dates(name, str(dtype), None)
            schema.dates.append(name)
        elif _is_datetime_like(dtype):
            warnings.warn(
                f"column {name!r} holds dates or times ({dtype}); ignoring it - derive "
                "numeric features (year, day of week, ...) to use it",
                TabResNetWarning,
                stacklevel=2,
            )
            schema.ignored.append(name)
        elif pd.api.types.is_object_dtype(dtype) and _holds_containers(series):
            warnings.warn(
                f"column {name!r} holds lists or mappings, not single values; ignoring it - "
                "spread them over columns of their own to use them",
                TabResNetWarning,
                stacklevel=2,
            )
            schema.ignored.append(name)
        elif _is_text_like(dtype):
            schema_role, looks_numeric = _text_role(name, series)
            if schema_role == "categorical" and not looks_numeric and _is_identifier_text(series):
                warnings.warn(
                    f"column {name!r} has a different value in each of its {len(series)} "
                    "rows (an identifier?); ignoring it - list it in categorical to use it",
                    TabResNetWarning,
                    stacklevel=2,
                )
                schema_role = "ignored"
            getattr(schema, schema_role).append(name)
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
                TabResNetWarning,
                stacklevel=2,
            )
            schema.ignored.append(name)

    if not schema.feature_columns:
        raise DataError(
            "no feature columns left: every column is a target or ignored "
            f"(ignored: {_listing(schema.ignored) or 'none'}); add feature columns"
        )
    return schema


def _text_role(name: str, series: pd.Series) -> tuple[str, bool]:
    """``"numeric"``, ``"dates"`` or ``"categorical"`` for a text column (rules 5-7), and
    whether a categorical one looks numeric (then said in a warning: no identifier)."""
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(series.dtype):
        return "categorical", False  # a declared category is the user's decision
    values, bad = parse_numbers(series)
    numbers = int(np.isfinite(values).sum() + np.isinf(values).sum())
    present = numbers + int(bad.sum())
    codes = _has_leading_zeros(series)
    if numbers and numbers >= NUMERIC_TEXT_SHARE * present and not codes:
        if bad.any():
            warnings.warn(
                f"column {name!r}: {int(bad.sum())} of {present} values are not numbers "
                f"({examples_of(series, bad)}); they count as missing - fix them, or list "
                "the column in categorical to keep it as text",
                TabResNetWarning,
                stacklevel=3,
            )
        return "numeric", False
    fmt = date_format(series)
    if fmt is not None:
        parts, not_dates = date_parts(series, fmt)
        dates = int((~np.isnan(parts[:, 0])).sum())
        if dates and dates >= DATE_TEXT_SHARE * (dates + int(not_dates.sum())):
            # Year first is ISO's year-month-day: not ambiguous in practice.
            swapped = (fmt.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m")
                       if "%d" in fmt and "%m" in fmt and not fmt.startswith(("%Y", "%y"))
                       else None)
            either = swapped is not None and int(_to_datetime(series, swapped).notna().sum()) == dates
            _note_dates(name, fmt, (series, not_dates) if not_dates.any() else None, either)
            return "dates", False
    why = _numbers_as_text(series, values, bad, codes)
    if why is not None:
        warnings.warn(f"column {name!r} {why}", TabResNetWarning, stacklevel=3)
    return "categorical", why is not None


def _numbers_as_text(series: pd.Series, values: np.ndarray, bad: np.ndarray,
                     codes: bool) -> str | None:
    """Why a text column read as categories looks numeric, or None.

    Codes written with leading zeros; mostly numbers with some text; numbers
    written with currency, percent or thousands separators. ``values``, ``bad``:
    :func:`parse_numbers` of the column; ``codes``: :func:`_has_leading_zeros`.
    """
    numbers = int(np.isfinite(values).sum() + np.isinf(values).sum())
    present = numbers + int(bad.sum())
    text = series[series.notna()].astype(str).str.strip()
    text = text[~text.str.lower().isin(_NA_TEXT)]
    if not len(text):
        return None
    if codes and numbers >= NUMERIC_TEXT_SHARE * present:
        example = text[text.str.match(r"^[+-]?0\d")].iloc[0]
        return (f"holds numbers written with leading zeros ({example!r}): read as codes "
                "(categories) - list it in numeric to read them as numbers")
    if present and numbers >= 0.5 * present:
        return (f"has {numbers} numbers among {present} values but also "
                f"{int(bad.sum())} that are not ({examples_of(series, bad)}): read as text "
                "(categories) - clean or empty those cells to use it as numbers")
    plain = text.str.replace(r"^[$€£¥]|[%$€£¥]$|(?<=\d)[,' ](?=\d{3}\b)", "", regex=True)
    if int(np.isfinite(parse_numbers(plain)[0]).sum()) >= NUMERIC_TEXT_SHARE * len(text):
        return (f"holds numbers written with symbols or separators ({text.iloc[0]!r}): read "
                "as text (categories) - write them as plain numbers to use them as numbers")
    return None


def _has_leading_zeros(series: pd.Series) -> bool:
    """Whether some text cell writes a number with a leading zero: postcodes, ids."""
    text = series[series.notna()].astype(str).str.strip()
    return bool(text.str.match(r"^[+-]?0\d").any())


def _note_dates(name: str, what: str, bad: tuple[pd.Series, np.ndarray] | None,
                either_way: bool = False) -> None:
    extra = ""
    if either_way:  # 04/05/2020: no day above 12 tells day and month apart
        extra = (f"; no day in it is above 12, so it reads as {what} and as its day and month "
                 "swapped: check it, or write the dates as YYYY-MM-DD")
    if bad is not None:
        series, mask = bad
        extra += (
            f"; {int(mask.sum())} values are not dates ({examples_of(series, mask)}) "
            "and count as missing"
        )
    warnings.warn(
        f"column {name!r} holds dates ({what}); it becomes {len(DATE_PARTS)} numeric "
        f"features ({', '.join(DATE_PARTS)}){extra} - list it in ignore to leave it out",
        TabResNetWarning,
        stacklevel=3,
    )


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
    TabResNetWarning
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
        raise DataError(f"no row has a finite target in {', '.join(targets)}; nothing to train or "
                        "score on")
    if n_bad:
        warnings.warn(
            f"dropped {n_bad} of {len(df)} rows whose target is missing or infinite "
            f"({'; '.join(counts)})",
            TabResNetWarning,
            stacklevel=2,
        )
    return out.loc[~bad].reset_index(drop=True)


def _check_weight_column(df: pd.DataFrame, weight: str, what: str) -> None:
    if weight not in df.columns:
        raise DataError(
            f"weight column {weight!r} not found in the {what}; columns are: "
            f"{_listing([str(c) for c in df.columns])} - add it or choose another --weight"
        )


def check_weights(values: Any, what: str = "sample_weight") -> np.ndarray:
    """Check per-row weights: numbers, finite, at least 0, not all 0.

    Parameters
    ----------
    values : array-like of shape (n,)
        The weights.
    what : str
        How the error messages name them, e.g. ``"weight column 'w'"``.

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    DataError
        One line naming the problem and the way out.

    Examples
    --------
    >>> check_weights([1, 2.5, 0])
    array([1. , 2.5, 0. ])
    >>> check_weights([1.0, -2.0])
    Traceback (most recent call last):
    ...
    tabresnet.errors.DataError: sample_weight has 1 negative value (min -2); weights must be >= 0
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    if pd.api.types.is_bool_dtype(series.dtype) or not _is_real_numeric(series.dtype):
        examples = _non_numeric_examples(series) if not pd.api.types.is_bool_dtype(
            series.dtype) else ["True", "False"]
        shown = f": values such as {', '.join(examples)}" if examples else ""
        raise DataError(
            f"{what} is not numeric ({series.dtype}){shown}; weights must be numbers >= 0"
        )
    w = as_float(series).astype(np.float64)
    bad = ~np.isfinite(w)
    if bad.any():
        raise DataError(
            f"{what} has {int(bad.sum())} missing or infinite value(s); weights must be finite "
            "numbers >= 0 - fill them (1 counts a row once) or drop those rows"
        )
    negative = w < 0
    if negative.any():
        n = int(negative.sum())
        raise DataError(
            f"{what} has {n} negative value{'s' if n > 1 else ''} (min {w.min():.4g}); "
            "weights must be >= 0"
        )
    if not (w > 0).any():
        raise DataError(
            f"all weights in {what} are zero; at least one row needs a positive weight"
        )
    return w


def clean_weight(df: pd.DataFrame, weight: str | None, what: str = "data") -> pd.DataFrame:
    """Check the weight column of ``df``, make it float64 and drop its rows of weight 0.

    A row of weight 0 contributes nothing to a weighted loss or metric; leaving it
    out of the table makes that exact (it would otherwise still shape the splits,
    the preprocessing and the batches).

    Parameters
    ----------
    df : pandas.DataFrame
        The table (not modified).
    weight : str or None
        The weight column; ``None`` returns ``df`` unchanged.
    what : str
        The table's name in error messages (``"data"``, ``"validation data"``).

    Returns
    -------
    pandas.DataFrame
        A copy with a fresh ``RangeIndex``.

    Raises
    ------
    DataError
        No such column, or weights that are not numbers, not finite, negative
        or all zero (:func:`check_weights`).

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1, 2, 3], "w": [1, 0, 2]})
    >>> clean_weight(df, "w")
       x    w
    0  1  1.0
    1  3  2.0
    """
    if weight is None:
        return df
    _check_weight_column(df, weight, what)
    w = check_weights(df[weight], f"weight column {weight!r}")
    out = df.copy()
    out[weight] = w
    return out.loc[w > 0].reset_index(drop=True)
