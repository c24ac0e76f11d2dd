"""tabresnet.tuning.progress: the live display."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from tabresnet.tuning.progress import TuneProgress


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
