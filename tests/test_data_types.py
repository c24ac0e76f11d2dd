"""Column types the user can see and trust (issue 13): no silent type decision.

- a column that mostly holds numbers is numeric, its few other cells missing,
  with one warning naming the column, the count and examples;
- date strings and datetimes become numeric date features, with a note, and
  survive save/load and predict on raw columns;
- every role is one line of ``Schema.describe()`` and a role in data_summary;
- at predict time, unusable cells are counted per column in one warning, or
  raise with ``strict=True``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import tabresnet
from tabresnet.data import Preprocessor, Schema, infer_schema, read_table
from tabresnet.defaults import DataConfig
from tabresnet.errors import DataError, TabResNetWarning

TINY = dict(num_blocks=[1], c_hidden=[8], max_epochs=2, progress="none", report=False)


def _ours(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, TabResNetWarning)]


def _infer(df, target="y", cfg=None):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        schema = infer_schema(df, target, cfg)
    return schema, _ours(record)


@pytest.fixture
def ages() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    age = rng.integers(18, 65, 400).astype(float)
    df = pd.DataFrame({"age": age, "y": age * 0.1 + rng.normal(scale=0.1, size=400)})
    return df


# -- numbers in text --------------------------------------------------------------------


def test_one_typo_in_a_csv_keeps_the_column_numeric_with_one_warning(ages, tmp_path):
    df = ages.astype({"age": object})
    df.loc[7, "age"] = "thirty"
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    frame = read_table(path)
    assert frame["age"].dtype.kind not in "fi"  # pandas reads the column as text
    schema, messages = _infer(frame)
    assert schema.numeric == ["age"] and schema.categorical == []
    assert messages == [
        "column 'age': 1 of 400 values are not numbers ('thirty'); they count as missing - "
        "fix them, or list the column in categorical to keep it as text"
    ]


def test_the_typo_cells_become_missing_and_the_rest_are_numbers(ages):
    df = ages.astype({"age": object})
    df.loc[[3, 5], "age"] = ["thirty", "n.a"]
    schema, messages = _infer(df)
    assert len(messages) == 1 and "2 of 400" in messages[0] and "'thirty', 'n.a'" in messages[0]
    pre = Preprocessor(schema, DataConfig(numeric_transform="none")).fit(df)
    assert pre.feature_names == ["age", "age__missing"]
    x, _ = pre.transform(df)
    assert x[3, 1] == 1.0 and x[0, 1] == 0.0 and x[0, 0] == ages.age[0]


def test_mostly_text_stays_categorical_without_a_warning():
    df = pd.DataFrame({"code": ["a", "b", "c", "d", "1"] * 20, "y": np.arange(100.0)})
    schema, messages = _infer(df)
    assert schema.categorical == ["code"] and messages == []


def test_missing_spelled_as_text_is_missing_not_a_bad_value():
    df = pd.DataFrame({"n": ["1.5", "", "n/a", "NULL", "2"] * 10, "y": np.arange(50.0)})
    schema, messages = _infer(df)
    assert schema.numeric == ["n"] and messages == []


def test_numbers_with_leading_zeros_are_codes_and_say_so():
    df = pd.DataFrame({"zip": ["02134", "10001", "94105", "02139"] * 10, "y": np.arange(40.0)})
    schema, messages = _infer(df)
    assert schema.categorical == ["zip"]
    assert messages == ["column 'zip' holds numbers written with leading zeros ('02134'): read "
                        "as codes (categories) - list it in numeric to read them as numbers"]


@pytest.mark.parametrize("junk", [False, True])
def test_a_csv_of_zero_padded_codes_reads_as_text_with_or_without_a_junk_cell(tmp_path, junk):
    codes = [f"{i % 7:05d}" for i in range(40)]
    if junk:
        codes[3] = "unknown"
    path = tmp_path / "t.csv"
    path.write_text("code,n,y\n" + "".join(f"{c},{i},{i}.5\n" for i, c in enumerate(codes)))
    frame = read_table(path)
    assert frame["code"].iloc[0] == "00000" and frame["n"].dtype.kind == "i"  # plain ints stay
    schema, messages = _infer(frame)
    assert schema.categorical == ["code"] and "leading zeros" in messages[0]


def test_text_that_is_mostly_numbers_says_why_it_is_categories():
    values = [str(v / 10) for v in range(40)]
    values[::10] = ["abc"] * 4  # 10%: more than the 5% a numeric column may lose
    schema, messages = _infer(pd.DataFrame({"rm": values, "y": np.arange(40.0)}))
    assert schema.categorical == ["rm"]
    assert messages == ["column 'rm' has 36 numbers among 40 values but also 4 that are not "
                        "('abc'): read as text (categories) - clean or empty those cells to use "
                        "it as numbers"]


@pytest.mark.parametrize("cell", ["$46,900", "4.3%", "1 250", "€12"])
def test_numbers_with_symbols_say_they_are_read_as_text(cell):
    schema, messages = _infer(pd.DataFrame({"v": [cell] * 30, "y": np.arange(30.0)}))
    assert schema.categorical == ["v"]
    assert messages == [f"column 'v' holds numbers written with symbols or separators ({cell!r}): "
                        "read as text (categories) - write them as plain numbers to use them as "
                        "numbers"]


def test_a_category_dtype_stays_categorical():
    df = pd.DataFrame({"k": pd.Categorical(["1", "2", "3"] * 5), "y": np.arange(15.0)})
    assert _infer(df)[0].categorical == ["k"]


def test_decimal_comma_csv_still_reads_as_numbers(tmp_path):
    path = tmp_path / "eu.csv"
    rows = [f"{i},5;{i % 3};{2 * i},25" for i in range(30)] + ["drei;1;7,5"]
    path.write_text("a;b;y\n" + "\n".join(rows) + "\n")
    frame = read_table(path)
    schema, messages = _infer(frame)
    assert schema.numeric == ["a", "b"] and len(messages) == 1 and "'drei'" in messages[0]
    values = Preprocessor(schema, DataConfig(numeric_transform="none")).fit(frame)
    assert values.transform(frame)[0][1, 0] == 1.5


# -- dates ---------------------------------------------------------------------------------


def test_date_strings_become_numeric_date_features_with_a_note(tmp_path):
    path = tmp_path / "sales.csv"
    dates = pd.date_range("2020-01-01", periods=60, freq="7D")
    pd.DataFrame({"sold": dates.strftime("%Y-%m-%d"), "y": np.arange(60.0)}).to_csv(
        path, index=False
    )
    schema, messages = _infer(read_table(path))
    assert schema.dates == ["sold"] and schema.categorical == [] and schema.ignored == []
    assert messages == [
        "column 'sold' holds dates (%Y-%m-%d); it becomes 5 numeric features (days, year, "
        "month, day, weekday) - list it in ignore to leave it out"
    ]
    pre = Preprocessor(schema, DataConfig(numeric_transform="none")).fit(read_table(path))
    assert pre.feature_names == [f"sold__{p}" for p in ("days", "year", "month", "day",
                                                        "weekday")]
    x, _ = pre.transform(read_table(path))
    # 2020-01-08: day 18269 since 1970-01-01, a Wednesday (2).
    assert x[1].tolist() == [18269.0, 2020.0, 1.0, 8.0, 2.0]


def test_datetimes_with_a_time_zone_are_read_in_utc():
    ts = pd.date_range("2021-03-01 23:30", periods=10, freq="D", tz="Europe/Oslo")
    df = pd.DataFrame({"t": ts, "y": np.arange(10.0)})
    schema, messages = _infer(df)
    assert schema.dates == ["t"] and len(messages) == 1
    pre = Preprocessor(schema, DataConfig(numeric_transform="none")).fit(df)
    x, _ = pre.transform(df)
    assert x[0, 3] == 1.0  # 23:30 in Oslo is 22:30 UTC on the 1st


def test_month_names_are_not_dates():
    df = pd.DataFrame({"m": ["May", "June", "July"] * 5, "y": np.arange(15.0)})
    assert _infer(df)[0].categorical == ["m"]


def test_a_date_column_survives_save_load_and_predicts_on_raw_columns(tmp_path):
    rng = np.random.default_rng(1)
    days = rng.integers(0, 700, 200)
    sold = (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")).strftime("%d/%m/%Y")
    df = pd.DataFrame({"sold": sold, "a": rng.normal(size=200)})
    df["y"] = days / 100 + df.a
    with pytest.warns(TabResNetWarning, match="'sold' holds dates"):
        run = tabresnet.fit(df, "y", out=tmp_path / "run", **TINY)
    assert run.model.schema.dates == ["sold"]
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["schema"]["dates"] == ["sold"]
    assert meta["preprocessor"]["format"] == 2
    assert meta["preprocessor"]["date_formats"] == {"sold": "%d/%m/%Y"}
    loaded = tabresnet.load(tmp_path / "run")
    raw = df[["a", "sold"]]  # raw columns, another order, no target
    np.testing.assert_allclose(loaded.predict(raw), run.model.predict(df), rtol=1e-6)
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert {c["name"]: c["role"] for c in summary["columns"]}["sold"] == "date"


def test_a_model_without_dates_keeps_preprocessing_format_1(regression_frame):
    run = tabresnet.fit(regression_frame, "y", **TINY)
    state = run.model.preprocessor.to_dict()
    assert state["format"] == 1 and "date_formats" not in state
    assert "dates" in Schema.from_dict({k: v for k, v in state["schema"].items()
                                       if k != "dates"}).to_dict()


# -- the roles, as the user sees them ------------------------------------------------------


def test_describe_gives_one_compact_line_per_role():
    s = Schema(numeric=[f"n{i}" for i in range(11)], categorical=["c"], targets=["y"],
               ignored=["id"], dates=["d"])
    assert s.describe(max_names=3) == [
        "target (1): y",
        "numeric (11): n0, n1, n2, ... (8 more)",
        "categorical (1): c",
        "date (1): d (as days, year, month, day, weekday)",
        "ignored (1): id",
    ]
    assert Schema(numeric=["a"], targets=["y"]).describe() == ["target (1): y", "numeric (1): a"]


def test_schema_warnings_are_tabresnet_warnings(ages):
    ages["empty"] = np.nan
    with pytest.warns(TabResNetWarning, match="'empty' has no values"):
        infer_schema(ages, "y")
    from tabresnet.data import clean_target

    ages.loc[0, "y"] = np.nan
    with pytest.warns(TabResNetWarning, match="dropped 1 of 400 rows"):
        clean_target(ages, "y")


# -- predict time --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "c": rng.choice(["red", "green", "blue"], n)})
    df["y"] = df.a - df.b
    out = tmp_path_factory.mktemp("strict") / "run"
    tabresnet.fit(df, "y", out=out, **TINY)
    return tabresnet.load(out), df


def test_predict_counts_unusable_cells_per_column_in_one_warning(model):
    m, df = model
    new = df.head(6).astype({"a": object}).copy()
    new.loc[0, "a"], new.loc[1, "a"], new.loc[2, "a"] = "1,5", "oops", "n/a"
    new.loc[3, "c"] = "purple"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pred = m.predict(new)
    assert np.isfinite(pred).all()
    assert _ours(record) == [
        "3 cells cannot be used as trained and count as missing: a: 2 not numbers "
        "('1,5', 'oops'); c: 1 unseen categories ('purple')"
    ]


def test_strict_predict_raises_instead(model):
    m, df = model
    new = df.head(3).copy()
    new.loc[0, "c"] = "purple"
    with pytest.raises(DataError, match=r"1 cell cannot be used as trained: c: 1 unseen "
                                        r"categories \('purple'\); fix them, or predict"):
        m.predict(new, strict=True)
    with pytest.raises(DataError, match="unseen categories"):
        m.predict_frame(new, strict=True)
    with pytest.raises(DataError, match="unseen categories"):
        m.evaluate(new, strict=True)


def test_a_clean_table_predicts_without_a_word_even_when_strict(model):
    m, df = model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.predict(df, strict=True)
        m.predict(df.assign(c=[None] * len(df)), strict=True)  # missing is not unseen


def test_unusable_cells_of_a_separate_validation_or_test_table_are_named_at_fit(ages):
    ages["town"] = np.where(np.arange(len(ages)) % 2, "north", "south")
    val = ages.iloc[:40].astype({"age": object}).copy()
    val.loc[3, "age"] = "n/a?"
    test = ages.iloc[40:80].copy()
    test.loc[41, "town"] = "east"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tabresnet.fit(ages.iloc[80:], "y", val_data=val, test_data=test, **TINY)
    messages = _ours(record)
    assert "1 cell of the validation data cannot be used as trained and count as missing: " \
           "age: 1 not numbers ('n/a?')" in messages
    assert "1 cell of the test data cannot be used as trained and count as missing: " \
           "town: 1 unseen categories ('east')" in messages


def test_a_bag_does_not_warn_about_its_own_folds(ages):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tabresnet.fit(ages, "y", bag=2, **TINY)
    assert not [m for m in _ours(record) if "cannot be used" in m]


def test_a_column_of_lists_or_mappings_is_ignored_with_a_warning():
    df = pd.DataFrame({"tags": [["a", "b"], ["c"]] * 20, "meta": [{"k": 1}] * 40,
                       "x": np.arange(40) % 3, "y": np.arange(40.0)})
    schema, messages = _infer(df)
    assert schema.ignored == ["tags", "meta"] and schema.numeric == ["x"]
    assert messages[0] == ("column 'tags' holds lists or mappings, not single values; ignoring "
                           "it - spread them over columns of their own to use them")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TabResNetWarning)
        run = tabresnet.fit(df, "y", max_epochs=1, num_blocks=[1], c_hidden=[8],
                            progress="none", report=False)  # end to end, the summary included
    assert run.predict(df).shape == (40,)


def test_dates_that_read_day_first_and_month_first_alike_say_so():
    days = [f"0{d}/0{m}/2000" for d in range(1, 10) for m in range(1, 4)]
    schema, messages = _infer(pd.DataFrame({"d": days, "y": np.arange(27.0)}))
    assert schema.dates == ["d"]
    assert "no day in it is above 12, so it reads as %d/%m/%Y and as its day and month " \
           "swapped" in messages[0]
    clear = [f"{d}/01/2000" for d in range(10, 30)]  # 13 and above: day first for sure
    assert "swapped" not in _infer(pd.DataFrame({"d": clear, "y": np.arange(20.0)}))[1][0]


def test_iso_dates_on_the_first_of_each_month_read_as_months_without_a_doubt():
    # Every day is 1: year-day-month would fit as well; no one writes it.
    dates = pd.date_range("2020-01-01", periods=24, freq="MS").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"d": dates, "y": np.arange(24.0)})
    schema, messages = _infer(frame)
    assert "swapped" not in messages[0] and "(%Y-%m-%d)" in messages[0]
    from tabresnet.data.schema import date_format, date_parts

    months = date_parts(frame["d"], date_format(frame["d"]))[0][:, 2]
    assert months.tolist() == [float(m) for m in list(range(1, 13)) * 2]


def test_unique_prices_as_text_are_numbers_as_text_not_an_identifier():
    prices = [f"${1000 + 1.5 * i:,.2f}" for i in range(30)]  # a different one in every row
    schema, messages = _infer(pd.DataFrame({"p": prices, "y": np.arange(30.0)}))
    assert schema.categorical == ["p"] and len(messages) == 1
    assert "numbers written with symbols" in messages[0]


def test_cells_that_spell_missing_draw_no_numbers_warning():
    frame = pd.DataFrame({"m": ["n/a"] * 15 + [""] * 15, "x": np.arange(30) % 3,
                          "y": np.arange(30.0)})
    assert not any("numbers" in m for m in _infer(frame)[1])
