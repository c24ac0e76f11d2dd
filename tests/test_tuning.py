"""tabresnet.tune in-process: a whole run, resume, pruning, failures, the bag, the CLI.

Tiny models (one block of width 8, a few epochs) on 100 synthetic rows; the
processes-and-signals tests live in test_tuning_processes.py, the PostgreSQL
ones in test_tuning_pg.py.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import tabresnet
from tabresnet.cli import main
from tabresnet.defaults import RunConfig
from tabresnet.errors import ConfigError, TabResNetError
from tabresnet.tuning import TuneResult, parse_duration, tune
from tabresnet.tuning import objective as objective_mod
from tabresnet.tuning import workers as workers_mod

TINY = dict(max_epochs=4, num_blocks=[1], c_hidden=[8], batch_size=32, progress="none")
SPACE = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
optimizer: [adamw, sgd]
gradient_clip: {type: float, low: 0.5, high: 2.0, when: {optimizer: sgd}}
"""


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    df["y"] = 3 * df.a - df.b + rng.normal(scale=0.1, size=100)
    return df


def run_tune(data, out, target="y", **kw) -> TuneResult:
    args = dict(trials=3, space=SPACE, out=out, cv=0, **TINY)
    args.update(kw)
    return tune(data, target, **args)


def test_space_that_does_not_fit_the_config_fails_before_any_trial(frame):
    # Two groups of blocks but one width (TINY's c_hidden=[8]): caught before training.
    text = "lr: [0.001, 0.01]\nnum_blocks: {type: fixed, value: [1, 1]}"
    with pytest.raises(ConfigError, match="num_blocks and c_hidden need one entry per group"):
        tune(frame, "y", space=text, **TINY)


def test_parse_duration():
    assert parse_duration(90) == 90.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("30m") == 1800.0
    assert parse_duration("1h") == 3600.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration(None) is None
    for bad in ("ten", "5 parsecs", "-3", "0"):
        with pytest.raises(ConfigError, match="duration|positive"):
            parse_duration(bad)


# -- a whole run ---------------------------------------------------------------------
def test_tune_writes_a_run_and_resumes(frame, tmp_path):
    out = tmp_path / "run"
    result = run_tune(frame, out, trials=3)
    assert result.n_trials == 3 and result.dir == out
    assert set(result.best_params) <= {"lr", "optimizer", "gradient_clip"}
    assert result.best_config == RunConfig().replace(**TINY, **result.best_params)
    assert result.best_value == min(
        t.value for t in result.study.trials if t.state == TrialState.COMPLETE
    )
    assert set(result.metrics) >= {"val", "tuning"} and "test" not in result.metrics
    # The same model file as fit, loadable, predicting from raw columns.
    model = tabresnet.load(out)
    assert model.predict(frame).shape == (100,)
    np.testing.assert_allclose(model.predict(frame), result.model.predict(frame), rtol=1e-5)
    assert not (out / "predictions_test.csv").exists()  # no test rows unless asked
    for name in ("config.yaml", "metrics.json", "history.csv",
                 "tuning/study.db", "tuning/trials.csv", "tuning/best_params.json",
                 "tuning/optimization_history.png", "tuning/param_importances.png",
                 "tuning/parallel_coordinate.png"):
        assert (out / name).is_file(), name
    best = json.loads((out / "tuning/best_params.json").read_text())
    assert best["study_name"] == "data-y" and best["params"] == result.best_params
    # Every epoch reported to the pruner.
    complete = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in complete)

    # Again: the study resumes; --trials counts all finished trials, so 2 more run.
    first = {t.number: t.value for t in complete}
    again = run_tune(frame, out, trials=5)
    assert again.n_trials == 5
    assert {t.number: t.value for t in again.study.trials if t.number in first} == first
    trials = pd.read_csv(out / "tuning/trials.csv")
    assert list(trials["number"]) == [0, 1, 2, 3, 4]
    # Nothing to add: no new trial runs, the best is retrained once more.
    assert run_tune(frame, out, trials=4).n_trials == 5


def test_resume_with_another_target_is_refused(frame, tmp_path):
    out = tmp_path / "run"
    run_tune(frame, out, trials=1)
    frame["z"] = frame["y"]
    with pytest.raises(ConfigError, match="was run with target"):
        tune(frame, "z", space=SPACE, out=out, study_name="data-y", **TINY)


def test_another_study_may_not_take_over_a_tuning_run(frame, tmp_path):
    out = tmp_path / "run"
    run_tune(frame, out, trials=1)
    model = (out / "model.safetensors").read_bytes()
    frame["z"] = frame["y"] * 2
    with pytest.raises(ConfigError, match="holds the tuning run of study 'data-y', not 'data-z'"):
        run_tune(frame.drop(columns="y"), out, trials=1, target="z")
    assert (out / "model.safetensors").read_bytes() == model


def test_out_that_is_not_a_tuning_run_is_refused(frame, tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds no tuning study"):
        run_tune(frame, tmp_path)


# -- pruning and failures ------------------------------------------------------------------
class PruneOdd(optuna.pruners.BasePruner):
    """Prune odd-numbered trials once they have reported two epochs."""

    def prune(self, study, trial):
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


def test_pruned_trials_stop_early_and_count_as_finished(frame):
    result = run_tune(frame, None, trials=4, pruner=PruneOdd(), max_epochs=6)
    states = {t.number: t.state for t in result.study.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.PRUNED,
                      2: TrialState.COMPLETE, 3: TrialState.PRUNED}
    pruned = result.study.trials[1]
    assert sorted(pruned.intermediate_values) == [0, 1] and pruned.user_attrs["epochs"] == 2
    assert result.dir is None  # no out: nothing written, the study stayed in memory


def test_diverged_oom_and_crashing_trials_fail_with_a_reason(frame, tmp_path, monkeypatch):
    real = objective_mod.train_network
    calls = []

    def flaky(prepared, config, callbacks=(), out_dir=None):
        calls.append(1)
        if len(calls) == 1:
            result = real(prepared, config, callbacks=callbacks, out_dir=out_dir)
            result.diverged = True
            return result
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if len(calls) == 3:
            raise RuntimeError("boom\nsecond line")
        return real(prepared, config, callbacks=callbacks, out_dir=out_dir)

    monkeypatch.setattr(objective_mod, "train_network", flaky)
    out = tmp_path / "run"
    result = run_tune(frame, out, trials=2)
    states = [t.state for t in result.study.trials]
    assert states == [TrialState.FAIL] * 3 + [TrialState.COMPLETE] * 2
    reasons = [t.user_attrs["fail_reason"] for t in result.study.trials[:3]]
    assert reasons[0].startswith("diverged: the training loss became NaN or inf")
    assert reasons[1] == "out of memory"
    assert reasons[2] == "RuntimeError: boom"
    table = pd.read_csv(out / "tuning/trials.csv")
    assert list(table["fail_reason"].fillna("")) == [*reasons, "", ""]
    assert result.counts == {"FAIL": 3, "COMPLETE": 2}


def test_a_study_where_every_trial_fails_raises(frame, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("nothing works")

    monkeypatch.setattr(objective_mod, "train_network", broken)
    monkeypatch.setattr(workers_mod, "MAX_CONSECUTIVE_FAILURES", 3)
    with pytest.raises(TabResNetError, match="no trial .* completed.*ValueError: nothing works"):
        run_tune(frame, None, trials=5)


def test_cross_validation_scores_the_mean_of_the_folds(frame):
    result = run_tune(frame, None, trials=1, cv=3)
    trial = result.study.trials[0]
    assert len(trial.user_attrs["fold_rmse"]) == 3
    assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_rmse"]))
    assert result.metrics["tuning"]["cv_folds"] == 3


def test_a_bag_of_k_networks_is_asked_for_with_cv_not_bag(frame, tmp_path, capsys):
    """fit's bag=K has no meaning in tune (its bag is cv's fold networks): refused, not ignored."""
    with pytest.raises(ConfigError, match="use cv=K"):
        tune(frame, "y", bag=3, trials=1)
    with pytest.raises(ConfigError, match="bag=3 is fit's option.*cv=3"):
        tune(frame, "y", config=RunConfig().replace(bag=3), trials=1)
    data = tmp_path / "t.csv"
    frame.to_csv(data, index=False)
    assert main(["tune", str(data), "--target", "y", "--bag", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tune saves a bag through --cv K") and err.count("\n") == 1


# -- the command -------------------------------------------------------------------------
def test_cli_tune_and_show_space(frame, tmp_path, capsys):
    assert main(["tune", "--show-space"]) == 0
    assert "n_groups" in capsys.readouterr().out
    data = tmp_path / "houses.csv"
    frame.to_csv(data, index=False)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "run"
    args = ["tune", str(data), "--target", "y", "--trials", "2", "--space", str(space),
            "--out", str(out), "--no-report", "--timeout", "10m", "--max-epochs", "3",
            "--num-blocks", "1", "--c-hidden", "8", "--sampler", "random", "--pruner", "none"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "study houses-y: 2 complete" in text and "run directory" in text
    assert json.loads((out / "tuning/best_params.json").read_text())["study_name"] == "houses-y"
    assert main(["tune", str(data), "--target", "y", "--timeout", "soon"]) == 2
    assert "cannot read the duration 'soon'" in capsys.readouterr().err
    assert main(["tune", str(data)]) == 2


# -- the defaults first, the time limit, the bag -------------------------------------------
def test_the_first_trial_of_a_new_study_is_the_fit_configuration(frame, tmp_path):
    out = tmp_path / "run"
    result = run_tune(frame, out, trials=2)
    first = result.study.trials[0]
    assert first.user_attrs["enqueued"] == "defaults"
    assert first.params == {"lr": RunConfig().train.lr, "optimizer": "adamw"}
    # Resuming does not add the defaults a second time.
    again = run_tune(frame, out, trials=4)
    assert [t.user_attrs.get("enqueued") for t in again.study.trials].count("defaults") == 1
    # Switched off: no enqueued trial.
    plain = run_tune(frame, None, trials=1, defaults_first=False)
    assert "enqueued" not in plain.study.trials[0].user_attrs


def test_a_defaults_trial_lost_to_a_kill_runs_again_on_resume(frame, tmp_path):
    from tabresnet.tuning.study import open_study, storage_url

    out = tmp_path / "run"
    # The study a killed process leaves: its defaults trial failed as lost.
    study = open_study(storage_url(None, out), "data-y")
    lost = study.ask()
    lost.set_user_attr("enqueued", "defaults")
    study.tell(lost, state=TrialState.FAIL)
    study.set_user_attr(f"fail_reason:{lost.number}", "lost: worker process x ended")
    again = run_tune(frame, out, trials=2)
    rerun = [t for t in again.study.trials if t.user_attrs.get("enqueued") == "defaults"
             and t.state == TrialState.COMPLETE]
    assert len(rerun) == 1 and rerun[0].params == {"lr": RunConfig().train.lr,
                                                   "optimizer": "adamw"}


def test_a_defaults_trial_that_failed_on_its_own_is_not_run_again(frame, tmp_path, monkeypatch):
    real, failed = objective_mod.train_network, []

    def broken_first(*args, **kwargs):  # the defaults trial fails of its own accord
        if not failed:
            failed.append(True)
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_mod, "train_network", broken_first)
    out = tmp_path / "run"
    run_tune(frame, out, trials=2)
    again = run_tune(frame, out, trials=3)
    assert [t.user_attrs.get("enqueued") for t in again.study.trials].count("defaults") == 1


def test_with_cross_validation_the_saved_model_is_a_bag_of_the_fold_networks(frame, tmp_path):
    out = tmp_path / "run"
    result = run_tune(frame, out, trials=1, cv=3, test_size=0.2)
    assert result.model.n_members == 3
    assert set(result.metrics) >= {"oof", "test", "tuning", "training"}
    assert result.metrics["oof"]["n"] == 80  # every non-test row, predicted by one member
    assert len(pd.read_csv(out / "predictions_oof.csv")) == 80
    assert result.metrics["training"]["members"] == 3
    # The bag predicts the mean of its members.
    members = result.model.network.members
    x = torch.randn(7, 2)
    none = torch.zeros(7, 0, dtype=torch.long)
    with torch.no_grad():
        mean = torch.stack([m(x, none) for m in members]).mean(0)
        torch.testing.assert_close(result.model.network(x, none), mean)
    # Saved as one model file: the members listed, loads the same.
    meta = json.loads((out / "model.json").read_text())
    assert meta["format_version"] == 3 and meta["network"]["members"] == 3
    loaded = tabresnet.load(out)
    np.testing.assert_allclose(loaded.predict(frame), result.model.predict(frame), rtol=1e-5)
    # Calibrated as fit calibrates a bag: CV+ on the out-of-fold rows.
    assert loaded.calibration.kind == "cv+" and loaded.calibration.n == 80
    pred, lower, upper = loaded.predict_interval(frame, 0.9)
    assert np.all(lower <= pred) and np.all(pred <= upper) and np.all(upper > lower)
    assert result.metrics["intervals"]["calibration_rows"] == 80
    history = pd.read_csv(out / "history.csv")
    assert sorted(history["member"].unique()) == [0, 1, 2]
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["n_rows"] == 100 and summary["rows"] == {"train (3-fold bag)": 80, "test": 20}
    # bag=False: one network retrained on the training split, as without cv.
    single = run_tune(frame, None, trials=1, cv=3, bag=False)
    assert single.model.n_members == 1 and "val" in single.metrics


def test_cli_saves_a_bag_with_cv_unless_told_not_to(frame, tmp_path, capsys):
    data = tmp_path / "houses.csv"
    frame.to_csv(data, index=False)
    base = ["tune", str(data), "--target", "y", "--trials", "1", "--cv", "2", "--no-report",
            "--max-epochs", "3", "--num-blocks", "1", "--c-hidden", "8"]
    assert main([*base, "--out", str(tmp_path / "bag")]) == 0
    assert "a bag of 2 networks" in capsys.readouterr().out
    assert tabresnet.load(tmp_path / "bag").n_members == 2
    assert main([*base, "--out", str(tmp_path / "one"), "--no-bag"]) == 0
    assert "a bag" not in capsys.readouterr().out
    assert tabresnet.load(tmp_path / "one").n_members == 1


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random", "cmaes", "qmc"])
def test_every_sampler_runs_a_study(frame, sampler):
    result = run_tune(frame, None, trials=3, sampler=sampler, pruner="none")
    assert result.counts.get("COMPLETE") == 3
    # Trial 0 is fit's configuration; the sampler proposes the others.
    assert result.study.trials[0].user_attrs["enqueued"] == "defaults"
    assert "enqueued" not in result.study.trials[2].user_attrs


def test_without_cv_the_best_trials_own_network_is_saved(frame):
    result = run_tune(frame, None, trials=3)
    assert result.metrics["tuning"]["retrained"] is False
    # The network of the best trial: its validation RMSE is the trial's value.
    assert result.metrics["val"]["rmse"] == pytest.approx(result.best_value, rel=1e-5)
    # Calibrated as fit calibrates one network: split conformal on the validation rows.
    assert result.model.calibration.kind == "split"
    assert result.model.calibration.n == result.metrics["val"]["n"]
    pred, lower, upper = result.model.predict_interval(frame, 0.8)
    assert np.all(lower < pred) and np.all(pred < upper)


def test_cv_auto_cross_validates_small_tables_and_resumes_with_the_stored_folds(
    frame, tmp_path, monkeypatch
):
    from tabresnet.tuning import api

    resolve = api._resolve_cv
    cfg = RunConfig()
    assert resolve("auto", cfg, len(frame), None, "s") == api.AUTO_CV_FOLDS  # 100 rows
    assert resolve("auto", cfg.replace(cv_folds=3), len(frame), None, "s") == 3
    assert resolve(None, cfg, len(frame), None, "s") == 0  # the config's cv_folds
    assert resolve(1, cfg, len(frame), None, "s") == 0
    with pytest.raises(ConfigError, match="number of folds or 'auto'"):
        resolve("some", cfg, len(frame), None, "s")
    monkeypatch.setattr(api, "AUTO_CV_MAX_ROWS", 99)
    assert resolve("auto", cfg, len(frame), None, "s") == 0  # larger tables: the split
    monkeypatch.undo()
    # A study started with the validation split resumes with it under "auto".
    out = tmp_path / "run"
    run_tune(frame, out, trials=1, cv=0)
    again = run_tune(frame, out, trials=2, cv="auto")
    assert again.metrics["tuning"]["cv_folds"] == 0 and again.model.n_members == 1
    # The default is auto: a 100-row table is scored by 4 folds and saved as a bag.
    bagged = run_tune(frame, None, trials=1, cv="auto")
    assert bagged.metrics["tuning"]["cv_folds"] == 4 and bagged.model.n_members == 4


def test_cli_cv_takes_auto_or_a_number(frame, tmp_path, capsys):
    data = tmp_path / "houses.csv"
    frame.to_csv(data, index=False)
    with pytest.raises(SystemExit) as exc:  # argparse's usage error: exit 2
        main(["tune", str(data), "--target", "y", "--cv", "some"])
    assert exc.value.code == 2
    assert "expected a number of folds or 'auto'" in capsys.readouterr().err




def test_tune_leaves_the_callers_random_stream_alone(frame, tmp_path):
    np.random.seed(7)  # noqa: NPY002 (the global stream is the point)
    expected = np.random.rand()  # noqa: NPY002 (the global stream is the point)
    np.random.seed(7)  # noqa: NPY002 (the global stream is the point)
    run_tune(frame, tmp_path / "run", trials=2)
    assert np.random.rand() == expected  # noqa: NPY002 (the global stream is the point)


@pytest.mark.parametrize(("kw", "message"), [
    ({"n_trials": 2}, "tune takes trials=, not n_trials="),
    ({"search_space": SPACE}, "tune takes space=, not search_space="),
    ({"trials": None, "timeout": 5}, r"trials must be a whole number >= 1 \(the most trials"),
    ({"lrr": 0.1}, r"unknown option 'lrr' \(did you mean 'lr'\?\)"),
])
def test_tunes_arguments_are_named_when_misspelt(frame, kw, message):
    with pytest.raises(ConfigError, match=message):
        tune(frame, "y", **kw)


def test_the_study_file_alone_holds_every_trial(frame, tmp_path):
    import shutil
    import sqlite3

    out = tmp_path / "run"
    run_tune(frame, out, trials=2)
    copy = tmp_path / "copy.db"
    shutil.copy(out / "tuning" / "study.db", copy)  # without its -wal file
    with sqlite3.connect(copy) as conn:
        assert conn.execute("select count(*) from trials").fetchone()[0] == 2


def test_a_resume_on_other_rows_or_another_split_is_refused(frame, tmp_path):
    out = tmp_path / "run"
    run_tune(frame, out, trials=1)
    with pytest.raises(ConfigError, match=r"was run with data='100 rows x \d+ columns"):
        run_tune(frame.assign(y=frame.y * 1000), out, trials=2)  # same name, other values
    with pytest.raises(ConfigError, match=r"was run with split='seed 0, .*not 'seed 7"):
        run_tune(frame, out, trials=2, seed=7)
    assert run_tune(frame, out, trials=2).n_trials == 2  # the same rows resume


def test_the_model_option_ensemble_reaches_a_sequential_tune(frame, tmp_path):
    # tune's own choice among a population's members is pack_ensemble, so the
    # model option of that name is free to mean the kind of in-network ensemble.
    result = run_tune(frame, tmp_path / "run", trials=1, ensemble="batch")
    assert result.best_config.model.ensemble == "batch"


def test_a_second_command_on_the_same_out_is_refused_while_the_first_runs(frame, tmp_path):
    from tabresnet.rundir_lock import RunDirLock

    out = tmp_path / "run"
    with RunDirLock(out):  # as another tabresnet process writing it
        with pytest.raises(ConfigError, match="being written by another tabresnet process"):
            run_tune(frame, out, trials=1)
    assert run_tune(frame, out, trials=1).n_trials == 1  # released: it runs
