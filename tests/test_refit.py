"""``refit=True``: after early stopping, the same network trained again on every row given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tabresnet
from tabresnet.cli import main
from tabresnet.errors import ConfigError
from tabresnet.estimator import ResNetRegressor
from tabresnet.training import prepare, train_network

TINY = dict(num_blocks=[1], c_hidden=[16], max_epochs=6, progress="none", report=False)


def test_the_refit_trains_on_train_and_validation_rows_for_the_best_epoch_count(
        regression_frame, tmp_path):
    plain = tabresnet.fit(regression_frame, "y", test_size=0.2, **TINY)
    run = tabresnet.fit(regression_frame, "y", out=tmp_path / "run", test_size=0.2, refit=True,
                        **TINY)
    refit = run.metrics["training"]["refit"]
    rows = json.loads((tmp_path / "run" / "data_summary.json").read_text())["rows"]
    assert refit["rows"] == rows["train"] + rows["val"]
    assert refit["epochs"] == run.metrics["training"]["best_epoch"] + 1
    # The validation score is the early-stopped network's (the same seed trains it
    # as without refit); the saved model is another network, scored on test.
    assert run.metrics["val"] == plain.metrics["val"]
    assert run.metrics["test"]["rmse"] != plain.metrics["test"]["rmse"]
    X = regression_frame.drop(columns="y")
    assert not np.allclose(run.predict(X), plain.predict(X))
    # The calibration is the early-stopped network's, on the validation rows.
    assert run.model.calibration.n == plain.model.calibration.n == rows["val"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["training"]["refit"] == refit
    np.testing.assert_allclose(tabresnet.load(tmp_path / "run").predict(X), run.predict(X),
                               rtol=1e-6)
    # The report's training section says the curves are not the saved network's.
    from tabresnet.report.rundir import RunDir
    from tabresnet.report.sections import training_section

    assert f"all {refit['rows']} training and validation rows" in training_section(
        RunDir(tmp_path / "run"))


def test_a_fixed_epoch_count_trains_without_validation(regression_frame):
    from tabresnet.defaults import RunConfig

    cfg = RunConfig().replace(num_blocks=[1], c_hidden=[8], progress="none", patience=1)
    data = prepare(regression_frame, "y", cfg)
    seen = []

    class Count(__import__("lightning").Callback):
        def on_validation_start(self, trainer, pl_module):
            seen.append(trainer.current_epoch)

    # Patience 1 would stop a rising validation curve; a fixed count ignores it.
    result = train_network(data, cfg, callbacks=[Count()], epochs=7)
    assert seen == [] and len(result.history) == 7 and result.best_epoch == 6
    assert np.isnan(result.best_val_rmse) and not result.network.training


def test_the_refit_keeps_the_moving_average_where_one_is_kept(regression_frame):
    from tabresnet.defaults import RunConfig

    cfg = RunConfig().replace(num_blocks=[1], c_hidden=[8], progress="none", ema_decay=0.9)
    data = prepare(regression_frame, "y", cfg)
    seen = {}

    class Spy(__import__("lightning").Callback):
        def on_train_end(self, trainer, pl_module):
            seen["avg"] = {k: v.clone() for k, v in pl_module.eval_network.state_dict().items()}

    result = train_network(data, cfg, callbacks=[Spy()], epochs=3)
    state = result.network.state_dict()
    assert all(torch.equal(state[k], seen["avg"][k]) for k in state)


def test_refit_is_refused_where_it_cannot_act(regression_frame, tmp_path):
    with pytest.raises(ConfigError, match="refit \\(it needs bag 0 or 1"):
        tabresnet.fit(regression_frame, "y", refit=True, bag=3, **TINY)
    with pytest.raises(ConfigError, match="plateau scheduler"):
        tabresnet.fit(regression_frame, "y", refit=True, scheduler="plateau", **TINY)
    with pytest.raises(ConfigError, match="refit is fit's option"):
        tabresnet.tune(regression_frame, "y", out=tmp_path / "tune", refit=True, trials=1)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_says_the_validation_score_is_the_early_stopped_networks(
        regression_frame, tmp_path, capsys):
    csv = tmp_path / "data.csv"
    regression_frame.to_csv(csv, index=False)
    args = ["fit", str(csv), "--target", "y", "--out", str(tmp_path / "run"), "--no-report",
            "--num-blocks", "1", "--c-hidden", "16", "--max-epochs", "4", "--refit", "true"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "the saved model was refit on all 300 training and validation rows" in out
    assert "the val score is the early-stopped network's" in out


def test_the_estimator_refits(regression_frame):
    X, y = regression_frame.drop(columns="y"), regression_frame["y"]
    est = ResNetRegressor(refit=True, num_blocks=(1,), c_hidden=(16,), max_epochs=4).fit(X, y)
    assert est.model_.metrics["training"]["refit"]["rows"] == len(X)
    assert est.predict(X).shape == (len(X),)


def test_a_refit_that_diverges_keeps_the_early_stopped_network(regression_frame, monkeypatch):
    import importlib

    fit_module = importlib.import_module("tabresnet.training.fit")  # the module, not fit()

    real = fit_module.train_network

    def diverging(prepared, config, callbacks=(), out_dir=None, epochs=None):
        result = real(prepared, config, callbacks, out_dir, epochs)
        if epochs is not None:
            result.diverged = True
        return result

    monkeypatch.setattr(fit_module, "train_network", diverging)
    plain = tabresnet.fit(regression_frame, "y", test_size=0.2, **TINY)
    with pytest.warns(tabresnet.errors.TabResNetWarning, match="early-stopped network is kept"):
        run = tabresnet.fit(regression_frame, "y", test_size=0.2, refit=True, **TINY)
    assert run.metrics["training"]["refit"]["kept"] == "early-stopped network"
    assert run.metrics["test"] == plain.metrics["test"]
