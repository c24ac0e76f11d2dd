"""tabresnet.tuning.space: YAML entries as Optuna distributions, sampling, the defaults back."""

from __future__ import annotations

import optuna
import pytest

from tabresnet.defaults import RunConfig, flat_fields
from tabresnet.errors import ConfigError
from tabresnet.tuning import SearchSpace
from tabresnet.tuning.space import DERIVED


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
        ("lr: {type: float, low: 1.0e-4, high: .inf}", r"low, high and step must be finite"),
        ("lr: {type: float, low: .nan, high: 0.01}", r"low, high and step must be finite"),
        ("width: {type: pow2, low: 32, high: .inf}", r"low, high and step must be finite"),
        ("n_groups: {type: int, low: 1, high: 3, step: 0}", r"step must be positive"),
        ("optimizer: [adamw, sgd]\n"
         "gradient_clip: {type: float, low: 0.5, high: 5.0, when: {optimizer: sgdd}}",
         r"gradient_clip is searched when optimizer is 'sgdd', which optimizer never is here"),
        ("gradient_clip: {type: float, low: 0.5, high: 5.0, when: {optimizer: sgdd}}",
         r"which optimizer never is here"),  # a fixed option: its choices
        ("lr: [0.1]\nlr: {type: float, low: 1.0e-3, high: 0.1}",
         r"not valid YAML \(line 2\): key 'lr' is given twice"),  # PyYAML keeps the last
    ],
)
def test_space_errors_are_one_line(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        SearchSpace.from_yaml(text)
    assert "\n" not in str(info.value)


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
    odd = space.params_for(RunConfig().replace(num_blocks=[2, 2], c_hidden=[100, 128]))
    assert "log2_width_1" not in odd and odd["log2_width_2"] == 7


def test_numbers_yaml_reads_as_text_are_numbers_in_the_study():
    # PyYAML 1.1 reads 1e-3 (no dot) as a string: best_params would hold "1e-3".
    space = SearchSpace.from_yaml("lr: [1e-3, 1e-2]\nweight_decay: {type: float, low: 1e-5, high: 1e-3}")
    lr = next(e for e in space.entries if e.name == "lr")
    assert lr.dist.choices == (0.001, 0.01)


def test_choices_mixing_numbers_and_yaml_text_numbers_are_all_numbers():
    space = SearchSpace.from_yaml("lr: {choices: [1e-3, 0.01]}")  # '1e-3' is text to PyYAML
    assert next(e for e in space.entries if e.name == "lr").dist.choices == (0.001, 0.01)


def test_yaml_merge_keys_still_work_with_duplicate_keys_refused():
    from tabresnet.defaults import load_yaml

    text = "base: &b {lr: 0.1}\ntrain:\n  <<: *b\n  max_epochs: 3\n"
    assert load_yaml(text)["train"] == {"lr": 0.1, "max_epochs": 3}
