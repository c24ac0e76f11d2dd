"""tabresnet.models.residual: Residual and the shortcuts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabresnet.models import (
    PreActResNetBlock,
    Residual,
    ResNetBlock,
    ZeroPadShortcut,
    make_shortcut,
)

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
