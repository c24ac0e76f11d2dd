"""tune --pack P --cv K: trials trained on every fold, selected and saved out-of-fold."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import tabresnet
import tabresnet.tuning.population as population
from tabresnet.defaults import RunConfig
from tabresnet.training.bag import make_folds
from tabresnet.tuning import AUTO_CV_FOLDS
from tabresnet.tuning.population import member_space, oof_targets, run_population
from tabresnet.tuning.space import SearchSpace
from tabresnet.tuning.study import fail_lost_trials, open_study

SPACE = """
blocks: {type: int, low: 1, high: 2, per_group: true}
width: {type: pow2, low: 8, high: 16, per_group: true}
lr: {type: float, low: 3.0e-3, high: 3.0e-2, log: true}
"""
TINY = dict(max_epochs=3, patience=2, n_bins=4, progress="none", sampler="random")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=150), "b": rng.normal(size=150),
                       "c": rng.choice(list("xyz"), 150)})
    df["y"] = 2 * df.a - df.b**2 + (df.c == "x")
    return df


def _cfg(**kw) -> RunConfig:
    base = dict(max_epochs=3, patience=2, ensemble_size=1, progress="none", logger="none",
                num_blocks=[1], c_hidden=[8], n_bins=4)
    return RunConfig().replace(**{**base, **kw})


class _PruneOdd(optuna.pruners.BasePruner):
    """Prunes odd-numbered trials after their second epoch: deterministic."""

    def prune(self, study, trial) -> bool:
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


def _oof(networks, weights, folds) -> np.ndarray:
    """Out-of-fold predictions by hand: fold i's rows by the fold-i networks, weighted."""
    pre = folds[0].preprocessor
    parts = []
    for i, fold in enumerate(folds):
        va = fold.val
        with torch.no_grad():
            z = sum(w * nets[i].eval()(va.x_num, va.x_cat) for nets, w in zip(networks, weights))
        parts.append(pre.inverse_target(z.double().numpy()))
    return np.concatenate(parts)


def _rmse(pred, y) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def test_a_trial_trains_one_member_per_fold_and_is_scored_out_of_fold(table):
    cfg = _cfg()
    folds = make_folds(table, "y", cfg, cv=3, shared=True)
    space, _ = member_space(SearchSpace.from_yaml(SPACE))
    study = open_study(None, "cv")
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    study.pruner = _PruneOdd()
    run = run_population(study, space, cfg, folds, pack=2, n_trials=4)
    trials = study.get_trials()
    assert len(trials) == 4 and run.peak == 2
    y = oof_targets(folds)
    assert len(y) == sum(len(f.val) for f in folds) == len(table)  # every row once (no test)
    for t in trials:
        assert t.state == (TrialState.PRUNED if t.number % 2 else TrialState.COMPLETE)
        assert len(t.user_attrs["fold_rmse"]) == 3
        if t.state == TrialState.COMPLETE:
            # As a sequential tune --cv trial: the mean of the folds' best RMSEs.
            assert t.value == pytest.approx(np.mean(t.user_attrs["fold_rmse"]))
    assert sorted(c.number for c in run.candidates) == [0, 2]
    for c in run.candidates:
        assert len(c.networks) == 3 and c.val_pred.shape == y.shape
        by_hand = _oof([c.networks], [1.0], folds)
        np.testing.assert_allclose(c.val_pred, by_hand, rtol=1e-5, atol=1e-5)
        assert c.oof_rmse == pytest.approx(_rmse(by_hand, y), rel=1e-5)
        assert study.trials[c.number].user_attrs["oof_rmse"] == pytest.approx(c.oof_rmse)
        # Each fold network at its own best epoch: its fold's RMSE is the trial's fold_rmse.
        fold_rmse = [_rmse(_oof([[net]], [1.0], [f]), f.val.y_raw)
                     for net, f in zip(c.networks, folds)]
        np.testing.assert_allclose(fold_rmse, study.trials[c.number].user_attrs["fold_rmse"],
                                   rtol=1e-4)


def test_a_killed_packed_cv_study_resumes_losing_only_the_running_trials(tmp_path, table):
    cfg = _cfg(max_epochs=3, patience=3)
    folds = make_folds(table, "y", cfg, cv=3, shared=True)
    space, _ = member_space(SearchSpace.from_yaml(SPACE))
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def study():
        s = open_study(url, "cv", attrs={"cv": 3})
        s.sampler = optuna.samplers.RandomSampler(seed=0)
        return s

    class Killed(Exception):
        pass

    def kill_at_the_fourth_epoch(trainer):
        if trainer.epoch == 4:
            raise Killed  # as SIGKILL: nothing is told, the running trials stay RUNNING

    with pytest.raises(Killed):
        run_population(study(), space, cfg, folds, pack=2, n_trials=4,
                       on_epoch=kill_at_the_fourth_epoch)
    resumed = study()  # a new process opens the study
    before = {t.number: t.state for t in resumed.get_trials()}
    running = sorted(n for n, s in before.items() if s == TrialState.RUNNING)
    assert len(running) == 2 and sum(s == TrialState.COMPLETE for s in before.values()) == 2
    assert sorted(fail_lost_trials(resumed)) == running
    run_population(resumed, space, cfg, folds, pack=2, n_trials=4)
    after = {t.number: t for t in resumed.get_trials()}
    assert all(after[n].state == TrialState.FAIL for n in running)
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == 4
    assert all(len(t.user_attrs["fold_rmse"]) == 3 for t in after.values()
               if t.state == TrialState.COMPLETE)


def _forced_selection(preds, y, rounds=50, weights=None):
    """Two trials, 3:1, whatever their scores: the many-trial save path, deterministically."""
    chosen = [0.75, 0.25] + [0.0] * (len(preds) - 2)
    pred = sum(w * np.asarray(p) for w, p in zip(chosen, preds))
    return chosen, float(np.sqrt(np.mean(np.mean((pred - y) ** 2, axis=0))))


def test_tune_pack_cv_saves_the_chosen_trials_fold_networks(tmp_path, table, monkeypatch, capsys):
    from tabresnet.cli import main

    monkeypatch.setattr(population, "greedy_selection", _forced_selection)
    out = tmp_path / "run"
    result = tabresnet.tuning.tune(table, "y", trials=3, pack=2, cv=3, space=SPACE, out=out,
                                   test_size=0.2, **TINY)
    info = result.metrics["tuning"]
    assert info["cv_folds"] == 3 and info["pack"] == 2
    assert result.study.user_attrs["cv"] == 3
    chosen = info["ensemble"]
    assert [c["weight"] for c in chosen] == [0.75, 0.25]
    loaded = tabresnet.load(out)
    assert loaded.n_members == 6  # 3 fold networks per chosen trial
    meta = json.loads((out / "model.json").read_text())
    weights = meta["network"]["member_weights"]
    assert math.isclose(sum(weights), 1.0)
    np.testing.assert_allclose(weights, [0.25] * 3 + [0.25 / 3] * 3)
    assert len(meta["network"]["member_models"]) == 6
    # The out-of-fold score of the saved model, from its fold networks by hand.
    folds = make_folds(table, "y", result.best_config, cv=3, shared=True)
    nets = list(loaded.network.members)
    oof = _oof([nets[:3], nets[3:]], [0.75, 0.25], folds)
    y = oof_targets(folds)
    assert result.metrics["oof"]["rmse"] == pytest.approx(_rmse(oof, y), rel=1e-5)
    assert info["ensemble_oof_rmse"] == pytest.approx(_rmse(oof, y), rel=1e-5)
    saved = pd.read_csv(out / "predictions_oof.csv").set_index("row")  # the same, row by row
    rows = np.concatenate([f.val.frame.index.to_numpy() for f in folds])
    np.testing.assert_allclose(saved.loc[rows, "y_pred"], np.ravel(oof), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(table), result.model.predict(table), rtol=1e-5,
                               atol=1e-5)
    assert set(loaded.evaluate(table)) >= {"rmse"} and "test" in result.metrics
    # CV+ intervals from the out-of-fold rows, each fold's rows by its own networks.
    cal = loaded.calibration
    assert cal.kind == "cv+" and cal.fold_sizes == [len(f.val) for f in folds]
    edges = np.cumsum([0, *cal.fold_sizes])
    scores = [np.sort(np.abs(oof - y)[a:b], axis=0) for a, b in zip(edges, edges[1:])]
    np.testing.assert_allclose(cal.constant, np.concatenate(scores), rtol=1e-5, atol=1e-6)
    assert cal.adaptive is not None  # the spread of each fold's networks normalises
    assert result.metrics["intervals"]["calibration"] == "CV+, out-of-fold rows"
    pred, lower, upper = loaded.predict_interval(table, 0.9)
    assert np.all(lower <= pred) and np.all(pred <= upper)
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["bag"] == {"members": 6, "folds": 3}

    # The command line resumes the study: cv auto keeps the 3 folds it was started with.
    data = tmp_path / "data.csv"
    table.to_csv(data, index=False)
    assert main(["tune", str(data), "--target", "y", "--out", str(out), "--pack", "2",
                 "--trials", "4", "--space", str(_space_file(tmp_path)), "--test-size", "0.2",
                 "--max-epochs", "3", "--patience", "2", "--n-bins", "4", "--progress",
                 "none", "--sampler", "random", "--no-report"]) == 0
    text = capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())
    # This session's members, or the study's best when an earlier session's beats
    # them (then retrained as a bag of its 3 fold networks): the summary says which.
    saved = ("a bag of 3 networks, one per fold" if again["tuning"]["retrained"]
             else "out-of-fold RMSE")
    assert "mean of its 3 folds" in text and saved in text
    assert again["tuning"]["cv_folds"] == 3
    assert sum(again["tuning"]["trials"].get(s, 0) for s in ("COMPLETE", "PRUNED")) == 4


def _space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def test_no_ensemble_saves_the_best_trials_bag_and_cv_auto_picks_folds(table):
    result = tabresnet.tuning.tune(table, "y", trials=2, pack=2, space=SPACE, pack_ensemble=False,
                                   **TINY)
    info = result.metrics["tuning"]
    assert info["cv_folds"] == AUTO_CV_FOLDS  # a small table: cv="auto" cross-validates
    assert result.study.user_attrs["cv"] == AUTO_CV_FOLDS
    (chosen,) = info["ensemble"]
    assert chosen["trial"] == result.best_trial and chosen["weight"] == 1.0
    model = result.model
    assert model.n_members == AUTO_CV_FOLDS and not model.network.weighted  # a plain bag
    assert info["ensemble_oof_rmse"] == pytest.approx(result.metrics["oof"]["rmse"])
    assert model.calibration.kind == "cv+"


def test_pack_cv_errors_are_one_line(tmp_path, table, capsys):
    data = tmp_path / "data.csv"
    table.to_csv(data, index=False)
    base = ["tune", str(data), "--target", "y", "--pack", "2", "--trials", "1"]
    assert main_error(capsys, *base, "--cv", "3", "--no-bag").startswith(
        "error: --pack with --cv saves the chosen trials' fold networks")
    assert "--jobs" in main_error(capsys, *base, "--cv", "3", "--jobs", "2")
    assert "at least 2" in main_error(capsys, *base, "--cv", "-1")


def main_error(capsys, *args) -> str:
    from tabresnet.cli import main

    assert main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]
