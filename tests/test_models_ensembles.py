"""Numeric embeddings (PLE, PLR) and ensembles inside one network (BatchEnsemble, packed).

What must hold: the encodings match the paper's definition; packed members are
exactly the k networks they were packed from; BatchNorm statistics stay per
member; ``ensemble_size=1`` without embeddings is the plain network (same
state-dict keys); every new layer scripts, exports to ONNX and matches
onnxruntime.
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tabresnet.models import (
    BatchEnsembleLinear,
    EnsembleBatchNorm,
    EnsembleLayerNorm,
    ModelConfig,
    NumericEmbeddings,
    PackedLinear,
    PeriodicEmbeddings,
    PiecewiseLinearEmbeddings,
    ResNet,
    TabularEnsemble,
    TabularNetwork,
    pack,
)
from tabresnet.models.embeddings import quantile_bins

BLOCKS = ["ResNetBlock", "PreActResNetBlock"]


# --- numeric embeddings ---------------------------------------------------------------------
def test_piecewise_linear_encoding_follows_the_definition():
    emb = PiecewiseLinearEmbeddings(2, n_bins=3, d_embedding=2)
    # Column 0: edges 0, 1, 2, 4 (three bins); column 1: edges 0, 10 (one bin, two padded).
    emb.set_bins([torch.tensor([0.0, 1.0, 2.0, 4.0]), torch.tensor([0.0, 10.0])])
    x = torch.tensor([[-1.0, -5.0], [0.5, 5.0], [1.0, 10.0], [3.0, 20.0], [8.0, 0.0]])
    enc = emb.encode(x)
    expected0 = [
        [-1.0, 0.0, 0.0],  # below the first edge: the first bin extends (not clipped below)
        [0.5, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [1.0, 1.0, 0.5],
        [1.0, 1.0, 3.0],  # above the last edge: the last bin extends (not clipped above)
    ]
    expected1 = [[-0.5, 0, 0], [0.5, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0.0, 0, 0]]
    torch.testing.assert_close(enc[:, 0], torch.tensor(expected0))
    torch.testing.assert_close(enc[:, 1], torch.tensor(expected1, dtype=torch.float32))


def test_quantile_bins_drop_duplicate_edges_and_a_constant_column_encodes_to_zero():
    x = torch.tensor([[0.0, 3.0, 1.0]] * 9 + [[1.0, 3.0, 2.0]])
    edges = quantile_bins(x, 8)
    assert [e.numel() for e in edges] == [2, 1, 2]
    emb = PiecewiseLinearEmbeddings(3, n_bins=8, d_embedding=4)
    emb.set_bins(edges)
    assert torch.count_nonzero(emb.encode(torch.randn(6, 3) * 100)[:, 1]) == 0
    with pytest.raises(ValueError, match="more than n_bins"):
        PiecewiseLinearEmbeddings(1, n_bins=2, d_embedding=2).set_bins([torch.arange(5.0)])


def test_bins_closer_than_float32_resolution_are_one_edge():
    x = torch.tensor([[1.0], [1.0 + 1e-12], [1.0 + 2e-12], [2.0]], dtype=torch.float64)
    (edges,) = quantile_bins(x, 3)
    assert torch.all(edges[1:] > edges[:-1])
    emb = PiecewiseLinearEmbeddings(1, n_bins=3, d_embedding=2)
    emb.set_bins([edges])
    assert torch.isfinite(emb(torch.tensor([[1.0], [1.5], [3.0]]))).all()


def test_periodic_embeddings_start_at_the_frequency_scale():
    torch.manual_seed(0)
    emb = PeriodicEmbeddings(50, n_frequencies=64, d_embedding=4, frequency_scale=0.3)
    assert abs(float(emb.frequencies.detach().std()) - 0.3) < 0.02
    out = emb(torch.randn(7, 50))
    assert out.shape == (7, 50, 4) and (out >= 0).all()  # ReLU after the linear layer
    with pytest.raises(ValueError, match="frequency_scale must be positive"):
        PeriodicEmbeddings(2, 4, 4, frequency_scale=0.0)


@pytest.mark.parametrize("kind", ["ple", "plr"])
def test_numeric_embeddings_pass_the_other_columns_through(kind):
    emb = NumericEmbeddings(3, 2, kind, n_bins=4, d_embedding=5).fit_bins(torch.randn(40, 5))
    x = torch.randn(6, 5)
    out = emb(x)
    assert out.shape == (6, 3 * 5 + 2) and emb.out_features == 17
    torch.testing.assert_close(out[:, -2:], x[:, 3:])
    assert emb(x.unsqueeze(1).expand(6, 4, 5)).shape == (6, 4, 17)  # member dimension
    with pytest.raises(ValueError, match="valid names are: ple, plr"):
        NumericEmbeddings(3, 0, "fourier")


# --- ensemble layers ----------------------------------------------------------------------
def test_batch_ensemble_linear_with_unit_adapters_is_the_shared_linear():
    linear = nn.Linear(4, 3)
    be = BatchEnsembleLinear(linear, k=5)
    x = torch.randn(6, 5, 4)
    torch.testing.assert_close(be(x), linear(x))
    signs = BatchEnsembleLinear(linear, k=5, random_signs=True).r
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    assert sum(p.numel() for p in be.parameters()) == 12 + 5 * (4 + 3 + 3)


def test_ensemble_batch_norm_keeps_statistics_per_member():
    torch.manual_seed(0)
    bn = EnsembleBatchNorm(3, 2).train()
    x = torch.randn(16, 3, 2)
    y1 = bn(x)
    x2 = x.clone()
    x2[:, 1] = x2[:, 1] * 100 + 7  # member 1's rows only
    bn2 = EnsembleBatchNorm(3, 2).train()
    y2 = bn2(x2)
    torch.testing.assert_close(y1[:, [0, 2]], y2[:, [0, 2]])  # other members untouched

    def normalised(z: torch.Tensor) -> torch.Tensor:  # batch statistics, in float64
        z = z.double()
        return ((z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + bn.norm.eps)).float()

    # Each member is normalised by its own rows' statistics, whatever the others' scale
    # (the BLAS or thread count sets the last float32 digits, not the result).
    for y, rows in ((y1, x), (y2, x2)):
        for m in range(3):
            torch.testing.assert_close(y[:, m], normalised(rows[:, m]), rtol=1e-4, atol=1e-4)
    assert bn2.norm.running_mean.view(3, 2)[1].abs().min() > 0.5


def test_ensemble_layer_norm_has_a_scale_per_member():
    norms = [nn.LayerNorm(4) for _ in range(2)]
    with torch.no_grad():
        norms[1].weight.fill_(3.0)
    ln = EnsembleLayerNorm.from_norms(norms)
    x = torch.randn(5, 2, 4)
    torch.testing.assert_close(ln(x)[:, 1], norms[1](x[:, 1]))
    torch.testing.assert_close(ln(x)[:, 0], norms[0](x[:, 0]))


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_packed_members_are_the_networks_they_were_packed_from(block, norm):
    torch.manual_seed(0)
    copies = [
        ResNet(6, 2, num_blocks=[1, 1], c_hidden=[8, 12], block_name=block, norm=norm,
               init="kaiming_in")
        for _ in range(3)
    ]
    originals = [type(c)(6, 2, num_blocks=[1, 1], c_hidden=[8, 12], block_name=block,
                         norm=norm) for c in copies]
    for o, c in zip(originals, copies):
        o.load_state_dict(c.state_dict())
        o.eval()
    packed = pack(copies, "packed").eval()
    assert isinstance(packed.blocks[1].net[0 if block == "ResNetBlock" else 2], PackedLinear)
    x = torch.randn(5, 3, 6)
    with torch.no_grad():
        out = packed(x)
        for j, o in enumerate(originals):
            torch.testing.assert_close(out[:, j], o(x[:, j]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", BLOCKS)
def test_batch_ensemble_members_share_the_blocks_weights(block):
    cfg = ModelConfig(block=block, num_blocks=[2], c_hidden=[16], ensemble_size=4, init="torch",
                      ensemble="batch", num_embedding="none")
    net = cfg.build_tabular(5, [], 1)
    plain = ModelConfig(block=block, num_blocks=[2], c_hidden=[16], ensemble_size=1,
                        num_embedding="none").build_tabular(5, [], 1)
    shared = [m for m in net.modules() if isinstance(m, BatchEnsembleLinear)]
    assert shared and all(m.weight.dim() == 2 for m in shared)
    assert isinstance(net.backbone.output_net, PackedLinear)  # per-member heads
    n_plain = sum(p.numel() for p in plain.parameters())
    n_ens = sum(p.numel() for p in net.parameters())
    assert n_plain < n_ens < 2 * n_plain  # adapters, not four copies
    out = net.eval().members(torch.randn(3, 5), torch.zeros(3, 0, dtype=torch.long))
    assert not torch.allclose(out[:, 0], out[:, 1])  # the first adapter's random signs


def test_one_member_without_embeddings_is_the_plain_network():
    net = ModelConfig(num_blocks=[2, 2], c_hidden=[16, 16], ensemble_size=1,
                      num_embedding="none").build_tabular(4, [3], 1)
    assert type(net) is TabularNetwork and isinstance(net.numeric, nn.Identity)
    keys = set(net.state_dict())
    assert not any(k.startswith("numeric") for k in keys)
    backbone = ModelConfig(num_blocks=[2, 2], c_hidden=[16, 16], ensemble_size=1).build(4 + 8, 1)
    assert {k[len("backbone."):] for k in keys if k.startswith("backbone.")} == set(
        backbone.state_dict())


def test_pack_refuses_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 members"):
        pack([ResNet(3, 1)], "packed")
    with pytest.raises(ValueError, match="valid names are: batch, mini, packed"):
        pack([ResNet(3, 1), ResNet(3, 1)], "shared")
    with pytest.raises(ValueError, match="ensemble_size must be a positive int"):
        ModelConfig(ensemble_size=0)
    with pytest.raises(ValueError, match="unknown num_embedding"):
        ModelConfig(num_embedding="linear")


def test_members_see_their_own_rows():
    net = ModelConfig(num_blocks=[1], c_hidden=[8], ensemble_size=3, ensemble="packed",
                      num_embedding="ple").build_tabular(4, [5], 1, n_cont=2)
    net.numeric.fit_bins(torch.randn(50, 4))
    net.eval()
    x_num, x_cat = torch.randn(6, 3, 4), torch.randint(0, 5, (6, 3, 1))
    with torch.no_grad():
        own = net.members(x_num, x_cat)
        for j in range(3):
            alone = net.members(x_num[:, j], x_cat[:, j])[:, j]
            torch.testing.assert_close(own[:, j], alone)


# --- leaving Python: TorchScript and ONNX ---------------------------------------------------
COMBOS = [
    (block, kind, emb)
    for (block, kind), emb in zip(itertools.product(BLOCKS, ["batch", "packed"]),
                                  ["ple", "plr", "none", "ple"])
]


def _build(block: str, kind: str, emb: str) -> TabularNetwork:
    torch.manual_seed(1)
    cfg = ModelConfig(block=block, num_blocks=[1, 1], c_hidden=[8, 12], ensemble_size=3,
                      ensemble=kind, num_embedding=emb, n_bins=6, num_embedding_dim=4)
    net = cfg.build_tabular(5, [4], 1, n_cont=3)
    if emb == "ple":
        net.numeric.fit_bins(torch.randn(64, 5))
    net.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for _ in range(3):
            net.members(torch.randn(16, 3, 5), torch.randint(0, 4, (16, 3, 1)))
    return net.eval()


def _inputs(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 4, (n, 1), generator=g)


@pytest.mark.parametrize("combo", COMBOS, ids="-".join)
def test_ensembles_script(combo):
    net = _build(*combo)
    scripted = torch.jit.script(net)
    x_num, x_cat = _inputs(7)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x_num, x_cat), net(x_num, x_cat))
        torch.testing.assert_close(scripted.members(x_num, x_cat), net.members(x_num, x_cat))


@pytest.mark.parametrize("combo", COMBOS, ids="-".join)
def test_ensembles_export_to_onnx(combo):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = _build(*combo)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, _inputs(4), buffer, dynamo=False,
                          input_names=["x_num", "x_cat"], output_names=["y"],
                          dynamic_axes={"x_num": {0: "n"}, "x_cat": {0: "n"}, "y": {0: "n"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for n in (4, 9):
        x_num, x_cat = _inputs(n, seed=n)
        (got,) = session.run(None, {"x_num": x_num.numpy(), "x_cat": x_cat.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(got, net(x_num, x_cat).numpy(), rtol=1e-5, atol=1e-5)


def test_tabular_ensemble_is_a_tabular_network():
    net = _build("PreActResNetBlock", "batch", "ple")
    assert isinstance(net, TabularEnsemble) and isinstance(net, TabularNetwork)
    assert "k=3" in repr(net)
