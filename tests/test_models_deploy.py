"""Every network variant survives the ways a model leaves Python.

Variants are block x norm x activation x shortcut (2 x 3 x 10 x 2 = 120).
TorchScript is cheap, so it runs on all of them. ``torch.export`` and ONNX run
on a pairwise covering set of 30 (every pair of factor values occurs at least
once: the failures one sees in exporters come from one op or from two layers
meeting, not from four-way interactions). ``torch.compile`` (Inductor compiles
C++ on CPU, seconds per graph) and the dynamo-based ONNX exporter run on a
representative subset and are marked ``slow``; the compile front end
(Dynamo + AOTAutograd, ``fullgraph=True``) runs on one network per block x norm.

Exported graphs are compared with the eager network in eval mode, after a few
train-mode passes so that BatchNorm's running statistics are not the trivial
0 / 1 they start with.
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tabresnet.models import ResNet

BLOCKS = ["ResNetBlock", "PreActResNetBlock"]
NORMS = ["batch", "layer", "none"]
SHORTCUTS = ["projection", "zero_pad"]
ACTIVATIONS = [
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "mish",
    "selu",
    "tanh",
    "sigmoid",
    "identity",
]
INPUT_DIM, OUTPUT_DIM = 5, 2

ALL_COMBOS = list(itertools.product(BLOCKS, NORMS, ACTIVATIONS, SHORTCUTS))


def _pairwise() -> list[tuple[str, str, str, str]]:
    # Activation i with norm j; block and shortcut alternate so that every
    # pair of factor values appears (checked by test_pairwise_set_covers_every_pair).
    return [
        (BLOCKS[(i + j) % 2], NORMS[j], act, SHORTCUTS[(i + j // 2) % 2])
        for i, act in enumerate(ACTIVATIONS)
        for j in range(len(NORMS))
    ]


PAIRWISE = _pairwise()


def _id(combo: tuple[str, str, str, str]) -> str:
    return "-".join(combo)


def build(block: str, norm: str, act: str, shortcut: str, seed: int = 0) -> nn.Module:
    """A tiny two-group network whose second group widens 8 -> 12 (so the
    shortcut is exercised), with residual dropout, in eval mode."""
    torch.manual_seed(seed)
    model = ResNet(
        INPUT_DIM,
        OUTPUT_DIM,
        num_blocks=[1, 1],
        c_hidden=[8, 12],
        act_fn_name=act,
        block_name=block,
        init="torch",  # every branch live: a zero branch would hide a wrong export
        norm=norm,
        shortcut=shortcut,
        dropout=0.1,
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, INPUT_DIM) * 2 + 1)
    return model.eval()


def _inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, INPUT_DIM, generator=torch.Generator().manual_seed(seed))


def test_pairwise_set_covers_every_pair():
    factors = [BLOCKS, NORMS, ACTIVATIONS, SHORTCUTS]
    seen = {
        (a, b, row[a], row[b]) for row in PAIRWISE for a, b in itertools.combinations(range(4), 2)
    }
    for a, b in itertools.combinations(range(4), 2):
        for u, v in itertools.product(factors[a], factors[b]):
            assert (a, b, u, v) in seen, (u, v)


def test_variants_differ():
    # The comparisons below would pass vacuously if every variant computed the same thing.
    x = _inputs()
    with torch.no_grad():
        outs = [build(*combo)(x) for combo in PAIRWISE[:6]]
    for a, b in itertools.combinations(outs, 2):
        assert not torch.allclose(a, b)


# --- TorchScript: every combination ------------------------------------------------
def _script(model: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        return torch.jit.script(model)


@pytest.mark.parametrize("combo", ALL_COMBOS, ids=_id)
def test_torchscript(combo):
    model = build(*combo)
    scripted = _script(model)
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))


@pytest.mark.parametrize("combo", PAIRWISE[::5], ids=_id)
def test_torchscript_save_and_load(combo):
    model = build(*combo)
    buffer = io.BytesIO()
    torch.jit.save(_script(model), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = _inputs(3)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# --- torch.export: the pairwise set ---------------------------------------------------
@pytest.mark.parametrize("combo", PAIRWISE, ids=_id)
def test_torch_export(combo):
    model = build(*combo)
    batch = torch.export.Dim("batch", min=2)
    exported = torch.export.export(model, (_inputs(4),), dynamic_shapes=({0: batch},))
    module = exported.module()
    for n in (4, 9):  # another batch size: the batch dimension is dynamic
        x = _inputs(n, seed=n)
        with torch.no_grad():
            torch.testing.assert_close(module(x), model(x), rtol=1e-5, atol=1e-6)


# --- ONNX + onnxruntime: the pairwise set --------------------------------------------------


def _onnx_bytes(model: nn.Module, dynamo: bool) -> bytes:
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    x = _inputs(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch", min=2)},),
                verbose=False,
            )
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        torch.onnx.export(
            model,
            (x,),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        return buffer.getvalue()


def _check_onnx(model: nn.Module, onnx_model: bytes) -> None:
    # Skipped, not failed, without the "export" extra (onnx, onnxruntime, onnxscript).
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    (input_name,) = [i.name for i in session.get_inputs()]
    for n in (4, 7):
        x = _inputs(n, seed=10 + n)
        (got,) = session.run(None, {input_name: x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert got.shape == expected.shape == (n, OUTPUT_DIM)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("combo", PAIRWISE, ids=_id)
def test_onnx_runtime(combo):
    model = build(*combo)
    _check_onnx(model, _onnx_bytes(model, dynamo=False))


@pytest.mark.slow
@pytest.mark.parametrize("combo", [PAIRWISE[4]], ids=_id)
def test_onnx_runtime_dynamo_exporter(combo):
    model = build(*combo)
    _check_onnx(model, _onnx_bytes(model, dynamo=True))


# --- torch.compile ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "combo",
    [
        (block, norm, ACTIVATIONS[k % len(ACTIVATIONS)], SHORTCUTS[k % 2])
        for k, (block, norm) in enumerate(itertools.product(BLOCKS, NORMS))
    ],
    ids=_id,
)
def test_torch_compile_captures_one_graph(combo):
    # fullgraph=True fails on any graph break; the aot_eager backend runs
    # Dynamo and AOTAutograd (the whole front end) without Inductor's C++
    # build, which takes tens of seconds per graph on CPU.
    torch._dynamo.reset()
    model = build(*combo)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = _inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_torch_compile_inductor():
    # One Inductor build, on the project's default block and norm.
    torch._dynamo.reset()
    model = build("PreActResNetBlock", "layer", "gelu", "projection")
    compiled = torch.compile(model, fullgraph=True)
    x = _inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_bag_of_tabular_networks_scripts():
    from tabresnet.models import MeanEnsemble, ModelConfig

    cfg = ModelConfig(num_blocks=[1], c_hidden=[8])
    bag = MeanEnsemble([cfg.build_tabular(3, [4], 1) for _ in range(3)]).eval()
    x_num, x_cat = torch.randn(5, 3), torch.randint(0, 4, (5, 1))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(bag)(x_num, x_cat), bag(x_num, x_cat))
