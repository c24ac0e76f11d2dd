"""The names the model layer knows, without importing torch.

The configuration, the ``tabresnet`` command's ``--help`` and the search
space list these names; the registries (:mod:`.layers`, :mod:`.registry`) map
the same names to classes and may gain more (``BLOCKS["MyBlock"] = MyBlock``),
which validation then accepts. A test keeps the two in step.

>>> NAMES["block"]
('ResNetBlock', 'PreActResNetBlock')
"""

from __future__ import annotations

__all__ = ["ARCHS", "ENSEMBLE_KINDS", "NAMES", "NUM_EMBEDDINGS", "SHORTCUTS"]

ARCHS = ("resnet", "resnet_regression", "preact_resnet_regression")
NUM_EMBEDDINGS = ("none", "ple", "plr")
ENSEMBLE_KINDS = ("batch", "mini", "packed")
SHORTCUTS = ("identity", "projection", "zero_pad")

# Model option -> its built-in names (a shortcut is chosen among the last two:
# "identity" is what a block uses where the width does not change).
NAMES: dict[str, tuple[str, ...]] = {
    "arch": ARCHS,
    "block": ("ResNetBlock", "PreActResNetBlock"),
    "activation": ("relu", "leaky_relu", "elu", "gelu", "silu", "mish", "selu", "tanh",
                   "sigmoid", "identity"),
    "norm": ("batch", "layer", "none"),
    "init": ("chapter", "torch", "kaiming_in", "zero_residual"),
    "shortcut": SHORTCUTS[1:],
    "num_embedding": NUM_EMBEDDINGS,
    "ensemble": ENSEMBLE_KINDS,
}
