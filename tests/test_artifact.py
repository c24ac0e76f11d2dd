"""The model file: safe to load, checked, and never half-written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import tabresnet
from tabresnet.errors import DataError, ModelFileError

TINY = dict(num_blocks=[1], c_hidden=[8], max_epochs=2, progress="none", report=False)


@pytest.fixture
def run_dir(regression_frame, tmp_path):
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **TINY)
    return tmp_path / "run"


def test_model_files_hold_no_pickle(run_dir):
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["format"] == "tabresnet-model"
    assert set(meta) >= {"config", "schema", "preprocessor", "metrics", "weights_sha256"}
    raw = (run_dir / "model.safetensors").read_bytes()
    # safetensors: an 8-byte little-endian header length, a JSON header, raw tensor bytes.
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    assert header["__metadata__"]["format"] == "tabresnet-model"
    assert all(set(v) == {"dtype", "shape", "data_offsets"}
               for k, v in header.items() if k != "__metadata__")
    with pytest.raises(Exception):  # noqa: B017 - not a pickle, whatever pickle says
        pickle.loads(raw)


def test_load_from_dir_or_json_path(run_dir, regression_frame):
    a = tabresnet.load(run_dir).predict(regression_frame)
    b = tabresnet.load(run_dir / "model.json").predict(regression_frame)
    np.testing.assert_array_equal(a, b)


def test_truncated_weights_rejected(run_dir):
    w = run_dir / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="corrupted or truncated"):
        tabresnet.load(run_dir)


def test_corrupted_json_rejected(run_dir):
    j = run_dir / "model.json"
    j.write_text(j.read_text()[:50])
    with pytest.raises(ModelFileError, match="not valid JSON"):
        tabresnet.load(run_dir)


def test_foreign_or_missing_files(tmp_path, run_dir):
    with pytest.raises(ModelFileError, match="model file not found"):
        tabresnet.load(tmp_path / "nowhere")
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ModelFileError, match="not a tabresnet model file"):
        tabresnet.load(tmp_path / "x.json")
    (tmp_path / "data.csv").write_text("a,y\n1,2\n")  # predict's arguments swapped, say
    with pytest.raises(ModelFileError, match="data.csv is not a tabresnet model file but another "
                       "kind of file; pass a run directory or its model.json"):
        tabresnet.load(tmp_path / "data.csv")
    with pytest.raises(ModelFileError, match="not a tabresnet model file but the weights; pass "
                       "the directory that holds them"):
        tabresnet.load(run_dir / "model.safetensors")
    with pytest.raises(TypeError, match=r"got a NoneType$"):
        tabresnet.load(None)
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="weights file missing"):
        tabresnet.load(run_dir)


def test_newer_format_version_rejected(run_dir):
    j = run_dir / "model.json"
    meta = json.loads(j.read_text())
    meta["format_version"] = 99
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="upgrade tabresnet"):
        tabresnet.load(run_dir)


def test_predict_needs_the_feature_columns(run_dir, regression_frame):
    model = tabresnet.load(run_dir)
    with pytest.raises(DataError, match="color"):
        model.predict(regression_frame.drop(columns=["color"]))


def test_unseen_category_predicts(run_dir, regression_frame):
    model = tabresnet.load(run_dir)
    df = regression_frame.head(5).copy()
    df["color"] = ["purple", None, "red", "", "grün"]
    assert np.isfinite(model.predict(df)).all()


def test_evaluate(run_dir, regression_frame):
    m = tabresnet.load(run_dir).evaluate(regression_frame)
    assert m["n"] == len(regression_frame) and m["rmse"] > 0
    with pytest.raises(DataError, match="evaluate needs them"):
        tabresnet.load(run_dir).evaluate(regression_frame.drop(columns=["y"]))


def _as_older_format(path, version):
    """Rewrite a saved model.json as a release before format 3 wrote it."""
    meta = json.loads((path / "model.json").read_text())
    meta["format_version"] = version
    for key in ("num_embedding", "num_embedding_dim", "n_bins", "n_frequencies",
                "frequency_scale", "ensemble_size", "ensemble"):
        meta["config"]["model"].pop(key)
    for key in ("ema_decay", "refit"):
        meta["config"]["train"].pop(key)
    meta["config"]["data"].pop("bag")
    meta["network"].pop("n_cont")
    (path / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("version", [1, 2])
def test_files_of_formats_1_and_2_still_load(version, tmp_path, regression_frame):
    import shutil

    # What those releases could write: one plain network, no numeric embeddings.
    tiny = {**TINY, "ensemble_size": 1, "num_embedding": "none"}
    run = tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **tiny).dir
    assert json.loads((run / "model.json").read_text())["format_version"] == 3
    old = tmp_path / "old"
    shutil.copytree(run, old)
    _as_older_format(old, version)
    loaded = tabresnet.load(old)
    assert loaded.config.model.ensemble_size == 1 and loaded.config.model.num_embedding == "none"
    np.testing.assert_allclose(loaded.predict(regression_frame),
                               tabresnet.load(run).predict(regression_frame), rtol=1e-6)


def test_save_refuses_a_directory_that_holds_a_model_unless_told(run_dir, tmp_path):
    from tabresnet.errors import ConfigError

    model = tabresnet.load(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="holds a model already .*pass overwrite=True"):
        model.save(run_dir)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    model.save(tmp_path / "elsewhere")  # a new directory, or one without a model, is fine
    assert tabresnet.load(model.save(run_dir, overwrite=True)).schema == model.schema


def test_a_bag_saves_its_members(run_dir, tmp_path, regression_frame):
    from tabresnet.artifact import TabularModel
    from tabresnet.models import MeanEnsemble

    single = tabresnet.load(run_dir)
    members = [single.network, single.config.model.build_tabular(
        single.preprocessor.n_num, list(single.preprocessor.cardinalities), 1,
        n_cont=single.preprocessor.n_cont)]
    bag = TabularModel(MeanEnsemble(members), single.config, single.schema,
                       single.preprocessor)
    bag.save(tmp_path / "bag")
    meta = json.loads((tmp_path / "bag" / "model.json").read_text())
    assert meta["format_version"] == 3 and meta["network"]["members"] == 2
    loaded = tabresnet.load(tmp_path / "bag")
    assert loaded.n_members == 2 and "members=2" in repr(loaded)
    np.testing.assert_allclose(loaded.predict(regression_frame), bag.predict(regression_frame),
                               rtol=1e-6)
    # The member count and the weights must agree.
    meta["network"]["members"] = 3
    (tmp_path / "bag" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="inconsistent"):
        tabresnet.load(tmp_path / "bag")


@pytest.mark.parametrize(("configured", "torch_has", "expected"),
                         [(1, 2, 1), (0, 1, 1), (3, 2, 3)])
def test_prediction_runs_on_the_configured_threads(run_dir, regression_frame, monkeypatch,
                                                   configured, torch_has, expected):
    """predict uses num_threads as training does (0: never more than torch has now)."""
    import torch

    model = tabresnet.load(run_dir)
    model.config = model.config.replace(num_threads=configured)
    seen = []
    forward = model.network.forward
    monkeypatch.setattr(model.network, "forward",
                        lambda *a: (seen.append(torch.get_num_threads()), forward(*a))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(torch_has)
    try:
        model.predict(regression_frame.head(5))
        assert torch.get_num_threads() == torch_has  # restored
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {expected}


def test_rows_with_every_feature_missing_are_said(run_dir, regression_frame):
    from tabresnet.errors import TabResNetWarning

    rows = regression_frame.head(5).copy()
    rows.loc[rows.index[:2], ["a", "b", "color"]] = np.nan
    with pytest.warns(TabResNetWarning, match="2 of 5 rows have every feature missing"):
        pred = tabresnet.load(run_dir).predict(rows)
    assert pred[0] == pred[1]


def test_a_predict_warning_names_the_callers_line(run_dir, regression_frame):
    import warnings

    model = tabresnet.load(run_dir)
    rows = regression_frame.head(5).assign(color="violet")  # an unseen category
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(rows)
    assert [w.filename for w in caught] == [__file__]  # this test, not tabresnet's code
