"""The model layer: the chapter's residual networks in pure PyTorch.

This package imports ``torch`` alone, so it can be used without Lightning,
pandas or anything else in tabresnet.

>>> import torch
>>> from tabresnet.models import ResNet
>>> ResNet(input_dim=10, output_dim=1)(torch.randn(4, 10)).shape
torch.Size([4, 1])
"""

from __future__ import annotations

from .lazy import lazy_attributes

# Loaded on first use: `tabresnet.models.names` and the configuration's fields
# stay importable without torch (for `tabresnet --help`); everything else here
# is torch.
_LAZY = {
    "PreActResNetBlock": "blocks",
    "ResNetBlock": "blocks",
    "ModelConfig": "config",
    "NumericEmbeddings": "embeddings",
    "PeriodicEmbeddings": "embeddings",
    "PiecewiseLinearEmbeddings": "embeddings",
    "MeanEnsemble": "ensemble",
    "ARCHS": "names",
    "PreActResNetRegression": "networks",
    "ResNet": "networks",
    "ResNetRegression": "networks",
    "BatchEnsembleLinear": "packed",
    "EnsembleBatchNorm": "packed",
    "EnsembleLayerNorm": "packed",
    "PackedLinear": "packed",
    "TabularEnsemble": "packed",
    "pack": "packed",
    "ACTIVATIONS": "registry",
    "BLOCKS": "registry",
    "INITS": "registry",
    "NORMS": "registry",
    "get_activation": "registry",
    "get_block": "registry",
    "get_init": "registry",
    "get_norm": "registry",
    "Residual": "residual",
    "ZeroPadShortcut": "residual",
    "make_shortcut": "residual",
    "CategoricalEmbeddings": "tabular",
    "TabularNetwork": "tabular",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(
    globals(), {name: f"{__name__}.{module}" for name, module in _LAZY.items()}
)
