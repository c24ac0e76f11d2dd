"""Property-based tests: random messy tables through infer_schema + Preprocessor.

Tables mix floats (with NaN, +-inf, huge and tiny values), integers, bools,
unicode and empty-string categories, constant and all-missing columns; the
preprocessor is fitted on some rows and applied to all rows and to rows with
unseen categories. Whatever the table, the output must be finite, correctly
shaped, identical after a JSON round trip, and the target transform must invert.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tabresnet.data import Preprocessor, clean_target, infer_schema, read_table
from tabresnet.defaults import DataConfig

SETTINGS = settings(max_examples=50, deadline=None)

WORDS = ["", " ", "a", "b", "Zürich", "東京", "😀", "nan", "None", "0", "1.5", "a,b", 'q"uote']
UNSEEN = ["never seen", "ünseen", "⊥"]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 3.4e38]


def _floats(n):
    value = st.one_of(
        st.floats(-1e6, 1e6),
        st.sampled_from(SPECIAL),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    return st.lists(value, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64))


def _column(kind: str, n: int):
    if kind == "float":
        return _floats(n)
    if kind == "int":
        return st.lists(st.integers(-3, 3), min_size=n, max_size=n).map(
            lambda v: np.array(v, dtype=np.int64)
        )
    if kind == "text":
        return st.lists(st.one_of(st.none(), st.sampled_from(WORDS)), min_size=n, max_size=n).map(
            lambda v: pd.Series(v, dtype=object)
        )
    if kind == "free_text":
        return st.lists(st.text(max_size=4), min_size=n, max_size=n).map(
            lambda v: pd.Series(v, dtype="str")
        )
    if kind == "bool":
        return st.lists(st.booleans(), min_size=n, max_size=n).map(np.array)
    if kind == "constant":
        return st.sampled_from([7.5, "k", ""]).map(lambda c: [c] * n)
    if kind == "missing":
        return st.just([np.nan] * n)
    raise AssertionError(kind)


KINDS = ["float", "int", "text", "free_text", "bool", "constant", "missing"]


@st.composite
def tables(draw):
    n = draw(st.integers(2, 40))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    data = {f"c{i}_{k}": draw(_column(k, n)) for i, k in enumerate(kinds)}
    # One ordinary column, so that some feature always survives.
    data["base"] = draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n).map(np.array))
    n_targets = draw(st.integers(1, 2))
    for t in range(n_targets):
        y = draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))
        data[f"y{t}"] = np.array(y)
    cfg = DataConfig(
        numeric_transform=draw(st.sampled_from(["quantile", "standard", "none"])),
        target_transform=draw(st.sampled_from(["standard", "none"])),
        n_quantiles=draw(st.sampled_from([2, 5, 1000])),
        onehot_max_cardinality=draw(st.sampled_from([0, 2, 16])),
        int_as_categorical=draw(st.sampled_from([0, 3])),
    )
    n_train = draw(st.integers(max(1, n // 2), n))  # fit on half the rows or more
    targets = [f"y{t}" for t in range(n_targets)]
    return read_table(data), targets, cfg, n_train


def _fit(df, targets, cfg, n_train):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # all-missing columns are announced
        warnings.simplefilter("error", RuntimeWarning)  # but overflow/NaN noise is a bug
        schema = infer_schema(df, targets, cfg)
        pre = Preprocessor(schema, cfg, seed=0).fit(df.iloc[:n_train])
    return schema, pre


def _check_output(pre, x_num, x_cat, n):
    assert x_num.dtype == np.float32 and x_num.shape == (n, pre.n_num)
    assert x_cat.dtype == np.int64 and x_cat.shape == (n, len(pre.cardinalities))
    assert np.isfinite(x_num).all()
    assert (x_cat >= 0).all() and (x_cat < np.array(pre.cardinalities, dtype=np.int64)).all()
    assert len(pre.feature_names) == pre.n_num + len(pre.cardinalities)


@SETTINGS
@given(tables())
def test_outputs_are_finite_and_shaped(case):
    df, targets, cfg, n_train = case
    schema, pre = _fit(df, targets, cfg, n_train)
    assert set(schema.feature_columns) | set(schema.ignored) | set(targets) == set(df.columns)
    assert not set(schema.numeric) & set(schema.categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        x_num, x_cat = pre.transform(df)
    _check_output(pre, x_num, x_cat, len(df))
    # one-hot blocks hold at most one 1 per row and column
    onehot = [i for i, name in enumerate(pre.feature_names[: pre.n_num]) if "=" in name]
    if onehot:
        assert set(np.unique(x_num[:, onehot]).tolist()) <= {0.0, 1.0}


@SETTINGS
@given(tables())
def test_json_round_trip_gives_identical_transforms(case):
    df, targets, cfg, n_train = case
    _, pre = _fit(df, targets, cfg, n_train)
    text = json.dumps(pre.to_dict(), allow_nan=False)  # strict JSON: no NaN/inf sneaks in
    loaded = Preprocessor.from_dict(json.loads(text))
    for a, b in zip(pre.transform(df), loaded.transform(df)):
        assert np.array_equal(a, b)
    assert loaded.to_dict() == pre.to_dict()


@SETTINGS
@given(tables(), st.data())
def test_unseen_and_missing_categories_map_to_code_zero(case, data):
    df, targets, cfg, n_train = case
    schema, pre = _fit(df, targets, cfg, n_train)
    test = df.copy()
    for c in schema.categorical:
        test[c] = data.draw(
            st.lists(st.sampled_from([*UNSEEN, None]), min_size=len(df), max_size=len(df))
        )
        test[c] = test[c].astype(object)
    x_num, x_cat = pre.transform(test)
    _check_output(pre, x_num, x_cat, len(df))
    assert (x_cat == 0).all()
    onehot = [i for i, name in enumerate(pre.feature_names[: pre.n_num]) if "=" in name]
    onehot = [i for i in onehot if pre.feature_names[i].split("=")[0] in schema.categorical]
    assert (x_num[:, onehot] == 0).all()


@SETTINGS
@given(tables())
def test_target_round_trip(case):
    df, targets, cfg, n_train = case
    df = clean_target(df, targets)  # targets are finite here: no warning, no change
    _, pre = _fit(df, targets, cfg, n_train)
    y = df[targets].to_numpy()
    z = pre.transform_target(df)
    assert z.shape == y.shape and np.isfinite(z).all()
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict()))).inverse_target(z)
    scale = np.maximum(np.abs(y).max(axis=0), 1.0)
    np.testing.assert_allclose(back / scale, y / scale, atol=1e-5)


def test_subnormal_numbers_do_not_make_the_quantile_transform_nan():
    # Hypothesis found it: a value of 5e-324 (not in the training rows) came out NaN.
    values = [0.0] * 18 + [1.0, 2.2e-313, -1.0, 5e-324, 0.0, 0.0, 0.0]
    df = pd.DataFrame({"c0_float": values, "base": 0.0, "y0": 0.0})
    schema, pre = _fit(df, ["y0"], DataConfig(onehot_max_cardinality=0), 21)
    x_num, x_cat = pre.transform(df)
    _check_output(pre, x_num, x_cat, len(df))
    assert x_num[19, 0] == x_num[21, 0] == x_num[0, 0]  # as zero
