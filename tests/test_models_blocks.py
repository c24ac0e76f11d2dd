"""tabresnet.models.blocks: the two residual blocks (norms, dropout, shortcuts, zero init)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.models import (
    PreActResNetBlock,
    ResNetBlock,
    ZeroPadShortcut,
)

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


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
        ValueError, match=r"identity shortcut needs equal widths, however: c_in=8, c_out=12"
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
