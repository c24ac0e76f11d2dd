"""Shared test set-up: one torch thread per worker, small data, and service fixtures.

A test that needs a service (PostgreSQL, Chromium, Graphviz) asks for it
through :func:`require`; it is skipped where the service is absent, except under
CI (``CI=true``), where a missing service fails the run.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip (or, in CI, fail) when a needed service is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/run must install and start it")
    pytest.skip(f"{what} is not available")


@pytest.fixture
def dot_available() -> None:
    require(shutil.which("dot") is not None, "Graphviz 'dot'")


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("TABRESNET_PG_URL", "")
    require(bool(url), "PostgreSQL (TABRESNET_PG_URL)")
    return url


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "headless Chromium")
    return path


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    """300 rows: two numeric columns (one with gaps), a categorical, a target."""
    rng = np.random.default_rng(0)
    n = 300
    a = rng.normal(size=n)
    b = rng.uniform(-2, 2, size=n)
    c = rng.choice(["red", "green", "blue"], size=n)
    y = 3 * a - 2 * b + np.where(c == "red", 2.0, 0.0) + rng.normal(scale=0.1, size=n)
    b_missing = b.copy()
    b_missing[rng.choice(n, 20, replace=False)] = np.nan
    return pd.DataFrame({"a": a, "b": b_missing, "color": c, "y": y})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the tests that run other processes first.

    With ``-n 2`` each worker takes tests in this order: slow ones started
    late would leave one core idle while the other finishes them.
    """
    def heavy(item: pytest.Item) -> bool:
        return item.get_closest_marker("slow") is not None or (
            item.get_closest_marker("postgres") is not None)

    items.sort(key=lambda item: not heavy(item))  # stable: file order otherwise


def pytest_unconfigure(config: pytest.Config) -> None:
    """Skip the last garbage collection of this process's exit (as tabresnet.cli.entry).

    Every xdist worker has imported torch, Lightning, ONNX and more: walking
    their objects once more at exit costs seconds of the suite's wall time.
    """
    import gc

    gc.freeze()
