"""tabresnet.tuning.objective: one trial, cut at the time limit or run to its end."""

from __future__ import annotations

import time

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tabresnet.defaults import RunConfig
from tabresnet.training.bag import make_folds
from tabresnet.tuning import SearchSpace
from tabresnet.tuning import objective as objective_mod

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



def _objective(frame, deadline, **train):
    cfg = RunConfig().replace(**{**TINY, **train, "logger": "none"})
    folds = make_folds(frame, "y", cfg)
    return objective_mod.Objective(folds, cfg, SearchSpace.from_yaml(SPACE), deadline=deadline)


def test_a_trial_running_at_the_time_limit_is_stopped_and_pruned(frame):
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))  # the study has a best already
    # 5000 epochs with no early stopping would take minutes; the limit (already
    # past, so the test does not depend on how fast this machine is) cuts it.
    objective = _objective(frame, time.time() - 1.0, max_epochs=5000, patience=5000)
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stopped"] == "time limit"
    assert trial.user_attrs["epochs"] < 5000


def test_without_a_complete_trial_the_time_limit_lets_the_trial_finish(frame):
    study = optuna.create_study()
    objective = _objective(frame, time.time() - 1.0, max_epochs=6, patience=100)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs"] == 6
