"""fit / predict / evaluate through the Python API, and the run directory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tabresnet
from tabresnet.defaults import RunConfig, auto_batch_size
from tabresnet.errors import ConfigError, DataError
from tabresnet.training import prepare, train_network

TINY = dict(num_blocks=[1], c_hidden=[16], max_epochs=4, progress="none", report=False)


def test_fit_keeps_no_test_rows_unless_asked(regression_frame, tmp_path):
    run = tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **TINY)
    assert "test" not in run.metrics and "val" in run.metrics
    assert not (tmp_path / "run" / "predictions_test.csv").exists()
    rows = json.loads((tmp_path / "run" / "data_summary.json").read_text())["rows"]
    assert rows["test"] == 0 and rows["train"] + rows["val"] == len(regression_frame)


def test_fit_writes_run_directory_and_predicts(regression_frame, tmp_path):
    run = tabresnet.fit(regression_frame, "y", out=tmp_path / "run", test_size=0.2, **TINY)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "config.yaml",
        "model.json",
        "model.safetensors",
        "metrics.json",
        "history.csv",
        "data_summary.json",
        "predictions_test.csv",
    } <= files
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"rmse", "mae", "r2", "n"}
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_rmse"]
    assert len(history) == 4 and history["train_loss"].notna().all()
    pred = run.model.predict(regression_frame)
    assert pred.shape == (len(regression_frame),)
    assert np.isfinite(pred).all()
    # The loaded model predicts the same numbers from raw columns in any order.
    loaded = tabresnet.load(tmp_path / "run")
    shuffled = regression_frame[["color", "y", "b", "a"]].assign(extra=1)
    np.testing.assert_allclose(loaded.predict(shuffled), pred, rtol=1e-6)


def test_training_learns_and_early_stopping_restores_best(regression_frame):
    cfg = RunConfig().replace(
        num_blocks=[1], c_hidden=[32], max_epochs=60, patience=5, progress="none", lr=3e-3
    )
    prepared = prepare(regression_frame, "y", cfg)
    result = train_network(prepared, cfg)
    h = result.history
    assert h["val_rmse"].iloc[-1] < h["val_rmse"].iloc[0]
    # Best weights are restored: the final network scores the best epoch's RMSE.
    from tabresnet.artifact import TabularModel

    tm = TabularModel(result.network, cfg, prepared.schema, prepared.preprocessor)
    pred = tm.predict_tensors(prepared.val.x_num, prepared.val.x_cat)
    rmse = float(np.sqrt(np.mean((pred - prepared.val.y_raw) ** 2)))
    assert rmse == pytest.approx(h["val_rmse"].min(), rel=1e-4)
    assert rmse == pytest.approx(result.best_val_rmse, rel=1e-4)
    assert result.best_epoch == int(h.loc[h["val_rmse"].idxmin(), "epoch"])


def test_patience_zero_waits_by_table_size(regression_frame, monkeypatch):
    # A target of noise: the best epoch comes early and the run ends on patience.
    frame = regression_frame.assign(y=np.random.default_rng(0).normal(size=len(regression_frame)))
    cfg = RunConfig().replace(num_blocks=[1], c_hidden=[16], max_epochs=80, lr=1e-2,
                              ensemble_size=1, progress="none")
    assert cfg.train.patience == 0  # the default: by table size
    prepared = prepare(frame, "y", cfg)
    waited = {}
    n = len(prepared.train)
    for rows in ((n + 1, n + 9), (n, n + 1)):  # outside the long band, then in it
        monkeypatch.setattr(tabresnet.defaults, "LONG_PATIENCE_ROWS", rows)
        result = train_network(prepared, cfg)
        waited[rows] = (len(result.history) - 1 - result.best_epoch, result.patience)
    assert list(waited.values()) == [(8, 8), (16, 16)]
    # the run's metrics say what 0 picked
    summary = result.training_summary()
    assert (summary["patience"], summary["batch_size"]) == (16, auto_batch_size(n))


def test_same_seed_same_model_different_seed_different(regression_frame):
    a = tabresnet.fit(regression_frame, "y", seed=3, **TINY).model.predict(regression_frame)
    b = tabresnet.fit(regression_frame, "y", seed=3, **TINY).model.predict(regression_frame)
    c = tabresnet.fit(regression_frame, "y", seed=4, **TINY).model.predict(regression_frame)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_multi_target(regression_frame):
    df = regression_frame.assign(y2=regression_frame["y"] * -2 + 5)
    run = tabresnet.fit(df, ["y", "y2"], **TINY)
    pred = run.model.predict(df)
    assert pred.shape == (len(df), 2)
    assert set(run.metrics["val"]["per_target"]) == {"y", "y2"}
    frame = run.model.predict_frame(df)
    assert list(frame.columns) == ["y_pred", "y2_pred"]
    # Early stopping ranks epochs by the RMSE the metrics report: the targets' mean RMSE.
    assert run.history["val_rmse"].min() == pytest.approx(run.metrics["val"]["rmse"], rel=1e-5)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
@pytest.mark.parametrize(
    "optimizer,scheduler", [("adamw", "cosine"), ("adam", "plateau"), ("sgd", "none")]
)
def test_losses_optimisers_schedules(regression_frame, loss, optimizer, scheduler):
    run = tabresnet.fit(
        regression_frame,
        "y",
        loss=loss,
        optimizer=optimizer,
        scheduler=scheduler,
        gradient_clip=1.0,
        **TINY,
    )
    assert np.isfinite(run.metrics["val"]["rmse"])


def test_separate_validation_and_test_tables(regression_frame):
    train, val, test = regression_frame[:200], regression_frame[200:250], regression_frame[250:]
    run = tabresnet.fit(train, "y", val_data=val, test_data=test, **TINY)
    assert run.metrics["val"]["n"] == 50 and run.metrics["test"]["n"] == 50


def test_csv_and_parquet_input(regression_frame, tmp_path):
    regression_frame.to_csv(tmp_path / "d.csv", index=False)
    regression_frame.to_parquet(tmp_path / "d.parquet", index=False)
    a = tabresnet.fit(tmp_path / "d.csv", "y", **TINY).model.predict(regression_frame)
    b = tabresnet.fit(tmp_path / "d.parquet", "y", **TINY).model.predict(regression_frame)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_cross_validation_reports_folds(regression_frame):
    run = tabresnet.fit(regression_frame, "y", cv_folds=3, **TINY)
    cv = run.metrics["cv"]
    assert cv["folds"] == 3 and len(cv["rmse"]) == 3
    assert cv["rmse_mean"] == pytest.approx(np.mean(cv["rmse"]))


def test_existing_run_is_not_overwritten_without_permission(regression_frame, tmp_path):
    out = tmp_path / "run"
    tabresnet.fit(regression_frame, "y", out=out, **TINY)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="exists and is not empty; pass --overwrite"):
        tabresnet.fit(regression_frame, "y", out=out, **TINY)
    assert (out / "model.safetensors").read_bytes() == before
    # A failing overwrite leaves the old run untouched.
    with pytest.raises(DataError):
        tabresnet.fit(regression_frame, "nope", out=out, overwrite=True, **TINY)
    assert (out / "model.safetensors").read_bytes() == before
    tabresnet.fit(regression_frame, "y", out=out, overwrite=True, seed=9, **TINY)
    assert (out / "model.safetensors").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_option_is_a_config_error(regression_frame):
    with pytest.raises(ConfigError, match="unknown option 'learning_rate'"):
        tabresnet.fit(regression_frame, "y", learning_rate=0.1)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        tabresnet.fit(regression_frame, "y", optimizer="lbfgs")


def test_an_option_the_run_would_ignore_is_refused_before_anything_is_written(
        regression_frame, tmp_path):
    # Once only the CLI refused it: fit(quantiles=...) trained a point model in silence.
    with pytest.raises(ConfigError, match="quantiles \\(it needs loss quantile"):
        tabresnet.fit(regression_frame, "y", out=tmp_path / "run", quantiles=[0.2, 0.8])
    with pytest.raises(ConfigError, match="n_bins \\(it needs num_embedding ple"):
        tabresnet.tune(regression_frame, "y", out=tmp_path / "tune", num_embedding="plr",
                       n_bins=8, trials=1)
    assert list(tmp_path.iterdir()) == []


def test_nan_target_rows_dropped_with_count(regression_frame):
    df = regression_frame.copy()
    df.loc[:4, "y"] = np.nan
    df.loc[5, "y"] = np.inf
    with pytest.warns(UserWarning, match="6"):
        run = tabresnet.fit(df, "y", **TINY)
    total = sum(run.summary["rows"].values())
    assert total == len(df) - 6


def test_model_is_plain_torch_module(regression_frame):
    run = tabresnet.fit(regression_frame, "y", **TINY)
    assert isinstance(run.model.network, torch.nn.Module)
    scripted = torch.jit.script(run.model.network)
    x_num = torch.randn(3, run.model.preprocessor.n_num)
    x_cat = torch.zeros(3, len(run.model.preprocessor.cardinalities), dtype=torch.long)
    torch.testing.assert_close(scripted(x_num, x_cat), run.model.network(x_num, x_cat))


@pytest.mark.parametrize(
    "logger, pattern", [("csv", "metrics.csv"), ("tensorboard", "events.out.tfevents*")]
)
def test_loggers_write_their_files(regression_frame, tmp_path, logger, pattern):
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", logger=logger, **TINY)
    assert list((tmp_path / "run" / "logs").rglob(pattern))


def test_a_run_directory_holds_no_pickle(regression_frame, tmp_path):
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", logger="csv", **TINY)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix not in {".ckpt", ".pt", ".pth", ".pkl"}, path
        raw = path.read_bytes()
        if path.suffix == ".safetensors":  # length-prefixed JSON header, then raw bytes
            size = int.from_bytes(raw[:8], "little")
            assert json.loads(raw[8 : 8 + size]), path
            continue
        # Everything else is text; a pickle would start with PROTO (0x80) or be zip-wrapped.
        assert not raw.startswith((b"\x80", b"PK")), path
        raw.decode("utf-8")


def test_a_bag_trains_one_network_per_fold_and_scores_out_of_fold(regression_frame, tmp_path):
    run = tabresnet.fit(regression_frame, "y", out=tmp_path / "run", bag=3, test_size=0.2,
                        **TINY)
    assert run.model.n_members == 3
    assert {"oof", "test", "training"} <= set(run.metrics) and "val" not in run.metrics
    # Out-of-fold: every non-test row is scored once, by the member that did not train on it.
    assert run.metrics["oof"]["n"] == len(regression_frame) - run.metrics["test"]["n"]
    assert len(run.metrics["training"]["best_epoch"]) == 3
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert sorted(history["member"].unique()) == [0, 1, 2]
    loaded = tabresnet.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict(regression_frame), run.predict(regression_frame),
                               rtol=1e-5)


def test_a_bags_out_of_fold_predictions_name_their_rows_and_member(regression_frame, tmp_path):
    from tabresnet.artifact import TabularModel

    data = regression_frame.iloc[:240].copy()
    data.loc[7, "y"] = np.nan  # dropped: no prediction, and the numbering still counts it
    extra = regression_frame.iloc[240:]
    run = tabresnet.fit(data, "y", out=tmp_path / "run", bag=3, val_data=extra,
                        test_size=0.2, **TINY)
    oof = pd.read_csv(tmp_path / "run" / "predictions_oof.csv")
    pd.testing.assert_frame_equal(oof, run.oof, check_dtype=False)
    assert list(oof.columns) == ["row", "y_true", "y_pred"]
    assert oof.row.is_monotonic_increasing and oof.row.is_unique and 7 not in set(oof.row)
    # Rows number the data, then the validation table's rows after it.
    both = pd.concat([data, extra], ignore_index=True)
    assert len(oof) == run.metrics["oof"]["n"] and oof.row.max() >= len(data)
    np.testing.assert_allclose(oof.y_true, both.y.iloc[oof.row])
    rmse = np.sqrt(np.mean((oof.y_true - oof.y_pred) ** 2))
    assert rmse == pytest.approx(run.metrics["oof"]["rmse"])
    # Each row is predicted by one member alone (the one that left it out), not the mean.
    model = run.model
    members = np.column_stack([
        TabularModel(m, model.config, model.schema, model.preprocessor).predict(
            both.iloc[oof.row])
        for m in model.network.members
    ])
    gap = np.abs(members - oof.y_pred.to_numpy()[:, None])
    assert np.all(gap.min(axis=1) < 1e-4 * (1 + np.abs(oof.y_pred.to_numpy())))
    assert np.bincount(gap.argmin(axis=1), minlength=3).min() > len(oof) / 4


def test_the_weight_average_is_what_is_scored_and_saved(regression_frame):
    from tabresnet.training import prepare as prep

    cfg = RunConfig().replace(num_blocks=[1], c_hidden=[16], max_epochs=6, patience=100,
                              progress="none", ema_decay=0.9)
    data = prep(regression_frame, "y", cfg)
    seen = {}

    class Spy(__import__("lightning").Callback):
        def on_train_end(self, trainer, pl_module):  # before the best weights are restored
            seen["ema"] = pl_module.ema is not None
            seen["live"] = {k: v.clone() for k, v in pl_module.network.state_dict().items()}
            seen["avg"] = {k: v.clone() for k, v in pl_module.eval_network.state_dict().items()}

    result = train_network(data, cfg, callbacks=[Spy()])
    assert seen["ema"]
    assert any(not torch.equal(seen["live"][k], seen["avg"][k]) for k in seen["live"])
    # The returned network is the best epoch's average: its validation RMSE is the best one.
    model = tabresnet.artifact.TabularModel(result.network, cfg, data.schema, data.preprocessor)
    val = model.predict_tensors(data.val.x_num, data.val.x_cat)
    rmse = float(np.sqrt(np.mean((val - data.val.y_raw) ** 2)))
    assert rmse == pytest.approx(result.best_val_rmse, rel=1e-4)


def test_an_ensemble_trains_each_member_on_its_own_rows(regression_frame):
    shapes = []

    class BatchSpy(__import__("lightning").Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            shapes.append(tuple(batch[0].shape))
            x = batch[0]
            shapes.append(bool(torch.equal(x[:, 0], x[:, 1])))

    cfg = RunConfig().replace(num_blocks=[1], c_hidden=[8], max_epochs=1, progress="none",
                              ensemble_size=4, num_embedding="ple", batch_size=32)
    data = prepare(regression_frame, "y", cfg)
    result = train_network(data, cfg, callbacks=[BatchSpy()])
    assert shapes[0] == (32, 4, data.preprocessor.n_num) and shapes[1] is False
    pred = result.network(data.val.x_num, data.val.x_cat)
    assert pred.shape == (len(data.val), 1)


@pytest.mark.parametrize("scheduler", ["cosine", "plateau"])
def test_schedules_change_the_learning_rate(regression_frame, scheduler):
    from tabresnet.training.module import RegressionModule

    seen: list[float] = []

    class LrSpy(__import__("lightning").Callback):
        def on_train_epoch_start(self, trainer, pl_module: RegressionModule):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    cfg = RunConfig().replace(
        num_blocks=[1],
        c_hidden=[8],
        max_epochs=12,
        patience=100,
        progress="none",
        scheduler=scheduler,
        lr=0.5,
    )
    train_network(prepare(regression_frame, "y", cfg), cfg, callbacks=[LrSpy()])
    assert seen[0] == pytest.approx(0.5)
    assert min(seen) < 0.5


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimisers_use_torchs_fused_kernel_on_the_cpu(optimizer):
    """One fused update for all parameters (bench/optimizer_step.py: faster small steps)."""
    from tabresnet.models import ModelConfig
    from tabresnet.training.module import RegressionModule

    net = ModelConfig(num_blocks=[1], c_hidden=[8], ensemble_size=1).build(3, 1)
    module = RegressionModule(net, optimizer=optimizer, lr=0.01, weight_decay=1e-4)
    opt = module.configure_optimizers()
    assert opt.defaults["fused"] is True
    assert opt.defaults["lr"] == 0.01 and opt.defaults["weight_decay"] == 1e-4
    x = torch.randn(16, 3)
    before = [p.detach().clone() for p in net.parameters()]
    torch.nn.functional.mse_loss(net(x), torch.randn(16, 1)).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_fit_logs_every_ten_epochs_when_stderr_is_not_a_terminal(regression_frame, capsys):
    """progress="auto" off a terminal: a line every 10 epochs and one at the end."""
    import re

    options = {**TINY, "max_epochs": 23, "patience": 50}
    capsys.readouterr()
    run = tabresnet.fit(regression_frame, "y", **{**options, "progress": "auto"})
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("fit: ")]
    pattern = re.compile(r"fit: (\d+)/23 epochs, val_rmse (\S+); best (\S+) \(epoch (\d+)\); \S+$")
    fields = [pattern.match(line).groups() for line in lines]
    assert [int(f[0]) for f in fields] == [10, 20, 23]
    history = run.history["val_rmse"].to_numpy()
    for done, value, best, best_epoch in fields:
        seen = history[: int(done)]
        assert float(value) == pytest.approx(seen[-1], rel=1e-3)
        assert float(best) == pytest.approx(seen.min(), rel=1e-3)
        assert int(best_epoch) == int(np.argmin(seen))  # numbered as in history.csv
    assert int(fields[-1][3]) == run.metrics["training"]["best_epoch"]
    tabresnet.fit(regression_frame, "y", **options)  # progress="none": silent
    assert "fit: " not in capsys.readouterr().err


def test_num_nodes_reaches_lightning_and_must_be_positive(regression_frame, monkeypatch):
    # A real multi-node run needs several machines (docs/scaling.md); here the
    # option is followed to the Trainer, which is stopped before it starts.
    import lightning

    class Stop(Exception):
        pass

    seen = {}

    def trainer(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(lightning, "Trainer", trainer)
    with pytest.raises(Stop):
        tabresnet.fit(regression_frame, "y", num_nodes=3, devices="2", **TINY)
    assert seen["num_nodes"] == 3 and seen["devices"] == 2
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="num_nodes must be positive"):
        tabresnet.fit(regression_frame, "y", num_nodes=0, **TINY)


def test_a_saved_model_leaves_out_num_nodes_at_its_default(regression_frame, tmp_path):
    # Releases from before the option reject unknown options in a version-3 file.
    run = tabresnet.fit(regression_frame, "y", **TINY)
    run.model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format_version"] == 3 and "num_nodes" not in meta["config"]["train"]
    assert tabresnet.load(tmp_path / "m").config.train.num_nodes == 1


def _global_draws():
    import random

    return np.random.rand(), random.random(), float(torch.rand(1))  # noqa: NPY002 (the global stream is the point)


def test_fit_leaves_the_callers_random_streams_and_torch_modes_alone(regression_frame):
    import random

    def seed_all():
        np.random.seed(123), random.seed(123), torch.manual_seed(123)  # noqa: NPY002 (the global stream is the point)

    seed_all()
    expected = _global_draws()
    seed_all()
    tabresnet.fit(regression_frame, "y", **TINY)  # seeds everything with its own seed, 0
    assert _global_draws() == expected
    assert not torch.are_deterministic_algorithms_enabled()
    import os

    assert "PL_GLOBAL_SEED" not in os.environ


@pytest.mark.parametrize("bag", [0, 2])
def test_a_training_that_diverges_at_once_is_one_clear_error(regression_frame, tmp_path, bag):
    from tabresnet.errors import TrainingError

    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"training diverged: the loss became NaN or "
                       r"infinite in epoch 0 .*lower lr \(now 1e\+10\)"):
        tabresnet.fit(regression_frame, "y", out=out, bag=bag, lr=1e10, optimizer="sgd", **TINY)
    assert not out.exists()  # no half-written run


def test_scores_of_nan_predictions_are_nan_not_an_exception():
    from tabresnet.metrics import regression_metrics

    m = regression_metrics(np.array([[1.0, 1.0], [2.0, 3.0]]),
                           np.array([[np.nan, 1.0], [2.0, 3.0]]), ["a", "b"])
    assert np.isnan(m["per_target"]["a"]["rmse"]) and m["per_target"]["b"]["rmse"] == 0.0
    assert np.isnan(regression_metrics(np.array([1.0]), np.array([1.5]))["r2"])  # one row


def test_metrics_json_is_standard_json_with_null_for_undefined_scores(regression_frame,
                                                                      tmp_path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    tabresnet.fit(regression_frame.head(6), "y", out=tmp_path / "run", **TINY)  # 1 val row
    text = (tmp_path / "run" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=refuse)
    assert metrics["val"]["n"] == 1 and metrics["val"]["r2"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_accelerator_the_machine_lacks_is_a_config_error(regression_frame):
    with pytest.raises(ConfigError, match="accelerator 'gpu': .* use accelerator 'auto'"):
        tabresnet.fit(regression_frame, "y", accelerator="gpu", **TINY)


def test_a_val_size_above_half_warns_that_it_is_the_held_out_share(regression_frame):
    from tabresnet.errors import TabResNetWarning

    with pytest.warns(TabResNetWarning, match=r"val_size 0.9 holds out more rows .* \(10% train\)"):
        tabresnet.fit(regression_frame, "y", val_size=0.9, **TINY)


def test_run_predict_passes_interval_through(regression_frame):
    run = tabresnet.fit(regression_frame, "y", **TINY)
    pred, lower, upper = run.predict(regression_frame, interval=0.8)
    assert pred.shape == lower.shape == upper.shape == (len(regression_frame),)


def test_few_validation_rows_and_a_constant_target_are_said(regression_frame):
    from tabresnet.errors import TabResNetWarning

    with pytest.warns(TabResNetWarning, match=r"only 6 validation rows: too few to choose"):
        tabresnet.fit(regression_frame.head(40), "y", **TINY)
    flat = regression_frame.assign(y=5.0)
    with pytest.warns(TabResNetWarning, match=r"target 'y' holds one value \(5.0\) in every row"):
        tabresnet.fit(flat, "y", **TINY)


def test_a_quantile_model_is_scored_level_by_level(regression_frame):
    from sklearn.metrics import mean_pinball_loss

    run = tabresnet.fit(regression_frame, "y", loss="quantile", quantiles=[0.2, 0.5, 0.8],
                        test_size=0.3, **TINY)
    levels = run.metrics["test"]["quantiles"]
    assert list(levels) == ["0.2", "0.5", "0.8"]
    assert levels["0.2"]["below"] < levels["0.5"]["below"] < levels["0.8"]["below"]
    evaluated = run.model.evaluate(regression_frame)["quantiles"]
    q = run.model.predict_quantiles(regression_frame)
    y = regression_frame["y"].to_numpy()
    assert evaluated["0.8"]["below"] == pytest.approx(np.mean(y < q[:, 2]))
    assert evaluated["0.2"]["pinball"] == pytest.approx(mean_pinball_loss(y, q[:, 0], alpha=0.2))


@pytest.mark.parametrize("bag", [0, 2])
def test_test_predictions_name_the_rows_they_score(regression_frame, tmp_path, bag):
    data = regression_frame.copy()
    data.loc[[3, 10], "y"] = np.nan  # dropped: the numbers after them must not shift
    out = tmp_path / "run"
    tabresnet.fit(data, "y", out=out, test_size=0.2, bag=bag, **TINY)
    table = pd.read_csv(out / "predictions_test.csv")
    assert list(table.columns[:3]) == ["row", "y_true", "y_pred"]
    np.testing.assert_allclose(data["y"].to_numpy()[table["row"]], table["y_true"])
    assert not set(table["row"]) & {3, 10}


def test_a_separate_test_tables_rows_are_numbered_in_that_table(regression_frame, tmp_path):
    test = regression_frame.iloc[200:].reset_index(drop=True)
    test.loc[0, "y"] = np.nan
    path = tmp_path / "test.csv"
    test.to_csv(path, index=False)
    out = tmp_path / "run"
    tabresnet.fit(regression_frame.iloc[:200], "y", out=out, test_data=path, **TINY)
    table = pd.read_csv(out / "predictions_test.csv")
    assert table["row"].tolist() == list(range(1, len(test)))
    np.testing.assert_allclose(test["y"].to_numpy()[table["row"]], table["y_true"])


def test_a_saved_row_index_is_left_out_of_a_bag_too(regression_frame):
    # The bag's pool lacks the test rows: the index is no longer 1..n in a row.
    data = regression_frame.assign(rownames=np.arange(1, len(regression_frame) + 1))
    with pytest.warns(UserWarning, match="'rownames' only numbers the rows"):
        run = tabresnet.fit(data, "y", bag=2, test_size=0.2, **TINY)
    assert "rownames" in run.model.schema.ignored


def test_evaluating_a_quantile_model_reads_the_rows_once(regression_frame):
    import warnings

    run = tabresnet.fit(regression_frame, "y", loss="quantile", **TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.model.evaluate(regression_frame.assign(color="violet"))  # unseen: one warning
    assert len([w for w in caught if "cannot be used as trained" in str(w.message)]) == 1
