"""tabresnet.models.tabular: categorical embeddings and TabularNetwork."""

from __future__ import annotations

import pytest
import torch

from tabresnet.models import (
    CategoricalEmbeddings,
    ModelConfig,
    PreActResNetBlock,
    ResNetBlock,
    TabularNetwork,
)

BLOCK_CLASSES = [ResNetBlock, PreActResNetBlock]

# The chapter-era network: one member, numeric columns as they come.
PLAIN = {"ensemble_size": 1, "num_embedding": "none"}


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


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
    cfg = ModelConfig(num_blocks=[1], c_hidden=[16], embedding_dim=3, init="torch", dropout=0.0,
                      **PLAIN)
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
    net = ModelConfig(num_blocks=[1], c_hidden=[8], init="torch", **PLAIN).build_tabular(2, [4])
    net(torch.randn(5, 2), torch.tensor([[1], [2], [3], [1], [0]])).sum().backward()
    grad = net.embeddings.embeddings[0].weight.grad
    assert grad is not None and grad[1:4].abs().sum() > 0


def test_tabular_network_without_categoricals_ignores_x_cat():
    net = ModelConfig(num_blocks=[1], c_hidden=[8], init="torch", **PLAIN).build_tabular(3, [])
    net.eval()
    x_num = torch.randn(4, 3)
    out = net(x_num, torch.zeros(4, 0, dtype=torch.long))
    torch.testing.assert_close(out, net.backbone(x_num))


def test_tabular_network_needs_some_features():
    with pytest.raises(ValueError, match=r"the table has no usable feature columns"):
        ModelConfig(num_blocks=[1], c_hidden=[8]).build_tabular(0, [])
