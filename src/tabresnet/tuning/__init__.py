"""The tuning layer: Optuna over a declarative search space, pruning, shared studies.

    tabresnet tune data.csv --target y --trials 50 --timeout 30m --jobs 2
    tabresnet tune --show-space

From Python: :func:`tune` returns a :class:`TuneResult` (best parameters and
configuration, the retrained model, its metrics, the study). See
``docs/architecture.md`` for the run directory it writes.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: the ``tabresnet`` command builds its parser from
# tabresnet.tuning.cli without importing Optuna and Lightning.
_LAZY = {
    "AUTO_CV_FOLDS": "api",
    "AUTO_CV_MAX_ROWS": "api",
    "tune": "api",
    "TuneResult": "api",
    "parse_duration": "api",
    "SearchSpace": "space",
}

__all__ = [
    "AUTO_CV_FOLDS",
    "AUTO_CV_MAX_ROWS",
    "SearchSpace",
    "TuneResult",
    "parse_duration",
    "tune",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
