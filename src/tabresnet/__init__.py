"""tabresnet: residual networks for tabular regression.

The chapter's ResNets (``tabresnet.models``, pure PyTorch) trained with
Lightning, tuned with Optuna, used from Python or the ``tabresnet`` command.

>>> import tabresnet
>>> sorted(n for n in tabresnet.__all__ if n[0].islower())
['export_onnx', 'export_torchscript', 'fit', 'importance', 'load', 'tune']
"""

from __future__ import annotations

from .models.lazy import lazy_attributes

__version__ = "0.1.0"

# Imported on first use so that `import tabresnet` (and the model layer) stays
# light: Lightning and Optuna load only when fit or tune is called.
_LAZY = {
    "export_onnx": "tabresnet.export",
    "export_torchscript": "tabresnet.export",
    "fit": "tabresnet.api",
    "importance": "tabresnet.feature_importance",
    "load": "tabresnet.artifact",
    "tune": "tabresnet.api",
    "ResNetRegressor": "tabresnet.estimator",
    "TunedResNetRegressor": "tabresnet.estimator",
    "RunConfig": "tabresnet.defaults",
    "ModelConfig": "tabresnet.models",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
