"""Name registries for blocks, activations, norms and initialisations.

Every place that accepts a layer by name goes through :func:`resolve`, so a
name is normalised the same way everywhere (``"Leaky_ReLU"`` == ``"leakyrelu"``)
and an unknown name fails with a message that lists the valid ones.

Examples
--------
>>> from tabresnet.models.registry import get_activation
>>> get_activation("leaky_relu")
<class 'torch.nn.modules.activation.LeakyReLU'>
>>> get_activation(torch.nn.GELU)  # a class passes through unchanged
<class 'torch.nn.modules.activation.GELU'>
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch  # noqa: F401  (used by the doctests)
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "BLOCKS",
    "INITS",
    "NORMS",
    "get_activation",
    "get_block",
    "get_init",
    "get_norm",
    "normalise_name",
    "register_block",
    "resolve",
]


def normalise_name(name: str) -> str:
    """Lower-case a registry name and drop ``_``, ``-`` and spaces.

    >>> normalise_name("Leaky_ReLU")
    'leakyrelu'
    """
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


class Registry(dict):
    """A ``dict`` from normalised names to objects, with readable errors.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages (``"activation"``).
    canonical : dict
        Canonical name -> object. Lookups normalise the key, so
        ``"leaky_relu"``, ``"LeakyReLU"`` and ``"leakyrelu"`` are one entry.
    """

    def __init__(self, kind: str, canonical: dict[str, Any], aliases: dict[str, str] | None = None):
        super().__init__()
        self.kind = kind
        self.canonical_names: list[str] = []
        for name, obj in canonical.items():
            self.register(name, obj)
        for alias, target in (aliases or {}).items():
            self[normalise_name(alias)] = self[normalise_name(target)]

    def register(self, name: str, obj: Any) -> Any:
        self[normalise_name(name)] = obj
        if name not in self.canonical_names:
            self.canonical_names.append(name)
        return obj

    def lookup(self, name: str) -> Any:
        key = normalise_name(name)
        if key not in self:
            valid = ", ".join(sorted(self.canonical_names))
            raise ValueError(f"unknown {self.kind} {name!r}; valid names are: {valid}")
        return self[key]

    def name_of(self, obj: Any) -> str | None:
        """The canonical name registered for ``obj``, or ``None``."""
        for name in self.canonical_names:
            if self[normalise_name(name)] is obj:
                return name
        return None


def resolve(registry: Registry, value: str | Any) -> Any:
    """Look ``value`` up by name, or return it unchanged if it is not a string.

    >>> resolve(ACTIVATIONS, "relu")
    <class 'torch.nn.modules.activation.ReLU'>
    >>> resolve(ACTIVATIONS, "nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown activation 'nope'; valid names are: ...
    """
    if isinstance(value, str):
        return registry.lookup(value)
    return value


ACTIVATIONS = Registry(
    "activation",
    {
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
    },
    aliases={"swish": "silu", "linear": "identity"},
)


def _no_norm(num_features: int) -> nn.Module:
    # Keeps the module tree's shape: a disabled norm is an nn.Identity in the
    # same slot (the Q&A's point; timm's Mlp does the same).
    return nn.Identity()


NORMS = Registry(
    "norm",
    {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": _no_norm},
    aliases={"batchnorm": "batch", "bn": "batch", "layernorm": "layer", "ln": "layer"},
)


# --- initialisations -------------------------------------------------------
# Each init takes the whole network and changes it in place. "chapter" is the
# book's _init_params; "default" keeps PyTorch's own layer init and only
# shrinks the head (see docs/design.md, issue 2 item 9, for the measurements).


def init_chapter(model: nn.Module) -> None:
    """The chapter's ``_init_params``: Kaiming normal (fan_out, relu) on every
    Linear -- the output head included -- and BatchNorm weight 1, bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def init_torch(model: nn.Module) -> None:
    """PyTorch's default layer initialisation, left as constructed."""


def init_kaiming_in(model: nn.Module) -> None:
    """Kaiming uniform with ``fan_in`` on every Linear, zero biases; norms to 1/0.

    Unlike the chapter's ``fan_out`` on the head, ``fan_in`` keeps the variance
    of each layer's *output* near that of its input."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def init_zero_residual(model: nn.Module) -> None:
    """PyTorch's layer init, every residual branch zeroed, and a zero head.

    Each block then starts as its shortcut (Goyal et al. 2017 zero the last
    BatchNorm weight of each branch; Zhang et al. 2019, Fixup, zero the last
    layer) and the network starts by predicting the head's bias -- 0, the mean
    of a standardised target -- instead of the large random outputs that
    the chapter's fan_out head produces (weight std about 1.4 for one output).
    """
    for m in model.modules():
        zero = getattr(m, "zero_init_branch", None)
        if callable(zero):
            zero()
    head = getattr(model, "output_head", None)
    if callable(head):
        layer = head()
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


INITS = Registry(
    "init",
    {
        "chapter": init_chapter,
        "torch": init_torch,
        "kaiming_in": init_kaiming_in,
        "zero_residual": init_zero_residual,
    },
    aliases={"kaiming_fan_out": "chapter", "pytorch": "torch", "default_torch": "torch"},
)

BLOCKS = Registry("block", {})


def register_block(name: str) -> Callable[[type], type]:
    """Class decorator that adds a block class to :data:`BLOCKS` under ``name``."""

    def deco(cls: type) -> type:
        BLOCKS.register(name, cls)
        return cls

    return deco


def get_activation(value: str | type[nn.Module]) -> type[nn.Module]:
    """An activation class by name (see :data:`ACTIVATIONS`) or the class itself."""
    return resolve(ACTIVATIONS, value)


def get_norm(value: str | Callable[[int], nn.Module] | None) -> Callable[[int], nn.Module]:
    """A norm-layer factory ``f(num_features) -> nn.Module``; ``None`` means no norm."""
    if value is None:
        return _no_norm
    return resolve(NORMS, value)


def get_block(value: str | type[nn.Module]) -> type[nn.Module]:
    """A residual block class by name (see :data:`BLOCKS`) or the class itself."""
    from . import blocks  # noqa: F401  (registers the built-in blocks)

    return resolve(BLOCKS, value)


def get_init(value: str | Callable[[nn.Module], None]) -> Callable[[nn.Module], None]:
    """An initialisation function ``f(model) -> None`` by name or the function itself."""
    return resolve(INITS, value)

