"""tabresnet.models.layers and .registry: activations, norms, blocks and inits by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.models import (
    BLOCKS,
    PreActResNetBlock,
    ResNet,
    ResNetBlock,
    get_activation,
    get_block,
    get_init,
    get_norm,
)
from tabresnet.models.registry import normalise_name

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


# --- registries -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,cls",
    [
        ("relu", nn.ReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("elu", nn.ELU),
        ("gelu", nn.GELU),
        ("silu", nn.SiLU),
        ("swish", nn.SiLU),
        ("mish", nn.Mish),
        ("selu", nn.SELU),
        ("tanh", nn.Tanh),
        ("sigmoid", nn.Sigmoid),
        ("identity", nn.Identity),
    ],
)
def test_activation_names(name, cls):
    assert get_activation(name) is cls


@pytest.mark.parametrize(
    "spelling", ["leaky_relu", "LeakyReLU", "leakyrelu", "Leaky-ReLU", "LEAKY RELU"]
)
def test_names_are_normalised(spelling):
    assert get_activation(spelling) is nn.LeakyReLU


def test_normalise_name():
    assert normalise_name("Pre-Act_ResNet Block") == "preactresnetblock"


def test_classes_pass_through_unchanged():
    class MyAct(nn.Module):
        def forward(self, x):
            return x

    assert get_activation(MyAct) is MyAct
    assert get_block(PreActResNetBlock) is PreActResNetBlock
    factory = lambda width: nn.LayerNorm(width)  # noqa: E731
    assert get_norm(factory) is factory

    def my_init(model):
        pass

    assert get_init(my_init) is my_init


@pytest.mark.parametrize(
    "name,factory",
    [
        ("batch", nn.BatchNorm1d),
        ("BatchNorm", nn.BatchNorm1d),
        ("bn", nn.BatchNorm1d),
        ("layer", nn.LayerNorm),
        ("LayerNorm", nn.LayerNorm),
        ("ln", nn.LayerNorm),
    ],
)
def test_norm_names(name, factory):
    assert get_norm(name) is factory


@pytest.mark.parametrize("name", ["none", "None", None])
def test_no_norm_builds_identity(name):
    assert isinstance(get_norm(name)(16), nn.Identity)


@pytest.mark.parametrize("spelling", ["ResNetBlock", "resnet_block", "resnetblock"])
def test_block_names(spelling):
    assert get_block(spelling) is ResNetBlock


def test_pre_act_block_name():
    assert get_block("preact_resnet_block") is PreActResNetBlock


@pytest.mark.parametrize(
    "name", ["chapter", "torch", "pytorch", "kaiming_in", "zero_residual", "Zero-Residual"]
)
def test_init_names(name):
    assert callable(get_init(name))


@pytest.mark.parametrize(
    "getter,kind,listed",
    [
        (
            get_activation,
            "activation",
            "elu, gelu, identity, leaky_relu, mish, relu, selu, sigmoid, silu, tanh",
        ),
        (get_norm, "norm", "batch, layer, none"),
        (get_block, "block", "PreActResNetBlock, ResNetBlock"),
        (get_init, "init", "chapter, kaiming_in, torch, zero_residual"),
    ],
)
def test_unknown_name_lists_the_valid_ones(getter, kind, listed):
    with pytest.raises(ValueError, match=rf"unknown {kind} 'nope'; valid names are: {listed}$"):
        getter("nope")


def test_a_block_added_to_the_dict_is_usable_by_name():
    class LinearBlock(nn.Module):
        def __init__(self, c_in, act_fn, subsample=False, c_out=-1, **kwargs):
            super().__init__()
            self.lin = nn.Linear(c_in, c_out if subsample else c_in)

        def forward(self, x):
            return self.lin(x)

    BLOCKS["TestLinearBlock"] = LinearBlock
    try:
        assert get_block("test_linear_block") is LinearBlock
        net = ResNet(4, 1, [1, 1], [8, 16], block_name="TestLinearBlock", init="torch")
        assert isinstance(net.blocks[1], LinearBlock)
        assert net(torch.randn(3, 4)).shape == (3, 1)
    finally:
        # Leave the shared registry as it was for the other tests.
        del BLOCKS["TestLinearBlock"]


def test_the_torch_free_names_are_the_registries_names():
    from tabresnet.models import names
    from tabresnet.models.layers import ACTIVATIONS, NORMS
    from tabresnet.models.registry import BLOCKS, INITS

    assert names.NAMES["block"] == tuple(BLOCKS)
    assert names.NAMES["activation"] == tuple(ACTIVATIONS)
    assert names.NAMES["norm"] == tuple(NORMS)
    assert names.NAMES["init"] == tuple(INITS)
