"""From a raw table to tensors: read, clean, infer roles, split, preprocess.

Everything fitted (the schema's roles, the preprocessing state) is fitted on
the training split only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import (
    Preprocessor,
    Schema,
    check_columns,
    clean_target,
    clean_weight,
    infer_schema,
    read_table,
    split_indices,
)
from ..defaults import RunConfig
from ..errors import DataError

__all__ = ["Prepared", "Split", "as_targets", "fit_preprocessor", "prepare", "refit_prepared",
           "tensors_for"]


@dataclass
class Split:
    """One split as tensors plus its raw rows.

    Attributes
    ----------
    x_num : Tensor, float32, shape (n, n_num)
    x_cat : Tensor, int64, shape (n, n_cat)
    y : Tensor, float32, shape (n, n_targets) -- the transformed target
    y_raw : ndarray, float64, shape (n, n_targets) -- in the target's units
    frame : DataFrame -- the raw rows
    weight : ndarray, float64, shape (n,), or None -- the rows' weights (``weight``
        column); None: every row counts once
    rows : ndarray, int64, shape (n,), or None -- each row's 0-based number in the
        table it came from (the data, or a separate test table), where known: what
        ``predictions_test.csv``'s ``row`` column says, to join predictions back
    """

    x_num: torch.Tensor
    x_cat: torch.Tensor
    y: torch.Tensor
    y_raw: np.ndarray
    frame: pd.DataFrame
    weight: np.ndarray | None = None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Prepared:
    """The data of one run, ready for training."""

    schema: Schema
    preprocessor: Preprocessor
    train: Split
    val: Split
    test: Split | None
    summary: dict[str, Any] = field(default_factory=dict)
    weight: str | None = None  # the weight column, if the rows are weighted

    @property
    def targets(self) -> list[str]:
        return list(self.schema.targets)

    @property
    def target_scale(self) -> np.ndarray:
        """Multiply a transformed-target error by this to get target units."""
        ones = np.ones((1, len(self.targets)))
        zeros = np.zeros((1, len(self.targets)))
        return (self.preprocessor.inverse_target(ones) - self.preprocessor.inverse_target(zeros))[0]


def as_targets(target: str | Sequence[str]) -> list[str]:
    """The target column names, or a ``DataError`` saying what ``target`` is instead."""
    from ..data.schema import _as_targets

    return _as_targets(target)


def tensors_for(
    pre: Preprocessor, frame: pd.DataFrame, targets: list[str], weight: str | None = None
) -> Split:
    x_num, x_cat = pre.transform(frame)
    y_raw = frame[targets].to_numpy(dtype=np.float64)
    y = pre.transform_target(y_raw)
    return Split(
        x_num=torch.as_tensor(np.ascontiguousarray(x_num, dtype=np.float32)),
        x_cat=torch.as_tensor(np.ascontiguousarray(x_cat, dtype=np.int64)),
        y=torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32)),
        y_raw=y_raw,
        frame=frame,
        weight=np.array(frame[weight], dtype=np.float64) if weight is not None else None,
    )


def fit_preprocessor(
    schema: Any, config: RunConfig, frame: pd.DataFrame, targets: list[str],
    weight: str | None = None,
) -> Preprocessor:
    """A :class:`~tabresnet.data.Preprocessor` for ``schema`` fitted on ``frame``'s rows
    (features and target, each row weighted by its ``weight`` column where one is named)."""
    pre = Preprocessor(schema, config.data, seed=config.seed)
    fit_weight = np.array(frame[weight], dtype=np.float64) if weight is not None else None
    pre.fit(frame, sample_weight=fit_weight)
    pre.fit_target(frame[targets].to_numpy(dtype=np.float64), sample_weight=fit_weight)
    return pre


def refit_prepared(prepared: Prepared, config: RunConfig) -> Prepared:
    """``prepared`` for a refit: every split through one preprocessing fitted on the
    training and validation rows together, and those rows the training split.

    The schema (column roles) stays the same; quantiles, medians, categories,
    the target's scaling (and, in the network, the PLE bins) are learnt afresh
    from all the rows the refit trains on.
    """
    rows = pd.concat([prepared.train.frame, prepared.val.frame])
    targets, weight = prepared.targets, prepared.weight
    pre = fit_preprocessor(prepared.schema, config, rows, targets, weight)
    test = prepared.test
    return replace(
        prepared,
        preprocessor=pre,
        train=tensors_for(pre, rows, targets, weight),
        val=tensors_for(pre, prepared.val.frame, targets, weight),
        test=tensors_for(pre, test.frame, targets, weight) if test is not None else None,
    )


def _read(source: Any, what: str, targets: list[str], weight: str | None = None) -> pd.DataFrame:
    frame = read_table(source)
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise DataError(
            f"target column(s) {', '.join(map(repr, missing))} not found in the {what} data; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    return clean_weight(clean_target(frame, targets), weight, f"{what} data")


def free_column(columns: Any, base: str) -> str:
    """``base``, or ``_base``, ``__base``, ...: the first that is none of ``columns``.

    For a column tabresnet adds to the user's table (row numbers, weights),
    which must never overwrite a feature or a target.

    >>> free_column(["a", "row", "_row"], "row")
    '__row'
    """
    name = base
    while name in columns:
        name = "_" + name
    return name


def _numbered(frame: pd.DataFrame, first: int = 0,
              number: str | None = None) -> tuple[pd.DataFrame, str]:
    """``frame`` with a column of its rows' numbers from ``first``, and that column's name."""
    number = number or free_column(frame.columns, "row")
    return frame.assign(**{number: first + np.arange(len(frame))}), number


def prepare(
    data: Any,
    target: str | Sequence[str],
    config: RunConfig | None = None,
    val_data: Any = None,
    test_data: Any = None,
    train_index: np.ndarray | None = None,
    val_index: np.ndarray | None = None,
    fit_index: np.ndarray | None = None,
) -> Prepared:
    """Read, clean and split ``data``, fit preprocessing on the training rows.

    Parameters
    ----------
    data : path, DataFrame or ndarray
        The table (see :func:`tabresnet.data.read_table`).
    target : str or list of str
        Target column(s).
    config : RunConfig, optional
        Uses its ``data`` section and ``seed``.
    val_data, test_data : optional
        Separate validation / test tables; a missing one is split off ``data``
        (``val_size`` / ``test_size`` are fractions of ``data``'s rows).
    train_index, val_index : ndarray, optional
        Explicit rows of ``data`` for training and validation (k-fold); then
        no test split is made unless ``test_data`` is given.
    fit_index : ndarray, optional
        With ``train_index``: the rows of ``data`` the preprocessing (and the
        target scaling) is fitted on, instead of the training rows. The members
        of a k-fold bag share one preprocessing fitted on all their rows.

    Returns
    -------
    Prepared
    """
    cfg = config or RunConfig()
    targets = as_targets(target)
    frame = read_table(data)
    schema = infer_schema(frame, targets, cfg.data)
    weight = cfg.data.weight
    numbered, number = _numbered(frame)  # the rows keep their numbers through the cleaning
    frame = clean_weight(clean_target(numbered, targets).reset_index(drop=True), weight)
    rows = frame.pop(number).to_numpy()

    test_frame = test_rows = None
    if test_data is not None:  # numbered as the test table's own rows
        raw_test, test_number = _numbered(read_table(test_data))
        test_frame = _read(raw_test, "test", targets, weight)
        test_rows = test_frame.pop(test_number).to_numpy()
    val_frame = _read(val_data, "validation", targets, weight) if val_data is not None else None
    separate = {"validation": val_frame, "test": test_frame}
    if train_index is not None:
        train_frame = frame.iloc[train_index]
        if val_index is not None:  # the folds' own validation rows, not a user's table
            val_frame, separate["validation"] = frame.iloc[val_index], None
    else:
        tr, va, te = split_indices(len(frame), cfg.data.val_size, cfg.data.test_size, cfg.seed)
        if val_frame is None and test_frame is None:
            train_frame, val_frame, test_frame = frame.iloc[tr], frame.iloc[va], frame.iloc[te]
            test_rows = rows[te]
        elif val_frame is None:
            train_frame, val_frame = frame.iloc[np.sort(np.concatenate([tr, te]))], frame.iloc[va]
        elif test_frame is None:
            train_frame, test_frame = frame.iloc[np.sort(np.concatenate([tr, va]))], frame.iloc[te]
            test_rows = rows[te]
        else:
            train_frame = frame
    if val_frame is None or len(val_frame) == 0:
        raise DataError("no validation rows; give val_data or a larger table")
    for extra in (val_frame, test_frame):
        if extra is not None:
            check_columns(extra, schema)

    fit_frame = frame.iloc[fit_index] if (fit_index is not None and train_index is not None) \
        else train_frame
    pre = fit_preprocessor(schema, cfg, fit_frame, targets, weight)
    # The user's own validation and test tables are read as the model will read
    # new rows: cells it cannot use (text in a numeric column, an unseen
    # category) are counted and named, not imputed without a word.
    for what, extra in separate.items():
        if extra is not None:
            pre.check(extra, where=f"of the {what} data")
    splits = {
        "train": tensors_for(pre, train_frame, targets, weight),
        "val": tensors_for(pre, val_frame, targets, weight),
        "test": tensors_for(pre, test_frame, targets, weight) if test_frame is not None else None,
    }
    if splits["test"] is not None and test_rows is not None:
        splits["test"] = replace(splits["test"], rows=test_rows)
    summary = data_summary(frame, schema, {k: (len(v) if v else 0) for k, v in splits.items()},
                           weight=weight)
    return Prepared(schema=schema, preprocessor=pre, summary=summary, weight=weight, **splits)


def _distinct(col: pd.Series) -> int | None:
    """Distinct values of ``col``; None for cells pandas cannot hash (lists, mappings)."""
    try:
        return int(col.nunique(dropna=True))
    except TypeError:
        return None


def data_summary(
    frame: pd.DataFrame, schema: Schema, rows: dict[str, int], weight: str | None = None
) -> dict[str, Any]:
    """Rows per split and, per column, its role, dtype and missing count."""
    roles: dict[str, str] = {weight: "weight"} if weight is not None else {}
    for role, names in (
        ("target", schema.targets),
        ("numeric", schema.numeric),
        ("categorical", schema.categorical),
        ("date", schema.dates),
        ("ignored", schema.ignored),
    ):
        for name in names:
            roles.setdefault(name, role)
    columns = []
    for name in frame.columns:
        col = frame[name]
        columns.append(
            {
                "name": str(name),
                "role": roles.get(name, "ignored"),
                "dtype": str(col.dtype),
                "missing": int(col.isna().sum()),
                "distinct": _distinct(col),
            }
        )
    return {
        "rows": rows,
        "n_rows": int(len(frame)),
        "targets": list(schema.targets),
        "columns": columns,
    }
