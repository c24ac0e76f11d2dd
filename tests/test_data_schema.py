"""infer_schema, check_columns and clean_target: roles, overrides and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from tabresnet.data import Schema, check_columns, clean_target, infer_schema
from tabresnet.defaults import DataConfig
from tabresnet.errors import DataError, ModelFileError


@pytest.fixture
def mixed() -> pd.DataFrame:
    n = 6
    return pd.DataFrame(
        {
            "f": np.linspace(0, 1, n),
            "i": [1, 2, 3, 1, 2, 3],
            "s": ["a", "b", "a", "b", "a", "b"],
            "cat": pd.Categorical(["u", "v"] * 3),
            "b": [True, False] * 3,
            "nullable": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "y": np.arange(n, dtype=float),
        }
    )


def _quiet(df, targets, cfg=None):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these must not warn
        return infer_schema(df, targets, cfg)


# -- roles ---------------------------------------------------------------------


def test_roles_by_dtype(mixed):
    s = _quiet(mixed, "y", DataConfig())
    assert s.numeric == ["f", "i", "nullable"]
    assert s.categorical == ["s", "cat", "b"]
    assert s.targets == ["y"]
    assert s.ignored == []
    assert s.feature_columns == ["f", "i", "nullable", "s", "cat", "b"]


def test_cfg_defaults_to_dataconfig(mixed):
    assert infer_schema(mixed, "y") == infer_schema(mixed, "y", DataConfig())


def test_int_as_categorical(mixed):
    s = _quiet(mixed, "y", DataConfig(int_as_categorical=3))
    assert "i" in s.categorical
    assert "f" in s.numeric  # not integral
    s = _quiet(mixed, "y", DataConfig(int_as_categorical=2))
    assert "i" in s.numeric  # 3 distinct values > 2


def test_int_as_categorical_applies_to_integral_floats_with_gaps():
    df = pd.DataFrame({"rooms": [1.0, 2.0, np.nan, 2.0], "y": [1.0, 2.0, 3.0, 4.0]})
    assert _quiet(df, "y", DataConfig(int_as_categorical=5)).categorical == ["rooms"]


def test_int_as_categorical_off_by_default(mixed):
    assert DataConfig().int_as_categorical == 0
    assert "i" in _quiet(mixed, "y").numeric


def test_overrides(mixed):
    cfg = DataConfig(categorical=["i"], numeric=["b"], ignore=["s"])
    s = _quiet(mixed, "y", cfg)
    assert "i" in s.categorical and "b" in s.numeric and s.ignored == ["s"]


def test_numeric_override_accepts_numeric_strings():
    df = pd.DataFrame({"n": ["1", "2.5", None], "y": [1.0, 2.0, 3.0]})
    assert _quiet(df, "y", DataConfig(numeric=["n"])).numeric == ["n"]


def test_numeric_override_rejects_text():
    df = pd.DataFrame({"n": ["1", "abc", "x"], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(
        DataError, match=r"'n' is in numeric but has non-numeric values, e.g. 'abc'"
    ):
        infer_schema(df, "y", DataConfig(numeric=["n"]))


def test_numeric_override_rejects_dates():
    df = pd.DataFrame({"d": pd.date_range("2020", periods=3), "y": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="'d' .* is in numeric but cannot be read as numbers"):
        infer_schema(df, "y", DataConfig(numeric=["d"]))


def test_multi_target(mixed):
    mixed["y2"] = mixed["y"] * 2
    s = _quiet(mixed, ["y", "y2"])
    assert s.targets == ["y", "y2"]
    assert "y2" not in s.feature_columns


# -- warnings: columns left out ----------------------------------------------------


def test_all_missing_column_is_ignored_with_warning(mixed):
    mixed["empty"] = np.nan
    with pytest.warns(UserWarning, match=r"column 'empty' has no values \(all missing"):
        s = infer_schema(mixed, "y")
    assert s.ignored == ["empty"]


def test_all_missing_text_column(mixed):
    mixed["empty"] = pd.Series([None] * len(mixed), dtype=object)
    with pytest.warns(UserWarning, match="'empty' has no values"):
        assert infer_schema(mixed, "y").ignored == ["empty"]


def test_all_infinite_column_is_ignored(mixed):
    mixed["inf"] = np.inf
    with pytest.warns(UserWarning, match="'inf' has no values"):
        assert infer_schema(mixed, "y").ignored == ["inf"]


def test_all_missing_wins_over_override(mixed):
    mixed["empty"] = np.nan
    with pytest.warns(UserWarning, match="'empty'"):
        s = infer_schema(mixed, "y", DataConfig(categorical=["empty"]))
    assert "empty" in s.ignored and "empty" not in s.categorical


def test_datetime_becomes_a_date_column_and_timedelta_is_ignored(mixed):
    mixed["when"] = pd.date_range("2021-01-01", periods=len(mixed))
    mixed["dt"] = pd.to_timedelta(np.arange(len(mixed)), unit="s")
    with pytest.warns(UserWarning) as record:
        s = infer_schema(mixed, "y")
    assert s.dates == ["when"] and s.ignored == ["dt"]
    messages = [str(w.message) for w in record]
    assert messages[0].startswith("column 'when' holds dates (datetime64")
    assert "5 numeric features (days, year, month, day, weekday)" in messages[0]
    assert messages[1].startswith("column 'dt' holds dates or times (timedelta64")
    assert "derive numeric features" in messages[1]


def test_datetime_can_be_forced_categorical(mixed):
    mixed["when"] = pd.date_range("2021-01-01", periods=len(mixed))
    assert "when" in _quiet(mixed, "y", DataConfig(categorical=["when"])).categorical


def test_complex_is_ignored_with_warning(mixed):
    mixed["z"] = np.ones(len(mixed)) * 1j
    with pytest.warns(UserWarning, match="'z' has unsupported dtype complex128"):
        assert infer_schema(mixed, "y").ignored == ["z"]


@pytest.mark.parametrize("start", [0, 1])
def test_a_column_that_numbers_the_rows_is_ignored_with_a_warning(start):
    n = 40
    frame = pd.DataFrame({"Unnamed: 0": np.arange(start, start + n), "x": np.ones(n),
                          "y": np.arange(n) % 7})
    with pytest.warns(UserWarning) as record:
        s = infer_schema(frame, "y")
    assert s.ignored == ["Unnamed: 0"] and s.numeric == ["x"]
    message = str(record[0].message)
    assert message.startswith(f"column 'Unnamed: 0' only numbers the rows ({start}, {start + 1},")
    assert message.endswith("ignoring it - list it in numeric to use it")
    assert _quiet(frame, "y", DataConfig(numeric=["Unnamed: 0"])).numeric == ["Unnamed: 0", "x"]


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).permutation(40),         # shuffled: not the row order
    np.r_[np.arange(39), 40],                         # one gap
    np.r_[np.arange(39.0), np.nan],                   # a missing value
    np.arange(40) * 2,                                # a step of two
])
def test_numbers_that_are_not_the_row_number_stay_features(values):
    frame = pd.DataFrame({"index": values, "y": np.ones(40)})
    assert _quiet(frame, "y").numeric == ["index"]


@pytest.mark.parametrize("name", ["rownames", "index", "", "...1", "ID", "Unnamed: 3"])
def test_index_names_saved_by_pandas_and_r_are_recognised(name):
    frame = pd.DataFrame({name: np.arange(1, 31), "x": np.ones(30), "y": np.ones(30)})
    with pytest.warns(UserWarning, match="only numbers the rows"):
        assert infer_schema(frame, "y").ignored == [name]


def test_an_in_order_count_under_another_name_stays_a_feature():
    frame = pd.DataFrame({"step": np.arange(40), "y": np.ones(40)})
    assert _quiet(frame, "y").numeric == ["step"]


def test_a_short_table_keeps_its_row_numbers():
    frame = pd.DataFrame({"index": np.arange(19), "y": np.ones(19)})
    assert _quiet(frame, "y").numeric == ["index"]


def test_text_with_a_different_value_in_every_row_is_ignored_with_a_warning():
    n = 30
    frame = pd.DataFrame({"name": [f"car {i}" for i in range(n)],
                          "make": ["a", "b", "c"] * 10, "y": np.ones(n)})
    with pytest.warns(UserWarning, match=r"column 'name' has a different value in each of its "
                      r"30 rows \(an identifier\?\); ignoring it - list it in categorical"):
        s = infer_schema(frame, "y")
    assert s.ignored == ["name"] and s.categorical == ["make"]
    assert _quiet(frame, "y", DataConfig(categorical=["name"])).categorical == ["name", "make"]


@pytest.mark.parametrize("column", [
    pd.Series([f"c{i}" for i in range(30)], dtype="category"),   # declared categories
    pd.Series([f"c{i}" for i in range(29)] + [None]),             # a missing value
    pd.Series([str(i * 1.5) for i in range(30)]),                 # numbers as text
    pd.Series([f"c{i}" for i in range(19)]),                      # too few rows to tell
])
def test_unique_text_that_is_not_an_identifier_stays_a_feature(column):
    frame = pd.DataFrame({"c": column, "y": np.ones(len(column))})
    assert _quiet(frame, "y").feature_columns == ["c"]


def test_ignore_option_does_not_warn(mixed):
    mixed["empty"] = np.nan
    assert _quiet(mixed, "y", DataConfig(ignore=["empty"])).ignored == ["empty"]


# -- errors ------------------------------------------------------------------------


def test_unknown_target_lists_columns():
    df = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(DataError, match=r"^target column 'price' not found; columns are: a, b$"):
        infer_schema(df, "price")


def test_unknown_targets_plural():
    df = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(DataError, match=r"target columns 'p', 'q' not found"):
        infer_schema(df, ["a", "p", "q"])


def test_long_column_listing_is_truncated():
    df = pd.DataFrame({f"c{i}": [1] for i in range(50)})
    with pytest.raises(DataError, match=r"c19, \.\.\. \(30 more\)$"):
        infer_schema(df, "nope")


def test_empty_or_duplicate_targets(mixed):
    with pytest.raises(DataError, match="no target column given"):
        infer_schema(mixed, [])
    with pytest.raises(DataError, match="given twice: y"):
        infer_schema(mixed, ["y", "y"])


def test_a_target_given_as_values_is_refused_with_its_name(mixed):
    import tabresnet

    with pytest.raises(DataError, match=r"however it is a Series of \d+ values; put the values "
                       r"in a column of the data and pass its name \(target='y'\)"):
        tabresnet.fit(mixed, mixed["y"])


def test_all_missing_target_is_an_error(mixed):
    mixed["y"] = np.nan
    with pytest.raises(DataError, match="target column 'y' is entirely missing"):
        infer_schema(mixed, "y")


@pytest.mark.parametrize("option", ["categorical", "numeric", "ignore"])
def test_unknown_override_names_it(mixed, option):
    with pytest.raises(
        DataError, match=rf"unknown column\(s\) in {option}: 'nope'; columns are: f, i"
    ):
        infer_schema(mixed, "y", DataConfig(**{option: ["nope"]}))


def test_column_in_two_overrides(mixed):
    with pytest.raises(DataError, match="'i' is in both categorical and numeric"):
        infer_schema(mixed, "y", DataConfig(categorical=["i"], numeric=["i"]))


def test_target_in_override(mixed):
    with pytest.raises(DataError, match="'y' is a target column; remove it from ignore"):
        infer_schema(mixed, "y", DataConfig(ignore=["y"]))


def test_no_features_left():
    df = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"no feature columns left.*ignored: a"):
        infer_schema(df, "y", DataConfig(ignore=["a"]))


# -- Schema ------------------------------------------------------------------------


def test_schema_dict_round_trip_through_json(mixed):
    s = _quiet(mixed, "y")
    assert Schema.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    "bad",
    [
        {"numeric": []},
        [],
        {"numeric": "a", "categorical": [], "targets": [], "ignored": []},
        {"numeric": [1], "categorical": [], "targets": [], "ignored": []},
    ],
)
def test_schema_from_bad_dict(bad):
    with pytest.raises(ModelFileError, match="schema is corrupted"):
        Schema.from_dict(bad)


# -- check_columns -------------------------------------------------------------------


def test_check_columns_any_order_and_extras():
    s = Schema(numeric=["a"], categorical=["c"], targets=["y"])
    check_columns(pd.DataFrame({"c": ["x"], "zz": [0], "a": [1.0]}), s)  # no target needed


def test_check_columns_names_missing():
    s = Schema(numeric=["a", "b"], categorical=["c"], targets=["y"])
    with pytest.raises(
        DataError, match=r"missing column\(s\) the model needs: 'b', 'c'; the table has: a, y"
    ):
        check_columns(pd.DataFrame({"a": [1.0], "y": [1.0]}), s)


# -- clean_target ----------------------------------------------------------------------


def test_clean_target_drops_nan_and_inf_with_count():
    df = pd.DataFrame({"x": range(5), "y": [1.0, np.nan, np.inf, -np.inf, 5.0]})
    with pytest.warns(
        UserWarning, match=r"dropped 3 of 5 rows whose target is missing or infinite \(y: 3\)"
    ):
        out = clean_target(df, "y")
    assert out["x"].tolist() == [0, 4]
    assert out.index.tolist() == [0, 1]
    assert len(df) == 5  # input untouched


def test_clean_target_no_warning_when_clean():
    df = pd.DataFrame({"x": [1, 2], "y": [1, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = clean_target(df, "y")
    assert out["y"].dtype == np.float64


def test_clean_target_multi_counts_each():
    df = pd.DataFrame({"y1": [1.0, np.nan, 3.0, 4.0], "y2": [np.nan, np.nan, 3.0, np.inf]})
    with pytest.warns(UserWarning, match=r"dropped 3 of 4 rows .*\(y1: 1; y2: 3\)"):
        out = clean_target(df, ["y1", "y2"])
    assert out["y1"].tolist() == [3.0]


def test_clean_target_nullable_int():
    df = pd.DataFrame({"y": pd.array([1, None, 3], dtype="Int64")})
    with pytest.warns(UserWarning, match="dropped 1 of 3"):
        assert clean_target(df, "y")["y"].tolist() == [1.0, 3.0]


def test_clean_target_none_left():
    df = pd.DataFrame({"x": [1, 2], "y": [np.nan, np.inf]})
    with pytest.raises(DataError, match="no row has a finite target in y; nothing to train or score on"):
        clean_target(df, "y")


def test_clean_target_text_shows_bad_values():
    df = pd.DataFrame({"y": ["1.5", "n/a", "?", "2"]})
    with pytest.raises(DataError, match=r"'y' is not numeric \(.*\): values such as 'n/a', '\?'"):
        clean_target(df, "y")


def test_clean_target_numbers_as_text_is_strict_but_says_how():
    df = pd.DataFrame({"y": ["1.5", "2", None]})
    with pytest.raises(DataError, match=r"numbers stored as text .* pandas\.to_numeric"):
        clean_target(df, "y")


def test_clean_target_bool_and_dates():
    with pytest.raises(DataError, match="'y' is boolean"):
        clean_target(pd.DataFrame({"y": [True, False]}), "y")
    with pytest.raises(DataError, match=r"'y' is not numeric \(datetime64"):
        clean_target(pd.DataFrame({"y": pd.date_range("2020", periods=2)}), "y")


def test_clean_target_unknown_column():
    with pytest.raises(DataError, match="target column 'q' not found; columns are: y"):
        clean_target(pd.DataFrame({"y": [1.0]}), "q")


def test_targets_may_be_named_by_any_list_of_names():
    from tabresnet.data.schema import _as_targets

    for names in (pd.Index(["y"]), np.array(["y"]), ("y",), ["y"]):
        assert _as_targets(names) == ["y"]
    with pytest.raises(DataError, match="however it is a ndarray of 3 values"):
        _as_targets(np.arange(3.0))
