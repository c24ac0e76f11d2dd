"""The chapter's two residual blocks for tabular data.

Original (post-activation) block, He et al. (2015)::

    x -> Linear -> Norm -> act -> Linear -> Norm -> (+ shortcut(x)) -> act

Pre-activation block, He et al. (2016)::

    x -> Norm -> act -> Linear -> Norm -> act -> Linear -> (+ shortcut(x))

Both keep the chapter's signature ``Block(c_in, act_fn, subsample=False,
c_out=-1)``, its attribute names (``net``, ``downsample``, ``act_fn``) and its
module order, so the chapter's weights load with ``strict=True``. The
keyword-only extensions leave the chapter's defaults untouched:

* ``norm`` -- ``"batch"`` (the original block's default), ``"layer"`` (the
  pre-activation block's default) or ``"none"``. A disabled norm is an
  ``nn.Identity`` in the same slot, so parameter names do not shift.
* ``dropout`` -- probability of a ``nn.Dropout`` on the branch output (rtdl's
  "residual dropout", just before the add).
* ``shortcut`` -- ``"projection"`` (the chapter's ``downsample``) or
  ``"zero_pad"`` (the paper's parameter-free option) when the width changes.
* ``zero_init`` -- start the branch at zero so the block starts as its shortcut
  (Goyal et al. 2017 zero the last BatchNorm's weight; with no affine norm at the
  end of the branch the last Linear is zeroed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .layers import get_activation, get_norm
from .residual import make_shortcut

__all__ = ["PreActResNetBlock", "ResNetBlock"]


def _check_widths(c_in: int, subsample: bool, c_out: int) -> int:
    if not isinstance(c_in, int) or c_in <= 0:
        raise ValueError(f"c_in must be a positive int, however: {c_in=}")
    if not subsample:
        # The chapter: "c_out is only relevant if subsample is True".
        return c_in
    if not isinstance(c_out, int) or c_out <= 0:
        raise ValueError(f"subsample=True needs a positive c_out, however: {c_out=}")
    return c_out


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), however: {dropout=}")


def _zero_branch_tail(net: nn.Sequential) -> None:
    """Zero the last norm weight of the branch if it is the last parametrised
    layer, else the last Linear weight: either way the branch outputs 0."""
    for layer in reversed(net):
        if isinstance(layer, (nn.BatchNorm1d, nn.LayerNorm)) and layer.weight is not None:
            nn.init.zeros_(layer.weight)
            return
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            return


class ResNetBlock(nn.Module):
    """The original residual block with the activation after the addition.

    ``out = act(net(x) + downsample(x))`` with
    ``net = Linear -> Norm -> act -> Linear -> Norm`` (bias-free Linears: the
    norm that follows has its own shift).

    Parameters
    ----------
    c_in : int
        Number of input features.
    act_fn : type or str
        Activation class (``nn.ReLU``) or its registry name (``"relu"``).
    subsample : bool, default False
        Change the width to ``c_out`` inside the block (the chapter's name,
        kept from the image version where the spatial size shrinks).
    c_out : int, default -1
        Output features; only used when ``subsample`` is true.
    norm : str or callable, default "batch"
        ``"batch"``, ``"layer"``, ``"none"`` or a factory ``f(width)``.
    dropout : float, default 0.0
        Dropout on the branch output; 0 adds no module.
    shortcut : {"projection", "zero_pad"}, default "projection"
        How ``x`` is widened when ``subsample`` is true.
    zero_init : bool, default False
        Start the branch at zero (the block then starts as ``act(shortcut(x))``).

    Shape
    -----
    - Input: ``(N, c_in)``
    - Output: ``(N, c_out)`` if ``subsample`` else ``(N, c_in)``

    Examples
    --------
    >>> import torch
    >>> block = ResNetBlock(8, nn.ReLU, subsample=True, c_out=16)
    >>> block(torch.randn(4, 8)).shape
    torch.Size([4, 16])
    >>> ResNetBlock(8, "gelu", norm="none").net[1]
    Identity()
    """

    def __init__(
        self,
        c_in: int,
        act_fn: type[nn.Module] | str,
        subsample: bool = False,
        c_out: int = -1,
        *,
        norm: str | Callable[[int], nn.Module] | None = "batch",
        dropout: float = 0.0,
        shortcut: str = "projection",
        zero_init: bool = False,
    ):
        super().__init__()
        c_out = _check_widths(c_in, subsample, c_out)
        _check_dropout(dropout)
        act_fn = get_activation(act_fn)
        norm_layer = get_norm(norm)
        layers: list[nn.Module] = [
            nn.Linear(c_in, c_out, bias=False),
            norm_layer(c_out),
            act_fn(),
            nn.Linear(c_out, c_out, bias=False),
            norm_layer(c_out),
        ]
        if dropout > 0:
            # NOTE[DIFF]: the chapter has no dropout. It is appended after the
            # parametrised layers so parameter names never shift, and a zero
            # rate adds no module so the printed tree stays the chapter's.
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        # The chapter stores None when the width is kept; TorchScript refines
        # `is not None` on a None attribute statically, as in torchvision.
        self.downsample = make_shortcut(shortcut, c_in, c_out, bias=True) if subsample else None
        self.act_fn = act_fn()
        if zero_init:
            self.zero_init_branch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        if self.downsample is not None:
            x = self.downsample(x)
        out = z + x
        out = self.act_fn(out)
        return out

    def zero_init_branch(self) -> None:
        """Make the branch output zero (used by the ``"zero_residual"`` init)."""
        _zero_branch_tail(self.net)


class PreActResNetBlock(nn.Module):
    """The pre-activation residual block: norm and activation before each Linear.

    ``out = net(x) + downsample(x)`` with
    ``net = Norm -> act -> Linear -> Norm -> act -> Linear`` and, when the
    width changes, ``downsample = Norm -> act -> Linear`` (the input has not
    been through a non-linearity yet, as the chapter explains). No activation
    follows the addition, so the identity path stays clean.

    Parameters
    ----------
    c_in : int
        Number of input features.
    act_fn : type or str
        Activation class or its registry name.
    subsample : bool, default False
        Change the width to ``c_out`` inside the block.
    c_out : int, default -1
        Output features; only used when ``subsample`` is true.
    norm : str or callable, default "layer"
        ``"layer"`` (the chapter replaces BatchNorm with LayerNorm here),
        ``"batch"``, ``"none"`` or a factory ``f(width)``.
    dropout : float, default 0.0
        Dropout on the branch output; 0 adds no module.
    shortcut : {"projection", "zero_pad"}, default "projection"
        How ``x`` is widened when ``subsample`` is true.
    zero_init : bool, default False
        Zero the branch's last Linear so the block starts as its shortcut.

    Shape
    -----
    - Input: ``(N, c_in)``
    - Output: ``(N, c_out)`` if ``subsample`` else ``(N, c_in)``

    Examples
    --------
    >>> import torch
    >>> block = PreActResNetBlock(8, nn.ReLU, zero_init=True)
    >>> x = torch.randn(4, 8)
    >>> torch.equal(block(x), x)  # a zero branch: the block starts as identity
    True
    """

    def __init__(
        self,
        c_in: int,
        act_fn: type[nn.Module] | str,
        subsample: bool = False,
        c_out: int = -1,
        *,
        norm: str | Callable[[int], nn.Module] | None = "layer",
        dropout: float = 0.0,
        shortcut: str = "projection",
        zero_init: bool = False,
    ):
        super().__init__()
        c_out = _check_widths(c_in, subsample, c_out)
        _check_dropout(dropout)
        act_fn = get_activation(act_fn)
        norm_layer = get_norm(norm)
        layers: list[nn.Module] = [
            norm_layer(c_in),
            act_fn(),
            nn.Linear(c_in, c_out, bias=False),
            norm_layer(c_out),
            act_fn(),
            nn.Linear(c_out, c_out, bias=False),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))  # NOTE[DIFF]: see ResNetBlock
        self.net = nn.Sequential(*layers)
        if not subsample:
            self.downsample = None
        elif shortcut == "projection":
            self.downsample = nn.Sequential(
                norm_layer(c_in), act_fn(), nn.Linear(c_in, c_out, bias=False)
            )
        else:
            self.downsample = make_shortcut(shortcut, c_in, c_out, bias=False)
        if zero_init:
            self.zero_init_branch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        if self.downsample is not None:
            x = self.downsample(x)
        out = z + x
        return out

    def zero_init_branch(self) -> None:
        """Make the branch output zero (used by the ``"zero_residual"`` init)."""
        _zero_branch_tail(self.net)

