"""The training layer: prepare data, train with Lightning, write a run directory."""

from ..metrics import regression_metrics
from .fit import Run, cross_validate, evaluate_splits, fit, resolve_config
from .loop import TrainResult, train_network
from .module import RegressionModule
from .prepare import Prepared, Split, prepare

__all__ = [
    "Prepared",
    "RegressionModule",
    "Run",
    "Split",
    "TrainResult",
    "cross_validate",
    "evaluate_splits",
    "fit",
    "prepare",
    "regression_metrics",
    "resolve_config",
    "train_network",
]
