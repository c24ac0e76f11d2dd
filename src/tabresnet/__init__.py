"""tabresnet: residual networks for tabular regression.

The chapter's ResNets (``tabresnet.models``, pure PyTorch) trained with
Lightning, tuned with Optuna, used from Python or the ``tabresnet`` command.

>>> import tabresnet
>>> sorted(n for n in tabresnet.__all__ if n[0].islower())
['fit', 'importance', 'load', 'tune']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Imported on first use so that `import tabresnet` (and the model layer) stays
# light: Lightning and Optuna load only when fit or tune is called.
_LAZY = {
    "fit": ("tabresnet.api", "fit"),
    "importance": ("tabresnet.feature_importance", "importance"),
    "load": ("tabresnet.artifact", "load"),
    "tune": ("tabresnet.api", "tune"),
    "ResNetRegressor": ("tabresnet.estimator", "ResNetRegressor"),
    "TunedResNetRegressor": ("tabresnet.estimator", "TunedResNetRegressor"),
    "RunConfig": ("tabresnet.defaults", "RunConfig"),
    "ModelConfig": ("tabresnet.models", "ModelConfig"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tabresnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
