"""Preprocessor: numeric scaling, missing indicators, categorical codes, target, state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tabresnet.data import Preprocessor, Schema, infer_schema
from tabresnet.defaults import DataConfig
from tabresnet.errors import ConfigError, DataError, ModelFileError


def _reload(pre: Preprocessor) -> Preprocessor:
    return Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict(), allow_nan=False)))


def _fit(df, schema, **cfg) -> Preprocessor:
    return Preprocessor(schema, DataConfig(**cfg)).fit(df)


NUM = Schema(numeric=["a", "b"], targets=["y"])


@pytest.fixture
def num_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    a = rng.lognormal(size=200)
    b = rng.normal(size=200)
    b[:10] = np.nan
    b[10] = np.inf
    return pd.DataFrame({"a": a, "b": b, "y": 3 * a + rng.normal(size=200)})


# -- numeric -------------------------------------------------------------------------


def test_indicator_only_for_columns_with_gaps_in_training(num_frame):
    pre = _fit(num_frame, NUM)
    assert pre.feature_names == ["a", "b", "b__missing"]
    x, _ = pre.transform(num_frame)
    assert x[:11, 2].tolist() == [1.0] * 11  # NaN and inf rows
    assert x[11:, 2].sum() == 0
    # a gap in 'a' at transform time is imputed, without an indicator
    test = num_frame.iloc[:3].copy()
    test["a"] = np.nan
    x_test, _ = pre.transform(test)
    assert x_test.shape == (3, 3) and np.isfinite(x_test).all()


def test_median_imputation_from_training_rows(num_frame):
    pre = _fit(num_frame, NUM, numeric_transform="none")
    median_b = np.median(num_frame["b"].to_numpy()[11:])
    x, _ = pre.transform(pd.DataFrame({"a": [1.0], "b": [np.nan]}))
    assert x[0, 1] == pytest.approx(median_b, rel=1e-6)
    assert x[0, 0] == 1.0


def test_quantile_normal_output(num_frame):
    pre = _fit(num_frame, NUM)  # the default
    assert DataConfig().numeric_transform == "quantile"
    x, _ = pre.transform(num_frame)
    # the training extremes map to sklearn's bounds (about +-5.2), which widens the std
    assert abs(x[:, 0].mean()) < 0.05 and 0.9 < x[:, 0].std() < 1.2
    order = np.argsort(num_frame["a"].to_numpy())
    assert np.all(np.diff(x[order, 0]) >= 0)  # monotone
    # far outside the training range: clipped, finite
    far, _ = pre.transform(pd.DataFrame({"a": [-1e30, 1e30], "b": [0.0, 0.0]}))
    assert np.isfinite(far).all() and far[0, 0] < -5 and far[1, 0] > 5


def test_n_quantiles_capped_by_rows(num_frame):
    pre = _fit(num_frame.iloc[:50], NUM, n_quantiles=1000)
    assert pre.quantiles_.shape == (50, 2)
    pre = _fit(num_frame, NUM, n_quantiles=20)
    assert pre.quantiles_.shape == (20, 2)


def test_quantile_subsample_is_seeded():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=30_000), "y": 0.0})
    s = Schema(numeric=["a"], targets=["y"])
    q0 = Preprocessor(s, DataConfig(), seed=0).fit(df).quantiles_
    assert np.array_equal(q0, Preprocessor(s, DataConfig(), seed=0).fit(df).quantiles_)
    assert not np.array_equal(q0, Preprocessor(s, DataConfig(), seed=1).fit(df).quantiles_)


def test_standard(num_frame):
    pre = _fit(num_frame, NUM, numeric_transform="standard")
    x, _ = pre.transform(num_frame)
    np.testing.assert_allclose(x[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, :2].std(axis=0), 1, atol=1e-5)


def test_none_keeps_values(num_frame):
    pre = _fit(num_frame, NUM, numeric_transform="none")
    x, _ = pre.transform(num_frame)
    np.testing.assert_allclose(x[:, 0], num_frame["a"].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("transform", ["quantile", "standard", "none"])
def test_constant_columns_stay_finite(transform):
    df = pd.DataFrame({"k": [5.0] * 10, "z": [0.0] * 10, "a": np.arange(10.0), "y": 1.0})
    pre = _fit(df, Schema(numeric=["k", "z", "a"], targets=["y"]), numeric_transform=transform)
    x, _ = pre.transform(pd.concat([df, pd.DataFrame({"k": [7.0], "z": [1e30], "a": [3.0]})]))
    assert np.isfinite(x).all()
    if transform == "quantile":
        assert (x[:, :2] == 0).all()  # no information: all zeros


def test_one_row_fit():
    df = pd.DataFrame({"a": [1.0], "c": ["u"], "y": [2.0]})
    pre = _fit(df, Schema(numeric=["a"], categorical=["c"], targets=["y"]))
    x, _ = pre.transform(df)
    assert np.isfinite(x).all() and x.shape == (1, 2)


def test_huge_values_saturate_not_overflow():
    df = pd.DataFrame({"a": [0.0, 1e-300, 2e-300, 1e308], "y": 1.0})
    for transform in ("quantile", "standard", "none"):
        pre = _fit(df, Schema(numeric=["a"], targets=["y"]), numeric_transform=transform)
        x, _ = pre.transform(pd.DataFrame({"a": [-1e308, 1.0, 1e308]}))
        assert np.isfinite(x).all(), transform


def test_numeric_strings_and_nullable_types():
    df = pd.DataFrame(
        {"s": ["1", "2", "x"], "n": pd.array([1, None, 3], dtype="Int64"), "y": [1.0, 2.0, 3.0]}
    )
    pre = _fit(df, Schema(numeric=["s", "n"], targets=["y"]), numeric_transform="none")
    x, _ = pre.transform(df)
    assert pre.feature_names == ["s", "n", "s__missing", "n__missing"]
    assert x.tolist() == [[1, 1, 0, 0], [2, 2, 0, 1], [1.5, 3, 1, 0]]


# -- categorical ---------------------------------------------------------------------


def test_onehot_sorted_with_zero_row_for_missing_and_unseen():
    df = pd.DataFrame({"c": ["b", "a", None, "b"], "y": 1.0})
    pre = _fit(df, Schema(categorical=["c"], targets=["y"]))
    assert pre.feature_names == ["c=a", "c=b"]
    x, x_cat = pre.transform(pd.DataFrame({"c": ["a", "b", None, "zzz"]}))
    assert x.tolist() == [[1, 0], [0, 1], [0, 0], [0, 0]]
    assert x_cat.shape == (4, 0) and x_cat.dtype == np.int64


def test_embedding_above_onehot_max_cardinality():
    cats = [f"v{i:02d}" for i in range(20)]
    df = pd.DataFrame({"c": cats, "d": ["p", "q"] * 10, "y": 1.0})
    s = Schema(categorical=["c", "d"], targets=["y"])
    pre = _fit(df, s, onehot_max_cardinality=16)
    assert pre.cardinalities == [21]  # 20 categories + code 0
    assert pre.n_num == 2 and pre.feature_names == ["d=p", "d=q", "c"]
    _, x_cat = pre.transform(pd.DataFrame({"c": ["v00", "v19", None, "new"], "d": "p"}))
    assert x_cat[:, 0].tolist() == [1, 20, 0, 0]
    assert _fit(df, s, onehot_max_cardinality=0).cardinalities == [21, 3]
    assert _fit(df, s, onehot_max_cardinality=20).cardinalities == []


def test_unicode_and_empty_string_categories():
    df = pd.DataFrame({"c": ["", "東京", "Zürich", "😀", ""], "y": 1.0})
    pre = _fit(df, Schema(categorical=["c"], targets=["y"]), onehot_max_cardinality=0)
    assert pre.categories_["c"] == sorted(["", "東京", "Zürich", "😀"])
    _, x_cat = pre.transform(df)
    assert x_cat[:, 0].tolist() == [1, 3, 2, 4, 1]
    assert (_reload(pre).transform(df)[1] == x_cat).all()


def test_categories_as_strings_across_dtypes():
    df = pd.DataFrame(
        {
            "b": [True, False, None],
            "i": [1, 2, 3],
            "cat": pd.Categorical(["x", None, "y"]),
            "mixed": pd.Series([1, "1", 2.5], dtype=object),
            "y": 1.0,
        }
    )
    pre = _fit(df, Schema(categorical=["b", "i", "cat", "mixed"], targets=["y"]))
    assert pre.categories_ == {
        "b": ["False", "True"],
        "i": ["1", "2", "3"],
        "cat": ["x", "y"],
        "mixed": ["1", "2.5"],
    }


def test_integer_category_read_with_gaps_still_matches():
    train = pd.DataFrame({"zip": [1000, 2000, 3000], "y": 1.0})
    pre = _fit(train, Schema(categorical=["zip"], targets=["y"]))
    x, _ = pre.transform(pd.DataFrame({"zip": [2000.0, np.nan, 3000.0]}))  # float after a gap
    assert x.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]


def test_categories_come_from_training_rows_only():
    df = pd.DataFrame({"c": ["a", "b", "c", "d"], "y": 1.0})
    pre = _fit(df.iloc[:2], Schema(categorical=["c"], targets=["y"]))
    assert pre.categories_["c"] == ["a", "b"]
    assert pre.transform(df)[0][2:].sum() == 0


# -- layout and columns --------------------------------------------------------------


def test_layout_and_column_order(regression_frame):
    cfg = DataConfig()
    schema = infer_schema(regression_frame, "y", cfg)
    pre = Preprocessor(schema, cfg).fit(regression_frame)
    assert pre.feature_names == [
        "a",
        "b",
        "b__missing",
        "color=blue",
        "color=green",
        "color=red",
    ]
    x, x_cat = pre.transform(regression_frame)
    assert x.shape == (300, pre.n_num) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x_cat.shape == (300, 0)
    shuffled = regression_frame[["y", "color", "b", "a"]].assign(extra=1)
    assert np.array_equal(pre.transform(shuffled)[0], x)


def test_empty_transform(regression_frame):
    pre = Preprocessor(infer_schema(regression_frame, "y")).fit(regression_frame)
    x, x_cat = pre.transform(regression_frame.iloc[:0])
    assert x.shape == (0, pre.n_num) and x_cat.shape == (0, 0)


def test_missing_column_at_transform(regression_frame):
    pre = Preprocessor(infer_schema(regression_frame, "y")).fit(regression_frame)
    with pytest.raises(DataError, match=r"missing column\(s\) the model needs: 'color'"):
        pre.transform(regression_frame.drop(columns="color"))


def test_fit_on_no_rows(regression_frame):
    with pytest.raises(DataError, match="cannot fit preprocessing on 0 rows"):
        Preprocessor(infer_schema(regression_frame, "y")).fit(regression_frame.iloc[:0])


def test_not_fitted():
    pre = Preprocessor(NUM)
    with pytest.raises(RuntimeError, match="not fitted; call fit"):
        pre.transform(pd.DataFrame({"a": [1.0], "b": [1.0]}))
    with pytest.raises(RuntimeError, match="call fit_target"):
        pre.inverse_target(np.zeros((1, 1)))
    assert "not fitted" in repr(pre)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("numeric_transform", "log", "numeric_transform must be one of quantile, standard, none"),
        ("target_transform", "log", "target_transform must be one of standard, none"),
        ("n_quantiles", 1, "n_quantiles must be at least 2, however: 1"),
    ],
)
def test_bad_config(option, value, message):
    with pytest.raises(ConfigError, match=message):
        Preprocessor(NUM, DataConfig(**{option: value}))


# -- target ----------------------------------------------------------------------------


def test_target_standardised_and_inverted(num_frame):
    pre = _fit(num_frame, NUM)  # fit() fits the target when present
    z = pre.transform_target(num_frame)
    assert z.shape == (200, 1) and z.dtype == np.float32
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    y = pre.inverse_target(z)
    np.testing.assert_allclose(y[:, 0], num_frame["y"].to_numpy(), rtol=1e-5, atol=1e-5)


def test_multi_target_per_column():
    y = np.column_stack([np.arange(10.0), 100 + 10 * np.arange(10.0), np.full(10, 7.0)])
    pre = Preprocessor(Schema(numeric=["a"], targets=["p", "q", "r"])).fit_target(y)
    z = pre.transform_target(y)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1, rtol=1e-6)
    assert (z[:, 2] == 0).all() and pre.target_std_[2] == 1.0  # constant: std 0 -> 1
    np.testing.assert_allclose(pre.inverse_target(z), y, rtol=1e-6, atol=1e-6)


def test_target_accepts_1d_and_series():
    pre = Preprocessor(NUM).fit_target(pd.Series([1.0, 3.0]))
    assert pre.transform_target(np.array([1.0, 3.0])).ravel().tolist() == [-1.0, 1.0]


def test_target_transform_none():
    pre = Preprocessor(NUM, DataConfig(target_transform="none")).fit_target(
        np.array([[5.0], [7.0]])
    )
    assert pre.transform_target(np.array([[5.0]])).tolist() == [[5.0]]


def test_target_errors():
    pre = Preprocessor(NUM)
    with pytest.raises(DataError, match="NaN/inf values; pass the table through clean_target"):
        pre.fit_target(np.array([1.0, np.nan]))
    with pytest.raises(DataError, match=r"shape \(n, 1\), however: shape \(2, 2\)"):
        pre.fit_target(np.ones((2, 2)))
    with pytest.raises(DataError, match="too large to standardise"):
        pre.fit_target(np.array([1e308, 1e308, -1e308]))


# -- state -----------------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["quantile", "standard", "none"])
def test_save_load_identical(regression_frame, transform):
    cfg = DataConfig(numeric_transform=transform, onehot_max_cardinality=2)
    pre = Preprocessor(infer_schema(regression_frame, "y", cfg), cfg).fit(regression_frame)
    loaded = _reload(pre)
    for a, b in zip(pre.transform(regression_frame), loaded.transform(regression_frame)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    z = pre.transform_target(regression_frame)
    assert np.array_equal(loaded.inverse_target(z), pre.inverse_target(z))
    assert (loaded.n_num, loaded.cardinalities, loaded.feature_names) == (
        pre.n_num,
        pre.cardinalities,
        pre.feature_names,
    )
    assert loaded.to_dict() == pre.to_dict()


def test_state_without_target_round_trips():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    pre = Preprocessor(Schema(numeric=["a"], targets=["y"])).fit(df)
    assert _reload(pre).to_dict()["target"] is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format=99), "format 99, expected 1"),
        (lambda d: d.pop("median"), "corrupted \\(KeyError"),
        (lambda d: d.update(median=[1.0]), "corrupted \\(ValueError: expected 2 numbers"),
        (lambda d: d.update(categories={"zz": []}), "columns do not match the schema"),
        (lambda d: d.update(quantiles=[[0.0]]), "do not match the columns"),
    ],
)
def test_corrupted_state(num_frame, mutate, message):
    state = _fit(num_frame, NUM).to_dict()
    mutate(state)
    with pytest.raises(ModelFileError, match=message):
        Preprocessor.from_dict(state)


def test_state_must_be_a_dict():
    with pytest.raises(ModelFileError, match="format 'list'"):
        Preprocessor.from_dict([])
