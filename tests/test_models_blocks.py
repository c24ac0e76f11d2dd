"""Behaviour of the model layer's parts: Residual, shortcuts, blocks,
registries, ModelConfig and TabularNetwork."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.models import (
    ACTIVATIONS,
    BLOCKS,
    INITS,
    NORMS,
    CategoricalEmbeddings,
    ModelConfig,
    PreActResNetBlock,
    PreActResNetRegression,
    Residual,
    ResNet,
    ResNetBlock,
    ResNetRegression,
    TabularNetwork,
    ZeroPadShortcut,
    get_activation,
    get_block,
    get_init,
    get_norm,
    make_shortcut,
    register_block,
)
from tabresnet.models.registry import normalise_name

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


# --- Residual and shortcuts --------------------------------------------------------
def test_residual_adds_the_input_by_default(x):
    branch = nn.Linear(8, 8)
    r = Residual(branch)
    assert isinstance(r.shortcut, nn.Identity)
    torch.testing.assert_close(r(x), branch(x) + x)


def test_residual_uses_the_given_shortcut(x):
    branch, proj = nn.Linear(8, 5), nn.Linear(8, 5, bias=False)
    r = Residual(branch, proj)
    assert r.shortcut is proj
    torch.testing.assert_close(r(x), branch(x) + proj(x))


def test_residual_parameters_include_the_shortcut():
    r = Residual(nn.Linear(4, 6), make_shortcut("projection", 4, 6))
    assert sorted(n for n, _ in r.named_parameters()) == [
        "module.bias",
        "module.weight",
        "shortcut.bias",
        "shortcut.weight",
    ]


def test_identity_shortcut():
    s = make_shortcut("identity", 4, 4)
    assert isinstance(s, nn.Identity)


@pytest.mark.parametrize("bias", [True, False])
def test_projection_shortcut(bias):
    s = make_shortcut("projection", 4, 6, bias=bias)
    assert isinstance(s, nn.Linear)
    assert (s.in_features, s.out_features) == (4, 6)
    assert (s.bias is not None) == bias


def test_projection_can_narrow():
    assert make_shortcut("projection", 6, 4)(torch.zeros(2, 6)).shape == (2, 4)


def test_zero_pad_shortcut_copies_then_pads():
    s = make_shortcut("zero_pad", 3, 5)
    assert isinstance(s, ZeroPadShortcut)
    assert list(s.parameters()) == []
    x = torch.tensor([[1.0, -2.0, 3.0]])
    assert torch.equal(s(x), torch.tensor([[1.0, -2.0, 3.0, 0.0, 0.0]]))
    assert repr(s) == "ZeroPadShortcut(c_in=3, c_out=5)"


def test_zero_pad_shortcut_on_equal_widths_is_the_identity(x):
    assert torch.equal(make_shortcut("zero_pad", 8, 8)(x), x)


def test_identity_shortcut_rejects_a_width_change():
    with pytest.raises(
        ValueError, match=r"identity shortcut needs equal widths, however: c_in=3, c_out=5"
    ):
        make_shortcut("identity", 3, 5)


def test_zero_pad_shortcut_rejects_narrowing():
    with pytest.raises(
        ValueError, match=r"zero_pad shortcut can only widen, however: c_in=5 > c_out=3"
    ):
        make_shortcut("zero_pad", 5, 3)


def test_unknown_shortcut():
    with pytest.raises(
        ValueError,
        match=r"unknown shortcut 'conv'; valid names are: identity, projection, zero_pad",
    ):
        make_shortcut("conv", 3, 3)


# --- blocks: structure ----------------------------------------------------------------
# Index of the two norm slots in each block's branch (the chapter's order).
NORM_SLOTS = {ResNetBlock: (1, 4), PreActResNetBlock: (0, 3)}
LINEAR_SLOTS = {ResNetBlock: (0, 3), PreActResNetBlock: (2, 5)}
NORM_TYPES = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": nn.Identity}


def test_block_default_norms():
    # The chapter: BatchNorm in the original block, LayerNorm in the pre-activation one.
    assert isinstance(ResNetBlock(8, nn.ReLU).net[1], nn.BatchNorm1d)
    assert isinstance(PreActResNetBlock(8, nn.ReLU).net[0], nn.LayerNorm)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_norm_sits_in_the_same_slot(block, norm):
    b = block(8, nn.ReLU, norm=norm)
    assert len(b.net) == (6 if block is PreActResNetBlock else 5)
    for i in NORM_SLOTS[block]:
        assert type(b.net[i]) is NORM_TYPES[norm]
    for i in LINEAR_SLOTS[block]:
        assert isinstance(b.net[i], nn.Linear)
        assert b.net[i].bias is None


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_no_norm_keeps_the_linear_parameter_names(block):
    with_norm = set(block(8, nn.ReLU).state_dict())
    without = set(block(8, nn.ReLU, norm="none").state_dict())
    linears = {f"net.{i}.weight" for i in LINEAR_SLOTS[block]}
    assert without == linears
    assert linears < with_norm


def test_norm_none_value_means_no_norm():
    assert isinstance(ResNetBlock(8, nn.ReLU, norm=None).net[1], nn.Identity)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_norm_accepts_a_factory(block):
    b = block(8, nn.ReLU, norm=lambda width: nn.GroupNorm(2, width))
    for i in NORM_SLOTS[block]:
        assert isinstance(b.net[i], nn.GroupNorm)
    assert b(torch.randn(3, 8)).shape == (3, 8)


def test_post_activation_block_applies_the_activation_after_the_add(x):
    b = ResNetBlock(8, nn.ReLU)
    out = b(x)
    assert isinstance(b.act_fn, nn.ReLU)
    torch.testing.assert_close(out, torch.relu(b.net(x) + x))
    assert (out >= 0).all()


def test_pre_activation_block_has_no_activation_after_the_add(x):
    b = PreActResNetBlock(8, nn.ReLU)
    assert not hasattr(b, "act_fn")
    out = b(x)
    torch.testing.assert_close(out, b.net(x) + x)
    assert (out < 0).any()


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_subsample_changes_the_width(block, x):
    b = block(8, "relu", subsample=True, c_out=12)
    assert b(x).shape == (6, 12)
    assert b.downsample is not None


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_without_subsample_c_out_is_ignored(block, x):
    # The chapter: "c_out is only relevant if subsample is True".
    b = block(8, "relu", subsample=False, c_out=12)
    assert b.downsample is None
    assert b(x).shape == (6, 8)


def test_post_activation_projection_has_a_bias_pre_activation_has_not():
    # As in the chapter: nn.Linear(c_in, c_out) vs Norm -> act -> Linear(bias=False).
    assert ResNetBlock(8, "relu", True, 12).downsample.bias is not None
    down = PreActResNetBlock(8, "relu", True, 12).downsample
    assert [type(m) for m in down] == [nn.LayerNorm, nn.ReLU, nn.Linear]
    assert down[2].bias is None


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_zero_pad_shortcut_in_a_block(block, x):
    b = block(8, "relu", subsample=True, c_out=12, shortcut="zero_pad")
    assert isinstance(b.downsample, ZeroPadShortcut)
    assert b(x).shape == (6, 12)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_block_rejects_an_identity_shortcut_on_a_width_change(block):
    with pytest.raises(
        ValueError, match=r"changes width needs shortcut .* however: shortcut='identity'"
    ):
        block(8, "relu", subsample=True, c_out=12, shortcut="identity")


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_block_rejects_a_narrowing_zero_pad(block):
    with pytest.raises(ValueError, match=r"zero_pad shortcut can only widen"):
        block(8, "relu", subsample=True, c_out=4, shortcut="zero_pad")


@pytest.mark.parametrize("block", BLOCK_CLASSES)
@pytest.mark.parametrize("c_in", [0, -3, 2.5])
def test_block_rejects_a_bad_c_in(block, c_in):
    with pytest.raises(ValueError, match=r"c_in must be a positive int, however: c_in="):
        block(c_in, nn.ReLU)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_subsample_needs_c_out(block):
    with pytest.raises(
        ValueError, match=r"subsample=True needs a positive c_out, however: c_out=-1"
    ):
        block(8, nn.ReLU, subsample=True)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_block_accepts_activation_names(block):
    b = block(8, "GELU")
    assert any(isinstance(m, nn.GELU) for m in b.modules())


# --- blocks: dropout ------------------------------------------------------------------
@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_zero_dropout_adds_no_module(block):
    assert not any(isinstance(m, nn.Dropout) for m in block(8, nn.ReLU).modules())


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_dropout_is_last_on_the_branch(block, x):
    b = block(8, nn.ReLU, dropout=0.5)
    assert isinstance(b.net[-1], nn.Dropout)
    assert b.net[-1].p == 0.5
    # The parameter names are those of the block without dropout.
    assert set(b.state_dict()) == set(block(8, nn.ReLU).state_dict())


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_dropout_acts_in_train_mode_only(block, x):
    torch.manual_seed(0)
    plain = block(8, nn.ReLU)
    dropped = block(8, nn.ReLU, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    plain.eval()
    dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x))
    dropped.train()
    plain.train()
    torch.manual_seed(1)
    assert not torch.allclose(dropped(x), plain(x))


@pytest.mark.parametrize("block", BLOCK_CLASSES)
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_dropout_out_of_range(block, dropout):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), however: dropout="):
        block(8, nn.ReLU, dropout=dropout)


# --- blocks: zero init -------------------------------------------------------------------
def _shortcut(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x if block.downsample is None else block.downsample(x)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
@pytest.mark.parametrize(
    "subsample,shortcut", [(False, "projection"), (True, "projection"), (True, "zero_pad")]
)
@pytest.mark.parametrize("train", [True, False])
def test_zero_init_pre_activation_block_is_its_shortcut(norm, subsample, shortcut, train, x):
    b = PreActResNetBlock(
        8, nn.ReLU, subsample, 12, norm=norm, shortcut=shortcut, dropout=0.2, zero_init=True
    )
    b.train(train)
    torch.testing.assert_close(b(x), _shortcut(b, x))


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
@pytest.mark.parametrize(
    "subsample,shortcut", [(False, "projection"), (True, "projection"), (True, "zero_pad")]
)
@pytest.mark.parametrize("train", [True, False])
def test_zero_init_post_activation_block_is_act_of_its_shortcut(
    norm, subsample, shortcut, train, x
):
    b = ResNetBlock(
        8, nn.ELU, subsample, 12, norm=norm, shortcut=shortcut, dropout=0.2, zero_init=True
    )
    b.train(train)
    torch.testing.assert_close(b(x), nn.functional.elu(_shortcut(b, x)))


@pytest.mark.parametrize("block", BLOCK_CLASSES)
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_zero_init_branch_method_matches_the_constructor_flag(block, norm, x):
    b = block(8, nn.ReLU, norm=norm)
    assert not torch.allclose(b(x), b.act_fn(x) if hasattr(b, "act_fn") else x)
    b.zero_init_branch()
    torch.testing.assert_close(b(x), b.act_fn(x) if hasattr(b, "act_fn") else x)


@pytest.mark.parametrize("block", BLOCK_CLASSES)
def test_zero_init_leaves_the_branch_trainable(block, x):
    b = block(8, nn.ReLU, zero_init=True)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (b(x) - 1.0).square().mean().backward()
        opt.step()
    assert b.net(x).abs().max() > 0


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


def test_registries_know_their_names():
    assert ACTIVATIONS.name_of(nn.SiLU) == "silu"
    assert NORMS.name_of(nn.LayerNorm) == "layer"
    assert BLOCKS.name_of(ResNetBlock) == "ResNetBlock"
    assert INITS.name_of(lambda m: None) is None


def test_register_block_makes_a_block_usable_by_name():
    @register_block("TestLinearBlock")
    class LinearBlock(nn.Module):
        def __init__(self, c_in, act_fn, subsample=False, c_out=-1, **kwargs):
            super().__init__()
            self.lin = nn.Linear(c_in, c_out if subsample else c_in)

        def forward(self, x):
            return self.lin(x)

    try:
        assert get_block("test_linear_block") is LinearBlock
        net = ResNet(4, 1, [1, 1], [8, 16], block_name="TestLinearBlock", init="torch")
        assert isinstance(net.blocks[1], LinearBlock)
        assert net(torch.randn(3, 4)).shape == (3, 1)
    finally:
        # Leave the shared registry as it was for the other tests.
        del BLOCKS[normalise_name("TestLinearBlock")]
        BLOCKS.canonical_names.remove("TestLinearBlock")


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


# --- TabularNetwork ------------------------------------------------------------------------
def test_categorical_embeddings():
    emb = CategoricalEmbeddings([5, 3], dim=4)
    assert emb.out_features == 8
    codes = torch.tensor([[0, 2], [4, 1]])
    out = emb(codes)
    assert out.shape == (2, 8)
    torch.testing.assert_close(out[1, :4], emb.embeddings[0].weight[4])
    torch.testing.assert_close(out[0, 4:], emb.embeddings[1].weight[2])


def test_categorical_embeddings_need_a_positive_dim():
    with pytest.raises(ValueError, match=r"embedding dim must be positive, however: dim=0"):
        CategoricalEmbeddings([3], dim=0)


def test_tabular_network_concatenates_numeric_and_embedded_columns():
    torch.manual_seed(0)
    cfg = ModelConfig(num_blocks=[1], c_hidden=[16], embedding_dim=3, init="torch", dropout=0.0)
    net = cfg.build_tabular(n_num=4, cardinalities=[5, 7], output_dim=2)
    assert isinstance(net, TabularNetwork)
    assert net.backbone.input_net[0].in_features == 4 + 2 * 3
    net.eval()
    x_num = torch.randn(6, 4)
    x_cat = torch.tensor([[1, 2]] * 6)
    out = net(x_num, x_cat)
    assert out.shape == (6, 2)
    expected = net.backbone(torch.cat([x_num, net.embeddings(x_cat)], dim=1))
    torch.testing.assert_close(out, expected)
    # The categorical codes change the prediction.
    assert not torch.allclose(net(x_num, x_cat + 1), out)


def test_tabular_network_trains_the_embeddings():
    net = ModelConfig(num_blocks=[1], c_hidden=[8], init="torch").build_tabular(2, [4])
    net(torch.randn(5, 2), torch.tensor([[1], [2], [3], [1], [0]])).sum().backward()
    grad = net.embeddings.embeddings[0].weight.grad
    assert grad is not None and grad[1:4].abs().sum() > 0


def test_tabular_network_without_categoricals_ignores_x_cat():
    net = ModelConfig(num_blocks=[1], c_hidden=[8], init="torch").build_tabular(3, [])
    net.eval()
    x_num = torch.randn(4, 3)
    out = net(x_num, torch.zeros(4, 0, dtype=torch.long))
    torch.testing.assert_close(out, net.backbone(x_num))


def test_tabular_network_needs_some_features():
    with pytest.raises(ValueError, match=r"the table has no usable feature columns"):
        ModelConfig(num_blocks=[1], c_hidden=[8]).build_tabular(0, [])
