"""The chapter's ResNet, written out for the benchmark (a yardstick independent of tabresnet).

    python -c "from bench.chapter_resnet import ResNet; print(ResNet(10, 1))"

Source: "Hyperparameter Tuning with PyTorch Lightning: ResNets", section 34.1.2
(``ResNetBlock``) and Example 34.1 (the grouped ``ResNet`` with its
``_init_params``), /work/shared/seeds/004_*.txt. The layers, their order, the
defaults (``num_blocks=[3, 3, 3]``, ``c_hidden=[64, 64, 64]``, ReLU) and the
initialisation (Kaiming normal, ``fan_out``, on every Linear; BatchNorm weight 1,
bias 0) are the chapter's. The code is re-indented and lightly restyled; nothing
changes what it computes. tabresnet's own ``models.ResNet(block="ResNetBlock",
init="chapter")`` is tested against the same text; this copy keeps the
benchmark's yardstick from moving when the package changes.

The chapter's training loop (Example 34.1) is full-batch Adam at 1e-3 on MSE for
a fixed number of epochs; the benchmark's version of it, with minibatches and
early stopping, is ``bench.baselines.chapter_resnet``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

__all__ = ["ResNet", "ResNetBlock"]


class ResNetBlock(nn.Module):
    """The original (post-activation) block of section 34.1.2.

    ``(in) -> Linear -> BatchNorm -> act -> Linear -> BatchNorm -> Add(in) -> act``;
    with ``subsample`` the added input goes through ``Linear(c_in, c_out)``.
    """

    def __init__(self, c_in: int, act_fn: type[nn.Module], subsample: bool = False, c_out=-1):
        super().__init__()
        if not subsample:
            c_out = c_in
        self.net = nn.Sequential(
            nn.Linear(c_in, c_out, bias=False),
            nn.BatchNorm1d(c_out),
            act_fn(),
            nn.Linear(c_out, c_out, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.downsample = nn.Linear(c_in, c_out) if subsample else None
        self.act_fn = act_fn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        if self.downsample is not None:
            x = self.downsample(x)
        out = z + x
        out = self.act_fn(out)
        return out


def get_resnet_blocks_by_name() -> dict[str, type[nn.Module]]:
    return {"ResNetBlock": ResNetBlock}


def get_act_fn_by_name() -> dict[str, type[nn.Module]]:
    return {"relu": nn.ReLU}


class ResNet(nn.Module):
    """The grouped ResNet of Example 34.1.

    ``Linear -> act -> blocks (groups of num_blocks[i] at width c_hidden[i]; the
    first block of every group after the first subsamples) -> Linear``.

    Shape: ``(batch, input_dim) -> (batch, output_dim)``; BatchNorm needs
    ``batch > 1`` in training mode.

    >>> net = ResNet(input_dim=10, output_dim=1)
    >>> net(torch.randn(4, 10)).shape
    torch.Size([4, 1])
    >>> sum(p.numel() for p in net.parameters())
    85121
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_blocks=(3, 3, 3),
        c_hidden=(64, 64, 64),
        act_fn_name: str = "relu",
        block_name: str = "ResNetBlock",
        **kwargs,
    ):
        super().__init__()
        resnet_blocks_by_name = get_resnet_blocks_by_name()
        act_fn_by_name = get_act_fn_by_name()
        # NOTE[DIFF]: the chapter asserts; a ValueError says what is valid.
        if block_name not in resnet_blocks_by_name:
            raise ValueError(f"block_name must be one of {list(resnet_blocks_by_name)}")
        self.hparams = SimpleNamespace(
            output_dim=output_dim,
            c_hidden=list(c_hidden),
            num_blocks=list(num_blocks),
            act_fn_name=act_fn_name,
            act_fn=act_fn_by_name[act_fn_name],
            block_class=resnet_blocks_by_name[block_name],
        )
        self._create_network(input_dim)
        self._init_params()

    def _create_network(self, input_dim: int) -> None:
        c_hidden = self.hparams.c_hidden
        self.input_net = nn.Sequential(nn.Linear(input_dim, c_hidden[0]), self.hparams.act_fn())
        blocks = []
        for block_idx, block_count in enumerate(self.hparams.num_blocks):
            for bc in range(block_count):
                subsample = bc == 0 and block_idx > 0
                blocks.append(
                    self.hparams.block_class(
                        c_in=c_hidden[block_idx if not subsample else block_idx - 1],
                        act_fn=self.hparams.act_fn,
                        subsample=subsample,
                        c_out=c_hidden[block_idx],
                    )
                )
        self.blocks = nn.Sequential(*blocks)
        self.output_net = nn.Linear(c_hidden[-1], self.hparams.output_dim)

    def _init_params(self) -> None:
        # The chapter's init, unchanged: Kaiming normal with fan_out on every
        # Linear (the head included, whose fan_out is 1: std sqrt(2)), biases
        # left at PyTorch's default, BatchNorm at weight 1 / bias 0.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_net(x)
        x = self.blocks(x)
        x = self.output_net(x)
        return x
