"""``tabresnet export``: the network and its preprocessing as one ONNX / TorchScript graph.

Models here are built without training (a fitted preprocessor, a network with
PyTorch's initialisation so that every branch is live, PLE bins cut at the
training rows, BatchNorm statistics moved off 0/1 by a few train-mode passes):
what matters is that the exported graph computes what ``TabularModel.predict``
computes, on raw rows with missing values and unseen categories. One small
``fit`` feeds the command-line tests.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tabresnet.artifact import TabularModel
from tabresnet.cli import main
from tabresnet.data import Preprocessor, Schema
from tabresnet.defaults import RunConfig
from tabresnet.errors import ConfigError, DataError, ExportError
from tabresnet.export import (
    ONNX_OPSET,
    RawInputModel,
    _Interp,
    _QuantileNormal,
    export_onnx,
    export_torchscript,
    inputs_from_frame,
    read_sidecar,
)
from tabresnet.models import MeanEnsemble

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric columns with gaps, ties and a constant; low- and high-cardinality categoricals."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "a": rng.normal(size=n),
        "ties": rng.choice([1.5, 5.5683, 26.2, 100.0], n),  # repeated decimals: tied quantiles
        "big": rng.exponential(size=n) * 1e4,
        "const": np.full(n, 3.0),
        "low": rng.choice(["x", "y", "z"], n),  # one-hot
        "high": rng.choice([f"v{i}" for i in range(40)], n),  # embedded
        "num_cat": rng.choice([1.0, 2.0, 7.0], n),  # categorical of numbers: "1", "2", "7"
    })
    df.loc[rng.random(n) < 0.15, "a"] = np.nan  # gaps in training: a missing indicator
    df.loc[rng.random(n) < 0.1, "low"] = None
    df["y"] = 2 * df.a.fillna(0) + np.log1p(df.big) + (df.low == "x") + 100
    df["y2"] = df.ties - df.a.fillna(1)
    return df


def damaged(df: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Rows to predict: more gaps (in columns that had none too) and unseen categories."""
    rng = np.random.default_rng(seed)
    out = df.drop(columns=["y", "y2"]).copy()
    for col in ["a", "ties", "big", "const"]:
        out.loc[rng.random(len(out)) < 0.2, col] = np.nan
    out.loc[0, "big"] = 1e9  # beyond the last quantile
    out.loc[1, "big"] = -5.0  # below the first
    out.loc[2, "const"] = 4.0  # a constant column gets another value
    for col in ["low", "high", "num_cat"]:
        values = out[col].astype(object)
        values[rng.random(len(out)) < 0.15] = None
        values[rng.random(len(out)) < 0.05] = "unseen"
        out[col] = values
    return out


def build(df: pd.DataFrame, targets=("y",), numeric=("a", "ties", "big", "const"),
          categorical=("low", "high", "num_cat"), dates=(), members: int = 0,
          **options) -> TabularModel:
    config = RunConfig.from_flat({"num_blocks": [1], "c_hidden": [16], "init": "torch",
                                  "n_bins": 8, "n_frequencies": 4, "num_embedding_dim": 4,
                                  **options})
    schema = Schema(numeric=list(numeric), categorical=list(categorical), dates=list(dates),
                    targets=list(targets))
    pre = Preprocessor(schema, config.data).fit(df)
    x_num, x_cat = (torch.as_tensor(v) for v in pre.transform(df))
    torch.manual_seed(0)

    def one():
        net = config.model.build_tabular(pre.n_num, pre.cardinalities, len(targets), pre.n_cont)
        if hasattr(net.numeric, "fit_bins"):
            net.numeric.fit_bins(x_num)
        net.train()
        with torch.no_grad():  # BatchNorm statistics away from 0 / 1
            for _ in range(3):
                net(x_num, x_cat)
        return net.eval()

    network = MeanEnsemble([one() for _ in range(members)]) if members else one()
    return TabularModel(network, config, schema, pre)


def predict(model: TabularModel, frame: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen categories: one warning
        pred = model.predict(frame)
    return pred[:, None] if pred.ndim == 1 else pred


def run_onnx(path: Path, frame: pd.DataFrame) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, inputs_from_frame(frame, read_sidecar(path)))
    return out


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return table()


# One model per variant: together they cover the embeddings, the ensemble kinds,
# the numeric transforms, a bag and several targets.
VARIANTS = {
    "ple-mini-quantile": {"num_embedding": "ple", "ensemble_size": 4, "ensemble": "mini"},
    "plr-single-standard": {"num_embedding": "plr", "ensemble_size": 1,
                            "numeric_transform": "standard", "norm": "batch"},
    "none-packed-none": {"num_embedding": "none", "ensemble_size": 3, "ensemble": "packed",
                         "numeric_transform": "none", "block": "ResNetBlock"},
    "ple-batch-quantile": {"num_embedding": "ple", "ensemble_size": 2, "ensemble": "batch",
                           "norm": "layer", "activation": "gelu"},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_onnx_matches_predict_on_rows_with_gaps_and_unseen_categories(df, tmp_path, name):
    model = build(df, **VARIANTS[name])
    new = damaged(df)
    path = export_onnx(model, tmp_path / "m.onnx")
    assert_close(run_onnx(path, new), predict(model, new))


def test_a_bag_of_ensembles_is_one_graph(df, tmp_path):
    model = build(df, members=3, ensemble_size=2, targets=("y", "y2"))
    new = damaged(df)
    path = export_onnx(model, tmp_path / "bag.onnx")
    got = run_onnx(path, new)
    assert got.shape == (len(new), 2)
    assert_close(got, predict(model, new))
    meta = read_sidecar(path)
    assert meta["targets"] == ["y", "y2"] and meta["outputs"][0]["columns"] == ["y", "y2"]


# -- a quantile model: the prediction and every level ------------------------------------
@pytest.fixture(scope="module", params=[("y",), ("y", "y2")], ids=["one-target", "two-targets"])
def quantile_run(request, tmp_path_factory, df) -> Path:
    """--loss quantile, levels given unsorted: Q outputs per target, one run directory."""
    import tabresnet

    out = tmp_path_factory.mktemp("quantile") / "run"
    targets = list(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tabresnet.fit(df[[c for c in df.columns if c not in {"y", "y2"} - set(targets)]],
                      targets, out=out, loss="quantile",
                      quantiles=[0.9, 0.1, 0.5], max_epochs=2, num_blocks=[1], c_hidden=[8],
                      progress="none", report=False)
    return out


def predict_levels(model: TabularModel, frame: pd.DataFrame) -> np.ndarray:
    """predict_quantiles as (N, n_targets, Q): it drops the target axis for one target."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen categories: one warning
        levels = model.predict_quantiles(frame)
    return levels[:, None, :] if levels.ndim == 2 else levels


def test_a_quantile_model_exports_its_prediction_and_its_levels(quantile_run, df, tmp_path):
    import tabresnet

    model = tabresnet.load(quantile_run)
    n_t = len(model.targets)
    new = damaged(df)
    path = export_onnx(model, tmp_path / "q.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["prediction", "quantiles"]
    meta = read_sidecar(path)
    prediction, levels = session.run(None, inputs_from_frame(new, meta))
    assert levels.dtype == np.float32 and levels.shape == (len(new), n_t, 3)
    expected = predict_levels(model, new)
    np.testing.assert_allclose(levels, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert (np.diff(levels, axis=-1) >= 0).all()  # sorted: the levels never cross
    assert np.all(levels[..., 0] < levels[..., 2])  # and they are a band, not one value
    # The first output is unchanged: predict's point prediction, the level nearest 0.5.
    np.testing.assert_array_equal(prediction, levels[:, :, 1])
    assert_close(prediction, predict(model, new))
    assert meta["quantiles"] == [0.1, 0.5, 0.9]
    assert meta["outputs"] == [
        {"name": "prediction", "dtype": "float32", "shape": ["batch", n_t],
         "columns": model.targets, "quantile": 0.5},
        {"name": "quantiles", "dtype": "float32", "shape": ["batch", n_t, 3],
         "columns": model.targets, "levels": [0.1, 0.5, 0.9]},
    ]


def test_a_quantile_models_torchscript_module_has_a_quantiles_method(quantile_run, df,
                                                                    tmp_path):
    import tabresnet

    model = tabresnet.load(quantile_run)
    new = damaged(df)
    path = export_torchscript(model, tmp_path / "q.pt")
    module = torch.jit.load(str(path))
    meta = read_sidecar(path)
    feeds = inputs_from_frame(new, meta)
    args = (torch.from_numpy(feeds["numeric"]), torch.from_numpy(feeds["categorical"]))
    with torch.no_grad():
        prediction, levels = module(*args).numpy(), module.quantiles(*args).numpy()
    expected = predict_levels(model, new)
    np.testing.assert_allclose(levels, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert levels.dtype == np.float32 and (np.diff(levels, axis=-1) >= 0).all()
    np.testing.assert_array_equal(prediction, levels[:, :, 1])
    assert_close(prediction, predict(model, new))
    assert [(o["name"], o["method"]) for o in meta["outputs"]] == [
        ("prediction", "forward"), ("quantiles", "quantiles")]
    assert meta["quantiles"] == [0.1, 0.5, 0.9]


class _Crossed(torch.nn.Module):
    """A network whose levels come out in reverse order: quantile curves that cross."""

    def __init__(self, network: torch.nn.Module, n_targets: int, n_q: int):
        super().__init__()
        self.network, self.n_targets, self.n_q = network, n_targets, n_q

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        out = self.network(x_num, x_cat)
        return out.reshape(-1, self.n_targets, self.n_q).flip(-1).reshape(out.shape)


def test_crossing_levels_are_sorted_as_predict_sorts_them(quantile_run, df, tmp_path):
    import tabresnet

    model = tabresnet.load(quantile_run)
    n_t = len(model.targets)
    model.network = _Crossed(model.network, n_t, 3).eval()
    new = damaged(df)
    feeds = inputs_from_frame(new, _meta(model))
    with torch.no_grad():
        raw = model.network(*(torch.as_tensor(v) for v in model.preprocessor.transform(new)))
    assert (raw.reshape(len(new), n_t, 3).diff(dim=-1) < 0).all()  # the case is real
    expected = predict_levels(model, new)
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "q.onnx")),
                                   providers=["CPUExecutionProvider"])
    prediction, levels = session.run(None, feeds)
    np.testing.assert_allclose(levels, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert_close(prediction, predict(model, new))
    module = torch.jit.load(str(export_torchscript(model, tmp_path / "q.pt")))
    with torch.no_grad():
        got = module.quantiles(torch.from_numpy(feeds["numeric"]),
                               torch.from_numpy(feeds["categorical"])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_export_checks_the_quantiles_output_too(quantile_run, tmp_path, monkeypatch):
    import tabresnet

    model = tabresnet.load(quantile_run)
    original = RawInputModel.quantiles

    def drifting(self, numeric, categorical):  # the graph is right, the module is not
        return original(self, numeric, categorical) * 1.001

    monkeypatch.setattr(RawInputModel, "quantiles", drifting)
    with pytest.raises(ExportError, match="does not run as the model does"):
        export_onnx(model, tmp_path / "q.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_export_names_a_quantile_models_levels(quantile_run, tmp_path, capsys):
    assert main(["export", str(quantile_run), "--onnx", str(tmp_path / "q.onnx")]) == 0
    n_t = len(read_sidecar(tmp_path / "q.onnx")["targets"])
    out = capsys.readouterr().out
    assert (f"output: prediction float32 (N, {n_t}) and quantiles float32 (N, {n_t}, 3) "
            "at levels 0.1, 0.5, 0.9") in out


def test_a_point_model_has_one_output_and_no_quantiles_method(df, tmp_path):
    model = build(df, ensemble_size=2)
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    meta = read_sidecar(path)
    assert [o["name"] for o in meta["outputs"]] == ["prediction"] and meta["quantiles"] == []
    module = torch.jit.load(str(export_torchscript(model, tmp_path / "m.pt")))
    args = (torch.zeros((2, 4), dtype=torch.float64), torch.ones((2, 3), dtype=torch.long))
    assert module(*args).shape == (2, 1)
    with pytest.raises(torch.jit.Error, match="predicts a point, not quantiles"):
        module.quantiles(*args)


def test_torchscript_matches_predict(df, tmp_path):
    model = build(df, members=2, ensemble_size=2, num_embedding="plr")
    new = damaged(df)
    path = export_torchscript(model, tmp_path / "m.pt")
    module = torch.jit.load(str(path))
    feeds = inputs_from_frame(new, read_sidecar(path))
    # No torch.no_grad() needed: the saved module is for inference.
    got = module(torch.from_numpy(feeds["numeric"]), torch.from_numpy(feeds["categorical"]))
    assert got.dtype == torch.float32 and not got.requires_grad
    assert_close(got.numpy(), predict(model, new))


def test_float32_input(df, tmp_path):
    model = build(df, ensemble_size=2)
    path = export_onnx(model, tmp_path / "m32.onnx", float32=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert read_sidecar(path)["inputs"][0]["dtype"] == "float32"
    new = damaged(df)
    feeds = inputs_from_frame(new, read_sidecar(path))
    assert feeds["numeric"].dtype == np.float32
    # Rounding the inputs to float32 costs a little (docs/benchmarks.md), not more.
    expected = predict(model, new)
    np.testing.assert_allclose(run_onnx(path, new), expected, rtol=2e-4)
    default = export_onnx(model, tmp_path / "m64.onnx")
    assert ort.InferenceSession(str(default)).get_inputs()[0].type == "tensor(double)"


def test_the_batch_dimension_is_dynamic(df, tmp_path):
    model = build(df, ensemble_size=2)
    path = export_onnx(model, tmp_path / "m.onnx")
    new = damaged(df)
    for rows in (new.iloc[:1], new.iloc[:7], pd.concat([new] * 5, ignore_index=True)):
        assert_close(run_onnx(path, rows), predict(model, rows))


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_model_with_one_kind_of_column_has_one_input(df, tmp_path, kind):
    cols = {"numeric": ("a", "big"), "categorical": ()}
    cats = {"numeric": (), "categorical": ("low", "high")}
    model = build(df, numeric=cols[kind], categorical=cats[kind], ensemble_size=2)
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [kind]
    assert [i["name"] for i in read_sidecar(path)["inputs"]] == [kind]
    new = damaged(df)
    assert_close(run_onnx(path, new), predict(model, new))


def test_date_columns_enter_as_their_numeric_parts(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"when": pd.Timestamp("2020-01-01")
                       + pd.to_timedelta(rng.integers(0, 900, n), "D"),
                       "a": rng.normal(size=n)})
    df["y"] = df.a + df.when.dt.month
    model = build(df, numeric=("a",), categorical=(), dates=("when",), ensemble_size=1)
    path = export_onnx(model, tmp_path / "d.onnx")
    meta = read_sidecar(path)
    assert meta["inputs"][0]["columns"][:2] == ["a", "when__days"]
    assert meta["dates"]["when"]["inputs"][1] == "when__year"
    new = df.drop(columns="y").copy()
    new.loc[::4, "when"] = pd.NaT
    assert_close(run_onnx(path, new), predict(model, new))


# -- the pieces --------------------------------------------------------------------------
def test_interp_is_numpys_with_ties():
    rng = np.random.default_rng(0)
    xp = np.sort(rng.choice(np.round(rng.normal(size=30), 1), size=(3, 25)), axis=1)
    fp = np.sort(rng.random((3, 25)), axis=1)
    x = np.concatenate([xp[:, :].T, rng.normal(size=(50, 3)) * 0.8])  # knots and between
    x = x[(x >= xp[:, 0]).all(1) & (x <= xp[:, -1]).all(1)]
    got = _Interp(xp, fp)(torch.from_numpy(x)).numpy()
    expected = np.stack([np.interp(x[:, j], xp[j], fp[j]) for j in range(3)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_quantile_transform_is_sklearns(df):
    pre = Preprocessor(Schema(numeric=["a", "ties", "big", "const"], targets=["y"])).fit(df)
    module = _QuantileNormal(pre.quantiles_, pre.constant_)
    x = np.concatenate([
        df[["a", "ties", "big", "const"]].fillna(0.5).to_numpy(),
        [[-1e6, 1.5, 0.0, 3.0], [1e6, 100.0, 1e9, 3.0], [pre.quantiles_[0, 0], 5.5683, 1.0, 2.0]],
    ])
    got = module(torch.from_numpy(x), False).numpy()
    expected = pre._transform_numeric(x)[:, :4]
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)


def test_float32_input_keeps_values_that_many_training_rows_share(df):
    # 5.5683 as float32 is 5.5682998: without snapping it to its knot it would
    # fall below the tie and get a very different transformed value.
    pre = Preprocessor(Schema(numeric=["ties"], targets=["y"])).fit(df)
    module = _QuantileNormal(pre.quantiles_, pre.constant_)
    values = np.array([[1.5], [5.5683], [26.2], [100.0]])
    got = module(torch.from_numpy(values.astype(np.float32).astype(np.float64)), True).numpy()
    np.testing.assert_allclose(got, pre._transform_numeric(values), rtol=1e-8)
    unsnapped = pre._transform_numeric(values.astype(np.float32).astype(np.float64))
    assert np.abs(unsnapped - got).max() > 0.1  # the case is real


def test_raw_input_model_is_predict_from_tensors(df):
    model = build(df, ensemble_size=2)
    new = damaged(df)
    feeds = inputs_from_frame(new, _meta(model))
    with torch.no_grad():
        got = RawInputModel(model)(torch.from_numpy(feeds["numeric"]),
                                   torch.from_numpy(feeds["categorical"])).numpy()
    assert_close(got, predict(model, new))


def _meta(model: TabularModel) -> dict:
    from tabresnet.export import _sidecar

    return _sidecar(model, "onnx", ["numeric", "categorical"])


def test_out_of_range_codes_count_as_unseen(df, tmp_path):
    model = build(df, ensemble_size=1)
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    numeric = np.zeros((3, 4))
    codes = np.array([[0, 0, 0], [-3, 1000, 99], [4, 41, 4]], dtype=np.int64)
    (out,) = session.run(None, {"numeric": numeric, "categorical": codes})
    assert np.all(out == out[0])  # every row reads as all-missing


# -- the JSON beside the graph ---------------------------------------------------------------
def test_sidecar_names_columns_codes_targets_and_versions(df, tmp_path):
    from tabresnet import __version__

    model = build(df, ensemble_size=1)
    path = export_onnx(model, tmp_path / "m.onnx")
    text = (tmp_path / "m.onnx.json").read_text()
    meta = json.loads(text)
    assert meta["opset"] == ONNX_OPSET and meta["tabresnet_version"] == __version__
    assert meta["inputs"][0]["columns"] == ["a", "ties", "big", "const"]
    assert meta["inputs"][1]["columns"] == ["low", "high", "num_cat"]
    assert meta["categories"]["low"] == {"x": 1, "y": 2, "z": 3}
    assert meta["categories"]["num_cat"] == {"1": 1, "2": 2, "7": 3}
    assert meta["preprocessing"]["missing_indicators"] == ["a"]
    assert meta["preprocessing"]["onehot"] == ["low", "num_cat"]
    assert read_sidecar(path) == read_sidecar(tmp_path / "m.onnx.json") == meta


def test_read_sidecar_errors(tmp_path):
    with pytest.raises(DataError, match="not found.*export the model again"):
        read_sidecar(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_sidecar(tmp_path / "bad.onnx")
    (tmp_path / "other.json").write_text('{"format": "x"}')
    with pytest.raises(DataError, match="not a tabresnet export"):
        read_sidecar(tmp_path / "other.json")


def test_inputs_from_frame_names_a_missing_column(df, tmp_path):
    model = build(df, ensemble_size=1)
    meta = read_sidecar(export_onnx(model, tmp_path / "m.onnx"))
    with pytest.raises(DataError, match="column 'high' is not in the table"):
        inputs_from_frame(df.drop(columns="high"), meta)


# -- errors: one line, nothing half-written -------------------------------------------------
def test_bad_paths_are_one_line_errors(df, tmp_path):
    model = build(df, ensemble_size=1)
    with pytest.raises(ConfigError, match="is a folder; give a file name"):
        export_onnx(model, tmp_path)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="file is a file, not a folder"):
        export_torchscript(model, tmp_path / "file" / "sub" / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_missing_folder_is_created_as_fit_and_predict_do(df, tmp_path):
    model = build(df, ensemble_size=1)
    path = export_torchscript(model, tmp_path / "a" / "b" / "m.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt", "m.pt.json"]


def test_a_failed_write_leaves_the_old_files_and_no_temporaries(df, tmp_path, monkeypatch):
    model = build(df, ensemble_size=1)
    path = export_onnx(model, tmp_path / "m.onnx")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        export_onnx(build(df, ensemble_size=2), path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_exporter_failure_is_an_export_error(df, tmp_path, monkeypatch):
    model = build(df, ensemble_size=1)

    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::frobnicate' is not supported\nmore")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match=r"cannot be exported to ONNX \(RuntimeError: "
                                          r"Exporting the operator 'aten::frobnicate'.*--torchscript"):
        export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_computes_something_else_is_refused(df, tmp_path, monkeypatch):
    model = build(df, ensemble_size=1)
    original = RawInputModel.forward
    calls = []

    def drifting(self, numeric, categorical):  # eager and traced graph disagree
        calls.append(1)
        return original(self, numeric, categorical) + (1.0 if len(calls) == 1 else 0.0)

    monkeypatch.setattr(RawInputModel, "forward", drifting)
    with pytest.raises(ExportError, match="does not run as the model does"):
        export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# -- the command --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, df) -> Path:
    import tabresnet

    out = tmp_path_factory.mktemp("fit") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tabresnet.fit(df.drop(columns="y2"), "y", out=out, max_epochs=2, c_hidden=[8],
                      num_blocks=[1], ensemble_size=2, progress="none", report=False)
    return out


def test_cli_export_matches_cli_predict(run_dir, df, tmp_path, capsys):
    import tabresnet

    new = damaged(df)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run_dir), str(tmp_path / "new.csv"),
                 "-o", str(tmp_path / "pred.csv")]) == 0
    expected = pd.read_csv(tmp_path / "pred.csv")[["y_pred"]].to_numpy()
    assert main(["export", str(run_dir), "--onnx", str(tmp_path / "m.onnx"),
                 "--torchscript", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'm.onnx'} and {tmp_path / 'm.onnx.json'}" in out
    schema = tabresnet.load(run_dir).schema
    assert f"numeric float64 (N, {len(schema.numeric)})" in out
    assert f"categorical int64 (N, {len(schema.categorical)})" in out
    rows = pd.read_csv(tmp_path / "new.csv")
    assert_close(run_onnx(tmp_path / "m.onnx", rows), expected)
    assert read_sidecar(tmp_path / "m.pt")["kind"] == "torchscript"


@pytest.mark.parametrize("argv, message", [
    (["export", "RUN"], "export needs --onnx FILE or --torchscript FILE"),
    (["export", "nowhere", "--onnx", "m.onnx"], "model file not found: nowhere"),
    (["export", "RUN", "--torchscript", "TMP/m.pt", "--float32"], "add --onnx FILE"),
    (["export", "RUN", "--onnx", "TMP"], "is a folder; give a file name"),
])
def test_cli_errors_are_one_line_exit_2(run_dir, tmp_path, capsys, argv, message):
    argv = [a.replace("RUN", str(run_dir)).replace("TMP", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_folder(run_dir, tmp_path, capsys, monkeypatch):
    import tabresnet.export

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    # (chmod does not stop root, who runs some CI containers)
    monkeypatch.setattr(tabresnet.export, "_create_temp", denied)
    assert main(["export", str(run_dir), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: permission denied") and "check its permissions" in err
    assert list(tmp_path.iterdir()) == []


def test_export_help_explains_inputs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--onnx FILE" in text and "--torchscript FILE" in text
    assert "NaN for missing" in text and "0 = missing or unseen" in text


@pytest.mark.slow
def test_the_benchmark_check_runs_on_a_suite_table(tmp_path, capsys):
    # bench/export_check.py end to end on the one suite table that needs no
    # download package (scikit-learn ships diabetes): fit, predict, export, compare.
    import sys

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench import export_check

    out = tmp_path / "check.json"
    assert export_check.main(["--tables", "diabetes", "--max-epochs", "1", "--no-docs",
                              "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["table"] == "diabetes" and result["rows_with_missing"] > 0
    assert max(result["onnx_max_rel"], result["torchscript_max_rel"]) <= export_check.TOLERANCE
    assert "diabetes" in capsys.readouterr().out


def test_a_run_or_an_estimator_exports_as_its_model_does(df, tmp_path):
    import tabresnet
    from tabresnet import ResNetRegressor
    from tabresnet.errors import ConfigError

    run = tabresnet.fit(df, "y", max_epochs=2, num_blocks=[1], c_hidden=[8], progress="none",
                        report=False)
    assert_close(run_onnx(export_onnx(run, tmp_path / "run.onnx"), df), predict(run.model, df))
    X = df.drop(columns="y").select_dtypes("number")
    est = ResNetRegressor(max_epochs=2, num_blocks=(1,), c_hidden=(8,)).fit(X, df["y"])
    assert export_torchscript(est, tmp_path / "est.pt").is_file()
    with pytest.raises(ConfigError, match="export needs a trained model .* however: dict"):
        export_onnx({}, tmp_path / "no.onnx")
