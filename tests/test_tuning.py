"""tabresnet.tuning in-process: the space, pruning, failures, resume, results, the CLI.

Tiny models (one block of width 8, a few epochs) on 100 synthetic rows; the
processes-and-signals tests live in test_tuning_processes.py, the PostgreSQL
ones in test_tuning_pg.py.
"""

from __future__ import annotations

import json
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import tabresnet
from tabresnet.cli import main
from tabresnet.defaults import RunConfig, flat_fields
from tabresnet.errors import ConfigError, TabResNetError
from tabresnet.tuning import SearchSpace, TuneResult, parse_duration, tune
from tabresnet.tuning import objective as objective_mod
from tabresnet.tuning import study as study_mod
from tabresnet.tuning import workers as workers_mod
from tabresnet.tuning.progress import TuneProgress
from tabresnet.tuning.results import fail_reason
from tabresnet.tuning.space import DERIVED
from tabresnet.tuning.study import fail_lost_trials, open_study, storage_url

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


def run_tune(data, out, **kw) -> TuneResult:
    args = dict(trials=3, space=SPACE, out=out, cv=0, **TINY)
    args.update(kw)
    return tune(data, "y", **args)


# -- the search space -------------------------------------------------------------
def test_default_space_names_are_options_and_sample_valid_configs():
    space = SearchSpace.load()
    fields = flat_fields()
    assert all(name in fields or name in DERIVED for name in space.names)
    assert {"block", "norm", "activation", "n_groups", "blocks", "width", "dropout", "init",
            "lr", "weight_decay", "batch_size", "optimizer", "scheduler"} <= set(space.names)
    space.check(RunConfig(), samples=64)


def test_space_conditional_parameters():
    space = SearchSpace.load()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        cfg, flat = space.sample(trial, RunConfig())
        n = trial.params["n_groups"]
        assert len(cfg.model.c_hidden) == len(cfg.model.num_blocks) == n
        # Per-group widths and depths exist only up to the sampled number of groups.
        assert {f"log2_width_{g}" for g in range(1, 4)} & set(trial.params) == {
            f"log2_width_{g}" for g in range(1, n + 1)
        }
        assert all(w in (32, 64, 128, 256, 512) for w in cfg.model.c_hidden)
        # gradient_clip is sampled for SGD only; otherwise the run config's 0.0 stays.
        assert ("gradient_clip" in trial.params) == (cfg.train.optimizer == "sgd")
        if cfg.train.optimizer != "sgd":
            assert cfg.train.gradient_clip == 0.0
        assert cfg == RunConfig().replace(**flat)
        study.tell(trial, 1.0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("dropuot: [0.1]", r"unknown option 'dropuot'.*did you mean 'dropout'"),
        ("val_size: [0.1, 0.2]", r"cannot search val_size: the data are prepared once"),
        ("activation: [relu, nope]", r"entry activation: unknown activation 'nope'"),
        ("lr: {type: float, low: 0.1, high: 0.01}", r"`low <= high` must hold"),
        ("lr: {type: float, low: 0, high: 0.1, log: true}", r"`low > 0` must hold for `log=True`"),
        ("width: {type: pow2, low: 10, high: 64}", r"powers of two"),
        ("lr: {type: float, low: 1.0e-3, high: 0.1, per_group: true}", r"per_group is only"),
        ("gradient_clip: {type: float, low: 0.5, high: 2.0, when: {optimizer: sgd}}\n"
         "optimizer: [adam, sgd]", r"list optimizer before gradient_clip"),
        ("lr: {type: normal}", r"type must be one of"),
        ("[1, 2]", r"must be a non-empty YAML mapping"),
    ],
)
def test_space_errors_are_one_line(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        SearchSpace.from_yaml(text)
    assert "\n" not in str(info.value)


def test_space_that_does_not_fit_the_config_fails_before_any_trial(frame):
    # Two groups of blocks but one width (TINY's c_hidden=[8]): caught before training.
    text = "lr: [0.001, 0.01]\nnum_blocks: {type: fixed, value: [1, 1]}"
    with pytest.raises(ConfigError, match="gives an invalid run config: num_blocks and c_hidden"):
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


def test_storage_urls(tmp_path):
    assert storage_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/tuning/study.db"
    assert storage_url(None) is None


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
    assert set(result.metrics) >= {"val", "test", "tuning"}
    # The same model file as fit, loadable, predicting from raw columns.
    model = tabresnet.load(out)
    assert model.predict(frame).shape == (100,)
    np.testing.assert_allclose(model.predict(frame), result.model.predict(frame), rtol=1e-5)
    for name in ("config.yaml", "metrics.json", "history.csv", "predictions_test.csv",
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


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_of_a_worker_without_heartbeat_is_failed(tmp_path, monkeypatch):
    # A worker on another machine: no process to look at, only its heartbeat.
    monkeypatch.setattr(study_mod, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(study_mod, "GRACE_PERIOD", 1)
    study = open_study(storage_url(tmp_path / "s.db"), "hb")
    trial = study.ask()
    trial.set_user_attr("worker", "elsewhere:4242")
    study._storage.record_heartbeat(trial._trial_id)
    assert fail_lost_trials(study) == []
    time.sleep(2.5)
    assert fail_lost_trials(study) == [trial.number]
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL
    assert "elsewhere:4242 sent no heartbeat" in fail_reason(frozen, study.user_attrs)


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


def test_progress_display_shows_trials_best_and_failures(capsys):
    study = optuna.create_study()
    for value in (2.5, 1.25):
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    with TuneProgress(study, planned=5, enabled=True):
        pass  # leaving draws the last state
    err = capsys.readouterr().err
    assert "3/5" in err and "best 1.25" in err and "1 failed" in err
    with TuneProgress(study, planned=5, enabled=False):
        pass
    assert capsys.readouterr().err == ""  # off: nothing drawn


# -- the defaults first, the time limit, the bag -------------------------------------------
def test_params_for_gives_back_the_config_it_came_from():
    space = SearchSpace.load()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        trial = study.ask()
        cfg, _ = space.sample(trial, RunConfig())
        # Every sampled value lies in the space, so it is found again exactly.
        assert space.params_for(cfg) == trial.params
        study.tell(trial, 0.0)
    # The defaults: PreActResNetBlock's own norm (layer) stands for norm=None.
    params = space.params_for(RunConfig())
    again, _ = space.sample(optuna.trial.FixedTrial(params), RunConfig())
    assert again.replace(norm=None) == RunConfig()
    # A width outside the space is left to the sampler, the rest is kept.
    odd = space.params_for(RunConfig().replace(c_hidden=[100, 128]))
    assert "log2_width_1" not in odd and odd["log2_width_2"] == 7


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


def _objective(frame, deadline, **train):
    cfg = RunConfig().replace(**{**TINY, **train, "logger": "none"})
    folds = study_mod.make_folds(frame, "y", cfg)
    return objective_mod.Objective(folds, cfg, SearchSpace.from_yaml(SPACE), deadline=deadline)


def test_a_trial_running_at_the_time_limit_is_stopped_and_pruned(frame):
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))  # the study has a best already
    # 5000 epochs with no early stopping would take minutes; the limit cuts it.
    objective = _objective(frame, time.time() + 1.0, max_epochs=5000, patience=5000)
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stopped"] == "time limit"
    assert 0 < trial.user_attrs["epochs"] < 5000


def test_without_a_complete_trial_the_time_limit_lets_the_trial_finish(frame):
    study = optuna.create_study()
    objective = _objective(frame, time.time() - 1.0, max_epochs=6, patience=100)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs"] == 6


def test_with_cross_validation_the_saved_model_is_a_bag_of_the_fold_networks(frame, tmp_path):
    out = tmp_path / "run"
    result = run_tune(frame, out, trials=1, cv=3)
    assert result.model.n_members == 3
    assert set(result.metrics) >= {"oof", "test", "tuning", "training"}
    assert result.metrics["oof"]["n"] == 80  # every non-test row, predicted by one member
    assert result.metrics["training"]["members"] == 3
    # The bag predicts the mean of its members.
    members = result.model.network.members
    x = torch.randn(7, 2)
    none = torch.zeros(7, 0, dtype=torch.long)
    with torch.no_grad():
        mean = torch.stack([m(x, none) for m in members]).mean(0)
        torch.testing.assert_close(result.model.network(x, none), mean)
    # Saved as one model file: format 2, the members listed, loads the same.
    meta = json.loads((out / "model.json").read_text())
    assert meta["format_version"] == 2 and meta["network"]["members"] == 3
    loaded = tabresnet.load(out)
    np.testing.assert_allclose(loaded.predict(frame), result.model.predict(frame), rtol=1e-5)
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
    # Parallel workers' trials ran elsewhere: the best configuration is retrained.
    parallel = run_tune(frame, None, trials=2, jobs=2)
    assert parallel.metrics["tuning"]["retrained"] is True


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


def test_a_worker_at_the_trial_count_waits_for_the_trials_others_are_running(monkeypatch):
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(value=1.0))
    other = study.ask()  # another worker's trial, still running when the count is reached
    other.set_user_attr("worker", "elsewhere:4242")
    spec = workers_mod.WorkerSpec(
        data=None, target="y", base=RunConfig().to_dict(), space_text=SPACE,
        space_source="<test>", storage=None, study_name=study.study_name, sampler="random",
        pruner="none", n_trials=2,
    )
    # The worker polls while the other trial runs; that trial ends at its first wait.
    monkeypatch.setattr(workers_mod.time, "sleep", lambda s: study.tell(other, 0.5))
    objective = objective_mod.Objective([], RunConfig(), SearchSpace.from_yaml(SPACE))
    assert workers_mod.run_worker(spec, objective, study) == 0  # no trial of its own
    assert study.trials[-1].state == TrialState.COMPLETE  # it ended after the other's trial
