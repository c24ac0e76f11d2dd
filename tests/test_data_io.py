"""read_table: every supported source, and a one-line DataError for each bad one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabresnet.data import SUFFIXES, read_table
from tabresnet.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": [1.5, 2.5, np.nan], "city": ["Oslo", "Zürich", "東京"], "y": [1, 2, 3]}
    )


def _assert_one_line(exc: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".pq"])
def test_file_round_trip(tmp_path, frame, suffix):
    path = tmp_path / f"t{suffix}"
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    df = read_table(path)
    assert df.columns.tolist() == ["a", "city", "y"]
    assert df["city"].tolist() == ["Oslo", "Zürich", "東京"]
    np.testing.assert_allclose(df["a"].to_numpy(dtype=float), frame["a"].to_numpy())
    assert read_table(str(path)).shape == (3, 3)  # str paths too


@pytest.mark.parametrize("name", ["t.csv.gz", "t.CSV.GZ", "t.tsv.bz2", "t.txt.xz", "t.csv.zip"])
def test_compressed_text_tables(tmp_path, frame, name):
    path = tmp_path / name
    frame.to_csv(path, sep="\t" if ".tsv" in name else ",", index=False)  # pandas compresses
    df = read_table(path)
    assert df.columns.tolist() == ["a", "city", "y"]
    assert df["city"].tolist() == ["Oslo", "Zürich", "東京"]
    np.testing.assert_allclose(df["a"].to_numpy(dtype=float), frame["a"].to_numpy())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.parquet.gz", b"x", r"unknown file type '\.parquet\.gz'; supported: .* \.gz"),
        ("t.gz", b"x", r"unknown file type '\.gz'"),
        ("t.csv.gz", b"not gzip", r"cannot read .*t\.csv\.gz as delimited text: .*complete"),
    ],
)
def test_bad_compressed_files_are_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as exc:
        read_table(path)
    _assert_one_line(exc)


def test_a_zip_of_several_files_is_refused(tmp_path, frame):
    import zipfile

    path = tmp_path / "t.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", frame.to_csv(index=False))
        archive.writestr("b.csv", frame.to_csv(index=False))
    with pytest.raises(DataError, match="must hold exactly one table, it holds 2 files") as exc:
        read_table(path)
    _assert_one_line(exc)


@pytest.mark.parametrize("sep", [",", "\t", ";", "|"])
def test_txt_separator_is_sniffed(tmp_path, frame, sep):
    path = tmp_path / "t.txt"
    frame.to_csv(path, sep=sep, index=False)
    assert read_table(path).columns.tolist() == ["a", "city", "y"]


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_semicolon_csv_with_decimal_commas(tmp_path, frame, suffix):
    # What a spreadsheet saves in many locales: ";" between fields, "1,5" for 1.5.
    path = tmp_path / f"t{suffix}"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    assert ";" in path.read_text(encoding="utf-8") and "1,5" in path.read_text(encoding="utf-8")
    df = read_table(path)
    assert df.columns.tolist() == ["a", "city", "y"]
    np.testing.assert_allclose(df["a"].to_numpy(dtype=float), frame["a"].to_numpy())


def test_semicolon_csv_with_decimal_points_and_tab_csv(tmp_path, frame):
    path = tmp_path / "t.csv"
    frame.to_csv(path, sep=";", index=False)
    np.testing.assert_allclose(read_table(path)["a"].to_numpy(dtype=float), frame["a"])
    frame.to_csv(path, sep="\t", index=False)
    assert read_table(path).columns.tolist() == ["a", "city", "y"]


def test_a_saved_index_is_not_a_feature(tmp_path, frame):
    path = tmp_path / "t.csv"
    frame.to_csv(path)  # index=True: an empty first header cell
    df = read_table(path)
    assert df.columns.tolist() == ["a", "city", "y"]
    assert not any(c.startswith("Unnamed") for c in df.columns)


def test_txt_whitespace_separated(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a b  y\n1 2  3\n4 5  6\n", encoding="utf-8")
    df = read_table(path)
    assert df.columns.tolist() == ["a", "b", "y"]
    assert df["y"].tolist() == [3, 6]


def test_suffix_is_case_insensitive(tmp_path, frame):
    path = tmp_path / "T.CSV"
    frame.to_csv(path, index=False)
    assert read_table(path).shape == (3, 3)


def test_dataframe_is_copied(frame):
    df = read_table(frame)
    df.loc[0, "a"] = 99.0
    assert frame.loc[0, "a"] == 1.5


def test_dataframe_names_become_strings():
    df = read_table(pd.DataFrame(np.ones((2, 2))))
    assert df.columns.tolist() == ["0", "1"]


def test_numpy_array_gets_x_columns():
    df = read_table(np.arange(12.0).reshape(4, 3))
    assert df.columns.tolist() == ["x0", "x1", "x2"]
    assert df.dtypes.map(pd.api.types.is_float_dtype).all()


def test_object_array_numbers_become_numeric():
    arr = np.array([[1.0, "a"], [2.0, "b"]], dtype=object)
    df = read_table(arr)
    assert pd.api.types.is_float_dtype(df["x0"].dtype)
    assert df["x1"].tolist() == ["a", "b"]


def test_structured_array_keeps_field_names():
    arr = np.array([(1.0, 2), (3.0, 4)], dtype=[("f", "f8"), ("g", "i8")])
    assert read_table(arr).columns.tolist() == ["f", "g"]


def test_dict_of_arrays():
    df = read_table({"a": np.arange(3), "b": ["x", "y", "z"]})
    assert df.shape == (3, 2)


def test_missing_file():
    with pytest.raises(DataError, match=r"^file not found: .*nope\.csv$") as exc:
        read_table("nope.csv")
    _assert_one_line(exc)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        read_table(tmp_path)


def test_unknown_suffix_lists_supported(tmp_path):
    path = tmp_path / "t.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'; supported: \.csv") as exc:
        read_table(path)
    for suffix in SUFFIXES:
        assert suffix in str(exc.value)


def test_no_suffix(tmp_path):
    path = tmp_path / "table"
    path.write_text("a\n1\n")
    with pytest.raises(DataError, match=r"\(no suffix\)"):
        read_table(path)


def test_empty_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_table(path)


def test_header_only_has_no_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n")
    with pytest.raises(DataError, match=r"has no rows \(columns: a, b, y\)"):
        read_table(path)


def test_duplicate_csv_header_is_detected_not_mangled(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,a,y\n1,2,3,4\n")
    with pytest.raises(
        DataError, match=r"duplicate column name\(s\) in .*t\.csv: 'a'; rename"
    ) as exc:
        read_table(path)
    _assert_one_line(exc)


def test_genuine_dotted_name_is_not_a_duplicate(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,a.1,y\n1,2,3\n")
    assert read_table(path).columns.tolist() == ["a", "a.1", "y"]


def test_duplicate_dataframe_columns():
    df = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b"])
    with pytest.raises(DataError, match="duplicate column name.*'a'"):
        read_table(df)


def test_names_clashing_after_str():
    with pytest.raises(DataError, match="duplicate column name.*'1'"):
        read_table(pd.DataFrame({1: [1], "1": [2]}))


def test_corrupted_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"cannot read .* as Parquet: ") as exc:
        read_table(path)
    _assert_one_line(exc)


def test_not_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("a,city\n1,Zürich\n".encode("utf-16"))
    with pytest.raises(DataError, match="cannot read"):
        read_table(path)


def test_ragged_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match="as delimited text") as exc:
        read_table(path)
    _assert_one_line(exc)


def test_one_dimensional_array():
    with pytest.raises(DataError, match=r"must be 2-D .* shape \(3,\); reshape"):
        read_table(np.arange(3.0))


def test_empty_array():
    with pytest.raises(DataError, match="has no rows"):
        read_table(np.zeros((0, 3)))
    with pytest.raises(DataError, match="has no columns"):
        read_table(np.zeros((3, 0)))


def test_empty_dataframe():
    with pytest.raises(DataError, match="has no columns"):
        read_table(pd.DataFrame())


def test_dict_unequal_lengths():
    with pytest.raises(DataError, match=r"differ in length \(a=2, b=3\)"):
        read_table({"a": [1, 2], "b": [1, 2, 3]})


def test_dict_of_scalars_or_matrices():
    with pytest.raises(DataError, match="must be a 1-D array"):
        read_table({"a": 1.0})
    with pytest.raises(DataError, match="must be a 1-D array"):
        read_table({"a": np.ones((2, 2))})


def test_unsupported_source_type():
    with pytest.raises(DataError, match="cannot read a table from a int; pass a file path"):
        read_table(42)


def test_multiindex_columns():
    df = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    with pytest.raises(DataError, match="multi-level column names"):
        read_table(df)


def test_an_infinite_cell_reads_without_a_numpy_warning(tmp_path):
    import warnings

    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n190,7.4,67\ninf,8,72\n3,2.5,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_table(path)
    assert frame["a"].dtype.kind == "f" and frame["a"].iloc[1] == float("inf")
