"""The tuning layer: Optuna over a declarative search space, pruning, shared studies.

    tabresnet tune data.csv --target y --trials 50 --timeout 30m --jobs 2
    tabresnet tune --show-space

From Python: :func:`tune` returns a :class:`TuneResult` (best parameters and
configuration, the retrained model, its metrics, the study). See
``docs/architecture.md`` for the run directory it writes.
"""

from .api import TuneResult, parse_duration, tune
from .space import SearchSpace

__all__ = ["SearchSpace", "TuneResult", "parse_duration", "tune"]
