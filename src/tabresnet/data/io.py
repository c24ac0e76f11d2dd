"""Read a table from a file or from memory into a pandas DataFrame.

Run it on a file to see what tabresnet will see::

    python -c "from tabresnet.data import read_table; print(read_table('data.csv').dtypes)"

Every failure is a one-line :class:`~tabresnet.errors.DataError` naming the
problem and the way out; nothing here raises a pandas or pyarrow traceback at
the user.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["COMPRESSIONS", "SUFFIXES", "is_stream", "read_table", "table_bytes"]

#: File suffixes :func:`read_table` understands, and the reader each one uses.
SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def _open_zip(path: Path) -> io.TextIOBase:
    """The one table in a zip archive, as text (pandas reads such an archive alike)."""
    archive = zipfile.ZipFile(path)
    names = [n for n in archive.namelist() if not n.endswith("/")]
    if len(names) != 1:
        archive.close()
        raise DataError(
            f"cannot read {path}: a zip archive must hold exactly one table, it holds "
            f"{len(names)} files; unzip it and pass the table's path"
        )
    return io.TextIOWrapper(archive.open(names[0]), encoding="utf-8", newline="")


#: Compressions of a text table (``table.csv.gz`` is ``table.csv``, compressed): each
#: suffix and how to open the file as text. pandas reads them alike.
COMPRESSIONS = {
    ".gz": partial(gzip.open, mode="rt", encoding="utf-8", newline=""),
    ".bz2": partial(bz2.open, mode="rt", encoding="utf-8", newline=""),
    ".xz": partial(lzma.open, mode="rt", encoding="utf-8", newline=""),
    ".zip": _open_zip,
}

# Separators tried when sniffing a .txt file; whitespace is the fallback.
_SNIFF_DELIMITERS = ",\t;|"
_SNIFF_BYTES = 64 * 1024
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")
_DECIMAL_POINT = re.compile(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?")


def read_table(source: Any) -> pd.DataFrame:
    """Read a table into a new DataFrame with string column names.

    Parameters
    ----------
    source : str, Path, DataFrame, numpy array or dict of arrays
        - a path ending in ``.csv`` (commas, or ``;`` / TAB when the header
          has no comma, with ``1,5`` decimal commas recognised), ``.tsv``,
          ``.txt`` (separator sniffed among ``, TAB ; |``, whitespace
          otherwise), ``.parquet`` or ``.pq``; a text table may be compressed
          (``.csv.gz``, ``.bz2``, ``.xz``, or a ``.zip`` of one file); a first header cell left
          empty marks a saved index, which is not read as a feature;
        - a DataFrame (copied; the caller's frame is never modified);
        - a 2-D numpy array ``(n_rows, n_columns)``: columns ``x0, x1, ...``
          (a structured array keeps its field names);
        - a dict mapping column names to equal-length 1-D arrays.

        In-memory object columns that hold only numbers become numeric
        (:meth:`pandas.DataFrame.infer_objects`).

    Returns
    -------
    pandas.DataFrame
        At least one row and one column; column names are unique strings.

    Raises
    ------
    DataError
        Missing or unreadable file, unknown suffix, empty table, duplicate
        column names, or an array that is not 2-D.

    Examples
    --------
    >>> import numpy as np
    >>> read_table(np.arange(6.0).reshape(3, 2)).columns.tolist()
    ['x0', 'x1']
    >>> read_table({"a": [1, 2], "b": ["u", "v"]}).shape
    (2, 2)
    >>> read_table("no/such/file.csv")
    Traceback (most recent call last):
    ...
    tabresnet.errors.DataError: file not found: no/such/file.csv
    """
    if isinstance(source, (str, PathLike)):
        df = _read_file(Path(source))
        where = str(source)
    elif isinstance(source, pd.DataFrame):
        df = source.copy().infer_objects()
        where = "the DataFrame"
    elif isinstance(source, np.ndarray):
        df = _from_array(source)
        where = "the array"
    elif isinstance(source, Mapping):
        df = _from_dict(source)
        where = "the dict"
    else:
        raise DataError(
            f"cannot read a table from a {type(source).__name__}; pass a file path "
            f"({', '.join(SUFFIXES)}), a pandas DataFrame, a 2-D numpy array or a dict of arrays"
        )
    return _check_frame(df, where)


# -- files ---------------------------------------------------------------------


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if not path.is_file():
        raise DataError(f"not a file: {path}; pass the path of a table file")
    kind = _table_kind(path, "read")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        sep, decimal = _separator(path)
        header = _raw_header(path, sep)
        # A first header cell left empty is a saved index (``DataFrame.to_csv``
        # writes one): it becomes the index, not a feature called "Unnamed: 0".
        index_col = 0 if len(header) > 1 and header[0].strip() == "" else None
        df = pd.read_csv(path, sep=sep, decimal=decimal, index_col=index_col)
        if decimal == ",":
            _decimal_commas_in_text(df)
        if index_col is not None:
            header = header[1:]
        _codes_stay_text(df, path, sep, header)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"file is empty: {path}; it needs a header line and data rows") from None
    except UnicodeDecodeError:
        raise DataError(f"cannot read {path}: it is not UTF-8 text; re-save it as UTF-8") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied") from None
    except Exception as exc:  # parser and pyarrow errors come in many classes
        what = "Parquet" if kind == "parquet" else "delimited text"
        raise DataError(
            f"cannot read {path} as {what}: {_first_line(exc)}; check that the file "
            "is complete and its suffix matches its format"
        ) from None
    # pandas renames a repeated header "a" to "a.1"; the raw header shows the truth.
    _check_unique(header, str(path))
    return df


#: Rows read as text to look for codes written with leading zeros (see _codes_stay_text).
_CODES_SAMPLE = 5000


def _codes_stay_text(df: pd.DataFrame, path: Path, sep: str, header: list[str]) -> None:
    """Give back their text to whole-number columns written with leading zeros.

    pandas reads ``"02134"`` as the number 2134, so a column of postcodes or
    product codes became numeric, while the same column with one text cell
    stayed text (codes); the schema reads such text as categories either way
    and says so (:func:`tabresnet.data.infer_schema`).
    """
    def integral(values: np.ndarray) -> bool:
        values = values[np.isfinite(values)]  # NaN and inf cells say nothing either way
        return bool(np.all(values == np.floor(values)))

    counts = Counter(header)
    names = {h for h in header if counts[h] == 1}  # as pandas names them
    whole = [c for c in df.columns if c in names and (
        pd.api.types.is_integer_dtype(df[c].dtype) or (
            pd.api.types.is_float_dtype(df[c].dtype) and integral(df[c].to_numpy())))]
    if not whole:
        return
    # Codes show their zeros in any sample of rows: a first look at a few thousand
    # keeps a large table from being read twice; only the columns found are.
    sample = pd.read_csv(path, sep=sep, usecols=whole, dtype=str, nrows=_CODES_SAMPLE)
    found = [c for c in whole if sample[c].str.match(r"^\s*[+-]?0\d").any()]
    if not found:
        return
    raw = sample if len(sample) < _CODES_SAMPLE else pd.read_csv(
        path, sep=sep, usecols=found, dtype=str)
    for name in found:
        df[name] = raw[name].to_numpy(dtype=object)


def table_bytes(frame: pd.DataFrame, path: str | Path) -> bytes:
    """``frame`` encoded as a file at ``path`` would hold it, so that it reads back.

    Parquet for ``.parquet`` and ``.pq``; otherwise text: tab-separated for
    ``.tsv`` (also inside a compression), comma-separated for anything else,
    compressed when the name ends in one of :data:`COMPRESSIONS`. No index.
    Another suffix (``.xlsx``, none) is a ``DataError``, as :func:`read_table`'s,
    except for a device or pipe (``/dev/stdout``), which gets CSV.

    Examples
    --------
    >>> import gzip
    >>> frame = pd.DataFrame({"a": [1, 2], "y_pred": [0.5, 1.5]})
    >>> table_bytes(frame, "out.csv")
    b'a,y_pred\\n1,0.5\\n2,1.5\\n'
    >>> gzip.decompress(table_bytes(frame, "out.tsv.gz"))
    b'a\\ty_pred\\n1\\t0.5\\n2\\t1.5\\n'
    """
    path = Path(path)
    if not is_stream(path):  # a device or pipe (/dev/stdout) gets CSV, whatever its name
        _table_kind(path, "write")
    buf = io.BytesIO()
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    compression = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}.get(
        path.suffix.lower())
    sep = "\t" if _table_suffix(path) == ".tsv" else ","
    if compression == "zip":  # the archive's one member is named after the file
        compression = {"method": "zip", "archive_name": path.with_suffix("").name}
    frame.to_csv(buf, sep=sep, index=False, compression=compression)
    return buf.getvalue()


def _separator(path: Path) -> tuple[str, str]:
    """The field separator and the decimal mark.

    ``.tsv`` is tab-separated. ``.csv`` is comma-separated unless its header
    line has no comma but semicolons or tabs (spreadsheets in many locales
    save ``;`` with a decimal comma: ``1,5``). ``.txt`` is sniffed among
    ``, TAB ; |``, whitespace otherwise.
    """
    suffix = _table_suffix(path)
    if suffix == ".tsv":
        return "\t", "."
    with _open_text(path) as fh:
        sample = fh.read(_SNIFF_BYTES)
    lines = sample.splitlines()
    first = lines[0] if lines else ""
    if suffix == ".csv":
        if "," in first or not any(c in first for c in ";\t"):
            return ",", "."
        sep = ";" if first.count(";") >= first.count("\t") else "\t"
    else:
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
        except csv.Error:
            return (r"\s+" if first.split() != [first] else ","), "."
    return sep, _decimal_mark(lines[1:], sep)


def is_stream(path: str | Path) -> bool:
    """Whether ``path`` is a device, pipe or socket (``/dev/null``, ``/dev/stdout``, a FIFO).

    Such a path is written in place: a rename over it would replace the
    device, for every program on the machine, with a regular file. Anything
    under ``/dev`` counts (``/dev/stdout`` redirected to a file is a link to
    that regular file, and still the command's output).
    """
    path = Path(path)
    if os.name == "posix" and path.absolute().parts[:2] == ("/", "dev"):
        return True
    return path.exists() and not path.is_file() and not path.is_dir()


def _table_kind(path: Path, verb: str) -> str:
    """``"csv"`` or ``"parquet"`` by ``path``'s suffix; a ``DataError`` for any other."""
    suffix = _table_suffix(path)
    kind = SUFFIXES.get(suffix)
    if kind is None or (kind == "parquet" and suffix != path.suffix.lower()):
        what = "".join(path.suffixes[-2:]) if kind else suffix or "(no suffix)"
        lead = "supported:" if verb == "read" else "name it with one of"
        raise DataError(
            f"cannot {verb} {path.name}: unknown file type {what!r}; {lead} "
            f"{', '.join(SUFFIXES)} (text tables also compressed: {', '.join(COMPRESSIONS)})"
        )
    return kind


def _table_suffix(path: Path) -> str:
    """``.csv`` for ``t.csv`` and for ``t.csv.gz``: the suffix of the table inside."""
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS and len(path.suffixes) > 1:
        return path.suffixes[-2].lower()
    return suffix


def _open_text(path: Path) -> io.TextIOBase:
    """The file as UTF-8 text, decompressed where its suffix says it is compressed."""
    opener = COMPRESSIONS.get(path.suffix.lower())
    if opener is None:
        return path.open("r", encoding="utf-8", newline="")
    return opener(path)


def _decimal_mark(lines: list[str], sep: str) -> str:
    """``","`` when the fields of a non-comma-separated sample write numbers as ``1,5``."""
    if sep == ",":
        return "."
    comma = point = 0
    for line in lines[:200]:
        for field in line.split(sep):
            f = field.strip().strip('"')
            if _DECIMAL_COMMA.fullmatch(f):
                comma += 1
            elif _DECIMAL_POINT.fullmatch(f):
                point += 1
    return "," if comma > point else "."


def _decimal_commas_in_text(df: pd.DataFrame) -> None:
    """In text columns of a decimal-comma file, write ``1,5`` as ``1.5`` (in place).

    pandas converts a column's decimal commas only when every cell is a
    number; one typo leaves the column as text. Rewriting the number cells
    lets the schema read the column as numbers (the typo becomes missing,
    with a warning) instead of as a categorical of every value.
    """
    for name in df.columns:
        col = df[name]
        if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)):
            continue
        text = col.astype(object).where(col.notna(), "").astype(str).str.strip()
        numbers = text.str.fullmatch(_DECIMAL_COMMA.pattern).to_numpy(dtype=bool)
        if numbers.any():
            fixed = col.astype(object).copy()
            fixed[numbers] = text[numbers].str.replace(",", ".", regex=False)
            df[name] = fixed


def _raw_header(path: Path, sep: str) -> list[str]:
    """The header line as written (``header=None`` keeps duplicates unmangled)."""
    row = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(v) for v in row.iloc[0].tolist()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- memory --------------------------------------------------------------------


def _from_array(arr: np.ndarray) -> pd.DataFrame:
    if arr.dtype.names is not None:
        if arr.ndim != 1:
            raise DataError(
                f"a structured array must be 1-D (one record per row), got shape {arr.shape}"
            )
        return pd.DataFrame(arr).infer_objects()
    if arr.ndim != 2:
        hint = "; reshape it with x.reshape(-1, 1)" if arr.ndim == 1 else ""
        raise DataError(f"a numpy array must be 2-D (rows, columns), got shape {arr.shape}{hint}")
    columns = [f"x{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=columns).infer_objects()


def _from_dict(data: Mapping) -> pd.DataFrame:
    for name, values in data.items():
        if np.ndim(values) != 1:
            raise DataError(
                f"column {name!r} of the dict must be a 1-D array, got shape {np.shape(values)}"
            )
    lengths = {str(k): len(v) for k, v in data.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise DataError(f"the dict's arrays differ in length ({detail}); make them equal")
    return pd.DataFrame(dict(data)).infer_objects()


# -- checks --------------------------------------------------------------------


def _check_unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    dups: list[str] = []
    for name in names:
        if name in seen and name not in dups:
            dups.append(name)
        seen.add(name)
    if dups:
        raise DataError(
            f"duplicate column name(s) in {where}: {', '.join(map(repr, dups))}; "
            "rename them so every column name is unique"
        )


def _check_frame(df: pd.DataFrame, where: str) -> pd.DataFrame:
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"{where} has multi-level column names; flatten them to single strings first"
        )
    names = [str(c) for c in df.columns]
    _check_unique(names, where)
    df.columns = names
    if df.shape[1] == 0:
        raise DataError(f"{where} has no columns; it needs feature columns and a target")
    if df.shape[0] == 0:
        raise DataError(f"{where} has no rows (columns: {', '.join(names)}); add data rows")
    return df
