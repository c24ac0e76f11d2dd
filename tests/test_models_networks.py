"""tabresnet.models.networks: the chapter's networks and their initialisations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.models import (
    PreActResNetBlock,
    PreActResNetRegression,
    ResNet,
    ResNetBlock,
    ResNetRegression,
    ZeroPadShortcut,
    get_activation,
)

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


# --- networks -----------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "gelu", "tanh"])
def test_network_uses_the_activation_everywhere(act):
    net = ResNet(4, 1, [1, 1], [8, 8], act_fn_name=act)
    cls = get_activation(act)
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.GELU, nn.Tanh))]
    assert acts and all(type(m) is cls for m in acts)


def test_resnet_subsamples_the_first_block_of_later_groups():
    net = ResNet(4, 1, [2, 1, 2], [8, 8, 16])
    assert [b.downsample is not None for b in net.blocks] == [False, False, True, True, False]
    assert net.blocks[3].downsample.out_features == 16


def test_resnet_passes_block_options():
    net = ResNet(
        4,
        1,
        [1, 1],
        [8, 16],
        block_name="PreActResNetBlock",
        norm="batch",
        dropout=0.3,
        shortcut="zero_pad",
    )
    assert isinstance(net.blocks[0].net[0], nn.BatchNorm1d)
    assert net.blocks[1].net[-1].p == 0.3
    assert isinstance(net.blocks[1].downsample, ZeroPadShortcut)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(input_dim=0), r"input_dim must be a positive int, however: input_dim=0"),
        (dict(output_dim=True), r"output_dim must be a positive int, however: output_dim=True"),
        (dict(num_blocks=[]), r"num_blocks must name at least one group, however: num_blocks=\[\]"),
        (
            dict(num_blocks=[1, 2], c_hidden=[8]),
            r"num_blocks and c_hidden must have one entry per group, however: num_blocks=\[1, 2\], c_hidden=\[8\]",
        ),
        (
            dict(num_blocks=[1, 0], c_hidden=[8, 8]),
            r"num_blocks\[1\] must be a positive int, however: num_blocks\[1\]=0",
        ),
        (
            dict(num_blocks=[1], c_hidden=[-8]),
            r"c_hidden\[0\] must be a positive int, however: c_hidden\[0\]=-8",
        ),
        (dict(block_name="Nope"), r"unknown block 'Nope'; valid names are: "),
        (dict(act_fn_name="nope"), r"unknown activation 'nope'; valid names are: "),
        (dict(init="nope"), r"unknown init 'nope'; valid names are: "),
    ],
)
def test_resnet_validates_its_arguments(kwargs, message):
    args = dict(input_dim=4, output_dim=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ResNet(**args)


@pytest.mark.parametrize("cls", [ResNetRegression, PreActResNetRegression])
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_blocks=0), r"num_blocks must be a positive int, however: num_blocks=0"),
        (dict(hidden_dim=2.0), r"hidden_dim must be a positive int, however: hidden_dim=2.0"),
        (dict(input_dim=-1), r"input_dim must be a positive int, however: input_dim=-1"),
    ],
)
def test_single_width_networks_validate_their_arguments(cls, kwargs, message):
    args = dict(input_dim=4, output_dim=1, block="ResNetBlock")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cls(**args)


@pytest.mark.parametrize("block", ["ResNetBlock", "PreActResNetBlock"])
def test_zero_residual_init_starts_at_the_heads_bias(block):
    net = ResNet(4, 3, [2, 2], [8, 16], block_name=block, init="zero_residual")
    assert torch.equal(net.output_net.weight, torch.zeros(3, 16))
    assert torch.equal(net(torch.randn(5, 4)), torch.zeros(5, 3))
    # Every residual branch outputs zero on the stream it receives.
    h = net.input_net(torch.randn(5, 4))
    for b in net.blocks:
        branch = b.net(h)
        assert torch.equal(branch, torch.zeros_like(branch))
        h = b(h)


def test_kaiming_in_init_keeps_the_output_scale():
    torch.manual_seed(0)
    net = ResNet(64, 1, [1], [512], init="kaiming_in")
    # fan_in Kaiming uniform: bound = sqrt(6 / fan_in).
    w = net.output_net.weight
    assert w.abs().max() <= (6 / 512) ** 0.5
    assert torch.equal(net.output_net.bias, torch.zeros(1))


def test_init_accepts_a_function():
    def ones(model):
        for p in model.parameters():
            nn.init.ones_(p)

    net = ResNetRegression(4, 1, "ResNetBlock", init=ones)
    assert all(torch.equal(p, torch.ones_like(p)) for p in net.parameters())


def test_networks_default_inits():
    torch.manual_seed(0)
    # Our grouped ResNet defaults to zero_residual; the single-width networks keep torch's.
    assert torch.equal(ResNet(4, 1).output_net.weight, torch.zeros(1, 64))
    assert ResNetRegression(4, 1, "ResNetBlock").output_layer.weight.abs().sum() > 0
