"""Activations and norms by name: the layers a block is built from.

Names are normalised (``"Leaky_ReLU"`` == ``"leakyrelu"``) and an unknown name
fails with a message that lists the valid ones (timm's name maps, with a
``ValueError`` instead of a bare ``KeyError``). A class or factory passes
through unchanged.

>>> get_activation("leaky_relu")
<class 'torch.nn.modules.activation.LeakyReLU'>
>>> get_activation(nn.GELU)
<class 'torch.nn.modules.activation.GELU'>
>>> get_norm("bn")
<class 'torch.nn.modules.batchnorm.BatchNorm1d'>
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["ACTIVATIONS", "NORMS", "get_activation", "get_norm", "lookup", "normalise_name"]


def normalise_name(name: str) -> str:
    """Lower-case a name and drop ``_``, ``-`` and spaces.

    >>> normalise_name("Pre-Act_ResNet Block")
    'preactresnetblock'
    """
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


def lookup(table: dict[str, Any], kind: str, value: Any, aliases: dict[str, str] | None = None):
    """``table[value]`` with the name normalised (and ``aliases`` applied); non-strings pass.

    >>> lookup(ACTIVATIONS, "activation", "nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown activation 'nope'; valid names are: ...
    """
    if not isinstance(value, str):
        return value
    key = normalise_name(value)
    key = normalise_name((aliases or {}).get(key, key))
    for name, obj in table.items():
        if normalise_name(name) == key:
            return obj
    raise ValueError(f"unknown {kind} {value!r}; valid names are: {', '.join(sorted(table))}")


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
_ACTIVATION_ALIASES = {"swish": "silu", "linear": "identity"}


def _no_norm(num_features: int) -> nn.Module:
    # Keeps the module tree's shape: a disabled norm is an nn.Identity in the
    # same slot (the Q&A's point; timm's Mlp does the same).
    return nn.Identity()


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
    "none": _no_norm,
}
_NORM_ALIASES = {"batchnorm": "batch", "bn": "batch", "layernorm": "layer", "ln": "layer"}


def get_activation(value: str | type[nn.Module]) -> type[nn.Module]:
    """An activation class by name (see :data:`ACTIVATIONS`) or the class itself."""
    return lookup(ACTIVATIONS, "activation", value, _ACTIVATION_ALIASES)


def get_norm(value: str | Callable[[int], nn.Module] | None) -> Callable[[int], nn.Module]:
    """A norm-layer factory ``f(num_features) -> nn.Module``; ``None`` means no norm."""
    return _no_norm if value is None else lookup(NORMS, "norm", value, _NORM_ALIASES)
