"""``tabresnet.fit`` and ``tabresnet.tune``: train or tune, then write the report.

The training and tuning layers return their results and write the run files;
the report sits above them and reads the run directory. These two functions,
like the command line, put the layers together.

>>> import numpy as np, pandas as pd, tempfile
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=150)})
>>> df["y"] = 2 * df.a
>>> run = fit(df, "y", out=tempfile.mkdtemp() + "/run", max_epochs=2, num_blocks=[1],
...           c_hidden=[8], progress="none")
>>> (run.dir / "report.html").is_file()
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import training, tuning
from .errors import TabResNetWarning
from .report import write_report

__all__ = ["fit", "tune"]


def _report(run_dir: Path | None) -> None:
    if run_dir is None:
        return
    try:
        write_report(run_dir)
    except Exception as exc:  # a failed report must not lose a trained model
        warnings.warn(f"report not written: {exc}", TabResNetWarning, stacklevel=3)


def fit(data: Any, target: str | Sequence[str], config: Any = None, out: str | Path | None = None,
        *, report: bool = True, **kwargs: Any) -> training.Run:
    """Train a residual network on a table, write the run directory and its report.

    Parameters
    ----------
    data, target, config, out, **kwargs
        As for :func:`tabresnet.training.fit`: the table, the target column(s),
        the run config, the run directory, and the other options
        (``val_data``, ``overwrite``, flat config options such as ``lr=3e-3``).
    report : bool
        Also write ``report.html`` into the run directory (with ``out``).

    Returns
    -------
    tabresnet.training.Run
    """
    run = training.fit(data, target, config, out, **kwargs)
    if report:
        _report(run.dir)
    return run


def tune(data: Any, target: str | Sequence[str], config: Any = None, *, report: bool = True,
         **kwargs: Any) -> Any:
    """Tune the hyperparameters with Optuna, retrain the best, write the run and its report.

    Parameters
    ----------
    data, target, config, **kwargs
        As for :func:`tabresnet.tuning.tune` (``trials``, ``timeout``,
        ``out``, ``jobs``, ``cv``, ... and flat config options).
    report : bool
        Also write ``report.html`` into the run directory (with ``out``).

    Returns
    -------
    tabresnet.tuning.TuneResult
    """
    result = tuning.tune(data, target, config, **kwargs)
    if report:
        _report(result.dir)
    return result
