"""The chapter's regression networks.

* :class:`ResNetRegression` and :class:`PreActResNetRegression` -- one width:
  ``input_layer -> num_blocks x block -> output_layer``.
* :class:`ResNet` -- the grouped network: ``input_net`` (Linear + act), groups
  of blocks (``num_blocks=[3, 3, 3]`` means three groups of three) whose first
  block changes the width when ``c_hidden`` changes, and a Linear
  ``output_net``. The block and activation are chosen by name.

Every network accepts ``output_dim > 1`` (several targets) and an ``init``
(a registry name, see :data:`tabresnet.models.registry.INITS`, or a function).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
from torch import nn

from .registry import get_activation, get_block, get_init, zero_branches

__all__ = ["PreActResNetRegression", "ResNet", "ResNetRegression"]


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, however: {name}={value!r}")


def _initialise(model: nn.Module, init, zero_init: bool) -> None:
    get_init(init)(model)
    if zero_init:
        # An init that redraws every Linear or resets every norm ("chapter",
        # "kaiming_in") undoes the blocks' own zeroing; zero_init=True asks for
        # zero branches whatever the init.
        zero_branches(model)


class ResNetRegression(nn.Module):
    """A single-width residual network for regression (the chapter's first network).

    ``input_layer (Linear) -> blocks -> output_layer (Linear)``.

    Parameters
    ----------
    input_dim : int
        Number of input features.
    output_dim : int
        Number of regression targets.
    block : type or str
        Block class or registry name (``ResNetBlock``, ``"PreActResNetBlock"``).
    num_blocks : int, default 1
        Number of blocks, all of width ``hidden_dim``.
    hidden_dim : int, default 64
        Width of the residual stream.
    act_fn : type or str, default nn.ReLU
        Activation class or registry name.
    init : str or callable, default "torch"
        Initialisation applied at the end of ``__init__``; the chapter's
        single-width networks keep PyTorch's layer init.
    **block_kwargs
        Passed to every block (``norm``, ``dropout``, ``zero_init``).

    Shape
    -----
    - Input: ``(N, input_dim)``
    - Output: ``(N, output_dim)``

    Examples
    --------
    >>> import torch
    >>> from tabresnet.models import ResNetBlock
    >>> model = ResNetRegression(10, 1, ResNetBlock, num_blocks=2, hidden_dim=64)
    >>> model(torch.randn(3, 10)).shape
    torch.Size([3, 1])
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        block: type[nn.Module] | str,
        num_blocks: int = 1,
        hidden_dim: int = 64,
        act_fn: type[nn.Module] | str = nn.ReLU,
        *,
        init: str | Callable[[nn.Module], None] = "torch",
        **block_kwargs,
    ):
        super().__init__()
        _check_positive(
            input_dim=input_dim, output_dim=output_dim, num_blocks=num_blocks, hidden_dim=hidden_dim
        )
        block = get_block(block)
        act_fn = get_activation(act_fn)
        self.input_layer = nn.Linear(input_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            [block(hidden_dim, act_fn, **block_kwargs) for _ in range(num_blocks)]
        )
        self.output_layer = nn.Linear(hidden_dim, output_dim)
        _initialise(self, init, block_kwargs.get("zero_init", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        for block in self.blocks:
            x = block(x)
        x = self.output_layer(x)
        return x

    def output_head(self) -> nn.Linear:
        """The final Linear layer (initialisations treat it specially)."""
        return self.output_layer


class PreActResNetRegression(ResNetRegression):
    """The chapter's single-width network for pre-activation blocks.

    The chapter writes it out as a second class with the same body as
    :class:`ResNetRegression`; it differs only in its name (and in the block
    one passes, usually :class:`~tabresnet.models.PreActResNetBlock`).

    Shape
    -----
    - Input: ``(N, input_dim)``
    - Output: ``(N, output_dim)``

    Examples
    --------
    >>> import torch
    >>> model = PreActResNetRegression(10, 2, "PreActResNetBlock", num_blocks=2)
    >>> model(torch.randn(3, 10)).shape
    torch.Size([3, 2])
    """


class ResNet(nn.Module):
    """The chapter's grouped ResNet for regression.

    ``input_net (Linear -> act) -> groups of blocks -> output_net (Linear)``.
    Group ``i`` has ``num_blocks[i]`` blocks of width ``c_hidden[i]``; the first
    block of every group after the first is built with ``subsample=True`` and
    changes the width from ``c_hidden[i-1]`` to ``c_hidden[i]``.

    Parameters
    ----------
    input_dim : int
        Number of input features.
    output_dim : int
        Number of regression targets.
    num_blocks : sequence of int, default [3, 3, 3]
        Blocks per group.
    c_hidden : sequence of int, default [64, 64, 64]
        Width of each group; same length as ``num_blocks``.
    act_fn_name : str or type, default "relu"
        Activation, by registry name (``"gelu"``, ``"silu"``, ...) or class.
    block_name : str or type, default "ResNetBlock"
        Block, by registry name (``"PreActResNetBlock"``) or class.
    init : str or callable, default "zero_residual"
        Initialisation applied at the end of ``__init__``. ``"chapter"`` is
        the chapter's ``_init_params`` (Kaiming normal, fan_out, on every
        Linear; BatchNorm weight 1, bias 0).
    **kwargs
        Block options (``norm``, ``dropout``, ``shortcut``, ``zero_init``);
        the chapter's signature also takes ``**kwargs``.

    Shape
    -----
    - Input: ``(N, input_dim)``
    - Output: ``(N, output_dim)``

    Examples
    --------
    >>> import torch
    >>> model = ResNet(20, 1, num_blocks=[2, 2], c_hidden=[32, 64], block_name="PreActResNetBlock")
    >>> model(torch.randn(5, 20)).shape
    torch.Size([5, 1])
    >>> model.blocks[2].downsample[2]  # the width change happens in group 2's first block
    Linear(in_features=32, out_features=64, bias=False)
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_blocks: Sequence[int] = (3, 3, 3),
        c_hidden: Sequence[int] = (64, 64, 64),
        act_fn_name: str | type[nn.Module] = "relu",
        block_name: str | type[nn.Module] = "ResNetBlock",
        *,
        init: str | Callable[[nn.Module], None] = "zero_residual",
        **kwargs,
    ):
        super().__init__()
        num_blocks, c_hidden = list(num_blocks), list(c_hidden)
        _check_positive(input_dim=input_dim, output_dim=output_dim)
        if not num_blocks:
            raise ValueError(f"num_blocks must name at least one group, however: {num_blocks=}")
        if len(num_blocks) != len(c_hidden):
            raise ValueError(
                "num_blocks and c_hidden must have one entry per group, however: "
                f"{num_blocks=}, {c_hidden=}"
            )
        for i, (n, c) in enumerate(zip(num_blocks, c_hidden)):
            _check_positive(**{f"num_blocks[{i}]": n, f"c_hidden[{i}]": c})
        # NOTE[DIFF]: the chapter keeps the classes in a SimpleNamespace; so do
        # we, with the names resolved through the registries (the chapter
        # asserts the name is known; we raise ValueError listing valid names).
        self.hparams = SimpleNamespace(
            output_dim=output_dim,
            c_hidden=c_hidden,
            num_blocks=num_blocks,
            act_fn_name=act_fn_name,
            act_fn=get_activation(act_fn_name),
            block_class=get_block(block_name),
        )
        self._create_network(input_dim, kwargs)
        # Initialise once, at the end of __init__. NOTE[DIFF]: the chapter's
        # _init_params ("chapter") gives the head a fan_out Kaiming weight (std
        # about 1.4 for one output) and the residual stream grows block by
        # block; trained as in the chapter it ends far from gradient boosting
        # (bench/init_comparison.py). The default zeroes each branch and the head.
        _initialise(self, init, kwargs.get("zero_init", False))

    def _create_network(self, input_dim: int, block_kwargs: dict) -> None:
        c_hidden = self.hparams.c_hidden
        act_fn = self.hparams.act_fn
        self.input_net = nn.Sequential(nn.Linear(input_dim, c_hidden[0]), act_fn())
        blocks = []
        for block_idx, block_count in enumerate(self.hparams.num_blocks):
            for bc in range(block_count):
                # As in the chapter, the first block of each later group
                # subsamples, even where the width stays the same (a
                # projection on equal widths), so the chapter's weights load.
                subsample = bc == 0 and block_idx > 0
                blocks.append(
                    self.hparams.block_class(
                        c_in=c_hidden[block_idx if not subsample else block_idx - 1],
                        act_fn=act_fn,
                        subsample=subsample,
                        c_out=c_hidden[block_idx],
                        **block_kwargs,
                    )
                )
        self.blocks = nn.Sequential(*blocks)
        self.output_net = nn.Linear(c_hidden[-1], self.hparams.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_net(x)
        x = self.blocks(x)
        x = self.output_net(x)
        return x

    def output_head(self) -> nn.Linear:
        """The final Linear layer (initialisations treat it specially)."""
        return self.output_net
