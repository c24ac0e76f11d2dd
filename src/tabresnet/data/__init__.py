"""The data layer: table in, tensors out.

::

    df = clean_target(read_table("houses.csv"), "price")
    schema = infer_schema(df, "price", cfg.data)
    train, val, test = split_indices(len(df), cfg.data.val_size, cfg.data.test_size, cfg.seed)
    pre = Preprocessor(schema, cfg.data, seed=cfg.seed).fit(df.iloc[train])
    x_num, x_cat = pre.transform(df.iloc[val])

Imports numpy, pandas, pyarrow, scikit-learn and torch (for
:class:`TensorBatches`), never Lightning.

>>> import numpy as np
>>> from tabresnet.defaults import DataConfig
>>> df = read_table({"a": np.arange(20.0), "c": ["u", "v"] * 10, "y": np.arange(20.0)})
>>> schema = infer_schema(df, "y", DataConfig())
>>> pre = Preprocessor(schema, DataConfig()).fit(df)
>>> [x.shape for x in pre.transform(df)]
[(20, 3), (20, 0)]
"""

from .batches import TensorBatches
from .io import SUFFIXES, read_table
from .preprocess import Preprocessor
from .schema import (
    Schema,
    as_float,
    check_columns,
    check_weights,
    clean_target,
    clean_weight,
    infer_schema,
)
from .split import kfold_indices, split_indices

__all__ = [
    "SUFFIXES",
    "Preprocessor",
    "Schema",
    "TensorBatches",
    "as_float",
    "check_columns",
    "check_weights",
    "clean_target",
    "clean_weight",
    "infer_schema",
    "kfold_indices",
    "read_table",
    "split_indices",
]
