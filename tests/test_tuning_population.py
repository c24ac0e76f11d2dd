"""tune --pack: the packed population, its trainer, ask-and-tell, resume, ensemble selection."""

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
import tabresnet.errors
from tabresnet.defaults import RunConfig
from tabresnet.models import ModelConfig
from tabresnet.models.population import PopulationNetwork
from tabresnet.training import prepare, train_network
from tabresnet.training.population import PopulationTrainer
from tabresnet.tuning.population import greedy_selection, member_space, run_population
from tabresnet.tuning.space import SearchSpace
from tabresnet.tuning.study import Heartbeat, fail_lost_trials, open_study

SPACE = """
blocks: {type: int, low: 1, high: 2, per_group: true}
width: {type: pow2, low: 8, high: 16, per_group: true}
dropout: {type: float, low: 0.0, high: 0.3}
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=240), "b": rng.normal(size=240),
                       "c": rng.choice(list("xyz"), 240)})
    df["y"] = 2 * df.a - df.b**2 + (df.c == "x")
    return df


def _cfg(**kw) -> RunConfig:
    base = dict(max_epochs=5, ensemble_size=1, progress="none", logger="none", patience=3,
                num_blocks=[1], c_hidden=[16], n_bins=8)
    return RunConfig().replace(**{**base, **kw})


def _train_alone(trainer: PopulationTrainer, member) -> None:
    while not (member.stopped_early or member.diverged):
        trainer.run_epoch()


@pytest.mark.parametrize("kw", [
    {},  # the defaults: PLE, pre-activation blocks, LayerNorm, dropout 0.1, AdamW
    {"optimizer": "sgd", "lr": 0.01, "scheduler": "plateau", "gradient_clip": 0.5,
     "block": "ResNetBlock", "norm": "batch", "num_embedding": "plr", "init": "torch"},
    {"weight": "w"},  # row weights enter the loss and the validation RMSE as in fit
    {"targets": ["y", "y2"]},  # two targets: the RMSE is their mean RMSE, as in fit
])
def test_one_member_trains_as_fit(table, kw):
    kw = dict(kw)
    targets = kw.pop("targets", "y")
    cfg = _cfg(**kw)
    weights = np.random.default_rng(3).choice([0.5, 1.0, 2.0, 3.0], len(table))
    table = table.assign(y2=10 * table.a * table.b)  # a scale of its own
    prepared = prepare(table.assign(w=weights) if "weight" in kw else table, targets, cfg)
    alone = train_network(prepared, cfg)
    trainer = PopulationTrainer(prepared, cfg, 1)
    member = trainer.add(cfg)
    _train_alone(trainer, member)
    assert member.best_epoch == alone.best_epoch
    assert member.epochs == len(alone.history)
    assert member.best == pytest.approx(alone.best_val_rmse, rel=1e-4)
    va = prepared.val
    torch.testing.assert_close(member.network(va.x_num, va.x_cat),
                               alone.network(va.x_num, va.x_cat), atol=1e-4, rtol=1e-4)
    if "weight" in kw:  # ... and the RMSE is the weighted one, not the plain mean over rows
        scale = float(prepared.target_scale[0])
        err = (member.val_pred[:, 0].double().numpy() - va.y[:, 0].double().numpy()) * scale
        assert member.best == pytest.approx(np.sqrt(np.average(err**2, weights=va.weight)),
                                            rel=1e-4)
        assert member.best != pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-4)
    if targets != "y":
        err = (member.val_pred.double().numpy() - va.y.double().numpy()) * np.asarray(
            prepared.target_scale)
        rmse = np.sqrt(np.mean(err**2, axis=0))
        assert member.best == pytest.approx(rmse.mean(), rel=1e-4)
        assert member.best != pytest.approx(np.sqrt(np.mean(rmse**2)), rel=1e-4)


def test_selection_scores_as_the_reported_metrics():
    from tabresnet.metrics import regression_metrics
    from tabresnet.tuning.population import _rmse

    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=(50, 2)) * [1.0, 30.0], rng.normal(size=(50, 2))
    w = rng.uniform(0.5, 2.0, 50)
    assert _rmse(pred, y) == pytest.approx(regression_metrics(y, pred)["rmse"])
    assert _rmse(pred, y, w) == pytest.approx(
        regression_metrics(y, pred, sample_weight=w)["rmse"])


def test_selection_weighs_rows_when_asked():
    y = np.zeros((4, 1))
    good_on_heavy = np.array([[0.0], [0.0], [2.0], [2.0]])  # exact where the weight is
    good_on_light = np.array([[1.0], [1.0], [0.0], [0.0]])
    w = np.array([10.0, 10.0, 0.1, 0.1])
    assert greedy_selection([good_on_heavy, good_on_light], y, rounds=1)[0] == [0.0, 1.0]
    assert greedy_selection([good_on_heavy, good_on_light], y, rounds=1,
                            weights=w)[0] == [1.0, 0.0]


def _members(block="PreActResNetBlock", norm=None, emb="ple"):
    specs = [([1, 1], [8, 8], 0.0), ([2, 1], [16, 32], 0.1), ([3, 2], [4, 8], 0.3)]
    return [ModelConfig(block=block, norm=norm, num_blocks=b, c_hidden=w, dropout=d,
                        ensemble_size=1, num_embedding=emb, n_bins=4, num_embedding_dim=3,
                        init="torch") for b, w, d in specs]


@pytest.mark.parametrize("block,norm,emb", [("PreActResNetBlock", None, "ple"),
                                            ("ResNetBlock", "batch", "plr"),
                                            ("ResNetBlock", "layer", "none")])
def test_narrower_and_shallower_members_compute_their_own_network(block, norm, emb):
    torch.manual_seed(0)
    configs = _members(block, norm, emb)
    nets, rows = [], torch.randn(50, 4)  # the members' training rows: one set of PLE bins
    for c in configs:
        net = c.build_tabular(4, [5, 3], 2, n_cont=3)
        if hasattr(net.numeric, "fit_bins"):
            net.numeric.fit_bins(rows)
        nets.append(net.eval())
    pop = PopulationNetwork(configs, 4, [5, 3], 2, 3)
    assert pop.widths == [16, 32] and pop.blocks == [3, 2]
    for i, net in enumerate(nets):
        pop.load_member(i, net, configs[i])
    x, codes = torch.randn(7, 4), torch.randint(0, 3, (7, 2))
    out = pop.eval()(x, codes)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[:, i], net(x, codes), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pop.member_network(i, configs[i])(x, codes), net(x, codes))


def test_padded_units_stay_zero_in_training(table):
    """After training, each member taken out of the pack predicts what its slot predicts."""
    cfg = _cfg(max_epochs=3, c_hidden=[16])
    prepared = prepare(table, "y", cfg)
    trainer = PopulationTrainer(prepared, cfg, 4)
    for w, b in ((16, 2), (8, 1), (4, 2), (16, 1)):  # packs by width: 16 (two members), 8, 4
        trainer.add(cfg.replace(c_hidden=[w], num_blocks=[b]))
    for _ in range(3):
        trainer.run_epoch()
    assert sorted(p.network.k for p in trainer.packs.values()) == [1, 1, 2]
    va = prepared.val
    for pack in trainer.packs.values():
        slots = pack.network.eval()(va.x_num, va.x_cat)
        for i, m in enumerate(pack.members):
            alone = pack.network.member_network(i, m.config.model)
            torch.testing.assert_close(alone(va.x_num, va.x_cat), slots[:, i],
                                       atol=1e-5, rtol=1e-5)


def test_a_diverging_member_ends_alone(table):
    cfg = _cfg(max_epochs=3, patience=10)
    prepared = prepare(table, "y", cfg)

    def run(poison: bool):
        trainer = PopulationTrainer(prepared, cfg, 3)
        members = [trainer.add(cfg.replace(lr=lr)) for lr in (1e-3, 2e-3, 3e-3)]
        trainer.run_epoch()
        if poison:
            (pack,) = trainer.packs.values()
            with torch.no_grad():
                pack.network.net.backbone.output_net.weight[1].fill_(float("nan"))
        trainer.run_epoch()
        return members

    healthy, poisoned = run(False), run(True)
    assert [m.diverged for m in poisoned] == [False, True, False]
    for i in (0, 2):
        assert poisoned[i].history == healthy[i].history
        assert all(torch.isfinite(p).all() for p in poisoned[i].network.parameters())


class _PruneOdd(optuna.pruners.BasePruner):
    """Prunes odd-numbered trials after their second epoch: deterministic."""

    def prune(self, study, trial) -> bool:
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


def _study(tmp_path, name="pop"):
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", name)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    study.pruner = _PruneOdd()
    return study


def test_every_member_is_a_trial_with_its_intermediate_values(tmp_path, table, monkeypatch):
    # Each member beats while it trains (Heartbeat), from its ask to its tell.
    beats: list[tuple[str, int]] = []
    monkeypatch.setattr(Heartbeat, "add", lambda self, n: beats.append(("add", n)))
    monkeypatch.setattr(Heartbeat, "discard", lambda self, n: beats.append(("discard", n)))
    cfg = _cfg(max_epochs=4)
    prepared = prepare(table, "y", cfg)
    space, fixed = member_space(SearchSpace.from_yaml(SPACE + "block: [ResNetBlock]\n"))
    assert fixed == ["block"]
    study = _study(tmp_path)
    run = run_population(study, space, cfg, prepared, pack=3, n_trials=7)
    trials = study.get_trials()
    assert len(trials) == 7 and run.asked == 7
    for t in trials:
        assert t.state == (TrialState.PRUNED if t.number % 2 else TrialState.COMPLETE)
        assert t.intermediate_values and t.user_attrs["config"]["c_hidden"][0] in (8, 16)
        assert t.user_attrs["epochs"] == len(t.intermediate_values)
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(min(t.intermediate_values.values()))
    assert sorted(c.number for c in run.candidates) == [0, 2, 4, 6]
    for n in range(7):
        assert [b for b in beats if b[1] == n] == [("add", n), ("discard", n)]


def test_resume_after_a_kill_loses_only_the_running_members(tmp_path, table):
    cfg = _cfg(max_epochs=4)
    prepared = prepare(table, "y", cfg)
    space, _ = member_space(SearchSpace.from_yaml(SPACE))

    class Killed(Exception):
        pass

    epochs = []

    def kill_after_five(trainer):
        epochs.append(1)
        if len(epochs) == 5:
            raise Killed  # as SIGKILL: nothing is told, the running trials stay RUNNING

    with pytest.raises(Killed):
        run_population(_study(tmp_path), space, cfg, prepared, pack=3, n_trials=8,
                       on_epoch=kill_after_five)
    study = _study(tmp_path)
    before = {t.number: t.state for t in study.get_trials()}
    running = [n for n, s in before.items() if s == TrialState.RUNNING]
    finished = [n for n, s in before.items() if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert running and finished
    lost = fail_lost_trials(study)  # this process ran them: they are lost at once
    assert sorted(lost) == running
    run_population(study, space, cfg, prepared, pack=3, n_trials=8)
    after = {t.number: t for t in study.get_trials()}
    assert all(after[n].state == before[n] for n in finished)
    assert all(after[n].state == TrialState.FAIL for n in running)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after.values()) == 8


def test_the_time_limit_stops_every_member_and_keeps_the_best(tmp_path, table):
    cfg = _cfg(max_epochs=20, patience=20)
    prepared = prepare(table, "y", cfg)
    space, _ = member_space(SearchSpace.from_yaml(SPACE))
    study = _study(tmp_path)
    study.pruner = optuna.pruners.NopPruner()
    now = [0.0]  # the clock: one "second" per epoch of the pack

    def tick(trainer):
        now[0] += 1.0

    run = run_population(study, space, cfg, prepared, pack=3, n_trials=50, deadline=2.0,
                         on_epoch=tick, clock=lambda: now[0])
    trials = study.get_trials()
    assert len(trials) == 3 and run.timed_out and run.epochs == 3
    (complete,) = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete.user_attrs["ended"] == "time limit"
    assert all(t.user_attrs["stopped"] == "time limit" for t in trials if t is not complete)
    assert complete.value == min(min(t.intermediate_values.values()) for t in trials)
    assert len(run.candidates) == 3


def test_greedy_selection_weights_sum_to_one_and_never_lose_to_the_best_member():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 1))
    preds = [y + rng.normal(scale=s, size=y.shape) for s in (0.5, 0.6, 0.7, 2.0)]
    weights, rmse = greedy_selection(preds, y)
    assert math.isclose(sum(weights), 1.0) and all(w >= 0 for w in weights)
    best_single = min(np.sqrt(np.mean((p - y) ** 2)) for p in preds)
    assert rmse <= best_single
    assert sum(w > 0 for w in weights) > 1  # independent errors: averaging helps


@pytest.mark.parametrize("ensemble", [True, False])
def test_tune_pack_saves_a_model_that_loads_and_predicts(tmp_path, table, ensemble):
    out = tmp_path / "run"
    result = tabresnet.tuning.tune(
        table, "y", trials=5, pack=3, space=SPACE, out=out, max_epochs=4, patience=2,
        progress="none", pack_ensemble=ensemble, sampler="random", n_bins=8, test_size=0.2,
        cv=0)
    assert result.metrics["tuning"]["pack"] == 3
    chosen = result.metrics["tuning"]["ensemble"]
    assert math.isclose(sum(c["weight"] for c in chosen), 1.0)
    loaded = tabresnet.load(out)
    np.testing.assert_allclose(loaded.predict(table), result.model.predict(table), rtol=1e-5,
                               atol=1e-5)
    meta = json.loads((out / "model.json").read_text())
    if ensemble and len(chosen) > 1:
        assert meta["network"]["member_weights"] == [c["weight"] for c in chosen]
        assert len(meta["network"]["member_models"]) == len(chosen)
        assert loaded.n_members == len(chosen)
    if not ensemble:
        assert len(chosen) == 1 and loaded.n_members == 1
        assert chosen[0]["trial"] == result.best_trial
    assert set(loaded.evaluate(table)) >= {"rmse"}
    # The saved ensemble carries its conformal calibration, as a fit's model does.
    assert loaded.calibration.kind == "split"
    pred, lower, upper = loaded.predict_interval(table, 0.9)
    assert np.all(lower <= pred) and np.all(pred <= upper)
    assert set(result.metrics["intervals"]) >= {"test_constant", "calibration_rows"}


def test_pack_refuses_what_it_cannot_do(table):
    with pytest.raises(tabresnet.errors.ConfigError, match="--jobs"):
        tabresnet.tuning.tune(table, "y", pack=2, jobs=2, trials=1, space=SPACE)
    with pytest.raises(tabresnet.errors.ConfigError, match="--no-bag"):
        tabresnet.tuning.tune(table, "y", pack=2, cv=3, bag=False, trials=1, space=SPACE)
    with pytest.raises(tabresnet.errors.ConfigError, match="pack must be"):
        tabresnet.tuning.tune(table, "y", pack="lots", trials=1, space=SPACE)
    with pytest.raises(tabresnet.errors.ConfigError, match="--pack trains on the CPU"):
        tabresnet.tuning.tune(table, "y", pack=2, accelerator="gpu", trials=1, space=SPACE)
    with pytest.raises(tabresnet.errors.ConfigError, match="drop --loss quantile"):
        tabresnet.tuning.tune(table, "y", pack=2, loss="quantile", trials=1, space=SPACE)
    with pytest.raises(tabresnet.errors.ConfigError, match="drop --ema-decay"):
        tabresnet.tuning.tune(table, "y", pack=2, ema_decay=0.9, trials=1, space=SPACE)


def test_a_packed_study_where_every_trial_fails_stops_and_says_why(table, monkeypatch):
    import tabresnet.tuning.population as population

    asked = []

    def refuse(self, config, key=None):  # every configuration is one the pack cannot take
        asked.append(key.number)
        if len(asked) > 10:  # a regression: fail the test rather than loop for good
            raise RuntimeError("the pack kept asking for trials that all fail")
        raise ValueError("nothing fits")

    monkeypatch.setattr(population, "MAX_CONSECUTIVE_FAILURES", 3)
    monkeypatch.setattr(PopulationTrainer, "add", refuse)
    with pytest.raises(tabresnet.errors.TabResNetError,
                       match="no trial .* completed.*invalid config: nothing fits"):
        tabresnet.tuning.tune(table, "y", pack=2, trials=50, space=SPACE, cv=0,
                              max_epochs=2, progress="none", sampler="random")
    assert asked == [0, 1, 2]  # three in a row, then no more (not all 50, not forever)


def test_cli_pack_flags(capsys):
    from tabresnet.cli import main

    assert main(["tune", "x.csv", "--target", "y", "--no-ensemble"]) == 2
    assert "add --pack P" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "x.csv", "--target", "y", "--pack", "0"])


@pytest.mark.parametrize("sized", [False, True])
def test_auto_pack_under_a_time_limit_runs_as_many_as_finish_in_time(tmp_path, table, sized):
    cfg = _cfg(max_epochs=4, patience=4)
    prepared = prepare(table, "y", cfg)
    space, _ = member_space(SearchSpace.from_yaml(SPACE))
    study = _study(tmp_path)
    study.pruner = optuna.pruners.NopPruner()
    now = [0.0]  # the clock: one "second" per member and epoch
    running = []

    def tick(trainer):
        running.append(trainer.trained)
        now[0] += trainer.trained

    # 40 s left, members of 4 epochs at 1 s each: waves of 40 / 2 / 4 = 5 members at most.
    run = run_population(study, space, cfg, prepared, pack=8, n_trials=12, deadline=40.0,
                         on_epoch=tick, clock=lambda: now[0], size_to_budget=sized)
    if sized:
        assert running[0] == 2 and max(running) <= 5  # FIRST_WAVE, then budget_pack
        assert run.peak == max(running)
    else:
        assert running[0] == 8 and run.peak == 8
    finished = [t for t in study.get_trials()
                if t.state == TrialState.COMPLETE and "ended" not in t.user_attrs]
    # Sized waves finish members (refilling freed slots); the full pack of 8 members
    # (8 s an epoch) reaches the limit at its fifth epoch, after finishing its first wave only.
    assert len(finished) > (8 if sized else 0)


def test_a_packed_worker_saves_the_studys_best_when_another_worker_found_it(tmp_path, table):
    common = dict(space=SPACE, progress="none", sampler="random", n_bins=8, cv=0)
    first = tabresnet.tuning.tune(table, "y", trials=2, out=tmp_path / "seq", max_epochs=8,
                                  **common)
    # A worker on the same study whose own members train one epoch: worse than the best.
    joined = tabresnet.tuning.tune(
        table, "y", trials=4, pack=2, storage=str(tmp_path / "seq" / "tuning" / "study.db"),
        study_name=first.study.study_name, out=tmp_path / "pack", max_epochs=1, **common)
    info = joined.metrics["tuning"]
    assert joined.best_value == first.best_value and info["best_trial"] == first.study.best_trial.number
    assert info["retrained"] is True and "ensemble" not in info  # the study's best, retrained
