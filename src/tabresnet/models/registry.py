"""Initialisations and blocks by name, beside the layer names of :mod:`.layers`.

Plain dicts: add an entry to register your own (``BLOCKS["MyBlock"] = MyBlock``).
Lookups normalise the name (``"Zero-Residual"`` == ``"zero_residual"``) and an
unknown name fails with a message that lists the valid ones.

Examples
--------
>>> get_block("preact_resnet_block")
<class 'tabresnet.models.blocks.PreActResNetBlock'>
>>> get_init("pytorch") is init_torch
True
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .blocks import PreActResNetBlock, ResNetBlock
from .layers import ACTIVATIONS, NORMS, get_activation, get_norm, lookup, normalise_name

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
]

BLOCKS: dict[str, type[nn.Module]] = {
    "ResNetBlock": ResNetBlock,
    "PreActResNetBlock": PreActResNetBlock,
}


# --- initialisations -------------------------------------------------------
# Each init takes the whole network and changes it in place. "chapter" is the
# book's _init_params; "default" keeps PyTorch's own layer init and only
# shrinks the head (see docs/design.md, issue 2 item 9, for the measurements).


def zero_branches(model: nn.Module) -> None:
    """Zero the residual branch of every block in ``model`` (each starts as its shortcut)."""
    for m in model.modules():
        zero = getattr(m, "zero_init_branch", None)
        if callable(zero):
            zero()


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
    zero_branches(model)
    head = getattr(model, "output_head", None)
    if callable(head):
        layer = head()
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


INITS: dict[str, Callable[[nn.Module], None]] = {
    "chapter": init_chapter,
    "torch": init_torch,
    "kaiming_in": init_kaiming_in,
    "zero_residual": init_zero_residual,
}
_INIT_ALIASES = {"kaimingfanout": "chapter", "pytorch": "torch", "defaulttorch": "torch"}


def get_block(value: str | type[nn.Module]) -> type[nn.Module]:
    """A residual block class by name (see :data:`BLOCKS`) or the class itself."""
    return lookup(BLOCKS, "block", value)


def get_init(value: str | Callable[[nn.Module], None]) -> Callable[[nn.Module], None]:
    """An initialisation function ``f(model) -> None`` by name or the function itself."""
    return lookup(INITS, "init", value, _INIT_ALIASES)
