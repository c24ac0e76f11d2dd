"""The generic residual wrapper and the three shortcuts of He et al. (2015).

``Residual(module, shortcut)`` computes ``y = module(x) + shortcut(x)``: the
Q&A's wrapper, with ``nn.Identity`` standing in for "no projection" so that
``forward`` has no branch and the module tree has the same shape whatever the
widths (which also keeps ``torch.jit.script`` happy).

Shortcuts for a width change ``c_in -> c_out``:

* ``"identity"``   -- ``nn.Identity()``; only when ``c_in == c_out``.
* ``"projection"`` -- ``nn.Linear(c_in, c_out)``, the paper's ``W_s`` (the
  chapter's ``downsample``).
* ``"zero_pad"``   -- :class:`ZeroPadShortcut`, the paper's parameter-free
  option: the input is copied and padded with zeros up to ``c_out``.

Examples
--------
>>> import torch
>>> from torch import nn
>>> block = Residual(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6)),
...                  make_shortcut("zero_pad", 4, 6))
>>> block(torch.ones(2, 4)).shape
torch.Size([2, 6])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .names import SHORTCUTS

__all__ = ["SHORTCUTS", "Residual", "ZeroPadShortcut", "make_shortcut"]


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut for a width increase: pad features with zeros.

    Parameters
    ----------
    c_in, c_out : int
        Input and output widths, ``c_out >= c_in``.

    Shape
    -----
    - Input: ``(N, c_in)``
    - Output: ``(N, c_out)``; the first ``c_in`` features are the input.

    Examples
    --------
    >>> ZeroPadShortcut(2, 4)(torch.tensor([[1.0, 2.0]]))
    tensor([[1., 2., 0., 0.]])
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out < c_in:
            raise ValueError(
                f"zero_pad shortcut can only widen, however: {c_in=} > {c_out=}; "
                "use shortcut='projection' to narrow"
            )
        self.c_in = c_in
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, self.c_out - self.c_in))

    def extra_repr(self) -> str:
        return f"c_in={self.c_in}, c_out={self.c_out}"


def make_shortcut(kind: str, c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    """Build a shortcut module by name (see the module docstring).

    >>> make_shortcut("identity", 3, 3)
    Identity()
    >>> make_shortcut("projection", 3, 5)
    Linear(in_features=3, out_features=5, bias=True)
    >>> make_shortcut("identity", 3, 5)
    Traceback (most recent call last):
    ...
    ValueError: identity shortcut needs equal widths, however: c_in=3, c_out=5; ...
    """
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; valid names are: {', '.join(SHORTCUTS)}")
    if kind == "identity":
        if c_in != c_out:
            raise ValueError(
                f"identity shortcut needs equal widths, however: {c_in=}, {c_out=}; "
                "use 'projection' or 'zero_pad'"
            )
        return nn.Identity()
    if kind == "projection":
        return nn.Linear(c_in, c_out, bias=bias)
    return ZeroPadShortcut(c_in, c_out)


class Residual(nn.Module):
    """``y = module(x) + shortcut(x)``: the Q&A's generic residual wrapper.

    Parameters
    ----------
    module : nn.Module
        The residual branch ``F``.
    shortcut : nn.Module, optional
        Maps ``x`` to ``F(x)``'s shape. ``None`` means identity and is stored
        as ``nn.Identity()``, so ``forward`` has no branch.

    Shape
    -----
    - Input: ``(N, *)`` whatever ``module`` and ``shortcut`` accept.
    - Output: ``module(x)``'s shape.

    Examples
    --------
    >>> r = Residual(nn.Linear(3, 3))
    >>> r
    Residual(
      (module): Linear(in_features=3, out_features=3, bias=True)
      (shortcut): Identity()
    )
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(r(x), r.module(x) + x)
    True
    """

    def __init__(self, module: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.module = module
        self.shortcut = nn.Identity() if shortcut is None else shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x) + self.shortcut(x)
