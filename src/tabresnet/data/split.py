"""Row splits: one train/validation/test split, or k folds.

>>> train, val, test = split_indices(10, val_size=0.2, test_size=0.2, seed=0)
>>> len(train), len(val), len(test)
(6, 2, 2)
>>> sorted(np.concatenate([train, val, test]).tolist()) == list(range(10))
True

Indices are positions (use ``df.iloc[idx]``), sorted within each split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import KFold

from ..errors import ConfigError, DataError

__all__ = ["kfold_indices", "split_indices"]


def _count(n: int, fraction: float) -> int:
    # Round half up (Python's round() goes to even and would make 2.5 -> 2).
    return int(np.floor(n * fraction + 0.5))


def split_indices(
    n: int, val_size: float, test_size: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` and cut it into train, validation and test.

    Parameters
    ----------
    n : int
        Number of rows.
    val_size, test_size : float
        Fractions of ``n`` in ``[0, 1)``, summing below 1; each split gets
        ``round(n * size)`` rows. 0 means no such split (an empty array).
    seed : int
        The same seed gives the same split.

    Returns
    -------
    train, val, test : numpy.ndarray
        Disjoint sorted int64 position arrays covering ``range(n)``.

    Raises
    ------
    ConfigError
        Sizes outside ``[0, 1)`` or summing to 1 or more.
    DataError
        Too few rows: a requested split would be empty or train would have
        fewer than 2 rows.

    Examples
    --------
    >>> split_indices(3, 0.16, 0.2, seed=0)
    Traceback (most recent call last):
    ...
    tabresnet.errors.DataError: too few rows to split: 3 rows give 2 train, 0 validation and 1 test rows (val_size=0.16, test_size=0.2); each split needs at least 1 row and train at least 2 - add rows, raise val_size/test_size, or pass separate validation/test data
    """
    n = int(n)
    if not (0 <= val_size < 1 and 0 <= test_size < 1 and val_size + test_size < 1):
        raise ConfigError(
            "val_size and test_size must be in [0, 1) and sum below 1, however: "
            f"val_size={val_size}, test_size={test_size}"
        )
    n_val, n_test = _count(n, val_size), _count(n, test_size)
    n_train = n - n_val - n_test
    if n_train < 2 or (val_size > 0 and n_val < 1) or (test_size > 0 and n_test < 1):
        raise DataError(
            f"too few rows to split: {n} rows give {n_train} train, {n_val} validation "
            f"and {n_test} test rows (val_size={val_size}, test_size={test_size}); each split "
            "needs at least 1 row and train at least 2 - add rows, raise val_size/test_size, "
            "or pass separate validation/test data"
        )
    perm = np.random.default_rng(seed).permutation(n)
    test = np.sort(perm[:n_test])
    val = np.sort(perm[n_test : n_test + n_val])
    train = np.sort(perm[n_test + n_val :])
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def kfold_indices(
    n: int, k: int, seed: int = 0, option: str = "cv_folds"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold cross-validation positions (sklearn ``KFold``).

    Parameters
    ----------
    n : int
        Number of rows.
    k : int
        Number of folds, at least 2.
    seed : int
        Shuffling seed.
    option : str
        The user's name for ``k`` (``cv_folds``, ``cv``, ``bag``), which the
        errors tell them to change.

    Returns
    -------
    iterator of (train, val)
        ``k`` pairs of sorted int64 position arrays; every row is in exactly
        one ``val``. Arguments are checked before the first pair is made.

    Examples
    --------
    >>> folds = list(kfold_indices(10, 5, seed=0))
    >>> len(folds), [len(val) for _, val in folds]
    (5, [2, 2, 2, 2, 2])
    """
    n, k = int(n), int(k)
    if k < 2:
        raise ConfigError(f"{option} must be at least 2 for cross-validation, however: {k}")
    if n < k or n - -(-n // k) < 2:
        raise DataError(
            f"too few rows for {k}-fold cross-validation: {n} rows; each fold needs at "
            f"least 1 validation row and 2 training rows - add rows or lower {option}"
        )
    folds = KFold(n_splits=k, shuffle=True, random_state=seed)
    # Validate now, generate lazily: a generator function would defer the checks above.
    return (
        (np.sort(train).astype(np.int64), np.sort(val).astype(np.int64))
        for train, val in folds.split(np.zeros((n, 1)))
    )
