"""The tuning layer: Optuna over a declarative search space, pruning, shared studies.

    tabresnet tune data.csv --target y --trials 50 --timeout 30m --jobs 2
    tabresnet tune --show-space

From Python: :func:`tune` returns a :class:`TuneResult` (best parameters and
configuration, the retrained model, its metrics, the study). See
``docs/architecture.md`` for the run directory it writes. The parts:
``space`` (YAML -> Optuna distributions), ``objective`` (one trial),
``study`` (storage, samplers, pruners, lost trials), ``workers`` (the trial
loop, in this process or worker processes), ``retrain`` (the best configuration,
once or as a bag), ``results`` (the files of ``RUN/tuning``) and ``api``
(:func:`tune`, which puts them together).
"""

from __future__ import annotations

import contextlib
import logging

from ..models.lazy import lazy_attributes

# The names the command line offers; here so that building the parser imports
# neither Optuna nor Lightning.
SAMPLERS = ("tpe", "gp", "random", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "successive-halving", "none")

# Loaded on first use, for the same reason.
_LAZY = {
    "AUTO_CV_FOLDS": "api",
    "AUTO_CV_MAX_ROWS": "api",
    "tune": "api",
    "TuneResult": "api",
    "parse_duration": "api",
    "SearchSpace": "space",
}

__all__ = [*_LAZY, "PRUNERS", "SAMPLERS", "quiet_optuna"]


@contextlib.contextmanager
def quiet_optuna(level: int = logging.ERROR):
    """Silence Optuna's per-trial log lines; tune reports progress itself."""
    logger = logging.getLogger("optuna")
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


__getattr__, __dir__ = lazy_attributes(
    globals(), {name: f"{__name__}.{module}" for name, module in _LAZY.items()}
)
