"""tabresnet.models.config: ModelConfig builds, validates and round-trips."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from tabresnet.models import (
    ModelConfig,
    PreActResNetBlock,
    PreActResNetRegression,
    ResNet,
    ResNetBlock,
    ResNetRegression,
    ZeroPadShortcut,
    get_block,
)

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


# --- ModelConfig -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arch,cls",
    [
        ("resnet", ResNet),
        ("resnet_regression", ResNetRegression),
        ("preact_resnet_regression", PreActResNetRegression),
    ],
)
@pytest.mark.parametrize("block", ["ResNetBlock", "PreActResNetBlock"])
def test_config_builds_each_arch(arch, cls, block):
    cfg = ModelConfig(arch=arch, block=block, num_blocks=[2], c_hidden=[16], dropout=0.0)
    net = cfg.build(input_dim=5, output_dim=3)
    assert type(net) is cls
    assert len(net.blocks) == 2
    assert isinstance(net.blocks[0], get_block(block))
    net.eval()
    assert net(torch.randn(4, 5)).shape == (4, 3)


def test_config_builds_groups_and_block_options():
    cfg = ModelConfig(
        block="ResNetBlock",
        num_blocks=[1, 2],
        c_hidden=[8, 16],
        activation="silu",
        norm="layer",
        dropout=0.25,
        shortcut="zero_pad",
        init="torch",
    )
    net = cfg.build(6, 2)
    assert [type(b) for b in net.blocks] == [ResNetBlock] * 3
    assert isinstance(net.blocks[0].net[1], nn.LayerNorm)
    assert isinstance(net.blocks[0].act_fn, nn.SiLU)
    assert net.blocks[0].net[-1].p == 0.25
    assert isinstance(net.blocks[1].downsample, ZeroPadShortcut)


def test_config_norm_none_uses_the_block_default():
    assert ModelConfig().norm is None
    net = ModelConfig(block="ResNetBlock", num_blocks=[1], c_hidden=[8]).build(3)
    assert isinstance(net.blocks[0].net[1], nn.BatchNorm1d)
    net = ModelConfig(block="PreActResNetBlock", num_blocks=[1], c_hidden=[8]).build(3)
    assert isinstance(net.blocks[0].net[0], nn.LayerNorm)


def test_config_zero_init_zeroes_every_branch():
    net = ModelConfig(
        block="PreActResNetBlock",
        num_blocks=[2],
        c_hidden=[8],
        zero_init=True,
        init="torch",
        dropout=0.0,
    ).build(3)
    x = torch.randn(4, 8)
    for b in net.blocks:
        assert torch.equal(b(x), x)


@pytest.mark.parametrize("arch", ["resnet", "resnet_regression", "preact_resnet_regression"])
@pytest.mark.parametrize("init", ["chapter", "kaiming_in", "torch", "zero_residual"])
@pytest.mark.parametrize("block", ["ResNetBlock", "PreActResNetBlock"])
def test_config_zero_init_survives_every_init(arch, init, block):
    # "chapter" redraws every Linear and resets every norm after the blocks
    # are built; zero_init=True must still give zero branches.
    cfg = ModelConfig(
        arch=arch, block=block, num_blocks=[2], c_hidden=[8], zero_init=True, init=init, dropout=0.0
    )
    net = cfg.build(3)
    x = torch.randn(4, 8)
    for b in net.blocks:
        assert torch.equal(b.net(x), torch.zeros(4, 8))


def test_config_is_deterministic_under_a_seed():
    cfg = ModelConfig(num_blocks=[1, 1], c_hidden=[8, 16], init="torch")
    torch.manual_seed(3)
    a = cfg.build(4).state_dict()
    torch.manual_seed(3)
    b = cfg.build(4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_yaml_round_trip():
    cfg = ModelConfig(
        arch="resnet",
        block="ResNetBlock",
        num_blocks=[1, 2],
        c_hidden=[8, 16],
        activation="gelu",
        norm="layer",
        dropout=0.2,
        shortcut="zero_pad",
        zero_init=True,
        init="chapter",
        embedding_dim=4,
    )
    text = cfg.to_yaml()
    assert "activation: gelu" in text
    back = ModelConfig.from_yaml(text)
    assert back == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_config_yaml_reads_a_model_section():
    text = "seed: 3\nmodel:\n  block: ResNetBlock\n  num_blocks: [1]\n  c_hidden: [8]\ntrain:\n  lr: 0.01\n"
    cfg = ModelConfig.from_yaml(text)
    assert (cfg.block, cfg.num_blocks, cfg.c_hidden) == ("ResNetBlock", [1], [8])


def test_config_empty_yaml_gives_the_defaults():
    assert ModelConfig.from_yaml("") == ModelConfig()


def test_config_accepts_a_single_int_per_list():
    cfg = ModelConfig(num_blocks=3, c_hidden=16)
    assert (cfg.num_blocks, cfg.c_hidden) == ([3], [16])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(arch="mlp"),
            r"unknown arch 'mlp'; valid names are: resnet, resnet_regression, preact_resnet_regression",
        ),
        (
            dict(block="Bottleneck"),
            r"unknown block 'Bottleneck'; valid names are: PreActResNetBlock, ResNetBlock",
        ),
        (dict(activation="swishy"), r"unknown activation 'swishy'; valid names are: elu, gelu"),
        (dict(norm="group"), r"unknown norm 'group'; valid names are: batch, layer, none"),
        (dict(init="xavier"), r"unknown init 'xavier'; valid names are: chapter, kaiming_in"),
        (
            dict(num_blocks=[1, 2], c_hidden=[8]),
            r"num_blocks and c_hidden need one entry per group, however: num_blocks=\[1, 2\], c_hidden=\[8\]",
        ),
        (dict(num_blocks=[], c_hidden=[]), r"need one entry per group, however: num_blocks=\[\]"),
        (
            dict(num_blocks=[1, 0], c_hidden=[8, 8]),
            r"block counts and widths must be positive, however: num_blocks=\[1, 0\]",
        ),
        (
            dict(num_blocks=[1], c_hidden=[-8]),
            r"block counts and widths must be positive, however: .*c_hidden=\[-8\]",
        ),
        (dict(num_blocks="3"), r"num_blocks must be a list of ints, however: num_blocks='3'"),
        (
            dict(num_blocks=[2.7], c_hidden=[8]),
            r"num_blocks must be a list of ints, however: num_blocks=\[2.7\]",
        ),
        (
            dict(num_blocks=[True], c_hidden=[8]),
            r"num_blocks must be a list of ints, however: num_blocks=\[True\]",
        ),
        (
            dict(c_hidden=[8, "wide"]),
            r"c_hidden must be a list of ints, however: c_hidden=\[8, 'wide'\]",
        ),
        (
            dict(arch="resnet_regression", num_blocks=[1, 1], c_hidden=[8, 8]),
            r"arch 'resnet_regression' has one width, however: num_blocks=\[1, 1\]; give one group",
        ),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), however: dropout=1.0"),
        (dict(dropout=-0.5), r"dropout must be in \[0, 1\), however: dropout=-0.5"),
        (
            dict(shortcut="identity"),
            r"unknown shortcut 'identity'; valid names are: projection, zero_pad",
        ),
        (dict(embedding_dim=0), r"embedding_dim must be positive, however: 0"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_config_validate_catches_later_changes():
    cfg = ModelConfig()
    cfg.dropout = 2.0
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), however: dropout=2.0"):
        cfg.validate()


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(
        ValueError, match=r"unknown model option\(s\) hidden, lr; valid: activation, arch"
    ):
        ModelConfig.from_dict({"lr": 0.1, "hidden": 3})


def test_config_from_yaml_needs_a_mapping():
    with pytest.raises(ValueError, match=r"a model config must be a YAML mapping of option: value"):
        ModelConfig.from_yaml("- 1\n- 2\n")


def test_config_build_validates_dims():
    with pytest.raises(
        ValueError, match=r"output_dim must be a positive int, however: output_dim=0"
    ):
        ModelConfig(num_blocks=[1], c_hidden=[8]).build(4, 0)


# -- counts, rates and flags of any spelling -------------------------------------
@pytest.mark.parametrize(("flat", "field", "expected"), [
    ({"max_epochs": 3.0}, ("train", "max_epochs"), 3),        # a grid from np.linspace
    ({"max_epochs": "3"}, ("train", "max_epochs"), 3),
    ({"lr": "1e-3"}, ("train", "lr"), 1e-3),                  # PyYAML's reading of 1e-3
    ({"ensemble_size": 8.0}, ("model", "ensemble_size"), 8),
    ({"bag": "5"}, ("data", "bag"), 5),
    ({"seed": 4.0}, ("", "seed"), 4),
])
def test_counts_and_rates_become_their_fields_type(flat, field, expected):
    from tabresnet.defaults import RunConfig

    cfg = RunConfig.from_flat(flat)
    value = getattr(getattr(cfg, field[0]) if field[0] else cfg, field[1])
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("flat", "message"), [
    ({"max_epochs": 2.5}, "max_epochs must be a whole number, however: max_epochs=2.5"),
    ({"max_epochs": True}, "max_epochs must be a whole number, however: max_epochs=True"),
    ({"seed": None}, "seed must be a whole number, however: seed=None"),
    ({"lr": "fast"}, "lr must be a finite number, however: lr='fast'"),
    ({"refit": "false"}, "refit must be true or false, however: refit='false'"),
    ({"zero_init": 1}, "zero_init must be true or false, however: zero_init=1"),
])
def test_a_value_of_the_wrong_kind_is_named(flat, message):
    from tabresnet.defaults import RunConfig

    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig.from_flat(flat)
