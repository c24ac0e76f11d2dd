"""The model layer: the chapter's residual networks in pure PyTorch.

This package imports ``torch`` alone, so it can be used without Lightning,
pandas or anything else in tabresnet.

>>> import torch
>>> from tabresnet.models import ResNet
>>> ResNet(input_dim=10, output_dim=1)(torch.randn(4, 10)).shape
torch.Size([4, 1])
"""

from .blocks import PreActResNetBlock, ResNetBlock
from .config import ARCHS, ModelConfig
from .embeddings import NumericEmbeddings, PeriodicEmbeddings, PiecewiseLinearEmbeddings
from .ensemble import MeanEnsemble
from .networks import PreActResNetRegression, ResNet, ResNetRegression
from .packed import (
    BatchEnsembleLinear,
    EnsembleBatchNorm,
    EnsembleLayerNorm,
    PackedLinear,
    TabularEnsemble,
    pack,
)
from .registry import (
    ACTIVATIONS,
    BLOCKS,
    INITS,
    NORMS,
    get_activation,
    get_block,
    get_init,
    get_norm,
)
from .residual import Residual, ZeroPadShortcut, make_shortcut
from .tabular import CategoricalEmbeddings, TabularNetwork

__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "BLOCKS",
    "BatchEnsembleLinear",
    "EnsembleBatchNorm",
    "EnsembleLayerNorm",
    "NumericEmbeddings",
    "PackedLinear",
    "PeriodicEmbeddings",
    "PiecewiseLinearEmbeddings",
    "TabularEnsemble",
    "pack",
    "INITS",
    "NORMS",
    "CategoricalEmbeddings",
    "MeanEnsemble",
    "ModelConfig",
    "PreActResNetBlock",
    "PreActResNetRegression",
    "ResNet",
    "ResNetBlock",
    "ResNetRegression",
    "Residual",
    "TabularNetwork",
    "ZeroPadShortcut",
    "get_activation",
    "get_block",
    "get_init",
    "get_norm",
    "make_shortcut",
]
