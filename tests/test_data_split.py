"""split_indices and kfold_indices: deterministic, disjoint, covering, and honest about small data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabresnet.data import kfold_indices, split_indices
from tabresnet.defaults import DataConfig
from tabresnet.errors import ConfigError, DataError


def test_default_sizes_84_16_and_no_test_rows():
    cfg = DataConfig()
    train, val, test = split_indices(1000, cfg.val_size, cfg.test_size, seed=0)
    assert (len(train), len(val), len(test)) == (840, 160, 0)
    train, val, test = split_indices(1000, cfg.val_size, 0.2, seed=0)
    assert (len(train), len(val), len(test)) == (640, 160, 200)


def test_deterministic_and_seed_dependent():
    a = split_indices(100, 0.2, 0.2, seed=3)
    b = split_indices(100, 0.2, 0.2, seed=3)
    c = split_indices(100, 0.2, 0.2, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])


def test_sorted_int64():
    for part in split_indices(50, 0.2, 0.2, seed=0):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(5, 2000),
    val=st.floats(0.0, 0.45),
    test=st.floats(0.0, 0.45),
    seed=st.integers(0, 2**31),
)
def test_disjoint_and_covering(n, val, test, seed):
    try:
        parts = split_indices(n, val, test, seed)
    except DataError as exc:
        assert str(exc).startswith("too few rows to split")
        return
    allrows = np.concatenate(parts)
    assert len(allrows) == n and set(allrows.tolist()) == set(range(n))
    assert len(parts[0]) >= 2
    for size, part in zip((val, test), parts[1:]):
        assert len(part) == (int(np.floor(n * size + 0.5)) if size > 0 else 0)
        assert size == 0 or len(part) >= 1


def test_zero_size_means_no_split():
    train, val, test = split_indices(10, 0.0, 0.3, seed=0)
    assert len(val) == 0 and len(test) == 3 and len(train) == 7


def test_too_few_rows_gives_numbers_and_way_out():
    with pytest.raises(
        DataError,
        match=r"too few rows to split: 3 rows give 2 train, 0 validation and 1 test rows "
        r"\(val_size=0.16, test_size=0.2\).*add rows, raise val_size/test_size, "
        r"or pass separate validation/test data",
    ):
        split_indices(3, 0.16, 0.2, seed=0)


def test_train_needs_two_rows():
    with pytest.raises(DataError, match="1 train"):
        split_indices(3, 0.34, 0.34, seed=0)


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.2), (0.2, 1.0), (0.5, 0.5)])
def test_bad_sizes(val, test):
    with pytest.raises(ConfigError, match="must be in \\[0, 1\\) and sum below 1"):
        split_indices(100, val, test, seed=0)


def test_kfold_partitions_rows():
    folds = list(kfold_indices(23, 5, seed=0))
    assert len(folds) == 5
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(23))
    for train, val in folds:
        assert not set(train.tolist()) & set(val.tolist())
        assert len(train) + len(val) == 23
        assert train.dtype == np.int64
        assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()


def test_kfold_deterministic():
    a = [v.tolist() for _, v in kfold_indices(30, 3, seed=1)]
    assert a == [v.tolist() for _, v in kfold_indices(30, 3, seed=1)]
    assert a != [v.tolist() for _, v in kfold_indices(30, 3, seed=2)]


def test_kfold_checks_eagerly():
    with pytest.raises(
        ConfigError, match="cv_folds must be at least 2 for cross-validation, however: 1"
    ):
        kfold_indices(10, 1)
    with pytest.raises(DataError, match="too few rows for 5-fold cross-validation: 4 rows"):
        kfold_indices(4, 5)
    with pytest.raises(DataError, match="too few rows for 2-fold"):
        kfold_indices(3, 2)  # a fold would train on 1 row
